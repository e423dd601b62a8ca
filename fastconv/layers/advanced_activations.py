"""Activation layers with parameters: ReLU, LeakyReLU, ELU, Softmax."""
import numbers
import warnings

from .. import activations
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
