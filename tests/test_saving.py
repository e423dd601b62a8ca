"""The .fcz model file: round trips and every kind of damaged or foreign file."""
import hashlib
import io
import json
import os
import zipfile

import numpy as np
import pytest
from conftest import compiled_core_available

import fastconv
from fastconv import losses, optimizers, saving
from fastconv.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
)
from fastconv.models import load_model


@pytest.fixture(autouse=True)
def backend():
    with fastconv.use_backend("compiled" if compiled_core_available() else "reference"):
        yield


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """A small trained CNN (so BN moving statistics are not at their defaults) and its data."""
    rng = np.random.default_rng(0)
    fastconv.utils.set_random_seed(0)
    with fastconv.use_backend("compiled" if compiled_core_available() else "reference"):
        model = fastconv.Sequential([
            Conv2D(4, 3, activation="relu", kernel_regularizer="l2"),
            BatchNormalization(),
            MaxPooling2D(),
            Flatten(),
            Dropout(0.2),
            Dense(3, activation="softmax"),
        ], input_shape=(7, 7, 2), name="saved")
        model.compile(optimizers.Adam(0.005, amsgrad=True), losses.SparseCategoricalCrossentropy(),
                      metrics=["accuracy"])
        x = rng.normal(size=(24, 7, 7, 2)).astype(np.float32)
        y = rng.integers(0, 3, size=24)
        model.fit(x, y, batch_size=12, epochs=1, verbose=0)
        path = tmp_path_factory.mktemp("saved") / "model.fcz"
        model.save(path)
    return model, x, y, path.read_bytes()


@pytest.fixture
def trained(trained_once, tmp_path):
    """The trained model, its data and a fresh copy of its file (tests may damage it)."""
    model, x, y, data = trained_once
    path = tmp_path / "model.fcz"
    path.write_bytes(data)
    return model, x, y, path


def rewrite(path, change):
    """Rewrite the archive at `path`, applying change(name, data) -> data (or None to drop)."""
    with zipfile.ZipFile(path) as archive:
        entries = [(name, archive.read(name)) for name in archive.namelist()]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            new = change(name, data)
            if new is not None:
                archive.writestr(name, new)


def edit_config(path, edit):
    def change(name, data):
        if name != "config.json":
            return data
        config = json.loads(data)
        edit(config)
        return json.dumps(config).encode()

    rewrite(path, change)


# -- round trips ------------------------------------------------------------------------------------------
def test_round_trip_restores_identical_predictions_and_settings(trained):
    model, x, y, path = trained
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert loaded.get_config() == model.get_config()
    assert loaded.name == "saved"
    assert type(loaded.optimizer) is optimizers.Adam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == 0  # optimizer state is not saved
    assert type(loaded.loss) is losses.SparseCategoricalCrossentropy
    assert loaded.metrics_names == ["loss", "accuracy"]
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    # The regularizer came back too: the loaded model trains with the same penalty.
    assert loaded.layers[0]._weights[0].regularizer.l2 == 0.01
    loaded.fit(x, y, epochs=1, verbose=0)


def test_round_trip_float64_and_uncompiled(tmp_path):
    model = fastconv.Sequential([Dense(3, dtype="float64"), Dense(1, dtype="float64")], input_shape=(2,))
    path = model.save(tmp_path / "plain")
    assert path.endswith("plain.fcz") and os.path.exists(path)
    loaded = load_model(tmp_path / "plain")  # the suffix is found as np.save's users expect
    assert not loaded.compiled
    x = np.random.default_rng(1).normal(size=(5, 2))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.predict(x).dtype == np.float64


def test_file_layout(trained):
    model, _, _, path = trained
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        config = json.loads(archive.read("config.json"))
        assert names[0] == "config.json"
        assert sorted(names[1:]) == sorted(f"weights/{i}.npy" for i in range(8))
        for entry in config["weights"]:
            data = archive.read(entry["file"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert np.load(io.BytesIO(data), allow_pickle=False).shape == tuple(entry["shape"])
    assert config["format"] == "fastconv.model" and config["format_version"] == saving.FORMAT_VERSION
    assert config["fastconv_version"] == fastconv.__version__
    assert config["model"]["config"]["input_shape"] == [7, 7, 2]
    assert config["compile"]["loss"]["class_name"] == "SparseCategoricalCrossentropy"
    assert [e["layer"] for e in config["weights"]][:2] == [model.layers[0].name] * 2


def test_save_weights_and_load_weights(tmp_path, trained):
    model, x, _, _ = trained
    path = model.save_weights(tmp_path / "w.weights.fcz")
    fresh = fastconv.Sequential.from_config(model.get_config())
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    unbuilt = fastconv.Sequential([fastconv.layers.deserialize(fastconv.layers.serialize(layer))
                                   for layer in model.layers])
    assert not unbuilt.built
    unbuilt.load_weights(path)  # built from the input shape stored in the file
    np.testing.assert_array_equal(unbuilt.predict(x), model.predict(x))


def test_load_weights_into_a_different_architecture(tmp_path, trained):
    model, _, _, path = trained
    other = fastconv.Sequential([Dense(2)], input_shape=(3,))
    with pytest.raises(ValueError, match="holds 8 weight arrays and the model has 2"):
        other.load_weights(path)


def test_unsaveable_compile_settings_warn(tmp_path):
    model = fastconv.Sequential([Dense(1)], input_shape=(2,))
    model.compile("sgd", "mse", metrics=[lambda yt, yp: np.abs(yt - yp).mean(-1)])
    with pytest.warns(UserWarning, match="compile settings are not saved"):
        model.save(tmp_path / "m.fcz")
    assert not load_model(tmp_path / "m.fcz").compiled


# -- writing safely ----------------------------------------------------------------------------------------
def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, trained, monkeypatch):
    model, x, _, path = trained
    before = path.read_bytes()
    calls = {"n": 0}
    real_save = np.save

    def failing_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(os.listdir(path.parent)) == ["model.fcz"]
    model.save(path)
    assert sorted(os.listdir(path.parent)) == ["model.fcz"]


def test_save_refuses_overwrite_when_asked_and_unbuilt_models(tmp_path, trained):
    model, _, _, path = trained
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)
    with pytest.raises(ValueError, match="must be built before it can be saved"):
        fastconv.Sequential([Dense(2)]).save(tmp_path / "x.fcz")


# -- damaged or foreign files ----------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.fcz")
    with pytest.raises(ValueError, match="is a directory"):
        load_model(tmp_path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "model.fcz"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a zip archive"):
        load_model(path)
    path.write_bytes(b"\x93NUMPY" + b"\x00" * 100)
    with pytest.raises(ValueError, match="not a zip archive"):
        load_model(path)


def test_truncated_file(trained):
    _, _, _, path = trained
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="Cannot load"):
        load_model(path)


def test_flipped_byte_inside_the_archive(trained):
    _, _, _, path = trained
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("weights/0.npy")
    # Flip a byte in the middle of that member's data (after its local header).
    offset = info.header_offset + 30 + len(info.filename) + info.file_size // 2
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged|checksum"):
        load_model(path)


def test_checksum_mismatch(trained):
    _, _, _, path = trained

    def tamper(name, data):
        if name == "weights/0.npy":
            array = np.load(io.BytesIO(data))
            array.flat[0] += 1.0
            buffer = io.BytesIO()
            np.save(buffer, array)
            return buffer.getvalue()
        return data

    rewrite(path, tamper)  # a valid zip with valid CRCs, but the weights were changed
    with pytest.raises(ValueError, match=r"checksum mismatch for 'weights/0.npy'"):
        load_model(path)


def test_future_format_version(trained):
    _, _, _, path = trained
    edit_config(path, lambda c: c.update(format_version=saving.FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match=r"file format version 2 .* reads versions up to 1\. Upgrade"):
        load_model(path)


@pytest.mark.parametrize("change, pattern", [
    (lambda name, data: None if name == "config.json" else data, "has no 'config.json'"),
    (lambda name, data: b"{not json" if name == "config.json" else data, "not valid JSON"),
    (lambda name, data: None if name == "weights/3.npy" else data, "has no 'weights/3.npy'"),
])
def test_missing_or_invalid_members(trained, change, pattern):
    _, _, _, path = trained
    rewrite(path, change)
    with pytest.raises(ValueError, match=pattern):
        load_model(path)


@pytest.mark.parametrize("edit, pattern", [
    (lambda c: c.update(format="something.else"), "does not describe a fastconv model"),
    (lambda c: c["weights"][0].update(dtype="object"), "weight entry 0 of config.json is malformed"),
    (lambda c: c["weights"][0].update(shape=[3, 3, 2, 5]), "more than expected|holds a float32 array"),
    (lambda c: c["model"]["config"]["layers"][0].update(class_name="Conv9D"), "cannot be rebuilt.*Conv9D"),
    (lambda c: c["compile"].update(loss={"class_name": "Hinge"}), "compile settings are invalid"),
    (lambda c: c["model"].update(class_name="Functional"), "unsupported model class"),
])
def test_inconsistent_config(trained, edit, pattern):
    _, _, _, path = trained
    edit_config(path, edit)
    with pytest.raises(ValueError, match=pattern):
        load_model(path)


def test_pickled_array_is_refused(trained):
    _, _, _, path = trained
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    payload = buffer.getvalue()

    def change(name, data):
        if name == "weights/1.npy":
            return payload
        if name == "config.json":
            config = json.loads(data)
            config["weights"][1]["sha256"] = hashlib.sha256(payload).hexdigest()
            config["weights"][1]["shape"] = [1]
            return json.dumps(config).encode()
        return data

    rewrite(path, change)
    with pytest.raises(ValueError, match="not a valid .npy array"):
        load_model(path)


def test_weights_that_do_not_fit_the_architecture(trained):
    _, _, _, path = trained
    # Consistent file (checksums right) but the Dense kernel has the wrong shape for the model.
    new = np.zeros((10, 3), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, new)
    payload = buffer.getvalue()

    def change(name, data):
        if name == "weights/6.npy":
            return payload
        if name == "config.json":
            config = json.loads(data)
            config["weights"][6].update(shape=[10, 3], sha256=hashlib.sha256(payload).hexdigest())
            return json.dumps(config).encode()
        return data

    rewrite(path, change)
    with pytest.raises(ValueError, match="do not fit the saved architecture"):
        load_model(path)
