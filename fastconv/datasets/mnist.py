"""MNIST (and any data set in the same IDX format, e.g. Fashion-MNIST) from a local folder.

fastconv never downloads anything: put the four standard files in a folder and pass it.

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

Each may also be gzipped (`train-images-idx3-ubyte.gz`, as distributed) or use a dot before
`idx` (`train-images.idx3-ubyte`, as some mirrors name them).

IDX format: a 4-byte magic number `0x00 0x00 <type> <ndim>` (type 0x08 = unsigned byte), then
`ndim` big-endian uint32 dimension sizes, then the data in C order. Images are 0x00000803
(n, rows, cols), labels 0x00000801 (n,).
"""
import math
import os

import numpy as np

from ._files import check_folder, read_bytes

NUM_CLASSES = 10
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_UBYTE_TYPE = 0x08

# The standard names; each is also looked for with ".gz" and with a dot before "idx".
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _candidates(name):
    dotted = name.replace("-idx", ".idx")
    return [name, name + ".gz", dotted, dotted + ".gz"]


def _find(folder, name):
    for candidate in _candidates(name):
        filename = os.path.join(folder, candidate)
        if os.path.isfile(filename):
            return filename
    return None


def parse_idx(data, expected_magic, filename="<bytes>"):
    """Parse the bytes of an unsigned-byte IDX file.

    Args:
        data: the whole (decompressed) file content.
        expected_magic: `IMAGES_MAGIC` (0x00000803) or `LABELS_MAGIC` (0x00000801).
        filename: named in error messages.

    Returns:
        uint8 array of the shape given by the header.

    Raises:
        ValueError: wrong magic number, a zero dimension, or a size that disagrees with
            the header (truncated file or trailing bytes).
    """
    if len(data) < 4:
        raise ValueError(f"{filename}: file too short for an IDX header ({len(data)} bytes).")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{filename}: bad IDX magic number 0x{magic:08X}; expected 0x{expected_magic:08X} "
            f"(unsigned-byte data with {expected_magic & 0xFF} dimension(s))."
        )
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{filename}: truncated IDX header: {len(data)} bytes, the header alone needs {header_size}."
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if any(d == 0 for d in dims):
        raise ValueError(f"{filename}: IDX dimensions must be positive; header says {dims}.")
    expected_size = header_size + math.prod(dims)  # Python ints: no overflow on absurd headers
    if len(data) != expected_size:
        problem = "truncated" if len(data) < expected_size else "has trailing bytes"
        raise ValueError(
            f"{filename}: file {problem}: header dimensions {dims} need {expected_size} bytes, "
            f"found {len(data)}."
        )
    # Copy so the result owns writable memory rather than viewing an immutable bytes object.
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims).copy()


def read_idx_images(filename):
    """Read an IDX image file into a uint8 array of shape (n, rows, cols)."""
    return parse_idx(read_bytes(filename), IMAGES_MAGIC, filename)


def read_idx_labels(filename):
    """Read an IDX label file into a uint8 array of shape (n,), checking labels are 0..9."""
    labels = parse_idx(read_bytes(filename), LABELS_MAGIC, filename)
    if labels.size and labels.max() >= NUM_CLASSES:
        bad = int(np.flatnonzero(labels >= NUM_CLASSES)[0])
        raise ValueError(
            f"{filename}: labels must be 0..{NUM_CLASSES - 1}; label {bad} is {int(labels[bad])}."
        )
    return labels


def load_data(path):
    """Load MNIST from the IDX files in a local folder.

    Args:
        path: folder holding `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
            `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (each optionally `.gz`).

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.
        `x_*`: uint8 images of shape (n, rows, cols), (n, 28, 28) for MNIST; scale them yourself.
        `y_*`: int64 class labels 0..9, shape (n,).

    Raises:
        FileNotFoundError: the folder or any of the four files is missing.
        ValueError: a file is not a valid IDX file of the expected kind, or images and
            labels disagree (count, or image size between train and test).
    """
    folder = check_folder(path, "MNIST")
    found = {key: _find(folder, name) for key, name in FILES.items()}
    missing = [FILES[key] for key, filename in found.items() if filename is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST files missing from {folder!r}: {', '.join(missing)} "
            f"(each may also end in .gz). Expected all of: {', '.join(FILES.values())}."
        )

    splits = []
    for split in ("train", "test"):
        images_file, labels_file = found[f"{split}_images"], found[f"{split}_labels"]
        images = read_idx_images(images_file)
        labels = read_idx_labels(labels_file)
        if len(images) != len(labels):
            raise ValueError(
                f"{labels_file}: holds {len(labels)} labels but {images_file} holds "
                f"{len(images)} images; the counts must match."
            )
        splits.append((images, labels.astype(np.int64)))
    (x_train, _), (x_test, _) = splits
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{found['test_images']}: images are {x_test.shape[1:]} but the training images "
            f"are {x_train.shape[1:]}; both sets must have the same image size."
        )
    return tuple(splits)
