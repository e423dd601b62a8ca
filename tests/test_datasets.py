"""Dataset loaders: the bundled digits, MNIST IDX files and CIFAR-10 batches (synthetic files)."""
import gzip
import hashlib
import os
import pickle
import re
import struct
from importlib import resources

import numpy as np
import pytest

from _datafile_writers import (
    MNIST_NAMES,
    cifar_python_dict,
    cifar_record_bytes,
    idx_bytes,
    py2_pickle_bytes,
    random_cifar,
    random_mnist,
    write_cifar_binary,
    write_cifar_python,
    write_file,
    write_mnist,
)
from fastconv.datasets import cifar10, digits, mnist

# ---------------------------------------------------------------- digits (bundled)

# Per-class counts of the UCI optdigits test set, as published in its description (optdigits.names).
UCI_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def _source_txt():
    return resources.files("fastconv.datasets").joinpath("data", "DIGITS_SOURCE.txt").read_text()


def test_digits_raw_matches_published_description():
    images, labels = digits.load_raw()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 16
    assert np.bincount(labels, minlength=10).tolist() == UCI_CLASS_COUNTS
    # The first sample of the UCI/scikit-learn file is a "0" whose top row is 0 0 5 13 9 1 0 0.
    assert labels[0] == 0
    assert images[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_checksums_match_source_file():
    text = _source_txt()
    for word in ("CC BY 4.0", "Alpaydin", "Kaynak", "UCI Machine Learning Repository"):
        assert word in text
    npz_bytes = resources.files("fastconv.datasets").joinpath("data", "digits.npz").read_bytes()
    file_sha = re.search(r"digits\.npz file SHA-256:\s+([0-9a-f]{64})", text).group(1)
    assert hashlib.sha256(npz_bytes).hexdigest() == file_sha
    images, labels = digits.load_raw()
    images_sha = re.search(r"images array bytes \(C order\) SHA-256:\s+([0-9a-f]{64})", text).group(1)
    labels_sha = re.search(r"labels array bytes SHA-256:\s+([0-9a-f]{64})", text).group(1)
    assert hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest() == images_sha
    assert hashlib.sha256(labels.tobytes()).hexdigest() == labels_sha


def test_digits_npz_holds_no_pickles():
    # allow_pickle=False in the loader: the file must only contain plain arrays.
    path = resources.files("fastconv.datasets").joinpath("data", "digits.npz")
    with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["images", "labels"]


@pytest.mark.parametrize("test_split", [0.2, 0.5, 0.05])
def test_digits_split_is_a_stratified_partition(test_split):
    (x_train, y_train), (x_test, y_test) = digits.load_data(test_split=test_split, seed=3)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert x_train.shape[1:] == (8, 8, 1) and x_test.shape[1:] == (8, 8, 1)
    assert len(x_train) == len(y_train) and len(x_test) == len(y_test)
    assert len(x_train) + len(x_test) == 1797
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    # Every class keeps round(count * split) samples in the test set.
    expected_test = [int(round(c * test_split)) for c in UCI_CLASS_COUNTS]
    assert np.bincount(y_test, minlength=10).tolist() == expected_test
    # Train + test is exactly the raw data set (as a multiset of (image, label) rows), x = raw / 16.
    images, labels = digits.load_raw()
    raw_rows = np.concatenate([images.reshape(1797, 64), labels[:, None]], axis=1).astype(np.int64)
    split_x = np.concatenate([x_train, x_test]).reshape(1797, 64) * 16
    assert np.array_equal(split_x, np.round(split_x))
    split_rows = np.concatenate(
        [split_x.astype(np.int64), np.concatenate([y_train, y_test])[:, None]], axis=1)
    sort = lambda rows: rows[np.lexsort(rows.T[::-1])]
    assert np.array_equal(sort(split_rows), sort(raw_rows))


def test_digits_split_is_deterministic_and_seeded():
    (a_train, ay_train), (a_test, _) = digits.load_data(seed=0)
    (b_train, by_train), (b_test, _) = digits.load_data(seed=0)
    (c_train, _), _ = digits.load_data(seed=1)
    assert np.array_equal(a_train, b_train) and np.array_equal(ay_train, by_train)
    assert np.array_equal(a_test, b_test)
    assert not np.array_equal(a_train, c_train)
    # Shuffled across classes: the first 50 training labels are not all one class.
    assert len(np.unique(ay_train[:50])) > 3


@pytest.mark.parametrize("test_split", [0, 1, 1.5, -0.2, "0.2", None, True])
def test_digits_rejects_bad_test_split(test_split):
    with pytest.raises(ValueError, match="test_split"):
        digits.load_data(test_split=test_split)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_digits_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        digits.load_data(seed=seed)


# ---------------------------------------------------------------- MNIST (IDX)

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_mnist_round_trip(tmp_path, gz):
    data = random_mnist(50, 20, seed=1)
    write_mnist(tmp_path, data, gz=gz)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(tmp_path)
    assert x_train.dtype == np.uint8 and x_train.shape == (50, 28, 28)
    assert y_train.dtype == np.int64 and x_test.shape == (20, 28, 28)
    np.testing.assert_array_equal(x_train, data[0][0])
    np.testing.assert_array_equal(y_train, data[0][1])
    np.testing.assert_array_equal(x_test, data[1][0])
    np.testing.assert_array_equal(y_test, data[1][1])
    assert x_train.flags.writeable and x_train.flags.c_contiguous


def test_mnist_accepts_str_path_and_dotted_names(tmp_path):
    data = random_mnist(12, 7, rows=5, cols=6, seed=2)
    (x_train, y_train), (x_test, y_test) = data
    for name, arr in [("train-images.idx3-ubyte", x_train), ("train-labels.idx1-ubyte", y_train),
                      ("t10k-images.idx3-ubyte", x_test), ("t10k-labels.idx1-ubyte", y_test)]:
        write_file(tmp_path / name, idx_bytes(arr))
    (a, b), (c, d) = mnist.load_data(str(tmp_path))
    assert a.shape == (12, 5, 6)  # any image size is read as the header says
    np.testing.assert_array_equal(a, x_train)
    np.testing.assert_array_equal(d, y_test)


def test_mnist_header_is_big_endian_by_hand():
    # 2 images of 1x3: the header is written out by hand, not with the test writer.
    data = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (1).to_bytes(4, "big") \
        + (3).to_bytes(4, "big") + bytes([1, 2, 3, 4, 5, 6])
    out = mnist.parse_idx(data, mnist.IMAGES_MAGIC)
    assert out.shape == (2, 1, 3)
    assert out.tolist() == [[[1, 2, 3]], [[4, 5, 6]]]


def _mnist_folder(tmp_path, gz=False):
    data = random_mnist(50, 20, seed=4)
    return data, write_mnist(tmp_path, data, gz=gz)


def test_mnist_missing_file_lists_expected_names(tmp_path):
    _, files = _mnist_folder(tmp_path)
    os.remove(files["test_labels"])
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_data(tmp_path)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message and str(tmp_path) in message
    for name in MNIST_NAMES.values():
        assert name in message  # the full list of what is expected


def test_mnist_empty_or_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        mnist.load_data(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mnist.load_data(tmp_path / "nope")
    (tmp_path / "a_file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        mnist.load_data(tmp_path / "a_file")
    with pytest.raises(TypeError, match="never downloads"):
        mnist.load_data(None)


def _replace(path, data):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_mnist_bad_magic_names_file(tmp_path, gz):
    data, files = _mnist_folder(tmp_path, gz)
    # An image file carrying the label magic number.
    _replace(files["train_images"], idx_bytes(data[0][0], magic=0x00000801))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*magic number 0x00000801.*0x00000803"):
        mnist.load_data(tmp_path)


def test_mnist_wrong_type_byte_is_bad_magic(tmp_path):
    data, files = _mnist_folder(tmp_path)
    _replace(files["test_labels"], idx_bytes(data[1][1], magic=0x00000D01))  # float32 labels
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.*magic"):
        mnist.load_data(tmp_path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_mnist_truncated_images(tmp_path, gz):
    data, files = _mnist_folder(tmp_path, gz)
    _replace(files["test_images"], idx_bytes(data[1][0])[:-100])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.*truncated"):
        mnist.load_data(tmp_path)


def test_mnist_truncated_header_and_trailing_bytes(tmp_path):
    data, files = _mnist_folder(tmp_path)
    _replace(files["train_images"], idx_bytes(data[0][0])[:10])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated IDX header"):
        mnist.load_data(tmp_path)
    _replace(files["train_images"], b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        mnist.load_data(tmp_path)
    _replace(files["train_images"], idx_bytes(data[0][0]) + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        mnist.load_data(tmp_path)


def test_mnist_zero_dimension(tmp_path):
    _, files = _mnist_folder(tmp_path)
    _replace(files["train_images"], struct.pack(">4I", 0x803, 0, 28, 28))
    with pytest.raises(ValueError, match="dimensions must be positive"):
        mnist.load_data(tmp_path)


def test_mnist_absurd_header_dimensions_are_truncation_not_overflow():
    header = struct.pack(">4I", 0x803, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    with pytest.raises(ValueError, match="truncated"):
        mnist.parse_idx(header + bytes(10), mnist.IMAGES_MAGIC, "huge")


def test_mnist_label_count_must_match_images(tmp_path):
    data, files = _mnist_folder(tmp_path)
    _replace(files["train_labels"], idx_bytes(data[0][1][:-1]))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*49 labels.*50 images"):
        mnist.load_data(tmp_path)


def test_mnist_labels_out_of_range(tmp_path):
    data, files = _mnist_folder(tmp_path)
    bad = data[1][1].copy()
    bad[7] = 10
    _replace(files["test_labels"], idx_bytes(bad))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.*label 7 is 10"):
        mnist.load_data(tmp_path)


def test_mnist_train_and_test_image_sizes_must_agree(tmp_path):
    (train, _) = random_mnist(10, 5, seed=0)
    (_, test) = random_mnist(10, 5, rows=20, cols=20, seed=0)
    write_mnist(tmp_path, (train, test))
    with pytest.raises(ValueError, match="same image size"):
        mnist.load_data(tmp_path)


def test_mnist_corrupt_gzip(tmp_path):
    _, files = _mnist_folder(tmp_path, gz=True)
    with open(files["train_labels"], "wb") as f:
        f.write(b"this is not gzip data at all")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz.*gzip"):
        mnist.load_data(tmp_path)
    good = gzip.compress(idx_bytes(np.zeros(50, np.uint8)))
    with open(files["train_labels"], "wb") as f:
        f.write(good[: len(good) // 2])  # truncated gzip stream
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        mnist.load_data(tmp_path)


# ---------------------------------------------------------------- CIFAR-10

def _flatten_batches(train_batches):
    return (np.concatenate([x for x, _ in train_batches]),
            np.concatenate([y for _, y in train_batches]))


def _check_cifar_equal(loaded, train_batches, test):
    (x_train, y_train), (x_test, y_test) = loaded
    expected_x, expected_y = _flatten_batches(train_batches)
    assert x_train.dtype == np.uint8 and x_train.shape == (len(expected_x), 32, 32, 3)
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert x_train.flags.c_contiguous
    np.testing.assert_array_equal(x_train, expected_x)
    np.testing.assert_array_equal(y_train, expected_y)
    np.testing.assert_array_equal(x_test, test[0])
    np.testing.assert_array_equal(y_test, test[1])


@pytest.mark.parametrize("subfolder", [None, "cifar-10-batches-bin"])
def test_cifar_binary_round_trip(tmp_path, subfolder):
    train, test = random_cifar((10, 11, 9, 10, 10), 20, seed=5)
    write_cifar_binary(tmp_path / subfolder if subfolder else tmp_path, train, test)
    _check_cifar_equal(cifar10.load_data(tmp_path), train, test)


def test_cifar_binary_record_layout_by_hand(tmp_path):
    # One record written byte by byte: label 7, then the red, green and blue 32x32 planes.
    red = np.arange(1024) % 251
    green = (np.arange(1024) * 7) % 256
    blue = np.full(1024, 200)
    record = bytes([7]) + bytes(red.tolist()) + bytes(green.tolist()) + bytes(blue.tolist())
    path = tmp_path / "one.bin"
    path.write_bytes(record)
    x, y = cifar10.read_binary_batch(str(path))
    assert y.tolist() == [7] and x.shape == (1, 32, 32, 3)
    row, col = 3, 17  # pixel (3, 17) is byte 3 * 32 + 17 of each plane
    assert x[0, row, col].tolist() == [red[row * 32 + col], green[row * 32 + col], 200]


@pytest.mark.parametrize("style", ["py2", "py3"])
@pytest.mark.parametrize("subfolder", [None, "cifar-10-batches-py"])
def test_cifar_python_round_trip(tmp_path, style, subfolder):
    train, test = random_cifar((10, 10, 12, 8, 10), 20, seed=6)
    write_cifar_python(tmp_path / subfolder if subfolder else tmp_path, train, test, style=style)
    _check_cifar_equal(cifar10.load_data(tmp_path), train, test)


def test_cifar_python_and_binary_agree_and_binary_is_preferred(tmp_path):
    train, test = random_cifar(seed=7)
    write_cifar_binary(tmp_path / "cifar-10-batches-bin", train, test)
    write_cifar_python(tmp_path / "cifar-10-batches-py", train, test)
    from_python = cifar10.load_data(tmp_path / "cifar-10-batches-py")
    _check_cifar_equal(from_python, train, test)
    # Break the python copy: loading the parent must still work, from the binary batches.
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    _check_cifar_equal(cifar10.load_data(tmp_path), train, test)


class _WritesAFile:
    """A pickle payload that, if ever executed, creates a file: proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_cifar_python_refuses_malicious_pickle_without_running_it(tmp_path):
    train, test = random_cifar(seed=8)
    write_cifar_python(tmp_path, train, test)
    marker = tmp_path / "pwned"
    batch = cifar_python_dict(*train[2])
    batch["filenames"] = _WritesAFile(str(marker))
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_3.*io\.open.*forbidden.*cifar-10-batches-bin"):
        cifar10.load_data(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("subprocess", "Popen"),
    ("numpy", "load"), ("numpy", "frombuffer"), ("numpy.core.multiarray", "ndarray.tofile"),
    ("copyreg", "_reconstructor"), ("_codecs", "decode"),
])
def test_restricted_unpickler_refuses_every_other_global(module, name):
    # GLOBAL opcode (protocol 2) then STOP: loading must fail at the lookup itself.
    payload = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
    with pytest.raises(ValueError, match=f"'{re.escape(module)}.{re.escape(name)}' is forbidden"):
        cifar10.restricted_loads(payload, "payload")
    # Same with protocol 4's STACK_GLOBAL.
    payload4 = pickle.dumps("x", protocol=4)[:2] + b"\x8c" + bytes([len(module)]) + module.encode() \
        + b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93."
    with pytest.raises(ValueError, match="forbidden"):
        cifar10.restricted_loads(payload4, "payload")


def test_restricted_unpickler_codecs_encode_is_latin1_only():
    ok = pickle.dumps(b"\x00\xff", protocol=2)  # Python 3 writes this via _codecs.encode(.., 'latin1')
    assert b"_codecs" in ok and cifar10.restricted_loads(ok) == b"\x00\xff"
    evil = ok.replace(b"latin1", b"rot_13")
    with pytest.raises(ValueError, match="only latin1"):
        cifar10.restricted_loads(evil)


def test_cifar_binary_missing_batch_lists_expected(tmp_path):
    train, test = random_cifar(seed=9)
    write_cifar_binary(tmp_path, train, test)
    os.remove(tmp_path / "data_batch_3.bin")
    with pytest.raises(FileNotFoundError) as info:
        cifar10.load_data(tmp_path)
    message = str(info.value)
    assert "data_batch_3.bin" in message and str(tmp_path) in message and "test_batch.bin" in message


def test_cifar_no_batches_or_no_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-bin.*cifar-10-batches-py"):
        cifar10.load_data(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cifar10.load_data(tmp_path / "missing")


def _cifar_binary_folder(tmp_path):
    train, test = random_cifar(seed=10)
    write_cifar_binary(tmp_path, train, test)
    return train, test


@pytest.mark.parametrize("cut", [1, 3072, 3073 * 10 - 1])
def test_cifar_binary_truncated(tmp_path, cut):
    train, _ = _cifar_binary_folder(tmp_path)
    (tmp_path / "data_batch_2.bin").write_bytes(cifar_record_bytes(*train[1])[:-cut])
    with pytest.raises(ValueError, match="data_batch_2.bin.*truncated"):
        cifar10.load_data(tmp_path)


def test_cifar_binary_empty_file(tmp_path):
    _cifar_binary_folder(tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="test_batch.bin"):
        cifar10.load_data(tmp_path)


def test_cifar_binary_label_out_of_range(tmp_path):
    train, _ = _cifar_binary_folder(tmp_path)
    x, y = train[4]
    y = y.copy()
    y[3] = 10
    (tmp_path / "data_batch_5.bin").write_bytes(cifar_record_bytes(x, y))
    with pytest.raises(ValueError, match=r"data_batch_5.bin.*label 3 is 10"):
        cifar10.load_data(tmp_path)


def _python_folder_with_batch(tmp_path, batch):
    train, test = random_cifar(seed=11)
    write_cifar_python(tmp_path, train, test)
    (tmp_path / "test_batch").write_bytes(py2_pickle_bytes(batch))


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b.update(labels=b["labels"][:-1]), "19 labels for 20 images"),
    (lambda b: b["labels"].__setitem__(4, 12), "label 4 is 12"),
    (lambda b: b["labels"].__setitem__(4, -1), "label 4 is -1"),
    (lambda b: b.update(data=b["data"].astype(np.float32)), "uint8 array"),
    (lambda b: b.update(data=b["data"][:, :3000].copy()), r"\(n, 3072\)"),
    (lambda b: b.update(data=b["data"][:0].copy(), labels=[]), "n > 0"),
    (lambda b: b.update(data=b["data"].tolist()), "found list"),
    (lambda b: b.update(labels=[[1]] * 20), "flat list of integers"),
    (lambda b: b.pop("labels"), "needs 'data' and 'labels'"),
])
def test_cifar_python_malformed_batch(tmp_path, mutate, message):
    _, test = random_cifar(seed=12)
    batch = cifar_python_dict(*test)
    mutate(batch)
    _python_folder_with_batch(tmp_path, batch)
    with pytest.raises(ValueError, match=f"test_batch.*{message}"):
        cifar10.load_data(tmp_path)


def test_cifar_python_not_a_dict_or_truncated(tmp_path):
    _python_folder_with_batch(tmp_path, [1, 2, 3])
    with pytest.raises(ValueError, match="test_batch.*expected a pickled dict"):
        cifar10.load_data(tmp_path)
    _, test = random_cifar(seed=13)
    good = py2_pickle_bytes(cifar_python_dict(*test))
    (tmp_path / "test_batch").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="test_batch.*cannot read"):
        cifar10.load_data(tmp_path)
