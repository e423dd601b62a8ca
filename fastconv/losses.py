"""Loss functions with Keras' names, defaults and formulas, and their gradients.

Every loss object is called as `loss(y_true, y_pred) -> float`, the mean of the per-sample
losses over the batch (Keras' default reduction, "sum_over_batch_size"), and has
`gradient(y_true, y_pred)`: d(mean loss)/d(y_pred), an array shaped like `y_pred`. The model
uses `value_and_gradient` to get both from one pass.

As in Keras, crossentropies "from probabilities" (`from_logits=False`, the default) first
rescale each prediction row to sum to one and clip it to `[EPSILON, 1 - EPSILON]`; the
gradients returned are the exact gradients of those formulas (zero where the clip is active).

>>> loss = SparseCategoricalCrossentropy()
>>> round(loss([1], [[0.2, 0.8]]), 4)
0.2231
"""
import numbers

import numpy as np

from . import _validation as V
from .backend import get_ops

EPSILON = 1e-7  # Keras' backend.epsilon(): clip bound for probabilities


# -- target checking -------------------------------------------------------------------------
def _check_pred(y_pred, name="y_pred"):
    y_pred = V.as_float_array(y_pred, name)
    if y_pred.ndim == 0:
        raise ValueError(f"`{name}` must have a batch axis; received a scalar.")
    return y_pred


def _check_finite(arr, name):
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")


def sparse_labels(y_true, pred_shape, name="y_true"):
    """Return integer class indices of shape `pred_shape[:-1]`, checked against the class count.

    Accepts integer arrays, or float arrays holding whole numbers; a trailing axis of size 1
    is dropped (Keras accepts labels of shape (batch,) and (batch, 1)).
    """
    pred_shape = tuple(pred_shape)
    labels = np.asarray(y_true)
    if labels.dtype.kind not in "iuf":
        raise TypeError(
            f"`{name}` must hold integer class indices; received dtype {labels.dtype}."
        )
    expected = pred_shape[:-1]
    if labels.shape != expected:
        if labels.shape == expected + (1,):
            labels = labels.reshape(expected)
        else:
            raise ValueError(
                f"`{name}` must hold one integer class index per sample, shape {expected} "
                f"(or {expected + (1,)}), for predictions of shape {pred_shape}; received shape "
                f"{labels.shape}. For one-hot targets use categorical_crossentropy."
            )
    if labels.dtype.kind == "f":
        _check_finite(labels, name)
        if not np.array_equal(labels, np.round(labels)):
            bad = labels[labels != np.round(labels)].flat[0]
            raise ValueError(
                f"`{name}` must contain integer class indices for a sparse loss; found {bad!r}."
            )
    # Range check before the cast to int64: uint64 2**64-1 or a float 1e30 would wrap around.
    n_classes = pred_shape[-1]
    out_of_range = (labels < 0) | (labels >= n_classes)
    if out_of_range.any():
        bad = labels[out_of_range].flat[0]
        bad = int(bad) if labels.dtype.kind in "iu" else float(bad)
        raise ValueError(
            f"`{name}` contains the class index {bad}, outside [0, {n_classes - 1}] for "
            f"predictions with {n_classes} classes (shape {pred_shape})."
        )
    return labels.astype(np.int64, copy=False)


def dense_targets(y_true, pred_shape, name="y_true", *, allow_squeezed=True, dtype=None):
    """Return float targets of shape `pred_shape`.

    With `allow_squeezed`, targets of shape `pred_shape[:-1]` are accepted when the last
    prediction axis has size 1 (e.g. labels (batch,) for a (batch, 1) sigmoid output).
    """
    pred_shape = tuple(pred_shape)
    y = V.as_float_array(y_true, name, dtype)
    if y.shape != pred_shape:
        if allow_squeezed and pred_shape[-1] == 1 and y.shape == pred_shape[:-1]:
            y = y.reshape(pred_shape)
        else:
            raise ValueError(
                f"`{name}` must have the shape of the predictions, {pred_shape}; received "
                f"shape {y.shape}."
            )
    _check_finite(y, name)
    return y


def one_hot_targets(y_true, pred_shape, name="y_true", dtype=None):
    """Targets of a categorical loss: one probability row per prediction row."""
    pred_shape = tuple(pred_shape)
    y = np.asarray(y_true)
    if y.shape == pred_shape[:-1] and pred_shape[-1] > 1 and y.dtype.kind in "iu":
        raise ValueError(
            f"`{name}` has shape {y.shape}: integer class indices, but categorical "
            f"crossentropy needs one-hot targets of shape {pred_shape}. Use "
            "sparse_categorical_crossentropy for integer labels (or one-hot encode them)."
        )
    return dense_targets(y, pred_shape, name, allow_squeezed=False, dtype=dtype)


# -- shared crossentropy pieces ----------------------------------------------------------------
def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _normalized_probabilities(y_pred):
    """Keras' preprocessing of probabilities: rows rescaled to sum to one."""
    row_sum = y_pred.sum(axis=-1, keepdims=True)
    return y_pred / row_sum, row_sum


def _grad_through_normalization(grad_p, p, row_sum):
    """Chain d/dp (p = y / sum(y)) back to d/dy: (g - <g, p>) / sum(y)."""
    return (grad_p - (grad_p * p).sum(axis=-1, keepdims=True)) / row_sum


def _clip_mask(p):
    return (p > EPSILON) & (p < 1.0 - EPSILON)


class Loss:
    """Base class: subclasses implement `_per_sample_and_grad` and `check_targets`.

    Args:
        name: name of the loss (used in logs and configs).
    """

    def __init__(self, name=None):
        self.name = name or _SNAKE_NAMES.get(type(self).__name__, type(self).__name__.lower())

    def check_targets(self, y_true, pred_shape, name="y_true", dtype=None):
        """Validate targets against predictions of shape `pred_shape`; return them converted."""
        raise NotImplementedError

    def _per_sample_and_grad(self, y_true, y_pred, need_grad):
        """Return (per-sample losses, gradient of their mean or None) for checked targets."""
        raise NotImplementedError

    def _prepare(self, y_true, y_pred):
        y_pred = _check_pred(y_pred)
        return self.check_targets(y_true, y_pred.shape, dtype=y_pred.dtype), y_pred

    def call(self, y_true, y_pred):
        """Per-sample losses (the prediction's last axis reduced), like Keras' loss functions."""
        y_true, y_pred = self._prepare(y_true, y_pred)
        return self._per_sample_and_grad(y_true, y_pred, False)[0]

    def __call__(self, y_true, y_pred):
        return float(np.mean(self.call(y_true, y_pred)))

    def gradient(self, y_true, y_pred):
        """Gradient of the mean loss with respect to `y_pred` (same shape and dtype)."""
        return self.value_and_gradient(y_true, y_pred)[1]

    def value_and_gradient(self, y_true, y_pred):
        """Return (mean loss as a float, its gradient with respect to `y_pred`)."""
        y_true, y_pred = self._prepare(y_true, y_pred)
        per_sample, grad = self._per_sample_and_grad(y_true, y_pred, True)
        return float(per_sample.mean()), grad.astype(y_pred.dtype, copy=False)

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False; received {value!r}.")
    return bool(value)


def _check_smoothing(value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"`label_smoothing` must be a number in [0, 1]; received {value!r}.")
    return float(value)


class SparseCategoricalCrossentropy(Loss):
    """Crossentropy between integer labels and predicted class probabilities (or logits).

    Args:
        from_logits: whether `y_pred` holds logits; by default it holds probabilities
            (e.g. a softmax output).
        name: name of the loss.

    `y_true` has shape (batch,) or (batch, 1) (more generally `y_pred.shape[:-1]`) and holds
    class indices in [0, classes).
    """

    def __init__(self, from_logits=False, name=None):
        super().__init__(name)
        self.from_logits = _check_bool(from_logits, "from_logits")

    def check_targets(self, y_true, pred_shape, name="y_true", dtype=None):
        return sparse_labels(y_true, pred_shape, name)

    def _one_call(self, y_true, y_pred):
        """(mean loss, gradient) by one kernel call (ops.sparse_softmax_crossentropy) for
        logits (batch, classes) and integer labels (batch,) or (batch, 1), a training step's
        call; None for anything else, and for labels out of range (which sparse_labels then
        names on the general path)."""
        if (self.from_logits and type(y_pred) is np.ndarray and type(y_true) is np.ndarray
                and y_pred.ndim == 2 and y_pred.dtype.kind == "f" and y_pred.dtype.itemsize >= 4
                and y_true.dtype.kind in "iu" and y_pred.size
                and y_true.shape in (y_pred.shape[:1], (y_pred.shape[0], 1))):
            labels = y_true.reshape(-1).astype(np.int64, copy=False)
            return get_ops().sparse_softmax_crossentropy(y_pred, labels)
        return None

    def __call__(self, y_true, y_pred):
        result = self._one_call(y_true, y_pred)  # (the value value_and_gradient gives)
        return super().__call__(y_true, y_pred) if result is None else result[0]

    def value_and_gradient(self, y_true, y_pred):
        result = self._one_call(y_true, y_pred)
        return super().value_and_gradient(y_true, y_pred) if result is None else result

    def _per_sample_and_grad(self, labels, y_pred, need_grad):
        index = labels[..., None]
        count = labels.size
        if self.from_logits:
            log_p = _log_softmax(y_pred)
            # Each row's entry at its label, by flat index into the C-ordered arrays: the
            # same elements as take/put_along_axis, at a fraction of their
            # per-call cost (a training step computes this loss once, on a small batch).
            at_label = np.arange(count) * log_p.shape[-1] + labels.reshape(-1)
            per_sample = -log_p.reshape(-1)[at_label].reshape(labels.shape)
            if not need_grad:
                return per_sample, None
            grad = np.exp(log_p, out=np.empty(log_p.shape, log_p.dtype))  # C-contiguous
            grad.reshape(-1)[at_label] -= 1.0  # a view, as grad is C-contiguous
            grad /= count
            return per_sample, grad
        p, row_sum = _normalized_probabilities(y_pred)
        p_true = np.take_along_axis(p, index, axis=-1)[..., 0]
        clipped = np.clip(p_true, EPSILON, 1.0 - EPSILON)
        per_sample = -np.log(clipped)
        if not need_grad:
            return per_sample, None
        grad_p = np.zeros_like(p)
        d_true = np.where(_clip_mask(p_true), -1.0 / (clipped * count), 0.0)
        np.put_along_axis(grad_p, index, d_true[..., None].astype(p.dtype), axis=-1)
        return per_sample, _grad_through_normalization(grad_p, p, row_sum)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class CategoricalCrossentropy(Loss):
    """Crossentropy between one-hot (or probability) targets and predicted probabilities.

    Args:
        from_logits: whether `y_pred` holds logits instead of probabilities.
        label_smoothing: in [0, 1]; targets become `y * (1 - s) + s / classes`.
        name: name of the loss.
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None):
        super().__init__(name)
        self.from_logits = _check_bool(from_logits, "from_logits")
        self.label_smoothing = _check_smoothing(label_smoothing)

    def check_targets(self, y_true, pred_shape, name="y_true", dtype=None):
        return one_hot_targets(y_true, pred_shape, name, dtype)

    def _per_sample_and_grad(self, y_true, y_pred, need_grad):
        if self.label_smoothing:
            s = self.label_smoothing
            y_true = y_true * (1.0 - s) + s / y_pred.shape[-1]
        count = y_true.size // y_true.shape[-1]
        if self.from_logits:
            log_p = _log_softmax(y_pred)
            per_sample = -(y_true * log_p).sum(axis=-1)
            if not need_grad:
                return per_sample, None
            grad = np.exp(log_p) * y_true.sum(axis=-1, keepdims=True) - y_true
            return per_sample, grad / count
        p, row_sum = _normalized_probabilities(y_pred)
        clipped = np.clip(p, EPSILON, 1.0 - EPSILON)
        per_sample = -(y_true * np.log(clipped)).sum(axis=-1)
        if not need_grad:
            return per_sample, None
        grad_p = np.where(_clip_mask(p), -y_true / (clipped * count), 0.0)
        return per_sample, _grad_through_normalization(grad_p, p, row_sum)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class BinaryCrossentropy(Loss):
    """Crossentropy between 0/1 targets and predicted probabilities (or logits) per output.

    Args:
        from_logits: whether `y_pred` holds logits instead of probabilities.
        label_smoothing: in [0, 1]; targets become `y * (1 - s) + 0.5 * s`.
        name: name of the loss.

    The per-sample loss is the mean over the last axis, as in Keras.
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None):
        super().__init__(name)
        self.from_logits = _check_bool(from_logits, "from_logits")
        self.label_smoothing = _check_smoothing(label_smoothing)

    def check_targets(self, y_true, pred_shape, name="y_true", dtype=None):
        return dense_targets(y_true, pred_shape, name, dtype=dtype)

    def _per_sample_and_grad(self, y_true, y_pred, need_grad):
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        count = y_true.size
        if self.from_logits:
            # Stable form of -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))).
            z = y_pred
            elementwise = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
            per_sample = elementwise.mean(axis=-1)
            if not need_grad:
                return per_sample, None
            sigmoid = np.exp(-np.logaddexp(0, -z))
            return per_sample, (sigmoid - y_true) / count
        clipped = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
        elementwise = -(y_true * np.log(clipped) + (1.0 - y_true) * np.log(1.0 - clipped))
        per_sample = elementwise.mean(axis=-1)
        if not need_grad:
            return per_sample, None
        grad = -(y_true / clipped - (1.0 - y_true) / (1.0 - clipped)) / count
        return per_sample, np.where(_clip_mask(y_pred), grad, 0.0)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class MeanSquaredError(Loss):
    """Mean of the squared differences: mean((y_true - y_pred) ** 2).

    Args:
        name: name of the loss.
    """

    def check_targets(self, y_true, pred_shape, name="y_true", dtype=None):
        return dense_targets(y_true, pred_shape, name, dtype=dtype)

    def _per_sample_and_grad(self, y_true, y_pred, need_grad):
        diff = y_pred - y_true
        per_sample = np.square(diff).mean(axis=-1)
        return per_sample, (2.0 / diff.size) * diff if need_grad else None


class MeanAbsoluteError(Loss):
    """Mean of the absolute differences: mean(|y_true - y_pred|).

    Args:
        name: name of the loss.
    """

    def check_targets(self, y_true, pred_shape, name="y_true", dtype=None):
        return dense_targets(y_true, pred_shape, name, dtype=dtype)

    def _per_sample_and_grad(self, y_true, y_pred, need_grad):
        diff = y_pred - y_true
        per_sample = np.abs(diff).mean(axis=-1)
        return per_sample, np.sign(diff) / diff.size if need_grad else None


_SNAKE_NAMES = {
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "BinaryCrossentropy": "binary_crossentropy",
    "MeanSquaredError": "mean_squared_error",
    "MeanAbsoluteError": "mean_absolute_error",
}

_CLASSES = {
    cls.__name__: cls
    for cls in (SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy,
                MeanSquaredError, MeanAbsoluteError)
}

_ALIASES = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}


# -- Keras' functional forms: per-sample losses --------------------------------------------------
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Per-sample sparse categorical crossentropy (see `SparseCategoricalCrossentropy`)."""
    return SparseCategoricalCrossentropy(from_logits=from_logits).call(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample categorical crossentropy (see `CategoricalCrossentropy`)."""
    return CategoricalCrossentropy(from_logits, label_smoothing).call(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample binary crossentropy, averaged over the last axis (see `BinaryCrossentropy`)."""
    return BinaryCrossentropy(from_logits, label_smoothing).call(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    """Per-sample mean squared error over the last axis."""
    return MeanSquaredError().call(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean absolute error over the last axis."""
    return MeanAbsoluteError().call(y_true, y_pred)


mse = mean_squared_error
mae = mean_absolute_error


def serialize(loss):
    """Return {"class_name", "config"} for a built-in loss object."""
    if type(loss).__name__ not in _CLASSES or type(loss) is not _CLASSES[type(loss).__name__]:
        raise ValueError(f"Cannot serialize the loss {loss!r}: only fastconv's built-in losses can be saved.")
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    """Rebuild a loss from `serialize`'s output."""
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"Unknown loss configuration {config!r}; expected one of {sorted(_CLASSES)}.")
    return _CLASSES[config["class_name"]].from_config(dict(config.get("config") or {}))


def get(identifier):
    """Return a loss object for a name ("mse", "sparse_categorical_crossentropy", ...),
    a class name, a config dict or a loss object (returned as is)."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(
                f"Unknown loss {identifier!r}; expected one of {sorted(_ALIASES)} or a loss object."
            )
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(
        f"`loss` must be a loss name or a fastconv.losses.Loss object; received {identifier!r}."
    )
