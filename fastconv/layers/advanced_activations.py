"""Activation layers with parameters: ReLU, LeakyReLU, PReLU, ELU, Softmax."""
import numbers
import warnings

import numpy as np

from .. import activations
from . import _common as C
from .base import Layer


def _check_number(value, name, layer, *, non_negative=True, allow_none=False):
    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or (non_negative and not value >= 0)):
        kind = "a non-negative number" if non_negative else "a number"
        raise ValueError(f"{layer}: `{name}` must be {kind}; received {name}={value!r}.")
    return float(value)


class _ActivationLayer(Layer):
    """A layer applying `self._activation` (an `activations.Activation` with parameters)."""

    _activation = None

    def call(self, x, training):
        y = self._activation.forward(x)
        if training:
            self._cache = (x, y)
        return y

    def call_backward(self, dy):
        x, y = self._cache
        return self._activation.backward(x, y, dy)


class ReLU(_ActivationLayer):
    """Rectified linear unit with Keras' options.

    f(x) = max_value for x >= max_value, x for threshold <= x < max_value,
    negative_slope * (x - threshold) otherwise.

    Args:
        max_value: saturation value (None: no cap), >= 0.
        negative_slope: slope below the threshold, >= 0.
        threshold: threshold below which values are damped, >= 0.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _check_number(max_value, "max_value", "ReLU", allow_none=True)
        self.negative_slope = _check_number(negative_slope, "negative_slope", "ReLU")
        self.threshold = _check_number(threshold, "threshold", "ReLU")
        self._activation = activations.Activation(
            "relu", negative_slope=self.negative_slope, max_value=self.max_value,
            threshold=self.threshold)

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                       "threshold": self.threshold})
        return config


class LeakyReLU(_ActivationLayer):
    """Leaky ReLU: x for x >= 0, negative_slope * x otherwise.

    Args:
        negative_slope: slope for negative inputs (Keras 3 name; `alpha=` is accepted too).
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            alpha = kwargs.pop("alpha")
            if negative_slope != 0.3:
                raise ValueError("LeakyReLU: give either `negative_slope` or `alpha`, not both.")
            warnings.warn("LeakyReLU: argument `alpha` is deprecated; use `negative_slope`.",
                          DeprecationWarning, stacklevel=2)
            negative_slope = alpha
        super().__init__(**kwargs)
        self.negative_slope = _check_number(negative_slope, "negative_slope", "LeakyReLU")
        self._activation = activations.Activation("leaky_relu", negative_slope=self.negative_slope)

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


class ELU(_ActivationLayer):
    """Exponential linear unit: x for x > 0, alpha * (exp(x) - 1) otherwise.

    Args:
        alpha: scale of the negative part.
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _check_number(alpha, "alpha", "ELU", non_negative=False)
        self._activation = activations.Activation("elu", alpha=self.alpha)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


class Softmax(_ActivationLayer):
    """Softmax along `axis` (numerically stable).

    Args:
        axis: the axis to normalise over.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"Softmax: `axis` must be an integer; received axis={axis!r}.")
        self.axis = int(axis)
        self._activation = activations.Activation("softmax", axis=self.axis)

    def compute_output_shape(self, input_shape):
        rank = len(input_shape) + 1
        if not -rank <= self.axis < rank or self.axis in (0, -rank):
            raise ValueError(
                f"Layer {self.name!r}: softmax `axis`={self.axis} is not a feature axis of input "
                f"of shape (batch,) + {tuple(input_shape)}."
            )
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


def _check_shared_axes(shared_axes):
    """A sorted list of distinct axes >= 1 from an int or a sequence of ints."""
    axes = [shared_axes] if isinstance(shared_axes, numbers.Integral) else shared_axes
    try:
        axes = list(axes)
    except TypeError:
        axes = []
    valid = bool(axes) and all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                               and a >= 1 for a in axes)
    if not valid or len(set(axes)) != len(axes):
        raise ValueError(
            "PReLU: `shared_axes` must be None, an axis >= 1 or a list of distinct axes >= 1 "
            f"(axis 0 is the batch); received shared_axes={shared_axes!r}."
        )
    return sorted(int(a) for a in axes)


class PReLU(Layer):
    """Parametric ReLU: x for x >= 0, alpha * x otherwise, with a learned slope `alpha`.

    `alpha` has the input's shape (without the batch axis), except along `shared_axes`, where
    one slope is shared (size 1): for images, `shared_axes=[1, 2]` learns one slope per channel.

    Args:
        alpha_initializer: initializer of the slopes (Keras' default "zeros": starts as ReLU).
        alpha_regularizer: regularizer of the slopes.
        shared_axes: axes (of the batched input, so >= 1) sharing one slope, e.g. [1, 2].

    >>> import numpy as np
    >>> layer = PReLU(alpha_initializer="ones")
    >>> layer(np.array([[-2.0, 3.0]])).tolist()
    [[-2.0, 3.0]]
    """

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        C.reject_unsupported("PReLU", alpha_constraint=alpha_constraint)
        self.alpha_initializer = C.get_initializer(alpha_initializer, "zeros", "alpha_initializer")
        self.alpha_regularizer = C.get_regularizer(alpha_regularizer, "alpha_regularizer")
        self._args = {"alpha_initializer": alpha_initializer, "alpha_regularizer": alpha_regularizer}
        self.shared_axes = None if shared_axes is None else _check_shared_axes(shared_axes)

    def compute_output_shape(self, input_shape):
        for axis in self.shared_axes or ():
            if axis > len(input_shape):
                raise ValueError(
                    f"Layer {self.name!r}: shared axis {axis} does not exist in input of shape "
                    f"(batch,) + {tuple(input_shape)}."
                )
        return tuple(input_shape)

    def build_weights(self, input_shape):
        shape = list(input_shape)
        for axis in self.shared_axes or ():
            shape[axis - 1] = 1
        self.alpha = self.add_weight("alpha", tuple(shape), self.alpha_initializer,
                                     regularizer=self.alpha_regularizer)

    def call(self, x, training):
        negative = np.minimum(x, 0)
        y = np.maximum(x, 0) + self.alpha * negative
        if training:
            self._cache = (x, negative)
        return y.astype(self.dtype, copy=False)

    def call_backward(self, dy):
        x, negative = self._cache
        # Sum the slope gradient over the batch axis and the shared axes.
        axes = (0,) + tuple(self.shared_axes or ())
        self._grads["alpha"] = (dy * negative).sum(axis=axes).reshape(self.alpha.shape)
        if not self.compute_input_gradient:
            return None
        return np.where(x > 0, dy, dy * self.alpha).astype(self.dtype, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update({
            "alpha_initializer": C.serialize_initializer(self._args["alpha_initializer"]),
            "alpha_regularizer": C.serialize_regularizer(self._args["alpha_regularizer"]),
            "shared_axes": self.shared_axes,
        })
        return config
