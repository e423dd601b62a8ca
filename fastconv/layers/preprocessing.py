"""Preprocessing layers that are part of the model: Rescaling and Normalization (Keras 3).

Unlike the augmentation layers they act the same in training and at inference, so a saved
model carries its own input scaling:

>>> import numpy as np
>>> from fastconv.layers import Normalization
>>> norm = Normalization()                     # one mean/variance per channel (axis=-1)
>>> norm.adapt(np.array([[1.0, 10.0], [3.0, 30.0]]))
>>> norm(np.array([[2.0, 20.0]])).tolist()
[[0.0, 0.0]]
"""
import numbers

import numpy as np

from .. import _validation as V
from .base import Layer

_EPSILON = 1e-7  # Keras' backend.epsilon(): the smallest standard deviation divided by


def _parameter(value, name, layer):
    """A number or an array of numbers (broadcast against the input), as float64."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or not np.all(np.isfinite(array)) or isinstance(value, bool):
        raise ValueError(f"{layer}: `{name}` must be a finite number or an array of finite numbers; "
                         f"received {name}={value!r}.")
    return array


def _jsonable(value):
    return value.item() if value.ndim == 0 else value.tolist()


class Rescaling(Layer):
    """`y = x * scale + offset`, e.g. `Rescaling(1 / 255)` maps [0, 255] to [0, 1] and
    `Rescaling(1 / 127.5, offset=-1)` to [-1, 1].

    Args:
        scale: a number, or an array broadcast against each sample (e.g. one per channel).
        offset: a number or an array, default 0.
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _parameter(scale, "scale", "Rescaling")
        self.offset = _parameter(offset, "offset", "Rescaling")

    def compute_output_shape(self, input_shape):
        for name, value in (("scale", self.scale), ("offset", self.offset)):
            try:
                np.broadcast_shapes(value.shape, tuple(input_shape))
            except ValueError:
                raise ValueError(f"Layer {self.name!r}: `{name}` of shape {value.shape} does not "
                                 f"broadcast against samples of shape {tuple(input_shape)}.") from None
        return tuple(input_shape)

    def call(self, x, training):
        y = x * self.scale.astype(self.dtype) + self.offset.astype(self.dtype)
        return y.astype(self.dtype, copy=False)

    def call_backward(self, dy):
        return (dy * self.scale.astype(self.dtype)).astype(self.dtype, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": _jsonable(self.scale), "offset": _jsonable(self.offset)})
        return config


class Normalization(Layer):
    """Standardizes inputs: `(x - mean) / sqrt(variance)`, with statistics given or learnt
    from data by `adapt`.

    Args:
        axis: the axis (or axes) of the batched input that keep separate statistics: -1
            (default) gives one mean/variance per channel of images (or per feature); None
            gives a single scalar mean and variance. The batch axis 0 cannot be kept.
        mean: None (use `adapt`) or the mean, broadcastable to the kept axes' shape.
        variance: None or the variance (given together with `mean`).
        invert: if True, apply the inverse transform `x * sqrt(variance) + mean`.

    With `mean=None` the statistics are non-trainable weights ("mean", "variance", initially 0
    and 1, and "count", the number of samples adapted, as Keras' weights), set by `adapt(data)`
    and saved with the model. The standard deviation is floored at 1e-7, as in Keras.
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axes = ()
        elif isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
            axes = (int(axis),)
        else:
            try:
                axes = tuple(axis)
            except TypeError:
                axes = None
            if axes is None or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                                       for a in axes):
                raise ValueError(f"Normalization: `axis` must be None, an int or a tuple of ints; "
                                 f"received axis={axis!r}.")
            axes = tuple(int(a) for a in axes)
        self.axis = axes
        if (mean is None) != (variance is None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be set. "
                             f"Received: mean={mean!r} and variance={variance!r}")
        self.input_mean = None if mean is None else _parameter(mean, "mean", "Normalization")
        self.input_variance = (None if variance is None
                               else _parameter(variance, "variance", "Normalization"))
        if self.input_variance is not None and np.any(self.input_variance < 0):
            raise ValueError(f"Normalization: `variance` must be non-negative; received {variance!r}.")
        self.invert = bool(invert)

    # -- shapes --------------------------------------------------------------------------------
    def _kept_axes(self, input_shape):
        """The kept axes as indices of the batched input (1 .. rank-1)."""
        rank = len(input_shape) + 1
        kept = []
        for a in self.axis:
            b = a + rank if a < 0 else a
            if not 1 <= b < rank:
                raise ValueError(
                    f"Layer {self.name!r}: `axis` {self.axis} is out of range for input of shape "
                    f"(batch,) + {tuple(input_shape)} (the batch axis 0 cannot be kept)."
                )
            kept.append(b)
        if len(set(kept)) != len(kept):
            raise ValueError(f"Layer {self.name!r}: `axis` {self.axis} repeats an axis.")
        return tuple(sorted(kept))

    def _statistics_shape(self, input_shape):
        return tuple(input_shape[a - 1] for a in self._kept_axes(input_shape))

    def _broadcast_shape(self):
        """Shape of the statistics broadcast against a batched input: 1 on reduced axes."""
        kept = self._kept_axes(self.input_shape)
        return (1,) + tuple(s if i + 1 in kept else 1 for i, s in enumerate(self.input_shape))

    def compute_output_shape(self, input_shape):
        shape = self._statistics_shape(input_shape)
        for name, value in (("mean", self.input_mean), ("variance", self.input_variance)):
            if value is not None:
                try:
                    np.broadcast_to(value, shape)
                except ValueError:
                    raise ValueError(
                        f"Layer {self.name!r}: `{name}` of shape {value.shape} does not broadcast "
                        f"to the statistics' shape {shape} (axis={self.axis})."
                    ) from None
        return tuple(input_shape)

    def build_weights(self, input_shape):
        if self.input_mean is None:
            shape = self._statistics_shape(input_shape)
            self.mean = self.add_weight("mean", shape, "zeros", trainable=False)
            self.variance = self.add_weight("variance", shape, "ones", trainable=False)
            # Keras keeps a third weight (the number of samples adapted), so that
            # set_weights(keras_layer.get_weights()) works.
            self.count = self.add_weight("count", (), "zeros", trainable=False)

    # -- statistics ------------------------------------------------------------------------------
    def adapt(self, data):
        """Compute the mean and (biased) variance of `data` over every axis but the kept ones.

        Args:
            data: array of samples with a batch axis, e.g. the training images.
        """
        if self.input_mean is not None:
            raise ValueError(f"Layer {self.name!r} was given `mean` and `variance`; it cannot be adapted.")
        data = V.as_float_array(data, "data")
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError("`data` must be a non-empty array with a batch axis; received shape "
                             f"{data.shape}.")
        if not self.built:
            self.build(data.shape[1:])
        elif tuple(data.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"Layer {self.name!r} was built for samples of shape {self.input_shape}; "
                             f"`data` has samples of shape {data.shape[1:]}.")
        kept = self._kept_axes(self.input_shape)
        reduced = tuple(a for a in range(data.ndim) if a not in kept)
        mean = data.mean(axis=reduced, dtype=np.float64)
        deviation = data - mean.reshape(self._broadcast_shape())
        variance = np.square(deviation, dtype=np.float64).mean(axis=reduced)
        np.copyto(self.mean, mean.reshape(self.mean.shape))
        np.copyto(self.variance, variance.reshape(self.variance.shape))
        self.count[...] = data.shape[0]

    def _mean_and_std(self):
        shape = self._broadcast_shape()
        if self.input_mean is not None:
            statistics = self._statistics_shape(self.input_shape)
            mean = np.broadcast_to(self.input_mean, statistics)
            variance = np.broadcast_to(self.input_variance, statistics)
        else:
            mean, variance = self.mean, self.variance
        std = np.maximum(np.sqrt(variance.astype(np.float64)), _EPSILON)
        return (np.reshape(mean, shape).astype(self.dtype), std.reshape(shape).astype(self.dtype))

    def call(self, x, training):
        mean, std = self._mean_and_std()
        if self.invert:
            return (x * std + mean).astype(self.dtype, copy=False)
        return ((x - mean) / std).astype(self.dtype, copy=False)

    def call_backward(self, dy):
        _, std = self._mean_and_std()
        return (dy * std if self.invert else dy / std).astype(self.dtype, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": None if self.axis == () else (self.axis[0] if len(self.axis) == 1 else list(self.axis)),
            "mean": None if self.input_mean is None else _jsonable(self.input_mean),
            "variance": None if self.input_variance is None else _jsonable(self.input_variance),
            "invert": self.invert,
        })
        return config
