"""Writers of small synthetic MNIST (IDX) and CIFAR-10 (binary / python) files for the tests.

They follow the published formats byte by byte, independently of the loaders under test:
IDX = big-endian magic + dims + raw bytes; CIFAR binary = label byte + 3072 CHW bytes per
record; CIFAR python = a Python-2-style pickle of {"data": uint8 (n, 3072), "labels": [...]}.
"""
import gzip
import os
import pickle
import struct

import numpy as np

MNIST_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array, magic=None):
    """Serialise a uint8 array as an IDX file (magic 0x0000080<ndim>, big-endian dims)."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_file(path, data, gz=False):
    path = str(path) + (".gz" if gz else "")
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(data)
    return path


def random_mnist(n_train=50, n_test=20, rows=28, cols=28, seed=0):
    """Random uint8 images covering 0..255 and labels covering 0..9."""
    rng = np.random.default_rng(seed)
    make_x = lambda n: rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    make_y = lambda n: (np.arange(n) % 10 + rng.integers(0, 10)).astype(np.uint8) % 10
    return (make_x(n_train), make_y(n_train)), (make_x(n_test), make_y(n_test))


def write_mnist(folder, data, gz=False):
    """Write ((x_train, y_train), (x_test, y_test)) as the four standard IDX files."""
    (x_train, y_train), (x_test, y_test) = data
    os.makedirs(folder, exist_ok=True)
    arrays = {"train_images": x_train, "train_labels": y_train,
              "test_images": x_test, "test_labels": y_test}
    return {key: write_file(os.path.join(folder, MNIST_NAMES[key]), idx_bytes(arr), gz)
            for key, arr in arrays.items()}


def learnable_mnist(n_train, n_test, seed=0):
    """MNIST-shaped data a CNN can learn quickly: each class lights its own 7x7 block."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            r, c = divmod(int(label), 4)
            x[i, 7 * r: 7 * r + 7, 7 * c: 7 * c + 7] = 255
        return x, y

    return make(n_train), make(n_test)


# ----- CIFAR-10 -----

def random_cifar(n_train_batches=(10, 10, 10, 10, 10), n_test=20, seed=0):
    """Per-batch random NHWC uint8 images and labels: ([(x, y) * 5], (x_test, y_test))."""
    rng = np.random.default_rng(seed)

    def make(n):
        return (rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
                rng.integers(0, 10, size=n).astype(np.uint8))

    return [make(n) for n in n_train_batches], make(n_test)


def cifar_record_bytes(x, y):
    """Binary-version records: for each image, the label byte then R, G, B planes (CHW)."""
    chw = np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(x), -1)
    records = np.concatenate([np.asarray(y, dtype=np.uint8)[:, None], chw], axis=1)
    return records.tobytes()


def write_cifar_binary(folder, train_batches, test):
    os.makedirs(folder, exist_ok=True)
    for i, (x, y) in enumerate(train_batches, start=1):
        write_file(os.path.join(folder, f"data_batch_{i}.bin"), cifar_record_bytes(x, y))
    write_file(os.path.join(folder, "test_batch.bin"), cifar_record_bytes(*test))


class Py2StylePickler(pickle._Pickler):
    """Pickles the way Python 2's cPickle wrote the official CIFAR-10 python batches.

    Every str/bytes is written as a Python 2 `str` (BINSTRING), and arrays are rebuilt with
    `numpy.core.multiarray._reconstruct`, the name NumPy 1.x (and the official files) use.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[type(np.ndarray.__new__)] = save_global  # builtin functions like _reconstruct


def py2_pickle_bytes(obj):
    import io

    buffer = io.BytesIO()
    Py2StylePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def cifar_python_dict(x, y):
    chw = np.ascontiguousarray(np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2)).reshape(len(x), -1)
    return {"batch_label": "synthetic batch", "labels": [int(v) for v in y], "data": chw,
            "filenames": [f"img_{i}.png" for i in range(len(x))]}


def write_cifar_python(folder, train_batches, test, style="py2"):
    """Write the python version: style "py2" (like the official files) or "py3" (protocol 4)."""
    os.makedirs(folder, exist_ok=True)
    dump = py2_pickle_bytes if style == "py2" else (lambda obj: pickle.dumps(obj, protocol=4))
    for i, (x, y) in enumerate(train_batches, start=1):
        write_file(os.path.join(folder, f"data_batch_{i}"), dump(cifar_python_dict(x, y)))
    write_file(os.path.join(folder, "test_batch"), dump(cifar_python_dict(*test)))


def learnable_cifar(n_per_batch, n_test, seed=0):
    """CIFAR-shaped data a CNN can learn quickly: the class sets one colour channel's quadrant."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        x = rng.integers(0, 50, size=(n, 32, 32, 3)).astype(np.uint8)
        for i, label in enumerate(y):
            quadrant, channel = divmod(int(label), 3)  # 10 classes: quadrants 0..3 x channels
            r, c = divmod(quadrant, 2)
            x[i, 16 * r: 16 * r + 16, 16 * c: 16 * c + 16, channel] = 255
        return x, y

    return [make(n_per_batch) for _ in range(5)], make(n_test)
