"""CIFAR-10 from a local folder, in either of its official formats.

fastconv never downloads anything: extract the archive from the CIFAR-10 page
(https://www.cs.toronto.edu/~kriz/cifar.html) and pass the folder (or its parent).

* Binary version (`cifar-10-batches-bin/`): `data_batch_1.bin` ... `data_batch_5.bin` and
  `test_batch.bin`, each a sequence of 3,073-byte records: 1 label byte, then the 32x32x3
  image as 1,024 red, 1,024 green and 1,024 blue bytes (channels first, rows in order).
* Python version (`cifar-10-batches-py/`): `data_batch_1` ... `data_batch_5` and `test_batch`,
  each a pickled dict with `data` (uint8 array of shape (n, 3072), same byte order) and
  `labels` (list of n ints).

Security: a pickle can run arbitrary code when loaded, so the python batches are never
given to `pickle.load` as is. They are read with `RestrictedUnpickler`, which resolves only
the handful of NumPy globals needed to rebuild a plain array (`_reconstruct`, `ndarray`,
`dtype`, `scalar`, `_frombuffer`) and refuses every other global with a ValueError before
anything runs. Prefer the binary version when you can: it involves no pickle at all.
"""
import io
import os
import pickle

import numpy as np

from ._files import check_folder, read_bytes

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
_PIXELS = 32 * 32 * 3
_RECORD_BYTES = 1 + _PIXELS  # binary version: 1 label byte, then the CHW image

BINARY_FILES = ([f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"])
PYTHON_FILES = ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])
_SUBFOLDERS = {"binary": "cifar-10-batches-bin", "python": "cifar-10-batches-py"}


def _numpy_reconstruction_globals():
    """The only globals a CIFAR-10 python batch needs, keyed by (module, name).

    NumPy moved `numpy.core` to `numpy._core` in 2.0; pickles name either, so both spellings
    map to the functions of the installed NumPy.
    """
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy < 2.0
        from numpy.core import multiarray, numeric
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):  # used by protocol-5 pickles of arrays
            allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    # Python 3 writes bytes in protocol 0-2 pickles as _codecs.encode(text, "latin1").
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


def _latin1_encode(text, encoding="latin1"):
    """Stand-in for `_codecs.encode` that only performs the latin-1 encoding pickles need."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            f"refused _codecs.encode({type(text).__name__}, {encoding!r}); only latin1 text is allowed."
        )
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that can only build NumPy arrays, scalars and builtin containers.

    Any other global (a function or class the pickle asks for, e.g. `os.system`) is refused
    in `find_class`, before the pickle can call it.
    """

    _allowed = None

    def find_class(self, module, name):
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _numpy_reconstruction_globals()
        try:
            return RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is forbidden: only NumPy array reconstruction is allowed"
            ) from None


def restricted_loads(data, filename="<bytes>"):
    """Unpickle `data` with `RestrictedUnpickler`; any failure is a ValueError naming `filename`."""
    try:
        # encoding="bytes": the official batches were written by Python 2, whose str are bytes.
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError,
            IndexError, KeyError, MemoryError, UnicodeDecodeError, OverflowError) as exc:
        raise ValueError(
            f"{filename}: cannot read this CIFAR-10 python batch safely ({exc}). "
            "Only pickles of plain NumPy arrays are accepted; the binary version "
            "(cifar-10-batches-bin) needs no pickle."
        ) from None


def _check_labels(labels, filename):
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = int(np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))[0])
        raise ValueError(
            f"{filename}: labels must be 0..{NUM_CLASSES - 1}; label {bad} is {int(labels[bad])}."
        )


def _chw_rows_to_nhwc(rows):
    """(n, 3072) rows of channel-first bytes -> contiguous (n, 32, 32, 3) NHWC images."""
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def read_binary_batch(filename):
    """Read one binary-version batch file.

    Returns:
        Tuple `(images, labels)`: uint8 (n, 32, 32, 3) NHWC images and int64 (n,) labels.
    """
    data = read_bytes(filename)
    if len(data) == 0 or len(data) % _RECORD_BYTES:
        raise ValueError(
            f"{filename}: size {len(data)} bytes is not a positive multiple of the "
            f"{_RECORD_BYTES}-byte CIFAR-10 record (1 label byte + {_PIXELS} pixel bytes); "
            "the file is truncated or not a CIFAR-10 binary batch."
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    _check_labels(labels, filename)
    return _chw_rows_to_nhwc(records[:, 1:]), labels


def _get(batch, key):
    # Python 2 batches have bytes keys (b"data"), re-pickled ones may have str keys.
    if key in batch:
        return batch[key]
    return batch.get(key.decode("ascii"))


def read_python_batch(filename):
    """Read one python-version batch file with the restricted unpickler.

    Returns:
        Tuple `(images, labels)`: uint8 (n, 32, 32, 3) NHWC images and int64 (n,) labels.
    """
    batch = restricted_loads(read_bytes(filename), filename)
    if not isinstance(batch, dict):
        raise ValueError(f"{filename}: expected a pickled dict, found {type(batch).__name__}.")
    data, labels = _get(batch, b"data"), _get(batch, b"labels")
    if data is None or labels is None:
        raise ValueError(f"{filename}: the batch dict needs 'data' and 'labels' entries.")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _PIXELS or data.shape[0] == 0:
        description = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                       else type(data).__name__)
        raise ValueError(
            f"{filename}: 'data' must be a uint8 array of shape (n, {_PIXELS}) with n > 0; "
            f"found {description}."
        )
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{filename}: 'labels' is not a list of integers ({exc}).") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"{filename}: 'labels' must be a flat list of integers; "
            f"found {labels.dtype} values of shape {labels.shape}."
        )
    if len(labels) != len(data):
        raise ValueError(
            f"{filename}: holds {len(labels)} labels for {len(data)} images; the counts must match."
        )
    labels = labels.astype(np.int64)
    _check_labels(labels, filename)
    return _chw_rows_to_nhwc(data), labels


def _locate(folder):
    """Find which version lives in `folder` (or its standard subfolder): (format, directory)."""
    for fmt, names in (("binary", BINARY_FILES), ("python", PYTHON_FILES)):
        marker = names[1][0]  # the test batch
        for directory in (folder, os.path.join(folder, _SUBFOLDERS[fmt])):
            if os.path.isfile(os.path.join(directory, marker)):
                return fmt, directory
    return None, None


def load_data(path):
    """Load CIFAR-10 from a local folder holding the binary or the python batches.

    Args:
        path: the folder holding the batch files, or its parent containing
            `cifar-10-batches-bin/` or `cifar-10-batches-py/`. The binary version is
            preferred when both are present.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.
        `x_*`: uint8 images of shape (n, 32, 32, 3) (NHWC); scale them yourself.
        `y_*`: int64 class labels 0..9, shape (n,).

    Raises:
        FileNotFoundError: the folder, or any of the six batch files, is missing.
        ValueError: a batch is truncated, malformed, has labels outside 0..9, or (python
            version) its pickle asks for anything but NumPy array reconstruction.
    """
    folder = check_folder(path, "CIFAR-10")
    fmt, directory = _locate(folder)
    if fmt is None:
        raise FileNotFoundError(
            f"No CIFAR-10 batches found in {folder!r}: expected the binary version "
            f"({', '.join(BINARY_FILES[0] + BINARY_FILES[1])}) or the python version "
            f"({', '.join(PYTHON_FILES[0] + PYTHON_FILES[1])}), in that folder or in its "
            f"{_SUBFOLDERS['binary']}/ or {_SUBFOLDERS['python']}/ subfolder."
        )
    train_names, test_names = BINARY_FILES if fmt == "binary" else PYTHON_FILES
    missing = [name for name in train_names + test_names
               if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 {fmt} batches missing from {directory!r}: {', '.join(missing)}. "
            f"Expected all of: {', '.join(train_names + test_names)}."
        )
    read = read_binary_batch if fmt == "binary" else read_python_batch

    def read_all(names):
        batches = [read(os.path.join(directory, name)) for name in names]
        return (np.concatenate([images for images, _ in batches]),
                np.concatenate([labels for _, labels in batches]))

    return read_all(train_names), read_all(test_names)
