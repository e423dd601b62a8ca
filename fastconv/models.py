"""The Sequential model: a stack of layers trained with Keras' compile/fit/evaluate/predict.

>>> import numpy as np, fastconv
>>> from fastconv.layers import Dense
>>> model = fastconv.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")],
...                             input_shape=(4,))
>>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
>>> history = model.fit(np.random.rand(64, 4), np.random.randint(0, 3, 64), epochs=2, verbose=0)
>>> sorted(history.history)
['accuracy', 'loss']
"""
import math
import numbers
import sys
import time
import warnings

import numpy as np

from . import _fusion
from . import _validation as V
from . import callbacks as callbacks_module
from . import layers as layers_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .layers.base import Layer, _unique_name
from .utils import get_rng

_VERBOSE_VALUES = ("auto", 0, 1, 2)


# -- argument checks -----------------------------------------------------------------------------
def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`{name}` must be {what}; received {name}={value!r}.")
    return int(value)


def _check_batch_size(batch_size, name="batch_size"):
    return 32 if batch_size is None else _check_int(batch_size, name, 1)


def _check_verbose(verbose):
    if isinstance(verbose, bool) or verbose not in _VERBOSE_VALUES:
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2; received verbose={verbose!r}.")
    return 1 if verbose == "auto" else int(verbose)


def _first_non_finite_sample(x, chunk_elements=1 << 22):
    """Index of the first sample of `x` holding NaN or inf, or None (checked in chunks, so a
    large dataset never needs a full-size temporary)."""
    per_sample = max(1, x[0].size)
    step = max(1, chunk_elements // per_sample)
    for start in range(0, len(x), step):
        finite = np.isfinite(x[start:start + step].reshape(-1, per_sample)).all(axis=1)
        if not finite.all():
            return start + int(np.argmin(finite))
    return None


def _format_value(value):
    value = float(value)
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4f}"
    return f"{value:.4e}"


def _format_logs(logs):
    return " - ".join(f"{key}: {_format_value(value)}" for key, value in logs.items())


def _format_duration(seconds):
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{seconds % 60:02.0f}s"


class ProgbarLogger(callbacks_module.Callback):
    """Prints training progress; `fit` adds it when `verbose` is 1 or 2.

    Each epoch ends with one line: `Epoch 3/5 - 1.2s - loss: 0.1234 - accuracy: 0.9612 - ...`.
    With verbose=1 on a terminal, a progress bar is updated in place during the epoch.
    """

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream

    def _out(self):
        return self.stream or sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = time.perf_counter()
        self._last_update = 0.0
        out = self._out()
        self._dynamic = self.verbose == 1 and hasattr(out, "isatty") and out.isatty()
        self._width = 0

    def on_train_batch_end(self, batch, logs=None):
        if not self._dynamic:
            return
        now = time.perf_counter()
        steps = self.params.get("steps") or 0
        if now - self._last_update < 0.1 and batch + 1 < steps:
            return
        self._last_update = now
        done = batch + 1
        bar_len = 20
        filled = int(bar_len * done / steps) if steps else bar_len
        bar = "=" * max(filled - 1, 0) + (">" if filled < bar_len else "=") + "." * (bar_len - filled)
        elapsed = now - self._start
        eta = elapsed / done * (steps - done)
        line = (f"Epoch {self._epoch + 1}/{self.params['epochs']} {done}/{steps} [{bar}] - "
                f"ETA: {_format_duration(eta)} - {_format_logs(logs or {})}")
        self._write_in_place(line)

    def _write_in_place(self, line):
        out = self._out()
        out.write("\r" + line + " " * max(self._width - len(line), 0))
        out.flush()
        self._width = len(line)

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        line = f"Epoch {epoch + 1}/{self.params['epochs']} - {_format_duration(elapsed)}"
        if logs:
            line += " - " + _format_logs(logs)
        if self._dynamic:
            self._write_in_place(line)
            self._out().write("\n")
        else:
            self._out().write(line + "\n")
        self._out().flush()


class Sequential:
    """A linear stack of layers.

    Args:
        layers: optional list of layers to add.
        input_shape: shape of one sample, without the batch axis, e.g. (28, 28, 1). It can also
            be given as `input_shape=` to the first layer, passed to `build`, or inferred from the
            first batch of data.
        name: name of the model.

    Attributes:
        stop_training: set to True (e.g. by a callback) to end `fit` after the current batch.
        history: the `History` of the last `fit`.
    """

    def __init__(self, layers=None, input_shape=None, name=None):
        self.name = name or _unique_name("sequential")
        self._layers = []
        self._input_shape = None
        self.built = False
        self.optimizer = None
        self.loss = None
        self._metric_specs = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        if input_shape is not None:
            self._input_shape = self._normalize_input_shape(input_shape)
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            for layer in layers:
                self.add(layer)
        if self._input_shape is not None and not self.built and self._layers:
            self.build()

    # -- structure -----------------------------------------------------------------------------
    @staticmethod
    def _normalize_input_shape(input_shape):
        try:
            shape = tuple(input_shape)
        except TypeError:
            raise ValueError(
                f"`input_shape` must be a tuple of positive ints (without the batch axis); "
                f"received {input_shape!r}."
            ) from None
        if shape and shape[0] is None:  # Keras-style (None, 28, 28, 1)
            shape = shape[1:]
        if (not shape or isinstance(input_shape, str)
                or not all(isinstance(s, (numbers.Integral, np.integer)) and not isinstance(s, bool)
                           for s in shape)):
            raise ValueError(
                f"`input_shape` must be a tuple of positive ints (without the batch axis); "
                f"received {input_shape!r}."
            )
        return V.check_input_shape(shape, len(shape), "input_shape")

    @property
    def layers(self):
        """The layers of the model, in order (a copy of the list)."""
        return list(self._layers)

    def add(self, layer):
        """Add a layer on top of the stack (built at once when the input shape is known)."""
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential.add expects a fastconv Layer; received {type(layer).__name__} ({layer!r})."
            )
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                f"All layers added to a Sequential model should have unique names; the name "
                f"{layer.name!r} is already used in model {self.name!r}. Pass name= to the layer."
            )
        if not self._layers and self._input_shape is None and layer.input_shape is not None:
            self._input_shape = tuple(layer.input_shape)
        if self._input_shape is not None:
            shape = self._output_shape_of(self._layers) if self._layers else self._input_shape
            self._build_layer(layer, shape)
        self._layers.append(layer)
        self.built = self._input_shape is not None

    def pop(self):
        """Remove and return the last layer."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        if not self._layers:
            self.built = False
        return layer

    @staticmethod
    def _build_layer(layer, shape):
        shape = tuple(shape)
        if layer.built:
            if tuple(layer.input_shape) != shape:
                raise ValueError(
                    f"Layer {layer.name!r} was built for input shape {tuple(layer.input_shape)} "
                    f"but receives {shape} in this model."
                )
            return
        try:
            layer.build(shape)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"Cannot build layer {layer.name!r} on input shape {shape}: {exc}") from None

    def _output_shape_of(self, layers):
        return tuple(layers[-1].output_shape)

    def build(self, input_shape=None):
        """Create the weights of every layer for samples of `input_shape` (no batch axis)."""
        if input_shape is not None:
            shape = self._normalize_input_shape(input_shape)
            if self.built and shape != self._input_shape:
                raise ValueError(
                    f"Model {self.name!r} is already built for input shape {self._input_shape}; "
                    f"received {shape}."
                )
            self._input_shape = shape
        if self._input_shape is None:
            raise ValueError(
                f"Model {self.name!r} cannot be built: its input shape is unknown. Pass "
                "input_shape= to Sequential or to the first layer, or call build(input_shape)."
            )
        if not self._layers:
            raise ValueError(f"Model {self.name!r} has no layers; add layers before building it.")
        shape = self._input_shape
        for layer in self._layers:
            self._build_layer(layer, shape)
            shape = tuple(layer.output_shape)
        self.built = True

    def _require_built(self, action):
        if not self.built:
            raise ValueError(
                f"Model {self.name!r} has not been built yet, so it cannot {action}. Build it with "
                "build(input_shape), or give input_shape= to Sequential or its first layer."
            )

    @property
    def input_shape(self):
        """(None,) + shape of one sample, as in Keras (None before the model is built)."""
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        self._require_built("report its output shape")
        return (None,) + tuple(self._layers[-1].output_shape)

    @property
    def dtype(self):
        """The dtype of the first layer: what input data is converted to."""
        return self._layers[0].dtype if self._layers else np.dtype(np.float32)

    # -- weights -------------------------------------------------------------------------------
    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    @property
    def trainable(self):
        return all(layer.trainable for layer in self._layers)

    @trainable.setter
    def trainable(self, value):
        for layer in self._layers:
            layer.trainable = bool(value)

    def get_weights(self):
        """Copies of every layer's weights, in layer order and Keras' per-layer order."""
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Set all weights from a list shaped like `get_weights()` (checked before any change)."""
        self._require_built("set its weights")
        weights = list(weights)
        expected = [w for layer in self._layers for w in layer._weights]
        if len(weights) != len(expected):
            raise ValueError(
                f"Model {self.name!r} has {len(expected)} weight arrays; received a list of "
                f"{len(weights)}."
            )
        for i, (weight, new) in enumerate(zip(expected, weights)):
            shape = np.shape(new)
            if tuple(shape) != weight.value.shape:
                raise ValueError(
                    f"weights[{i}] ({weight.name!r}) must have shape {weight.value.shape}; "
                    f"received shape {tuple(shape)}."
                )
        start = 0
        for layer in self._layers:
            count = len(layer._weights)
            layer.set_weights(weights[start:start + count])
            start += count

    def count_params(self):
        self._require_built("count its parameters")
        return int(sum(layer.count_params() for layer in self._layers))

    # -- compile -------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Configure the model for training.

        Args:
            optimizer: name ("sgd", "adam", "rmsprop", "adagrad") or optimizer object.
            loss: name ("sparse_categorical_crossentropy", "categorical_crossentropy",
                "binary_crossentropy", "mse", "mae") or loss object.
            metrics: list of metric names ("accuracy", ...), functions or Metric objects.
        """
        optimizer = optimizers_module.get(optimizer)
        loss = None if loss is None else losses_module.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)) or callable(metrics):
            metrics = [metrics]
        else:
            try:
                metrics = list(metrics)
            except TypeError:
                raise TypeError(f"`metrics` must be a list; received {metrics!r}.") from None
        for spec in metrics:  # fail now on an unknown name, not at the end of the first epoch
            metrics_module.get(spec, loss)
        self.optimizer = optimizer
        self.loss = loss
        self._metric_specs = metrics
        self.compiled = True

    @property
    def metrics_names(self):
        names = ["loss"]
        for spec in self._metric_specs:
            names.append(spec if isinstance(spec, str) else metrics_module.get(spec, self.loss).name)
        return names

    def _require_loss(self, action):
        if not self.compiled or self.loss is None:
            raise RuntimeError(
                f"You must compile the model with a loss before calling {action}: "
                "model.compile(optimizer=..., loss=...)."
            )

    def _make_metrics(self, pred_shape, target_shape):
        built = [metrics_module.get(spec, self.loss, pred_shape, target_shape)
                 for spec in self._metric_specs]
        for metric in built:
            metric.reset_state()
        return built

    # -- data checks ---------------------------------------------------------------------------
    def _check_x(self, x, name="x"):
        if self._layers:
            x = V.as_float_array(x, name, self.dtype)
        else:
            raise ValueError(f"Model {self.name!r} has no layers.")
        if x.ndim < 2:
            raise ValueError(
                f"`{name}` must have a batch axis followed by the sample shape; received shape "
                f"{x.shape}."
            )
        if not self.built:
            self.build(x.shape[1:])
        if tuple(x.shape[1:]) != tuple(self._input_shape):
            raise ValueError(
                f"`{name}` must have shape (batch,) + {tuple(self._input_shape)} for model "
                f"{self.name!r}; received shape {x.shape}."
            )
        if x.shape[0] == 0:
            raise ValueError(f"`{name}` is empty (0 samples).")
        bad = _first_non_finite_sample(x)
        if bad is not None:
            raise ValueError(f"`{name}` contains NaN or infinite values (first in sample {bad}).")
        return x

    def _check_xy(self, x, y, x_name="x", y_name="y"):
        x = self._check_x(x, x_name)
        if y is None:
            raise ValueError(f"`{y_name}` (the targets) is required.")
        y = np.asarray(y)
        if y.ndim == 0:
            raise ValueError(f"`{y_name}` must have a batch axis; received a scalar.")
        if len(y) != len(x):
            raise ValueError(
                f"`{x_name}` and `{y_name}` must have the same number of samples; received "
                f"{len(x)} in {x_name} and {len(y)} in {y_name}."
            )
        pred_shape = (len(x),) + tuple(self._layers[-1].output_shape)
        dtype = self._layers[-1].dtype
        y = self.loss.check_targets(y, pred_shape, name=y_name, dtype=dtype)
        return x, y

    # -- the core steps ------------------------------------------------------------------------
    def _forward(self, x, training):
        if not training:  # BatchNormalization folded into the layer before it where possible
            return _fusion.run_inference(self._layers, x)
        for layer in self._layers:
            x = layer.forward(x, training=True)
        return x

    def _first_trained_layer(self):
        """Index of the first layer with trainable weights (None if there is none).

        Backward stops there: earlier layers have nothing to learn, and that layer needs no
        gradient with respect to its input.
        """
        for i, layer in enumerate(self._layers):
            if layer.trainable_weights:
                return i
        return None

    def _regularization(self):
        """Total penalty and {id(weight array): penalty gradient} of the trainable weights."""
        penalty, grads = 0.0, {}
        for layer in self._layers:
            if not layer.trainable:
                continue
            for weight in layer._weights:
                if weight.trainable and weight.regularizer is not None:
                    penalty += float(weight.regularizer(weight.value))
                    grads[id(weight.value)] = weight.regularizer.gradient(weight.value)
        return penalty, grads

    def _penalty(self):
        return self._regularization()[0]

    def _train_step(self, x, y):
        """One optimizer step on a batch; return (loss including penalties, predictions)."""
        # BatchNormalization + ReLU pairs run as one pass each way (same results; _fusion).
        plan = _fusion.training_plan(self._layers)
        y_pred = _fusion.run_training_forward(self._layers, x, plan)
        loss_value, grad = self.loss.value_and_gradient(y, y_pred)
        penalty, penalty_grads = self._regularization()
        first = self._first_trained_layer()
        if first is None:
            return loss_value + penalty, y_pred
        for i, layer in enumerate(self._layers):
            layer.compute_input_gradient = i > first
        _fusion.run_training_backward(self._layers, first, grad, plan)
        pairs = []
        for layer in self._layers[first:]:
            if not layer.trainable:
                continue
            trained = [w for w in layer._weights if w.trainable]
            for weight, g in zip(trained, layer.get_gradients()):
                if g is None:
                    continue
                extra = penalty_grads.get(id(weight.value))
                pairs.append((g if extra is None else g + extra, weight.value))
        self.optimizer.apply_gradients(pairs)
        return loss_value + penalty, y_pred

    def _test_step(self, x, y):
        y_pred = self._forward(x, training=False)
        return self.loss(y, y_pred), y_pred

    # -- training ------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            validation_batch_size=None, validation_freq=1):
        """Train the model for a number of epochs.

        Args:
            x: inputs, shape (samples,) + input_shape.
            y: targets (integer labels for sparse losses, one-hot for categorical).
            batch_size: samples per gradient step, default 32.
            epochs: index of the last epoch (training runs from `initial_epoch` to `epochs`).
            verbose: "auto" (= 1), 0 (silent), 1 (progress bar on a terminal and one line per
                epoch), 2 (one line per epoch).
            callbacks: list of `fastconv.callbacks.Callback`.
            validation_split: fraction in [0, 1) of the data held out for validation: as in
                Keras, the *last* samples, taken before shuffling.
            validation_data: (x_val, y_val) evaluated at the end of each epoch; overrides
                `validation_split`.
            shuffle: whether to shuffle the training samples before each epoch (with
                `fastconv.utils.get_rng()`, so `fastconv.utils.set_random_seed` makes it
                reproducible).
            initial_epoch: epoch at which to start (to resume a previous run).
            validation_batch_size: batch size for validation, default `batch_size`.
            validation_freq: validate every this many epochs.

        Returns:
            A `History`: `history.history` maps "loss", metric names and their "val_" versions
            to per-epoch lists.

        Raises:
            KeyboardInterrupt: re-raised (as Keras does) after an interrupt (Ctrl-C), once the
                weights of the last completed epoch are restored; `model.history` then holds
                the completed epochs. The optimizer's state is not rolled back.
        """
        self._require_loss("fit()")
        batch_size = _check_batch_size(batch_size)
        validation_batch_size = _check_batch_size(validation_batch_size or batch_size,
                                                  "validation_batch_size")
        epochs = _check_int(epochs, "epochs", 0)
        initial_epoch = _check_int(initial_epoch, "initial_epoch", 0)
        validation_freq = _check_int(validation_freq, "validation_freq", 1)
        verbose = _check_verbose(verbose)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"`shuffle` must be True or False; received shuffle={shuffle!r}.")
        if (isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real)
                or not 0 <= validation_split < 1):
            raise ValueError(
                f"`validation_split` must be a number in [0, 1); received {validation_split!r}."
            )
        x, y = self._check_xy(x, y)

        x_val = y_val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError(
                    "`validation_data` must be a tuple (x_val, y_val); received "
                    f"{type(validation_data).__name__}."
                )
            if len(validation_data) == 3 and validation_data[2] is not None:
                raise ValueError("`validation_data` with sample weights is not supported; pass (x_val, y_val).")
            x_val, y_val = self._check_xy(validation_data[0], validation_data[1], "x_val", "y_val")
        elif validation_split:
            split_at = int(math.floor(len(x) * (1.0 - validation_split)))
            if split_at == 0 or split_at == len(x):
                raise ValueError(
                    f"The training data has {len(x)} samples, too few to split it into training "
                    f"and validation sets with validation_split={validation_split}."
                )
            x, x_val = x[:split_at], x[split_at:]
            y, y_val = y[:split_at], y[split_at:]

        n = len(x)
        steps = -(-n // batch_size)
        history = callbacks_module.History()
        user_callbacks = callbacks_module.CallbackList(callbacks).callbacks  # checks the types
        progress = [ProgbarLogger(verbose)] if verbose else []
        cbs = callbacks_module.CallbackList(
            progress + user_callbacks + [history], model=self,
            params={"epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": batch_size})

        pred_shape = (n,) + tuple(self._layers[-1].output_shape)
        metrics = self._make_metrics(pred_shape, np.shape(y))
        loss_mean = metrics_module.Mean("loss")

        self.stop_training = False
        # Ctrl-C (KeyboardInterrupt) can land anywhere, even between the updates of two weights
        # in one optimizer step: fit then puts back the weights of the last completed epoch
        # (those it started from if none completed) and re-raises, so the model stays usable.
        completed = self._snapshot_weights()
        try:
            cbs.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                loss_mean.reset_state()
                for metric in metrics:
                    metric.reset_state()
                cbs.on_epoch_begin(epoch)
                order = get_rng().permutation(n) if shuffle else None
                for step in range(steps):
                    cbs.on_train_batch_begin(step)
                    lo, hi = step * batch_size, min((step + 1) * batch_size, n)
                    if order is None:
                        xb, yb = x[lo:hi], y[lo:hi]
                    else:
                        idx = order[lo:hi]
                        xb, yb = x[idx], y[idx]
                    loss_value, y_pred = self._train_step(xb, yb)
                    loss_mean.update_state(loss_value, hi - lo)
                    for metric in metrics:
                        metric.update_state(yb, y_pred)
                    logs = {"loss": loss_mean.result()}
                    logs.update((m.name, m.result()) for m in metrics)
                    cbs.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
                epoch_logs = {"loss": loss_mean.result()}
                epoch_logs.update((m.name, m.result()) for m in metrics)
                if x_val is not None and (epoch + 1 - initial_epoch) % validation_freq == 0:
                    val_logs = self._evaluate_arrays(x_val, y_val, validation_batch_size, cbs)
                    epoch_logs.update(("val_" + key, value) for key, value in val_logs.items())
                cbs.on_epoch_end(epoch, epoch_logs)
                completed = self._snapshot_weights()
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            self._restore_weights(completed)
            self.history = history
            raise
        cbs.on_train_end()
        self.history = history
        return history

    def _snapshot_weights(self):
        """Copies of every weight array (trainable or not), in `get_weights` order."""
        return [w.value.copy() for layer in self._layers for w in layer._weights]

    def _restore_weights(self, snapshot):
        """Put back a `_snapshot_weights()` in place (optimizers hold the weight arrays)."""
        arrays = [w.value for layer in self._layers for w in layer._weights]
        for array, saved in zip(arrays, snapshot):
            np.copyto(array, saved)

    def train_on_batch(self, x, y, return_dict=False):
        """Run one optimizer step on one batch.

        Returns:
            The loss (with regularization penalties) as a float if the model has no metrics,
            else [loss, metric values...] of this batch; a dict with `return_dict=True`.
        """
        self._require_loss("train_on_batch()")
        x, y = self._check_xy(x, y)
        loss_value, y_pred = self._train_step(x, y)
        return self._batch_result(loss_value, x, y, y_pred, return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        """Loss (and metrics) of the model on one batch, in inference mode."""
        self._require_loss("test_on_batch()")
        x, y = self._check_xy(x, y)
        loss_value, y_pred = self._test_step(x, y)
        return self._batch_result(loss_value + self._penalty(), x, y, y_pred, return_dict)

    def predict_on_batch(self, x):
        """Predictions for one batch, in inference mode."""
        return self._forward(self._check_x(x), training=False)

    def _batch_result(self, loss_value, x, y, y_pred, return_dict):
        logs = {"loss": float(loss_value)}
        for metric in self._make_metrics(y_pred.shape, np.shape(y)):
            logs[metric.name] = metric.update_state(y, y_pred)
        return self._logs_result(logs, return_dict)

    @staticmethod
    def _logs_result(logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # -- evaluation and prediction ---------------------------------------------------------------
    def _evaluate_arrays(self, x, y, batch_size, cbs=None):
        """Batch-size-weighted mean loss (with penalties) and metrics over checked arrays."""
        n = len(x)
        metrics = self._make_metrics((n,) + tuple(self._layers[-1].output_shape), np.shape(y))
        loss_mean = metrics_module.Mean("loss")
        if cbs is not None:
            cbs.on_test_begin()
        for step in range(-(-n // batch_size)):
            if cbs is not None:
                cbs.on_test_batch_begin(step)
            lo, hi = step * batch_size, min((step + 1) * batch_size, n)
            loss_value, y_pred = self._test_step(x[lo:hi], y[lo:hi])
            loss_mean.update_state(loss_value, hi - lo)
            for metric in metrics:
                metric.update_state(y[lo:hi], y_pred)
            if cbs is not None:
                cbs.on_test_batch_end(step, {"loss": loss_mean.result()})
        logs = {"loss": loss_mean.result() + self._penalty()}
        logs.update((m.name, m.result()) for m in metrics)
        if cbs is not None:
            cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", callbacks=None,
                 return_dict=False):
        """Loss and metrics of the model on data, in inference mode.

        Returns:
            The loss if the model has no metrics, else [loss, metric values...] in the order of
            `metrics_names` (a dict with `return_dict=True`). The loss includes the
            regularization penalties, as in Keras.
        """
        self._require_loss("evaluate()")
        batch_size = _check_batch_size(batch_size)
        verbose = _check_verbose(verbose)
        x, y = self._check_xy(x, y)
        cbs = callbacks_module.CallbackList(callbacks, model=self,
                                            params={"steps": -(-len(x) // batch_size),
                                                    "verbose": verbose})
        start = time.perf_counter()
        logs = self._evaluate_arrays(x, y, batch_size, cbs)
        if verbose:
            steps = -(-len(x) // batch_size)
            print(f"{steps}/{steps} - {_format_duration(time.perf_counter() - start)} - "
                  f"{_format_logs(logs)}")
        return self._logs_result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose=0, callbacks=None):
        """Predictions for every sample of `x`, computed in batches in inference mode.

        Args:
            x: inputs, shape (samples,) + input_shape.
            batch_size: samples per batch, default 32.
            verbose: 0 (silent) or 1/2/"auto" (one line when done).
            callbacks: optional callbacks (their on_predict_* hooks are called).
        """
        batch_size = _check_batch_size(batch_size)
        verbose = _check_verbose(verbose)
        x = self._check_x(x)
        n = len(x)
        steps = -(-n // batch_size)
        cbs = callbacks_module.CallbackList(callbacks, model=self,
                                            params={"steps": steps, "verbose": verbose})
        start = time.perf_counter()
        cbs.on_predict_begin()
        out = None
        for step in range(steps):
            cbs.on_predict_batch_begin(step)
            lo, hi = step * batch_size, min((step + 1) * batch_size, n)
            y_pred = self._forward(x[lo:hi], training=False)
            if out is None:
                out = np.empty((n,) + y_pred.shape[1:], dtype=y_pred.dtype)
            out[lo:hi] = y_pred
            cbs.on_predict_batch_end(step, {"outputs": y_pred})
        cbs.on_predict_end()
        if verbose:
            print(f"{steps}/{steps} - {_format_duration(time.perf_counter() - start)}")
        return out

    def __call__(self, x, training=False):
        """Run the layers on `x` (one batch) and return the output."""
        return self._forward(self._check_x(x), training=bool(training))

    # -- summary ---------------------------------------------------------------------------------
    def summary(self, line_length=None, print_fn=None):
        """Print a table of the layers: name (type), output shape, parameter count, and totals.

        Args:
            line_length: total width of the table (default: fits the content, at least 65).
            print_fn: function called with each line (default: print).
        """
        self._require_built("print a summary")
        print_fn = print_fn or print
        rows = []
        for layer in self._layers:
            rows.append((f"{layer.name} ({type(layer).__name__})",
                         str((None,) + tuple(layer.output_shape)),
                         f"{layer.count_params():,}"))
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) + 2 for i in range(3)]
        total_width = sum(widths)
        if line_length is not None:
            total_width = max(total_width, int(line_length))
            widths[0] += total_width - sum(widths)
        total_width = max(total_width, 65)
        widths[0] += total_width - sum(widths)

        def fmt(cells):
            return "".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

        trainable = sum(int(w.size) for w in self.trainable_weights)
        total = self.count_params()
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * total_width)
        print_fn(fmt(header))
        print_fn("=" * total_width)
        for i, row in enumerate(rows):
            print_fn(fmt(row))
            print_fn(("_" if i < len(rows) - 1 else "=") * total_width)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * total_width)

    # -- configuration and files -------------------------------------------------------------------
    def get_config(self):
        """{"name", "input_shape", "layers": [{"class_name", "config"}, ...]} (JSON-serialisable)."""
        return {
            "name": self.name,
            "input_shape": None if self._input_shape is None else list(self._input_shape),
            "layers": [layers_module.serialize(layer) for layer in self._layers],
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild an (uncompiled) model from `get_config()`; built if the input shape is known."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(f"A Sequential config must be a dict with a list of 'layers'; received {config!r}.")
        layers = [layers_module.deserialize(c, custom_objects=custom_objects) for c in config["layers"]]
        return cls(layers, input_shape=config.get("input_shape"), name=config.get("name"))

    def save(self, filepath, overwrite=True):
        """Save architecture, weights and compile settings to a ".fcz" file (see `fastconv.saving`).

        The optimizer's state is not saved; `load_model` compiles with a fresh optimizer.
        Returns the path written (".fcz" is appended to a path without suffix).
        """
        from . import saving  # imported when used (keeps `import fastconv` fast)
        return saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Save only the weights (same file format; load them with `load_weights`)."""
        from . import saving  # imported when used (keeps `import fastconv` fast)
        return saving.save_model(self, filepath, overwrite=overwrite, kind="weights")

    def load_weights(self, filepath, skip_mismatch=False):
        """Set the weights from a file written by `save` or `save_weights`.

        Weights are matched layer by layer, in order: the i-th layer of this model that has
        weights receives the weights of the i-th layer with weights stored in the file (names
        are not compared, so a rebuilt model with other layer names loads too). An unbuilt
        model is first built with the input shape stored in the file.

        Args:
            filepath: path of a ".fcz" file.
            skip_mismatch: if True, a layer whose weights do not fit (other shapes or number of
                arrays), or that has no counterpart in the file, keeps its current weights and
                a warning names it: e.g. to load a trained convolutional base into a model with
                a new classification head. If False, any mismatch raises ValueError.

        Raises:
            ValueError: a mismatch (with `skip_mismatch=False`), or a damaged or foreign file.
                No weight is changed when it is raised.
        """
        if not isinstance(skip_mismatch, (bool, np.bool_)):
            raise TypeError(f"`skip_mismatch` must be True or False; received {skip_mismatch!r}.")
        from . import saving  # imported when used: zipfile/json/tempfile cost `import fastconv` ~10 ms

        if not skip_mismatch:
            saving.load_weights_into(self, filepath)
            return
        config, arrays = saving.read_model_file(filepath)
        if not self.built:
            saved = ((config.get("model") or {}).get("config") or {}).get("input_shape")
            if saved is None:
                raise ValueError("The model is not built and the file stores no input shape; call "
                                 "model.build(input_shape) before load_weights().")
            self.build(tuple(saved))
        # The file's arrays grouped by layer (a layer's arrays are stored consecutively).
        saved_layers = []
        for entry, array in zip(config["weights"], arrays):
            name = entry.get("layer")
            if saved_layers and saved_layers[-1][0] == name:
                saved_layers[-1][1].append(array)
            else:
                saved_layers.append((name, [array]))
        model_layers = [layer for layer in self._layers if layer._weights]
        plan, skipped = [], []
        for i in range(max(len(model_layers), len(saved_layers))):
            if i >= len(saved_layers):
                skipped.append(f"layer {model_layers[i].name!r}: the file has no weights for it "
                               f"(it stores {len(saved_layers)} layers with weights)")
                continue
            saved_name, saved = saved_layers[i]
            if i >= len(model_layers):
                skipped.append(f"saved layer {saved_name!r}: the model has no layer with weights "
                               f"left for it ({len(model_layers)} layers with weights)")
                continue
            layer = model_layers[i]
            have = [tuple(w.value.shape) for w in layer._weights]
            got = [tuple(a.shape) for a in saved]
            if have != got:
                skipped.append(f"layer {layer.name!r}: its weights have shapes {have} and the "
                               f"file's layer {saved_name!r} has {got}")
                continue
            plan.append((layer, saved))
        for layer, saved in plan:
            layer.set_weights(saved)
        for reason in skipped:
            warnings.warn(f"load_weights(skip_mismatch=True) skipped {reason}.", stacklevel=2)

    def get_layer(self, name=None, index=None):
        """Return a layer by its name or by its index in `layers` (exactly one of the two)."""
        if (name is None) == (index is None):
            raise ValueError("get_layer() needs exactly one of `name` and `index`; received "
                             f"name={name!r}, index={index!r}.")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (numbers.Integral, np.integer)):
                raise TypeError(f"`index` must be an integer; received index={index!r}.")
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"`index`={index} is out of range: model {self.name!r} has "
                                 f"{len(self._layers)} layers.")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No layer named {name!r} in model {self.name!r}; its layers are "
                         f"{[layer.name for layer in self._layers]}.")

    def __repr__(self):
        return f"<Sequential name={self.name!r}, {len(self._layers)} layers>"


def load_model(filepath, custom_objects=None, compile=True):
    """Load a model written by `Sequential.save` (see `fastconv.saving.load_model`)."""
    from . import saving  # imported when used (keeps `import fastconv` fast)
    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile)


def clone_model(model):
    """A new model with the same architecture and fresh (re-initialised) weights."""
    return Sequential.from_config(model.get_config())
