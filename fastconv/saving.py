"""The fastconv model file (".fcz"): a zip archive that is never unpickled.

Layout of the archive:

    config.json      {"format": "fastconv.model", "format_version": 1, "fastconv_version",
                      "kind": "model" or "weights", "model": {"class_name", "config"},
                      "compile": {"optimizer", "loss", "metrics"} or null,
                      "weights": [{"file", "layer", "name", "shape", "dtype", "sha256"}, ...]}
    weights/<i>.npy  one array per weight, in `model.get_weights()` order, written with
                     `np.save(allow_pickle=False)`; "sha256" is the digest of the file's bytes.

Loading verifies every digest and shape before using an array, refuses pickled data and
files written by a newer format version, and raises `ValueError` with the reason for any
damaged or foreign file (`FileNotFoundError` for a missing one). Files are written to a
temporary file in the destination directory, flushed to disk and renamed over the target,
so an interrupted save never leaves a half-written model behind. A save killed before the
rename (SIGKILL, power loss) leaves only its hidden temporary file
(".<name>.<host>-<pid>.*.tmp"), which the next save of that file deletes.

The optimizer's state (moments, iteration count) is not saved: a loaded model is compiled
with a fresh optimizer of the saved class and configuration.
"""
import hashlib
import io
import json
import os
import re
import socket
import tempfile
import warnings
import zipfile

import numpy as np

FORMAT_NAME = "fastconv.model"
FORMAT_VERSION = 1
DEFAULT_SUFFIX = ".fcz"
_CONFIG_ENTRY = "config.json"
_MAX_CONFIG_BYTES = 64 * 2**20
_ALLOWED_DTYPES = ("float32", "float64")


def _fastconv_version():
    from . import __version__

    return __version__


def _fspath(filepath):
    try:
        return os.fspath(filepath)
    except TypeError:
        raise TypeError(
            f"`filepath` must be a str or os.PathLike; received {type(filepath).__name__} "
            f"({filepath!r})."
        ) from None


def _resolve_save_path(filepath):
    """The path to write: `filepath`, with ".fcz" appended when it has no suffix."""
    path = _fspath(filepath)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if not os.path.splitext(path)[1]:
        path += DEFAULT_SUFFIX
    return path


def _resolve_load_path(filepath):
    path = _fspath(filepath)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if not os.path.exists(path) and not os.path.splitext(path)[1] and os.path.exists(path + DEFAULT_SUFFIX):
        path += DEFAULT_SUFFIX
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such fastconv model file", path)
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a fastconv model file.")
    return path


# -- writing -------------------------------------------------------------------------------------
def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())


def temporary_prefix(path, pid=None):
    """Name prefix of the temporary files that saving `path` writes next to it:
    ".<file name>.<host>-<pid>." (hidden, and never ending in ".fcz")."""
    return f".{os.path.basename(path)}.{_HOST}-{os.getpid() if pid is None else pid}."


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _remove_stale_temporaries(path):
    """Delete the temporary files that saves of `path` by processes of this host that no
    longer run left behind (a save killed before its rename; see `_write_atomically`)."""
    if os.name != "posix":  # os.kill(pid, 0) probes a process only on POSIX
        return
    directory = os.path.dirname(os.path.abspath(path))
    start = f".{os.path.basename(path)}.{_HOST}-"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith(start) and name.endswith(".tmp")):
            continue
        pid = name[len(start):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _process_exists(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def _write_atomically(path, entries, overwrite=True):
    """Write a zip of (name, bytes) entries to `path` via a temporary file and os.replace."""
    if not overwrite and os.path.exists(path):
        raise FileExistsError(17, "File exists (pass overwrite=True to replace it)", path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as archive:
                for name, data in entries:
                    archive.writestr(name, data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; use the usual mode
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); not possible everywhere
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    _remove_stale_temporaries(path)


def _weight_records(model):
    """(layer name, weight name, array) for every weight of the model, in get_weights order."""
    records = []
    for layer in model.layers:
        for weight in layer._weights:
            records.append((layer.name, weight.name, weight.value))
    return records


def _compile_config(model):
    """JSON form of the compile() arguments, or None (with a warning) if they cannot be saved."""
    if not getattr(model, "compiled", False):
        return None
    from . import losses, optimizers

    try:
        metrics = []
        for spec in model._metric_specs:
            if not isinstance(spec, str):
                raise ValueError(f"the metric {spec!r} is not a built-in metric name")
            metrics.append(spec)
        return {
            "optimizer": optimizers.serialize(model.optimizer),
            "loss": None if model.loss is None else losses.serialize(model.loss),
            "metrics": metrics,
        }
    except ValueError as exc:
        warnings.warn(f"The model's compile settings are not saved ({exc}); compile it again "
                      "after loading.", stacklevel=3)
        return None


def save_model(model, filepath, overwrite=True, kind="model"):
    """Save `model` (architecture, weights and compile settings) to a ".fcz" file.

    Args:
        model: a built `fastconv.Sequential`.
        filepath: destination; ".fcz" is appended if it has no suffix.
        overwrite: whether to replace an existing file.
        kind: "model" (everything) or "weights" (what `save_weights` writes; the architecture
            is stored for reference but `load_model` refuses such a file).

    Returns:
        The path written.
    """
    if not model.built:
        raise ValueError("The model must be built before it can be saved: call build(input_shape) "
                         "or fit/predict it on data first.")
    path = _resolve_save_path(filepath)
    entries, weight_entries = [], []
    for i, (layer_name, weight_name, value) in enumerate(_weight_records(model)):
        data = _npy_bytes(value)
        file_name = f"weights/{i}.npy"
        entries.append((file_name, data))
        weight_entries.append({
            "file": file_name, "layer": layer_name, "name": weight_name,
            "shape": list(value.shape), "dtype": value.dtype.name,
            "sha256": hashlib.sha256(data).hexdigest(),
        })
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fastconv_version": _fastconv_version(),
        "kind": kind,
        "model": {"class_name": type(model).__name__, "config": model.get_config()},
        "compile": _compile_config(model) if kind == "model" else None,
        "weights": weight_entries,
    }
    config_bytes = json.dumps(config, indent=1, allow_nan=False).encode("utf-8")
    _write_atomically(path, [(_CONFIG_ENTRY, config_bytes)] + entries, overwrite)
    return path


# -- reading -------------------------------------------------------------------------------------
def _bad(path, reason):
    return ValueError(f"Cannot load {path!r}: {reason}")


def _check_config(path, config):
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise _bad(path, "config.json does not describe a fastconv model file.")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _bad(path, f"invalid format_version {version!r} in config.json.")
    if version > FORMAT_VERSION:
        raise _bad(path, f"it was written in file format version {version} by fastconv "
                         f"{config.get('fastconv_version', '?')}, and this fastconv "
                         f"({_fastconv_version()}) reads versions up to {FORMAT_VERSION}. "
                         "Upgrade fastconv to load it.")
    weights = config.get("weights")
    if not isinstance(weights, list):
        raise _bad(path, "config.json has no list of weights.")
    for i, entry in enumerate(weights):
        ok = (isinstance(entry, dict) and isinstance(entry.get("file"), str)
              and isinstance(entry.get("sha256"), str) and isinstance(entry.get("shape"), list)
              and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in entry["shape"])
              and entry.get("dtype") in _ALLOWED_DTYPES)
        if not ok:
            raise _bad(path, f"weight entry {i} of config.json is malformed: {entry!r}.")
    if config.get("kind") not in ("model", "weights"):
        raise _bad(path, f"unknown kind {config.get('kind')!r} in config.json.")
    return config


def _read_member(archive, name, limit, path):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise _bad(path, f"the archive has no {name!r}.") from None
    if info.file_size > limit:
        raise _bad(path, f"{name!r} is {info.file_size} bytes, more than expected ({limit}).")
    return archive.read(info)


def _load_array(archive, entry, path):
    shape = tuple(entry["shape"])
    itemsize = np.dtype(entry["dtype"]).itemsize
    limit = int(np.prod(shape, dtype=np.int64)) * itemsize + 4096  # data + npy header
    data = _read_member(archive, entry["file"], limit, path)
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise _bad(path, f"checksum mismatch for {entry['file']!r} (the file is corrupted or "
                         "was modified).")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # malformed .npy header or data
        raise _bad(path, f"{entry['file']!r} is not a valid .npy array ({exc}).") from None
    if array.shape != shape or array.dtype.name != entry["dtype"]:
        raise _bad(path, f"{entry['file']!r} holds a {array.dtype} array of shape {array.shape}; "
                         f"config.json says {entry['dtype']} {shape}.")
    return array


def read_model_file(filepath):
    """Return (config dict, list of weight arrays) from a ".fcz" file, fully verified."""
    path = _resolve_load_path(filepath)
    if not zipfile.is_zipfile(path):
        raise _bad(path, "it is not a fastconv model file (not a zip archive, or truncated).")
    try:
        with zipfile.ZipFile(path) as archive:
            raw = _read_member(archive, _CONFIG_ENTRY, _MAX_CONFIG_BYTES, path)
            try:
                config = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _bad(path, f"config.json is not valid JSON ({exc}).") from None
            config = _check_config(path, config)
            arrays = [_load_array(archive, entry, path) for entry in config["weights"]]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        raise _bad(path, f"the zip archive is damaged ({exc}).") from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise _bad(path, f"the archive could not be read ({exc}).") from None
    return config, arrays


def load_model(filepath, custom_objects=None, compile=True):
    """Load a model saved with `model.save`.

    Args:
        filepath: path of a ".fcz" file.
        custom_objects: optional dict name -> Layer subclass for user-defined layers.
        compile: whether to compile the model with the saved settings (fresh optimizer state).

    Returns:
        A built `fastconv.Sequential` with the saved weights.

    Raises:
        FileNotFoundError: no file at `filepath`.
        ValueError: the file is not a fastconv model, is damaged (checksum, zip or JSON errors),
            was written by a newer format version, or holds only weights.
    """
    from . import losses, optimizers
    from .models import Sequential

    config, arrays = read_model_file(filepath)
    path = os.fspath(filepath)
    if config["kind"] != "model":
        raise _bad(path, "it holds only weights (written by save_weights); build the model and "
                         "call model.load_weights() instead.")
    model_config = config.get("model")
    if not isinstance(model_config, dict) or model_config.get("class_name") != "Sequential":
        raise _bad(path, f"unsupported model class in config.json: {model_config!r}.")
    try:
        model = Sequential.from_config(model_config.get("config") or {}, custom_objects=custom_objects)
    except (ValueError, TypeError, KeyError) as exc:
        raise _bad(path, f"the architecture in config.json cannot be rebuilt ({exc}).") from None
    if not model.built:
        raise _bad(path, "config.json has no input shape for the model.")
    try:
        model.set_weights(arrays)
    except (ValueError, TypeError) as exc:
        raise _bad(path, f"the saved weights do not fit the saved architecture ({exc}).") from None
    compile_config = config.get("compile")
    if compile and compile_config:
        try:
            model.compile(
                optimizer=optimizers.deserialize(compile_config["optimizer"]),
                loss=(None if compile_config.get("loss") is None
                      else losses.deserialize(compile_config["loss"])),
                metrics=list(compile_config.get("metrics") or []),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise _bad(path, f"the saved compile settings are invalid ({exc}).") from None
    return model


def load_weights_into(model, filepath):
    """Set `model`'s weights from a file written by `save` or `save_weights`.

    An unbuilt model is first built with the input shape stored in the file.
    """
    config, arrays = read_model_file(filepath)
    path = os.fspath(filepath)
    if not model.built:
        saved = ((config.get("model") or {}).get("config") or {}).get("input_shape")
        if saved is None:
            raise ValueError("The model is not built and the file stores no input shape; call "
                             "model.build(input_shape) before load_weights().")
        model.build(tuple(saved))
    expected = sum(len(layer._weights) for layer in model.layers)
    if expected != len(arrays):
        raise _bad(path, f"it holds {len(arrays)} weight arrays and the model has {expected}.")
    model.set_weights(arrays)
