"""Activation functions, as in `keras.activations`, each with its derivative.

The functions (`relu(x)`, `sigmoid(x)`, ...) compute the activation. `get(name_or_function)`
returns an `Activation` object with `forward(x)`, `backward(x, y, dy)` (the gradient with
respect to x, given the output y = forward(x) and the upstream gradient dy) and a `name`;
layers use it to fuse the activation into their forward and backward passes.

Names (Keras'): linear, relu, relu6, leaky_relu, elu, selu, gelu, sigmoid, hard_sigmoid, tanh,
softplus, softsign, silu (= swish), hard_silu (= hard_swish), mish, exponential, log_sigmoid,
softmax, log_softmax. `erf` and `erfc` are provided for GELU (and are not activations).
"""
import inspect
import math
import numbers

import numpy as np

from .backend import get_ops

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _check_slope(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number; received {value!r}.")
    return float(value)


# -- erf / erfc, vectorised (GELU needs them; scipy is not a dependency) -----------------------
# Chebyshev interpolants fitted once, at import, to the math module's erf/erfc at Chebyshev
# nodes (a few dozen scalar calls), then evaluated on whole arrays, in cache-sized chunks, with
# Clenshaw's recurrence. Relative error below 1e-13 (tests compare with math.erf/math.erfc).
def _chebyshev_fit(function, lower, upper, degree):
    nodes = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))  # in (-1, 1)
    values = [function(lower + (node + 1.0) * 0.5 * (upper - lower)) for node in nodes]
    return np.polynomial.chebyshev.chebfit(nodes, values, degree), lower, upper


def _chebyshev_eval(fit, t):
    """Clenshaw's recurrence for sum c_k T_k(s), s = t mapped from [lower, upper] to [-1, 1]."""
    coefficients, lower, upper = fit
    s = (2.0 / (upper - lower)) * t - (lower + upper) / (upper - lower)
    two_s = 2.0 * s
    b1, b2, b0 = np.zeros_like(s), np.zeros_like(s), np.empty_like(s)
    for c in coefficients[:0:-1]:
        np.multiply(two_s, b1, out=b0)  # b0 = c + 2 s b1 - b2
        b0 -= b2
        b0 += c
        b2, b1, b0 = b1, b0, b2
    np.multiply(s, b1, out=b0)
    b0 -= b2
    b0 += coefficients[0]
    return b0


def _scaled_erfc_tail(u):
    """z * exp(z^2) * erfc(z) for z = 1/u >= 3 (asymptotic series where erfc underflows)."""
    if u == 0:
        return 1.0 / math.sqrt(math.pi)
    z = 1.0 / u
    if z < 25.0:
        return z * math.exp(z * z) * math.erfc(z)
    total, term = 1.0, 1.0
    for n in range(1, 12):
        term *= -(2 * n - 1) * u * u / 2.0
        total += term
    return total / math.sqrt(math.pi)


# erf(z)/z in t = z^2 for |z| < 1; exp(z^2) erfc(z) for 1 <= z < 3; z exp(z^2) erfc(z) in
# u = 1/z for z >= 3 (smooth, bounded functions, so low-degree interpolants suffice).
_ERF_SMALL = _chebyshev_fit(lambda t: math.erf(math.sqrt(t)) / math.sqrt(t) if t > 0
                            else 2.0 / math.sqrt(math.pi), 0.0, 1.0, 10)
_ERFC_MID = _chebyshev_fit(lambda z: math.exp(z * z) * math.erfc(z), 1.0, 3.0, 16)
_ERFC_TAIL = _chebyshev_fit(_scaled_erfc_tail, 0.0, 1.0 / 3.0, 14)
_CHUNK = 1 << 14  # elements per chunk: the recurrence's few arrays stay in cache


def _erf_and_erfc_of_magnitude(a):
    """(erf(a), erfc(a)) for a float64 array a >= 0, each computed where it is accurate."""
    erf_a, erfc_a = np.empty_like(a), np.empty_like(a)
    small = a < 1.0
    s = a[small]
    erf_a[small] = s * _chebyshev_eval(_ERF_SMALL, s * s)
    erfc_a[small] = 1.0 - erf_a[small]
    large = ~small
    if large.any():
        b = a[large]
        mid = b < 3.0
        tail = np.empty_like(b)
        tail[mid] = np.exp(-b[mid] ** 2) * _chebyshev_eval(_ERFC_MID, b[mid])
        far = b[~mid]
        with np.errstate(under="ignore"):
            tail[~mid] = np.exp(-far * far) / far * _chebyshev_eval(_ERFC_TAIL, 1.0 / far)
        erfc_a[large] = tail
        erf_a[large] = 1.0 - tail
    return erf_a, erfc_a


def _erf_family(x, complementary):
    x = np.asarray(x)
    z = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.empty_like(z)
    for start in range(0, z.size, _CHUNK):
        zc = z[start:start + _CHUNK]
        erf_a, erfc_a = _erf_and_erfc_of_magnitude(np.abs(zc))
        if complementary:  # erfc(-a) = 2 - erfc(a)
            out[start:start + _CHUNK] = np.where(zc >= 0, erfc_a, 2.0 - erfc_a)
        else:  # erf is odd
            out[start:start + _CHUNK] = np.copysign(erf_a, zc)
    return out.reshape(x.shape).astype(x.dtype if x.dtype.kind == "f" else np.float64, copy=False)


def erf(x):
    """The error function, elementwise (relative error below 1e-13)."""
    return _erf_family(x, complementary=False)


def erfc(x):
    """1 - erf(x), accurate in the tail too (erfc(10) = 2.09e-45)."""
    return _erf_family(x, complementary=True)


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
        return get_ops().relu_forward(x)  # max(x, 0), one compiled pass on the compiled backend
    y = np.where(x >= threshold, x, negative_slope * (x - threshold))
    if max_value is not None:
        y = np.where(x >= max_value, max_value, y)
    return y.astype(x.dtype, copy=False)


def relu6(x):
    """min(max(x, 0), 6)."""
    return relu(x, max_value=6.0)


def leaky_relu(x, negative_slope=0.2, alpha=None):
    """x for x >= 0, negative_slope * x otherwise (Keras' function default slope is 0.2).

    Args:
        x: input array.
        negative_slope: slope for negative inputs.
        alpha: the same slope under its Keras 2 name (takes precedence when given).
    """
    if alpha is not None:
        negative_slope = alpha
    return get_ops().leaky_relu_forward(x, negative_slope)


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


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def gelu(x, approximate=False):
    """Gaussian error linear unit, x * P(X <= x) for X ~ N(0, 1).

    Args:
        x: input array.
        approximate: False (Keras' default): the exact `0.5 x erfc(-x / sqrt(2))`;
            True: the tanh approximation `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.

    >>> round(float(gelu(np.array(1.0))), 6)  # 1 * Phi(1)
    0.841345
    """
    x = np.asarray(x)
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x ** 3)
        return (0.5 * x * (1.0 + np.tanh(inner))).astype(x.dtype, copy=False)
    return (0.5 * x * erfc(-x / math.sqrt(2.0))).astype(x.dtype, copy=False)


def mish(x):
    """x * tanh(softplus(x))."""
    x = np.asarray(x)
    return (x * np.tanh(softplus(x))).astype(x.dtype, copy=False)


def hard_silu(x):
    """x * hard_sigmoid(x) = x * relu6(x + 3) / 6 (also called hard_swish)."""
    x = np.asarray(x)
    return (x * hard_sigmoid(x)).astype(x.dtype, copy=False)


hard_swish = hard_silu


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), without overflow."""
    x = np.asarray(x)
    return (-np.logaddexp(0.0, -x)).astype(x.dtype, copy=False)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum so it never overflows."""
    x = np.asarray(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype, copy=False)


def log_softmax(x, axis=-1):
    """log(softmax(x)) along `axis`: x - max - log(sum(exp(x - max)))."""
    x = np.asarray(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))).astype(x.dtype, copy=False)


# -- derivatives: backward(x, y, dy) -> dL/dx -------------------------------------------------
def _relu_backward(x, y, dy, negative_slope=0.0, max_value=None, threshold=0.0):
    if (negative_slope == 0 and max_value is None and isinstance(dy, np.ndarray)
            and np.shape(x) == dy.shape and dy.dtype.kind == "f"):
        # Plain ReLU: one pass, dy * (x >= threshold) in dy's dtype (a bool factor is exactly
        # 1 or 0, so this equals the general path bit for bit, NaN and -0.0 included).
        return get_ops().relu_backward(dy, x, threshold)
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


def _leaky_relu_backward(x, y, dy, negative_slope=0.2, alpha=None):
    if alpha is not None:
        negative_slope = alpha
    return get_ops().leaky_relu_backward(dy, x, negative_slope)


def _gelu_backward(x, y, dy, approximate=False):
    if approximate:
        t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x ** 3))
        slope = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (
            1.0 + 3.0 * _GELU_CUBIC * x * x)
    else:  # Phi(x) + x phi(x)
        slope = 0.5 * erfc(-x / math.sqrt(2.0)) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return (dy * slope).astype(dy.dtype, copy=False)


def _mish_backward(x, y, dy):
    t = np.tanh(softplus(x))
    return (dy * (t + x * (1.0 - t * t) * sigmoid(x))).astype(dy.dtype, copy=False)


def _hard_silu_backward(x, y, dy):
    # d/dx x relu6(x+3)/6: 0 below -3, 1 above 3, (2x + 3)/6 between.
    slope = np.where(x <= -3, 0.0, np.where(x >= 3, 1.0, (2.0 * x + 3.0) / 6.0))
    return (dy * slope).astype(dy.dtype, copy=False)


def _tanh_backward(x, y, dy):
    return get_ops().tanh_backward(dy, y)  # dy * (1 - y^2)


def _sigmoid_backward(x, y, dy):
    return get_ops().sigmoid_backward(dy, y)  # dy * y * (1 - y)


def _log_softmax_backward(x, y, dy, axis=-1):
    return (dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)).astype(dy.dtype, copy=False)


def _softmax_backward(x, y, dy, axis=-1):
    return (y * (dy - (dy * y).sum(axis=axis, keepdims=True))).astype(dy.dtype, copy=False)


_BACKWARD = {
    "linear": lambda x, y, dy: dy,
    "relu": _relu_backward,
    "relu6": lambda x, y, dy: (dy * ((x >= 0) & (x < 6))).astype(dy.dtype, copy=False),
    "leaky_relu": _leaky_relu_backward,
    "elu": _elu_backward,
    "selu": lambda x, y, dy: np.where(
        x > 0, _SELU_SCALE * dy, dy * (y + _SELU_SCALE * _SELU_ALPHA)).astype(dy.dtype, copy=False),
    "sigmoid": _sigmoid_backward,
    "hard_sigmoid": lambda x, y, dy: (dy * ((x > -3) & (x < 3)) / 6.0).astype(dy.dtype, copy=False),
    "tanh": _tanh_backward,
    "softplus": lambda x, y, dy: dy * sigmoid(x),
    "softsign": lambda x, y, dy: dy / (1.0 + np.abs(x)) ** 2,
    "silu": _silu_backward,
    "exponential": lambda x, y, dy: dy * y,
    "softmax": _softmax_backward,
    "gelu": _gelu_backward,
    "mish": _mish_backward,
    "hard_silu": _hard_silu_backward,
    "log_sigmoid": lambda x, y, dy: (dy * sigmoid(-x)).astype(dy.dtype, copy=False),
    "log_softmax": _log_softmax_backward,
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
        try:  # fail here, not in the middle of training, on a misspelt parameter
            inspect.signature(_FUNCTIONS[name]).bind(None, **params)
        except TypeError as exc:
            raise TypeError(f"Invalid parameters {params} for activation {name!r}: {exc}.") from None
        self.name = name
        self.params = params
        self._forward = _FUNCTIONS[name]
        self._backward = _BACKWARD[name]

    @property
    def is_linear(self):
        return self.name == "linear"

    @property
    def is_plain_relu(self):
        """max(x, 0) with nothing else (no slope, cap or threshold): what the convolution and
        dense kernels can apply to their output as they write it."""
        return (self.name == "relu" and self.params.get("negative_slope", 0.0) == 0
                and self.params.get("max_value") is None and self.params.get("threshold", 0.0) == 0)

    def fused(self, dtype, training):
        """The activation a convolution or dense kernel applies to its output as it writes it
        ("relu" or "tanh"), or None where it cannot stand in for `forward`: ReLU at inference
        only (its gradient reads the input: 0 counts as positive), tanh in float32 (its gradient
        needs only the output; in float64 NumPy's tanh is faster than the C library's)."""
        if self.is_plain_relu and not training:
            return "relu"
        if self.name == "tanh" and dtype == np.float32:
            return "tanh"
        return None

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
    "softmax": softmax, "gelu": gelu, "mish": mish, "hard_silu": hard_silu,
    "log_sigmoid": log_sigmoid, "log_softmax": log_softmax,
}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu", "none": "linear"}


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
