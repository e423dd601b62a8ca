"""Elementwise kernels in NumPy: ReLU, leaky ReLU, activation gradients, dropout, optimizer updates.

The specification of `fastconv._core.elementwise` (through `fastconv.ops`), which computes
the same operations in the same order and precision, so the two agree bit for bit. Python
scalars combine with float32 arrays in float32 (NumPy's weak scalar promotion): a scalar is
rounded to the array's dtype before it is used.
"""
import math

import numpy as np

from .. import _validation as V


def _check_float_array(a, name):
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
        kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"`{name}` must be a floating-point numpy.ndarray; received {kind}.")
    return a


def _check_like(a, name, ref, ref_name):
    _check_float_array(a, name)
    if a.shape != ref.shape:
        raise ValueError(f"`{name}` must have the shape of `{ref_name}` {ref.shape}; "
                         f"received {a.shape}.")
    return a


def relu_forward(x):
    """max(x, 0) elementwise, as `numpy.maximum(x, 0)` (NaN propagates), in x's dtype.

    Args:
        x: input array.
    """
    x = np.asarray(x)
    return np.maximum(x, 0).astype(x.dtype, copy=False)


def relu_backward(dy, x, threshold=0.0):
    """Gradient of ReLU: dy * (x >= threshold), in dy's dtype.

    A multiplication by exactly 1 or 0, so dy's sign survives (dy * 0 is -0.0 for negative
    dy) and an inf or NaN dy gives NaN where x is below the threshold.

    Args:
        dy: gradient of the output (float array).
        x: the forward input, dy's shape.
        threshold: the ReLU threshold (compared in x's dtype).
    """
    _check_float_array(dy, "dy")
    x = np.asarray(x)
    if x.shape != dy.shape:
        raise ValueError(f"`x` must have the shape of `dy` {dy.shape}; received {x.shape}.")
    return np.multiply(dy, np.greater_equal(x, threshold), out=np.empty_like(dy))


def leaky_relu_forward(x, negative_slope=0.2):
    """x where x >= 0, else negative_slope * x, in x's dtype.

    Args:
        x: input array.
        negative_slope: slope for negative inputs.
    """
    x = np.asarray(x)
    return np.where(x >= 0, x, negative_slope * x).astype(x.dtype, copy=False)


def leaky_relu_backward(dy, x, negative_slope=0.2):
    """Gradient of leaky ReLU: dy where x >= 0, else negative_slope * dy, in dy's dtype.

    Args:
        dy: gradient of the output (float array).
        x: the forward input.
        negative_slope: slope for negative inputs.
    """
    return np.where(x >= 0, dy, negative_slope * dy).astype(dy.dtype, copy=False)


def tanh_backward(dy, y):
    """Gradient of tanh from its output y: dy * (1 - y * y).

    Args:
        dy: gradient of the output (float array).
        y: the forward output tanh(x).
    """
    if not (isinstance(y, np.ndarray) and isinstance(dy, np.ndarray) and y.shape == dy.shape
            and y.dtype == dy.dtype and dy.dtype.kind == "f"):
        return dy * (1.0 - y * y)
    # The same operations and order as the expression above, in one scratch array.
    scratch = np.multiply(y, y)
    np.subtract(1.0, scratch, out=scratch)
    return np.multiply(dy, scratch, out=scratch)


def sigmoid_backward(dy, y):
    """Gradient of the sigmoid from its output y: dy * y * (1 - y).

    Args:
        dy: gradient of the output (float array).
        y: the forward output sigmoid(x).
    """
    return dy * y * (1.0 - y)


def adam_update(param, grad, m, v, alpha, beta_1, beta_2, epsilon, v_hat=None):
    """One Adam step, in place on `param`, `m`, `v` (and `v_hat`).

    In order: `m += (grad - m) * (1 - beta_1)`; `v += (grad^2 - v) * (1 - beta_2)`; with
    `v_hat` (AMSGrad) `v_hat = maximum(v_hat, v)`, used instead of v below;
    `param -= (m * alpha) / (sqrt(v) + epsilon)`.

    Args:
        param: the parameter (float array, updated in place).
        grad: its gradient, param's shape and dtype.
        m, v: first and second moment estimates (updated in place).
        alpha: step size with the bias correction folded in (a Python float).
        beta_1, beta_2: decay rates of the moment estimates.
        epsilon: added to sqrt(v).
        v_hat: None, or the running maximum of v (AMSGrad; updated in place).
    """
    for a, name in ((grad, "grad"), (m, "m"), (v, "v")) + (((v_hat, "v_hat"),) if v_hat is not None else ()):
        _check_like(a, name, _check_float_array(param, "param"), "param")
    tmp = np.subtract(grad, m)
    tmp *= 1.0 - beta_1
    m += tmp
    np.square(grad, out=tmp)
    tmp -= v
    tmp *= 1.0 - beta_2
    v += tmp
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        v = v_hat
    step = np.multiply(m, alpha)
    np.sqrt(v, out=tmp)
    tmp += epsilon
    step /= tmp
    param -= step



def adam_update_many(params, grads, ms, vs, alpha, beta_1, beta_2, epsilon, v_hats=None):
    """`adam_update` on each entry k of the lists (params[k], grads[k], ms[k], vs[k] and
    v_hats[k] if given), in order: one optimizer step over all of a model's parameters."""
    lists = (params, grads, ms, vs) + ((v_hats,) if v_hats is not None else ())
    if len({len(seq) for seq in lists}) > 1:
        raise ValueError("`params`, `grads`, `ms`, `vs` (and `v_hats`) must have the same length; "
                         f"received lengths {[len(seq) for seq in lists]}.")
    for k in range(len(params)):
        adam_update(params[k], grads[k], ms[k], vs[k], alpha, beta_1, beta_2, epsilon,
                    None if v_hats is None else v_hats[k])

def sgd_update(param, grad, learning_rate, momentum=0.0, velocity=None, nesterov=False):
    """One SGD step, in place on `param` (and `velocity`).

    Without velocity: `param -= lr * grad`. With it: `velocity = velocity * momentum - lr * grad`,
    then `param += velocity`, or with nesterov `param += momentum * velocity - lr * grad`.

    Args:
        param: the parameter (float array, updated in place).
        grad: its gradient, param's shape and dtype.
        learning_rate, momentum: Python floats.
        velocity: None, or the momentum buffer (updated in place).
        nesterov: whether to apply Nesterov momentum.
    """
    _check_like(grad, "grad", _check_float_array(param, "param"), "param")
    if velocity is None:
        param -= learning_rate * grad
        return
    _check_like(velocity, "velocity", param, "param")
    velocity *= momentum
    velocity -= learning_rate * grad
    if nesterov:
        param += momentum * velocity - learning_rate * grad
    else:
        param += velocity


def dropout_drop_below(rate):
    """The uint32 threshold of dropout: an element is kept when its random bits are >= it.

    ceil(rate * 2^32), so that the keep probability is 1 - rate to within 2^-32.
    """
    return math.ceil(rate * 4294967296.0)


def dropout_scale(rate, dtype):
    """1 / (1 - rate) rounded to `dtype`: the factor applied to the kept elements."""
    return np.dtype(dtype).type(1.0 / (1.0 - rate))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64_mix(z):
    """SplitMix64's output function on a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def random_bits(seed, shape):
    """Counter-based uniform random uint32 values of `shape` from a 64-bit `seed`.

    Word j = SplitMix64's output function of seed + (j + 1) * 0x9E3779B97F4A7C15 (mod 2^64);
    element 2j is its low 32 bits, element 2j + 1 its high 32 bits (C order). Each element
    depends only on the seed and its index, which is what lets the compiled kernel fill the
    array in parallel with the same bits.

    Args:
        seed: int in [0, 2**64).
        shape: output shape.
    """
    seed = V.check_seed64(seed)
    count = math.prod(shape)
    words = np.arange(1, (count + 1) // 2 + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        words = _splitmix64_mix(np.uint64(seed) + words * _GOLDEN)
    return words.view(np.uint32)[:count].reshape(shape) if np.little_endian else \
        np.stack([(words & np.uint64(0xFFFFFFFF)).astype(np.uint32),
                  (words >> np.uint64(32)).astype(np.uint32)], axis=-1).reshape(-1)[:count].reshape(shape)


def dropout_forward(x, bits, rate):
    """Inverted dropout from uniform random bits: return (y, keep).

    keep = bits >= dropout_drop_below(rate); y = x * (keep ? 1 / (1 - rate) : 0), the scale
    rounded to x's dtype. `bits` (uint32) may have a shape that broadcasts to x's (one
    decision per feature map, say); `keep` has bits' shape.

    Args:
        x: input (float array).
        bits: uniform random uint32 values.
        rate: fraction of the elements to drop, in [0, 1).
    """
    _check_float_array(x, "x")
    if not isinstance(bits, np.ndarray) or bits.dtype != np.uint32:
        raise TypeError(f"`bits` must be a uint32 numpy.ndarray; received "
                        f"{getattr(bits, 'dtype', type(bits).__name__)}.")
    drop_below = dropout_drop_below(rate)
    if drop_below > np.iinfo(np.uint32).max:
        keep = np.zeros(bits.shape, dtype=bool)
    else:
        keep = bits >= np.uint32(drop_below)
    mask = keep.astype(x.dtype) * dropout_scale(rate, x.dtype)
    return x * mask, keep


def dropout_backward(dy, keep, rate):
    """Gradient of dropout: dy * (keep ? 1 / (1 - rate) : 0), the scale in dy's dtype.

    Args:
        dy: gradient of the output (float array).
        keep: the boolean mask returned by `dropout_forward` (broadcasts to dy).
        rate: the dropout rate of the forward pass.
    """
    _check_float_array(dy, "dy")
    mask = np.asarray(keep).astype(dy.dtype) * dropout_scale(rate, dy.dtype)
    return dy * mask
