"""Callbacks: hook order, History, EarlyStopping (Keras 3 semantics, exact best weights),
ModelCheckpoint, TerminateOnNaN, learning-rate callbacks, CSVLogger, stop_training."""
import csv
import os

import numpy as np
import pytest
from conftest import compiled_core_available

import fastconv
from fastconv import callbacks, optimizers
from fastconv.layers import Dense


@pytest.fixture(autouse=True)
def backend():
    with fastconv.use_backend("compiled" if compiled_core_available() else "reference"):
        yield


def make_model(seed=0):
    fastconv.utils.set_random_seed(seed)
    model = fastconv.Sequential([Dense(4, activation="tanh", dtype="float64"),
                                 Dense(2, activation="softmax", dtype="float64")], input_shape=(3,))
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def make_data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)), rng.integers(0, 2, size=n)


class ScriptedMonitor(callbacks.Callback):
    """Replaces logs[key] by scripted values (runs before the callbacks under test) and keeps a
    copy of the weights at the end of each epoch."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights[epoch] = self.model.get_weights()


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_batch_begin(self, batch, logs=None):  # Keras 2 name, called via on_train_batch_begin
        self.calls.append(f"batch_begin {batch}")

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(f"batch_end {batch} {sorted(logs)}")

    def on_test_begin(self, logs=None):
        self.calls.append("test_begin")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_hook_order_and_params():
    x, y = make_data(10)
    model = make_model()
    rec = Recorder()
    model.fit(x, y, batch_size=6, epochs=2, validation_data=(x, y), verbose=0, callbacks=[rec])
    batch_keys = "['accuracy', 'loss']"
    epoch_keys = "['accuracy', 'loss', 'val_accuracy', 'val_loss']"
    assert rec.calls == [
        "train_begin",
        "epoch_begin 0", "batch_begin 0", f"batch_end 0 {batch_keys}", "batch_begin 1",
        f"batch_end 1 {batch_keys}", "test_begin", f"epoch_end 0 {epoch_keys}",
        "epoch_begin 1", "batch_begin 0", f"batch_end 0 {batch_keys}", "batch_begin 1",
        f"batch_end 1 {batch_keys}", "test_begin", f"epoch_end 1 {epoch_keys}",
        "train_end",
    ]
    assert rec.model is model and rec.params["epochs"] == 2 and rec.params["steps"] == 2


def test_history_is_returned_and_attached():
    x, y = make_data()
    model = make_model()
    history = model.fit(x, y, epochs=3, verbose=0)
    assert isinstance(history, callbacks.History) and model.history is history
    assert history.epoch == [0, 1, 2] and len(history.history["loss"]) == 3


def test_stop_training_ends_the_epoch_after_the_current_batch():
    x, y = make_data(20)
    model = make_model()
    batches = []

    def on_batch_end(batch, logs):
        batches.append(batch)
        if batch == 1:
            model.stop_training = True

    history = model.fit(x, y, batch_size=4, epochs=5, verbose=0,
                        callbacks=[callbacks.LambdaCallback(on_train_batch_end=on_batch_end)])
    assert batches == [0, 1] and history.epoch == [0]


# -- EarlyStopping ---------------------------------------------------------------------------------------
def test_early_stopping_restores_exactly_the_best_epoch():
    x, y = make_data()
    model = make_model()
    script = ScriptedMonitor("val_loss", [5.0, 3.0, 4.0, 2.5, 2.6, 2.7, 1.0, 0.5])
    stopper = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=8, verbose=0, callbacks=[script, stopper])
    # Best at epoch 3; epochs 4 and 5 do not improve; patience 2 stops after epoch 5.
    assert history.epoch == [0, 1, 2, 3, 4, 5]
    assert stopper.stopped_epoch == 5 and stopper.best_epoch == 3 and stopper.best == 2.5
    for got, best in zip(model.get_weights(), script.weights[3]):
        np.testing.assert_array_equal(got, best)
    assert not np.array_equal(script.weights[5][0], script.weights[3][0])


def test_early_stopping_without_restore_keeps_last_weights():
    x, y = make_data()
    model = make_model()
    script = ScriptedMonitor("val_loss", [1.0, 2.0, 3.0, 4.0])
    stopper = callbacks.EarlyStopping(patience=1)
    model.fit(x, y, epochs=4, verbose=0, callbacks=[script, stopper])
    assert stopper.stopped_epoch == 1
    np.testing.assert_array_equal(model.get_weights()[0], script.weights[1][0])


def test_early_stopping_mode_min_delta_and_baseline():
    x, y = make_data()
    # max mode (auto for accuracy): improvements smaller than min_delta do not count.
    model = make_model()
    script = ScriptedMonitor("val_accuracy", [0.5, 0.52, 0.53, 0.6, 0.9])
    stopper = callbacks.EarlyStopping(monitor="val_accuracy", min_delta=0.05, patience=2)
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=[script, stopper])
    assert history.epoch == [0, 1, 2] and stopper.best == 0.5
    # An epoch that does not beat the baseline does not restart the wait (Keras 3), so a
    # baseline never reached stops training one epoch earlier here.
    for baseline, epochs_run in [(None, [0, 1, 2, 3]), (0.5, [0, 1, 2])]:
        model = make_model()
        script = ScriptedMonitor("loss", [0.9, 0.95, 0.97, 0.99, 1.0])
        stopper = callbacks.EarlyStopping(monitor="loss", baseline=baseline, patience=3)
        history = model.fit(x, y, epochs=5, verbose=0, callbacks=[script, stopper])
        assert history.epoch == epochs_run


def test_early_stopping_start_from_epoch_and_missing_monitor():
    x, y = make_data()
    model = make_model()
    script = ScriptedMonitor("val_loss", [1.0, 2.0, 3.0, 4.0, 5.0])
    stopper = callbacks.EarlyStopping(patience=0, start_from_epoch=2)
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=[script, stopper])
    assert history.epoch == [0, 1, 2, 3]
    with pytest.warns(UserWarning, match="'val_auc' is not in the logs"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.EarlyStopping(monitor="val_auc")])


def test_early_stopping_mode_errors():
    with pytest.raises(ValueError, match="cannot tell whether 'val_score'"):
        make_model().fit(*make_data(), verbose=0, callbacks=[callbacks.EarlyStopping("val_score")])
    with pytest.raises(ValueError, match="`mode` must be 'auto', 'min' or 'max'"):
        make_model().fit(*make_data(), verbose=0, callbacks=[callbacks.EarlyStopping(mode="up")])


# -- ModelCheckpoint -----------------------------------------------------------------------------------------
def test_checkpoint_save_best_only_with_epoch_in_name(tmp_path):
    x, y = make_data()
    model = make_model()
    script = ScriptedMonitor("val_loss", [3.0, 2.0, 2.5, 1.0])
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.1f}.fcz")
    ckpt = callbacks.ModelCheckpoint(pattern, save_best_only=True)
    model.fit(x, y, epochs=4, verbose=0, callbacks=[script, ckpt])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01-3.0.fcz", "ckpt-02-2.0.fcz", "ckpt-04-1.0.fcz"]
    for name, epoch in [("ckpt-02-2.0.fcz", 1), ("ckpt-04-1.0.fcz", 3)]:
        loaded = fastconv.models.load_model(tmp_path / name)
        for got, want in zip(loaded.get_weights(), script.weights[epoch]):
            np.testing.assert_array_equal(got, want)


def test_checkpoint_best_only_fixed_path_keeps_the_best(tmp_path):
    x, y = make_data()
    model = make_model()
    script = ScriptedMonitor("val_accuracy", [0.5, 0.8, 0.7, 0.6])
    path = tmp_path / "best.fcz"
    model.fit(x, y, epochs=4, verbose=0, callbacks=[
        script, callbacks.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)])
    loaded = fastconv.models.load_model(path)
    for got, want in zip(loaded.get_weights(), script.weights[1]):
        np.testing.assert_array_equal(got, want)


def test_checkpoint_every_epoch_and_weights_only(tmp_path):
    x, y = make_data()
    model = make_model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[
        callbacks.ModelCheckpoint(tmp_path / "w{epoch}.weights.fcz", save_weights_only=True)])
    assert sorted(os.listdir(tmp_path)) == ["w1.weights.fcz", "w2.weights.fcz"]
    other = make_model(seed=1)
    other.load_weights(tmp_path / "w2.weights.fcz")
    for got, want in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="holds only weights"):
        fastconv.models.load_model(tmp_path / "w2.weights.fcz")


def test_checkpoint_save_freq_in_batches(tmp_path):
    x, y = make_data(16)
    model = make_model()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[
        callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}b{batch}.fcz"), save_freq=3)])
    # 8 batches in all: saves after the 3rd and 6th.
    assert sorted(os.listdir(tmp_path)) == ["e1b3.fcz", "e2b2.fcz"]


def test_checkpoint_bad_format_field(tmp_path):
    model = make_model()
    with pytest.raises(KeyError, match="cannot fill the file path"):
        model.fit(*make_data(), verbose=0,
                  callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "{val_f1}.fcz"))])


# -- other callbacks -------------------------------------------------------------------------------------------
def test_terminate_on_nan(capsys):
    x = np.ones((12, 3))
    y = np.full((12, 1), 1e30)  # squared error overflows float32 to inf
    model = fastconv.Sequential([Dense(1)], input_shape=(3,))
    model.compile("sgd", "mse")
    batches = []
    with np.errstate(over="ignore", invalid="ignore"):
        history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[
            callbacks.TerminateOnNaN(),
            callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))])
    assert batches == [0] and history.epoch == [0]
    assert not np.isfinite(history.history["loss"][0])
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out


def test_learning_rate_scheduler():
    x, y = make_data()
    model = make_model()
    seen = []
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)),
        callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(model.optimizer.learning_rate))])
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_reduce_lr_on_plateau():
    x, y = make_data()
    model = make_model()
    script = ScriptedMonitor("val_loss", [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    reducer = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.03)
    history = model.fit(x, y, epochs=7, verbose=0, callbacks=[script, reducer])
    # Logged rate is the one used during each epoch; reductions after epochs 2 and 5.
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.03])
    assert model.optimizer.learning_rate == pytest.approx(0.03)


def test_csv_logger(tmp_path):
    x, y = make_data()
    model = make_model()
    path = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "0"]
    assert float(rows[1]["loss"]) == pytest.approx(history.history["loss"][1])
    assert set(rows[0]) == {"epoch", "loss", "accuracy"}


def test_lambda_callback_rejects_bad_hooks():
    with pytest.raises(ValueError, match="unknown hook 'on_banana'"):
        callbacks.LambdaCallback(on_banana=print)
    with pytest.raises(TypeError, match="must be callable"):
        callbacks.LambdaCallback(on_epoch_end=3)
