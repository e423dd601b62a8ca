"""Metrics (Keras names): per-sample functions and running means over an epoch.

`compile(metrics=["accuracy"])` picks binary, sparse categorical or categorical accuracy the
way Keras does: from the loss when it is a crossentropy, otherwise from the shapes of the
targets and predictions. A metric object accumulates a mean weighted by the number of
samples (`update_state`, `result`, `reset_state`).

>>> import numpy as np
>>> sparse_categorical_accuracy(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]))
array([1., 0.])
"""
import numpy as np

from . import losses as losses_module


# -- per-sample metric functions -----------------------------------------------------------------
def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the arg-max of `y_pred` equals the integer label, else 0.0."""
    y_pred = np.asarray(y_pred)
    labels = losses_module.sparse_labels(y_true, y_pred.shape, "y_true")
    return (np.argmax(y_pred, axis=-1) == labels).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    """1.0 where the arg-max of `y_pred` equals the arg-max of the one-hot `y_true`."""
    y_pred = np.asarray(y_pred)
    y_true = losses_module.dense_targets(y_true, y_pred.shape, "y_true", allow_squeezed=False)
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Mean over the last axis of (y_pred > threshold) == y_true."""
    y_pred = np.asarray(y_pred)
    y_true = losses_module.dense_targets(y_true, y_pred.shape, "y_true")
    return ((y_pred > threshold) == (y_true > 0.5)).mean(axis=-1, dtype=np.float64)


def mean_squared_error(y_true, y_pred):
    return losses_module.mean_squared_error(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return losses_module.mean_absolute_error(y_true, y_pred)


# -- running means ---------------------------------------------------------------------------------
class Metric:
    """A running mean of a per-sample function, weighted by the number of samples.

    Args:
        fn: `fn(y_true, y_pred) -> per-sample values`.
        name: the key under which the model logs it.
    """

    def __init__(self, fn, name):
        self.fn = fn
        self.name = name
        self.reset_state()

    def reset_state(self):
        self._total = 0.0
        self._count = 0

    def update_state(self, y_true, y_pred):
        """Add a batch; return its own mean value."""
        values = np.asarray(self.fn(y_true, y_pred), dtype=np.float64)
        self._total += float(values.sum())
        self._count += values.size
        return float(values.mean()) if values.size else 0.0

    def result(self):
        return self._total / self._count if self._count else 0.0

    def __repr__(self):
        return f"<Metric {self.name!r}>"


class Mean:
    """Mean of scalar values, each weighted (e.g. by its batch size)."""

    def __init__(self, name="mean"):
        self.name = name
        self.reset_state()

    def reset_state(self):
        self._total = 0.0
        self._weight = 0.0

    def update_state(self, value, weight=1.0):
        self._total += float(value) * weight
        self._weight += weight

    def result(self):
        return self._total / self._weight if self._weight else 0.0


_FUNCTIONS = {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
}


def _accuracy_for(loss, pred_shape, target_shape):
    """Which accuracy "accuracy" means: from the loss if it tells, else from the shapes."""
    if isinstance(loss, losses_module.SparseCategoricalCrossentropy):
        return sparse_categorical_accuracy
    if isinstance(loss, losses_module.CategoricalCrossentropy):
        return categorical_accuracy
    if isinstance(loss, losses_module.BinaryCrossentropy):
        return binary_accuracy
    if pred_shape is None or pred_shape[-1] == 1:
        return binary_accuracy
    if target_shape is not None and (len(target_shape) < len(pred_shape) or target_shape[-1] == 1):
        return sparse_categorical_accuracy
    return categorical_accuracy


def get(identifier, loss=None, pred_shape=None, target_shape=None):
    """Return a Metric for a name, a function `fn(y_true, y_pred)` or a Metric object.

    Args:
        identifier: "accuracy"/"acc" (resolved with `loss` and the shapes, as Keras does),
            another name ("sparse_categorical_accuracy", "mse", ...), a function or a Metric.
        loss: the compiled loss object, used to resolve "accuracy".
        pred_shape, target_shape: shapes (with batch axis) of predictions and targets.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            return Metric(_accuracy_for(loss, pred_shape, target_shape), identifier)
        fn = _FUNCTIONS.get(identifier)
        if fn is None:
            raise ValueError(
                f"Unknown metric {identifier!r}; expected 'accuracy', one of {sorted(_FUNCTIONS)}, "
                "a function fn(y_true, y_pred) or a fastconv.metrics.Metric."
            )
        return Metric(fn, identifier)
    if callable(identifier):
        return Metric(identifier, getattr(identifier, "__name__", "metric"))
    raise TypeError(f"A metric must be a name, a function or a Metric; received {identifier!r}.")
