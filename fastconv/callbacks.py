"""Callbacks called by `Sequential.fit` / `evaluate` / `predict` (Keras names and semantics).

A callback overrides any of the hooks below; `self.model` is the model being trained and
`self.params` holds `epochs`, `steps` and `verbose`. Setting `self.model.stop_training = True`
ends `fit` after the current batch (the epoch is then closed normally).

>>> class PrintLoss(Callback):
...     def on_epoch_end(self, epoch, logs=None):
...         print(epoch, logs["loss"])
"""
import csv
import math
import numbers
import os
import warnings

import numpy as np


class Callback:
    """Base class of callbacks; every hook does nothing by default."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    # Keras 2 names; the on_train_batch_* hooks call them, so either can be overridden.
    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks=None, model=None, params=None):
        callbacks = [] if callbacks is None else callbacks
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        try:
            callbacks = list(callbacks)
        except TypeError:
            raise TypeError(
                f"`callbacks` must be a list of fastconv.callbacks.Callback; received {callbacks!r}."
            ) from None
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"Each callback must be a fastconv.callbacks.Callback; received {cb!r}."
                )
        self.callbacks = callbacks
        for cb in callbacks:
            if model is not None:
                cb.set_model(model)
            if params is not None:
                cb.set_params(params)

    # Hooks are forwarded with `logs` given positionally, as Keras does, so functions taking
    # (epoch, logs) or (logs) work in LambdaCallback.
    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs)


class History(Callback):
    """Records the logs of every epoch in `history` ({"loss": [...], "val_loss": [...], ...}).

    `fit` returns it; the epochs it ran are in `epoch`.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


# Name fragments that say whether a monitored quantity should go down or up (mode="auto").
_DECREASING = ("loss", "error", "mse", "mae", "crossentropy")
_INCREASING = ("acc", "auc", "precision", "recall")


def _monitor_direction(mode, monitor, who):
    """Return "min" or "max" for `mode` ("auto", "min", "max") and the monitored name."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: `mode` must be 'auto', 'min' or 'max'; received {mode!r}.")
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if any(part in name for part in _DECREASING):
        return "min"
    if any(part in name for part in _INCREASING):
        return "max"
    raise ValueError(
        f"{who} cannot tell whether {monitor!r} should be minimized or maximized; pass "
        "mode='min' or mode='max'."
    )


def _warn_missing(who, monitor, logs):
    warnings.warn(f"{who}: the monitored quantity {monitor!r} is not in the logs "
                  f"(available: {', '.join(sorted(logs))}); skipping.", stacklevel=3)


class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving.

    Args:
        monitor: quantity to watch, default "val_loss".
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints a message when stopping or restoring.
        mode: "min", "max" or "auto" (from the name: losses decrease, accuracies increase).
        baseline: training stops if the monitored value does not beat it within `patience`
            epochs.
        restore_best_weights: at the end of training, set the weights of the best epoch back
            (as Keras 3 does, whether or not training stopped early).
        start_from_epoch: epochs to wait before starting to monitor.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        if not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"`patience` must be a non-negative integer; received {patience!r}.")
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = mode
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self._direction = None
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self._direction = _monitor_direction(self.mode, self.monitor, "EarlyStopping")
        self._reset()

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self._direction == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            _warn_missing("EarlyStopping", self.monitor, logs)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Until something improves, the first monitored epoch is the best one.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Only restart the wait if we beat both the baseline and our previous best.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) at the end of epochs.

    Args:
        filepath: where to save; may contain format fields filled from the epoch (1-based)
            and the logs, e.g. "ckpt-{epoch:02d}-{val_loss:.3f}.fcz".
        monitor: quantity compared when `save_best_only`, default "val_loss".
        verbose: 1 prints a message on each save.
        save_best_only: only save when `monitor` improves on the best value so far.
        save_weights_only: save with `model.save_weights` instead of `model.save`.
        mode: "min", "max" or "auto".
        save_freq: "epoch", or an integer: save every that many batches.
        initial_value_threshold: a value the monitored quantity must beat to trigger the first
            save (with `save_best_only`).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = mode
        if save_freq != "epoch" and not (isinstance(save_freq, numbers.Integral) and save_freq > 0):
            raise ValueError(f"`save_freq` must be 'epoch' or a positive integer; received {save_freq!r}.")
        self.save_freq = save_freq
        self.initial_value_threshold = initial_value_threshold
        self._direction = _monitor_direction(mode, monitor, "ModelCheckpoint") if save_best_only else mode
        self.best = initial_value_threshold
        self._batches_seen = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _file_path(self, epoch, batch, logs):
        try:
            if batch is None:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise KeyError(
                f"ModelCheckpoint: cannot fill the file path {self.filepath!r}: {exc!r}; the "
                f"available fields are epoch{', batch' if batch is not None else ''} and "
                f"{', '.join(sorted(logs))}."
            ) from None

    def _improved(self, current):
        if self.best is None:
            return True
        return current < self.best if self._direction == "min" else current > self.best

    def _save(self, epoch, batch, logs):
        path = self._file_path(epoch, batch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                _warn_missing("ModelCheckpoint", self.monitor, logs)
                return
            if not self._improved(current):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                previous = "None" if self.best is None else f"{self.best:.5f}"
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {previous} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback built from functions.

    Args:
        on_epoch_begin, on_epoch_end: `f(epoch, logs)`.
        on_train_begin, on_train_end: `f(logs)`.
        on_train_batch_begin, on_train_batch_end: `f(batch, logs)`.
        **kwargs: any other hook by name.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(kwargs, on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}.")
            if not callable(fn):
                raise TypeError(f"LambdaCallback: `{name}` must be callable; received {fn!r}.")
            setattr(self, name, fn)


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch.

    Args:
        schedule: `f(epoch, lr) -> new lr` (0-based epoch, current lr).
        verbose: 1 prints the new rate each epoch.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"`schedule` must be callable; received {schedule!r}.")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = float(self.schedule(epoch, float(optimizer.learning_rate)))
        if not math.isfinite(lr):
            raise ValueError(f"LearningRateScheduler: the schedule returned {lr!r} for epoch {epoch}.")
        optimizer.learning_rate = lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when a monitored quantity stops improving.

    Args:
        monitor: quantity to watch, default "val_loss".
        factor: multiplier, in (0, 1); default 0.1.
        patience: epochs without improvement before reducing, default 10.
        verbose: 1 prints a message on each reduction.
        mode: "min", "max" or "auto".
        min_delta: smallest change that counts as an improvement, default 1e-4.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: lower bound on the learning rate.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: `factor` must be in (0, 1); received {factor!r}.")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = mode
        self.min_delta = float(min_delta)
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self._direction = None

    def on_train_begin(self, logs=None):
        self._direction = _monitor_direction(self.mode, self.monitor, "ReduceLROnPlateau")
        self.best = np.inf if self._direction == "min" else -np.inf
        self.wait = 0
        self.cooldown_counter = 0

    def _improved(self, current):
        if self._direction == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            _warn_missing("ReduceLROnPlateau", self.monitor, logs)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > self.min_lr:
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file.

    Args:
        filename: path of the CSV file.
        separator: field separator, default ",".
        append: append to an existing file instead of overwriting it.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self._file = None
        self._writer = None
        self._keys = None

    def on_train_begin(self, logs=None):
        has_rows = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._keys = None
        self._append_header = not has_rows

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self._keys,
                                          delimiter=self.separator)
            if self._append_header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self._keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
