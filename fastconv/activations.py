"""Activation functions, as in `keras.activations`, each with its derivative.

The functions (`relu(x)`, `sigmoid(x)`, ...) compute the activation. `get(name_or_function)`
returns an `Activation` object with `forward(x)`, `backward(x, y, dy)` (the gradient with
respect to x, given the output y = forward(x) and the upstream gradient dy) and a `name`;
layers use it to fuse the activation into their forward and backward passes.
"""
import numbers

import numpy as np

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _check_slope(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number; received {value!r}.")
    return float(value)


# -- the functions ---------------------------------------------------------------------------
def linear(x):
    """Identity: returns x unchanged."""
    return x


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit: max(x, 0) with Keras' optional slope, cap and threshold.

    Args:
        x: input array.
        negative_slope: slope below the threshold.
        max_value: saturation value (None: no cap).
        threshold: values below it are damped.
    """
    x = np.asarray(x)
    if negative_slope == 0 and max_value is None and threshold == 0:
        return np.maximum(x, 0).astype(x.dtype, copy=False)
    y = np.where(x >= threshold, x, negative_slope * (x - threshold))
    if max_value is not None:
        y = np.where(x >= max_value, max_value, y)
    return y.astype(x.dtype, copy=False)


def relu6(x):
    """min(max(x, 0), 6)."""
    return relu(x, max_value=6.0)


def leaky_relu(x, negative_slope=0.2):
    """x for x >= 0, negative_slope * x otherwise (Keras' function default slope is 0.2)."""
    x = np.asarray(x)
    return np.where(x >= 0, x, negative_slope * x).astype(x.dtype, copy=False)


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    x = np.asarray(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)


def selu(x):
    """Scaled ELU: scale * elu(x, alpha) with the self-normalising constants."""
    return (_SELU_SCALE * elu(x, _SELU_ALPHA)).astype(np.asarray(x).dtype, copy=False)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def hard_sigmoid(x):
    """Piecewise-linear sigmoid, relu6(x + 3) / 6 (Keras 3)."""
    x = np.asarray(x)
    return (np.clip(x + 3.0, 0.0, 6.0) / 6.0).astype(x.dtype, copy=False)


def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


def softplus(x):
    """log(1 + exp(x)), computed without overflow."""
    x = np.asarray(x)
    return np.logaddexp(0.0, x).astype(x.dtype, copy=False)


def softsign(x):
    """x / (1 + |x|)."""
    x = np.asarray(x)
    return (x / (1.0 + np.abs(x))).astype(x.dtype, copy=False)


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    x = np.asarray(x)
    return (x * sigmoid(x)).astype(x.dtype, copy=False)


swish = silu


def exponential(x):
    """exp(x)."""
    return np.exp(x)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum so it never overflows."""
    x = np.asarray(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype, copy=False)


# -- derivatives: backward(x, y, dy) -> dL/dx -------------------------------------------------
def _relu_backward(x, y, dy, negative_slope=0.0, max_value=None, threshold=0.0):
    slope = np.where(x >= threshold, 1.0, negative_slope)
    if max_value is not None:
        slope = np.where(x >= max_value, 0.0, slope)
    return (dy * slope).astype(dy.dtype, copy=False)


def _elu_backward(x, y, dy, alpha=1.0):
    # d/dx alpha*(exp(x)-1) = y + alpha on the negative side.
    return np.where(x > 0, dy, dy * (y + alpha)).astype(dy.dtype, copy=False)


def _silu_backward(x, y, dy):
    s = sigmoid(x)
    return dy * (s + x * s * (1.0 - s))


def _softmax_backward(x, y, dy, axis=-1):
    return (y * (dy - (dy * y).sum(axis=axis, keepdims=True))).astype(dy.dtype, copy=False)


_BACKWARD = {
    "linear": lambda x, y, dy: dy,
    "relu": _relu_backward,
    "relu6": lambda x, y, dy: (dy * ((x >= 0) & (x < 6))).astype(dy.dtype, copy=False),
    "leaky_relu": lambda x, y, dy, negative_slope=0.2: np.where(
        x >= 0, dy, negative_slope * dy).astype(dy.dtype, copy=False),
    "elu": _elu_backward,
    "selu": lambda x, y, dy: np.where(
        x > 0, _SELU_SCALE * dy, dy * (y + _SELU_SCALE * _SELU_ALPHA)).astype(dy.dtype, copy=False),
    "sigmoid": lambda x, y, dy: dy * y * (1.0 - y),
    "hard_sigmoid": lambda x, y, dy: (dy * ((x > -3) & (x < 3)) / 6.0).astype(dy.dtype, copy=False),
    "tanh": lambda x, y, dy: dy * (1.0 - y * y),
    "softplus": lambda x, y, dy: dy * sigmoid(x),
    "softsign": lambda x, y, dy: dy / (1.0 + np.abs(x)) ** 2,
    "silu": _silu_backward,
    "exponential": lambda x, y, dy: dy * y,
    "softmax": _softmax_backward,
}


class Activation:
    """An activation function with its derivative.

    Args:
        name: the activation's name (a key of `fastconv.activations.get`).
        **params: its parameters (e.g. negative_slope for leaky_relu, axis for softmax).
    """

    def __init__(self, name, **params):
        if name not in _FUNCTIONS:
            raise ValueError(f"Unknown activation {name!r}; known: {sorted(_FUNCTIONS)}.")
        self.name = name
        self.params = params
        self._forward = _FUNCTIONS[name]
        self._backward = _BACKWARD[name]

    @property
    def is_linear(self):
        return self.name == "linear"

    def forward(self, x):
        """Return the activation of x."""
        return self._forward(x, **self.params)

    def backward(self, x, y, dy):
        """Return dL/dx from the input x, the output y = forward(x) and dL/dy."""
        return self._backward(x, y, dy, **self.params)

    __call__ = forward

    def get_config(self):
        return {"name": self.name, **self.params}

    def __eq__(self, other):
        return isinstance(other, Activation) and (self.name, self.params) == (other.name, other.params)

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"Activation({self.name!r}{params})"


_FUNCTIONS = {
    "linear": linear, "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "elu": elu,
    "selu": selu, "sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid, "tanh": tanh,
    "softplus": softplus, "softsign": softsign, "silu": silu, "exponential": exponential,
    "softmax": softmax,
}
_ALIASES = {"swish": "silu", "none": "linear"}


def get(identifier):
    """Return the `Activation` for a name, one of this module's functions, or an object.

    Args:
        identifier: None (linear), a name ("relu", "leaky_relu", "elu", "sigmoid", "tanh",
            "softmax", "linear", ...), a function of this module (`fastconv.activations.relu`),
            or an object with `forward(x)` and `backward(x, y, dy)` methods.
    """
    if identifier is None:
        return Activation("linear")
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier.lower(), identifier.lower())
        if name not in _FUNCTIONS:
            raise ValueError(
                f"Unknown activation {identifier!r}; known: {sorted(set(_FUNCTIONS) | set(_ALIASES))}."
            )
        return Activation(name)
    if isinstance(identifier, dict) and "name" in identifier:
        params = {k: v for k, v in identifier.items() if k != "name"}
        return Activation(identifier["name"], **params)
    for name, fn in _FUNCTIONS.items():
        if identifier is fn:
            return Activation(name)
    if callable(getattr(identifier, "forward", None)) and callable(getattr(identifier, "backward", None)):
        return identifier
    raise TypeError(
        "`activation` must be None, a name such as 'relu', a function of fastconv.activations "
        "or an object with forward(x) and backward(x, y, dy) (the derivative is needed for "
        f"training); received {identifier!r}."
    )


def serialize(activation):
    """Return a JSON-serialisable form: the name, or a dict when the activation has parameters."""
    activation = get(activation)
    if isinstance(activation, Activation):
        return activation.name if not activation.params else activation.get_config()
    name = getattr(activation, "name", None)
    if isinstance(name, str):
        return name
    raise ValueError(f"Cannot serialize the custom activation {activation!r}.")
