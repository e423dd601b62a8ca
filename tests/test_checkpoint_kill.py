"""Killing a process while it saves never leaves a damaged model file.

A child process saves a model over and over (with `model.save`, or with `ModelCheckpoint`
during `fit`), announcing on stdout the digest of the weights it is about to save. The parent
SIGKILLs it at random moments. After each kill the checkpoint file is either absent (killed
before the first save completed) or loads cleanly, with the weights of the last completed save
or of the one in progress. Temporary files a kill leaves behind are hidden, never end in
".fcz", so neither `load_model` nor a "*.fcz" glob picks them up, and the next save in that
folder removes them.
"""
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fastconv import saving
from fastconv.models import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLS_PER_MODE = 6

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

_CHILD = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    import fastconv
    from fastconv import layers as L
    from fastconv.callbacks import Callback, ModelCheckpoint

    mode, path = sys.argv[1], sys.argv[2]

    def digest(weights):
        h = hashlib.sha256()
        for w in weights:
            h.update(np.ascontiguousarray(w).tobytes())
        return h.hexdigest()

    fastconv.utils.set_random_seed(int(sys.argv[3]))
    # Large enough (about 2 MB) that a save takes a while and kills often land inside one.
    model = fastconv.Sequential([L.Conv2D(64, 3, activation="relu"), L.Flatten(),
                                 L.Dense(16, activation="softmax")], input_shape=(12, 12, 3))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    print("READY", flush=True)

    if mode == "save":
        version = 0
        while True:
            version += 1
            model.set_weights([np.full(w.shape, float(version)) for w in model.get_weights()])
            print("SAVING", digest(model.get_weights()), flush=True)
            model.save(path)
            print("SAVED", flush=True)
    else:  # ModelCheckpoint after every batch; the announcer runs just before it
        class Announce(Callback):
            def on_train_batch_end(self, batch, logs=None):
                print("SAVED", flush=True)  # the previous batch's checkpoint has been written
                print("SAVING", digest(self.model.get_weights()), flush=True)

        rng = np.random.default_rng(0)
        x = rng.standard_normal((4096, 12, 12, 3)).astype(np.float32)
        y = rng.integers(0, 16, len(x))
        model.fit(x, y, batch_size=8, epochs=1000, verbose=0, shuffle=False,
                  callbacks=[Announce(), ModelCheckpoint(path, save_freq=1)])
""")


def _digest(weights):
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def _run_and_kill(mode, path, seed, saves_before_kill, delay):
    """Start a child saving to `path`, SIGKILL it `delay` s after its `saves_before_kill`-th
    announced save; return (digests of completed saves, digest of the save in progress)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, mode, str(path), str(seed)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    completed, in_progress, announced = [], None, 0
    try:
        for line in child.stdout:
            word, _, value = line.strip().partition(" ")
            if word == "SAVING":
                in_progress = value
                announced += 1
                if announced == saves_before_kill:
                    time.sleep(delay)
                    child.send_signal(signal.SIGKILL)
                    break
            elif word == "SAVED" and in_progress is not None:
                completed.append(in_progress)
                in_progress = None
        # Lines written before the kill but not read yet still tell what completed.
        rest, err = child.communicate(timeout=60)
        for line in rest.splitlines():
            word, _, value = line.strip().partition(" ")
            if word == "SAVING":
                in_progress = value
            elif word == "SAVED" and in_progress is not None:
                completed.append(in_progress)
                in_progress = None
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL, f"the child was not killed but exited: {err[-2000:]}"
    return completed, in_progress


@pytest.mark.parametrize("mode", ["save", "checkpoint"])
def test_killed_while_saving_leaves_the_old_or_the_new_model(tmp_path, mode):
    path = tmp_path / "ckpt.fcz"
    rng = random.Random(f"kill-{mode}")  # fixed seed: the same kill moments on every run
    outcomes = {"absent": 0, "last completed": 0, "in progress": 0, "temporary file present": 0}
    on_disk = None  # digest of the model the file holds (None: no file yet)
    for round_ in range(KILLS_PER_MODE):
        saves_before_kill = rng.randint(1, 12)
        delay = rng.uniform(0.0, 0.03)
        completed, in_progress = _run_and_kill(mode, path, round_, saves_before_kill, delay)

        leftovers = sorted(n for n in os.listdir(tmp_path) if n != "ckpt.fcz")
        for name in leftovers:  # temporaries of the killed save: hidden, never "*.fcz"
            assert name.startswith(".ckpt.fcz.") and name.endswith(".tmp"), leftovers
        assert sorted(p.name for p in tmp_path.glob("*.fcz")) in ([], ["ckpt.fcz"])
        outcomes["temporary file present"] += bool(leftovers)

        last_completed = completed[-1] if completed else on_disk
        if not path.exists():
            assert last_completed is None, f"round {round_}: a completed save disappeared"
            outcomes["absent"] += 1
            continue
        model = load_model(path)  # never half-written: loads, checksums verified
        on_disk = _digest(model.get_weights())
        assert on_disk in (last_completed, in_progress), (
            f"round {round_}: the file holds neither the last completed save nor the one in progress")
        outcomes["in progress" if on_disk == in_progress else "last completed"] += 1
    print(f"\n{mode}: {KILLS_PER_MODE} kills -> {outcomes}")

    # A normal save in the folder clears what the killed saves left behind.
    model = load_model(path) if path.exists() else None
    if model is not None:
        model.save(path)
        assert sorted(os.listdir(tmp_path)) == ["ckpt.fcz"]


def test_stale_temporary_files_of_dead_processes_are_removed_by_the_next_save(tmp_path):
    """What a SIGKILL mid-save leaves is cleared by the next save of that file, but not the
    temporary file of a save still running in another live process."""
    import fastconv
    from fastconv import layers as L

    model = fastconv.Sequential([L.Dense(2)], input_shape=(3,))
    path = tmp_path / "m.fcz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / saving.temporary_prefix(path, pid=dead_pid)
    stale = stale.with_name(stale.name + "abc123.tmp")
    stale.write_bytes(b"PK\x03\x04 half written")
    alive = tmp_path / (saving.temporary_prefix(path, pid=os.getppid()) + "def456.tmp")
    alive.write_bytes(b"PK\x03\x04 being written")
    other_file = tmp_path / (saving.temporary_prefix(tmp_path / "other.fcz", pid=dead_pid) + "x.tmp")
    other_file.write_bytes(b"")
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.fcz", alive.name, other_file.name])


# -- how a save writes, and what a load refuses to do ---------------------------------------------------------
def _small_model():
    import fastconv
    from fastconv import layers as L

    model = fastconv.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(3)], input_shape=(5, 5, 1))
    model.compile(optimizer="adam", loss="mse")
    return model


def test_save_writes_a_temporary_file_fsyncs_it_and_renames_it_over_the_target(tmp_path, monkeypatch):
    path = tmp_path / "m.fcz"
    _small_model().save(path)
    old_bytes = path.read_bytes()
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
                       if os.path.exists(f"/proc/self/fd/{fd}") else fd))
        return real_fsync(fd)

    def replace(src, dst):
        # At the rename the temporary file is complete and the target still the old file.
        config, arrays = saving.read_model_file(src)
        assert config["format_version"] == saving.FORMAT_VERSION and len(arrays) == 4
        assert path.read_bytes() == old_bytes
        events.append(("replace", os.path.basename(src), os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    model = _small_model()
    model.save(path)
    monkeypatch.undo()
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"], events  # file, rename, folder
    temporary = events[1][1]
    assert temporary.startswith(saving.temporary_prefix(path)) and temporary.endswith(".tmp")
    if isinstance(events[0][1], str):  # /proc available: the first fsync was the temporary file
        assert events[0][1] == temporary
    assert events[1][2] == "m.fcz"
    assert sorted(os.listdir(tmp_path)) == ["m.fcz"]
    config, arrays = saving.read_model_file(path)
    assert config["format"] == "fastconv.model" and config["format_version"] == saving.FORMAT_VERSION
    for entry, array in zip(config["weights"], arrays):
        assert len(entry["sha256"]) == 64 and tuple(entry["shape"]) == array.shape
    for got, want in zip(arrays, model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_loading_never_unpickles(tmp_path):
    """A weight replaced by a pickle (with matching digest and a config that claims it is
    float32) is refused, and the code in the pickle never runs."""
    import io
    import json
    import pickle
    import zipfile

    path = tmp_path / "m.fcz"
    _small_model().save(path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload()], dtype=object), allow_pickle=True)
    evil = buffer.getvalue()
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(entries["config.json"])
    config["weights"][0]["sha256"] = hashlib.sha256(evil).hexdigest()
    config["weights"][0]["shape"] = [1]
    entries["config.json"] = json.dumps(config).encode()
    entries[config["weights"][0]["file"]] = evil
    tampered = tmp_path / "tampered.fcz"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)

    with pytest.raises(ValueError, match=r"is not a valid .npy array|holds a object array"):
        load_model(tampered)
    assert not marker.exists()
    # the same bytes would run the payload if unpickled (so the test is not vacuous)
    np.load(io.BytesIO(evil), allow_pickle=True)
    assert marker.exists()
