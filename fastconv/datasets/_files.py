"""Helpers shared by the loaders of on-disk data sets: resolving folders and reading files."""
import gzip
import os
import zlib


def check_folder(path, dataset):
    """Return `path` as a str after checking that it names an existing folder."""
    if path is None:
        raise TypeError(
            f"`path` must be the folder holding the {dataset} files; received None. "
            "fastconv never downloads data: fetch the files yourself and pass their folder."
        )
    try:
        folder = os.fspath(path)
    except TypeError:
        raise TypeError(
            f"`path` must be a str or os.PathLike folder; received {type(path).__name__}."
        ) from None
    if isinstance(folder, bytes):
        folder = os.fsdecode(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"{dataset} folder not found: {folder!r} does not exist.")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{dataset} `path` must be a folder; {folder!r} is not one.")
    return folder


def read_bytes(filename):
    """Read a whole file, decompressing it if its name ends in `.gz`.

    A corrupt or truncated gzip stream becomes a ValueError naming the file.
    """
    if not filename.endswith(".gz"):
        with open(filename, "rb") as f:
            return f.read()
    try:
        with gzip.open(filename, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{filename}: not a valid gzip file ({exc}).") from None
