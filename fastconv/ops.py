"""Validated entry points to the compiled core; same functions and signatures as `fastconv.reference`.

Each function checks its arguments in Python (`fastconv._validation`), makes the arrays
C-contiguous in one dtype, allocates the outputs and calls the `nogil` kernel, which assumes
valid input and writes every element of its outputs.
"""
import os

import numpy as np

from . import _validation as V
from .backend import get_num_threads
from .reference import normalization as _bn_ref
from .reference import pooling as _pool_ref

try:
    from ._core import batchnorm as _bn
    from ._core import conv as _conv
    from ._core import cpu as _cpu
    from ._core import pool as _pool
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "fastconv's compiled core is missing or failed to load "
        f"({exc}). Install the package with `pip install .` (or `pip install -e .`) so the "
        "extension modules are built, or use fastconv.set_backend('reference')."
    ) from exc

# Training allocates and frees the same activation-sized arrays every step; glibc would hand
# the freed memory back to the OS and fault it in (zeroed) again the next step (~10% of an
# MNIST-CNN step). Keep it for reuse instead (fastconv._core.cpu.keep_freed_memory; the
# process keeps up to 256 MiB of freed heap). FASTCONV_KEEP_FREED_MEMORY=0 leaves glibc's
# defaults; other C libraries are not touched.
KEEPS_FREED_MEMORY = (os.environ.get("FASTCONV_KEEP_FREED_MEMORY", "1").strip() != "0"
                      and _cpu.keep_freed_memory())


# Every output starts on a cache line (NumPy's buffers start 16 bytes into one: every other
# 32-byte vector the kernels store would straddle two lines).
_empty = _cpu.empty_aligned


# Below this much work per thread, a parallel region costs more than it saves (and on a
# loaded machine a thread waiting at the barrier for a descheduled peer costs far more), so
# small convolutions run on fewer threads. Results do not depend on the thread count (the
# kernels reduce in a fixed order), only the speed does. Tests set it to 0 to force every
# thread. (The pooling and batch-norm kernels apply their own per-element threshold.)
# 1 MFLOP is ~10-15 us of a core's work; LeNet-5's dense layers (64 x 400 -> 120: 6 MFLOP) ran
# on one thread under the former 4 MFLOP (training step 2.71-2.92 -> 2.56-2.68 ms, 2 threads).
MIN_FLOPS_PER_THREAD = 1_000_000


def _threads(work, grain):
    """Threads to use for `work` units, at least `grain` per thread, at most get_num_threads()."""
    n = get_num_threads()
    if grain <= 0:
        return n
    return max(1, min(n, int(work // grain)))


def _conv_threads(geo, kernel):
    kh, kw, cin_g, filters = kernel.shape
    flops = 2.0 * geo.n * geo.out_h * geo.out_w * filters * kh * kw * cin_g
    return _threads(flops, MIN_FLOPS_PER_THREAD)


def _c(a):
    return None if a is None else np.ascontiguousarray(a)


def _pads(geo):
    (pt, pb), (pl, pr) = geo.padding
    return (pt, pb, pl, pr)


def conv2d_forward(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1,
                   activation=None, max_pool=None):
    """2-D convolution of NHWC `x` with an HWIO `kernel` (see `fastconv.reference.conv2d_forward`);
    `activation` ("relu" or "tanh") is applied to each output block as it is written (ReLU: the
    reference's bits; tanh: float32 within 6.3 ulp of the true tanh, float64 the C library's).
    `max_pool` ((ph, pw) or an int) returns instead the max pooling of that output in ph x pw
    windows with equal strides and no padding (`max_pool2d_forward`'s bits): pooled block by
    block as it is computed, so the unpooled output is never written where the path allows
    (implicit GEMM; Winograd when ph and pw divide its tile)."""
    x, kernel, bias, geo, groups = V.check_conv2d(x, kernel, bias, strides, padding, dilation_rate, groups)
    pool = V.check_fused_max_pool(max_pool, (geo.out_h, geo.out_w))
    ph, pw = pool or (1, 1)
    out = _empty((geo.n, geo.out_h // ph, geo.out_w // pw, kernel.shape[3]), dtype=x.dtype)
    _conv.conv2d_forward(_c(x), _c(kernel), _c(bias), out, geo.strides, _pads(geo),
                         geo.dilation, groups, _conv_threads(geo, kernel),
                         activation=V.check_fused_activation(activation), max_pool=pool)
    return out


def conv2d_backward(dy, x, kernel, strides=1, padding="valid", dilation_rate=1, groups=1,
                    need_input_grad=True, need_bias_grad=True, need_kernel_grad=True):
    """Return (dx or None, dkernel or None, dbias or None)."""
    x, kernel, _, geo, groups = V.check_conv2d(x, kernel, None, strides, padding, dilation_rate, groups)
    filters = kernel.shape[3]
    dy = V.check_grad_output(dy, (geo.n, geo.out_h, geo.out_w, filters), x.dtype)
    dx = _empty(x.shape, dtype=x.dtype) if need_input_grad else None
    # The kernel computes the bias gradient alongside the kernel gradient: asking for the
    # first alone still computes the second (into a scratch array).
    dkernel = _empty(kernel.shape, dtype=x.dtype) if need_kernel_grad or need_bias_grad else None
    dbias = _empty((filters,), dtype=x.dtype) if need_bias_grad else None
    if dx is not None or dkernel is not None:
        _conv.conv2d_backward(_c(dy), _c(x), _c(kernel), dx, dkernel, dbias, geo.strides,
                              _pads(geo), geo.dilation, groups, _conv_threads(geo, kernel))
    return dx, dkernel if need_kernel_grad else None, dbias


# -- pooling -----------------------------------------------------------------------------------
# Layers call these a few times per training step with the same, already normalised arguments
# (tuples of Python ints, a lowercase str): the geometry of such calls is kept here under a
# plain key, which costs less than the typed key of V.pool_geometry's cache (and the checks
# of V.check_input_shape). Any other argument (numpy ints, lists, floats, ...) takes the full
# path, so results and errors are those of fastconv._validation.
_POOL_GEOMETRIES = {}


def _plain_ints(values, count):
    return type(values) is tuple and len(values) == count and all(type(v) is int for v in values)


def _pool_geometry(shape, pool_size, strides, padding):
    """V.pool_geometry(shape, ...) for a validated shape (a tuple of positive Python ints)."""
    key = (shape, pool_size, strides, padding)
    if (type(padding) is str and _plain_ints(pool_size, 2)
            and (strides is None or _plain_ints(strides, 2))):
        geo = _POOL_GEOMETRIES.get(key)
        if geo is None:
            geo = V.pool_geometry(shape, pool_size, strides, padding)  # raises if invalid
            if len(_POOL_GEOMETRIES) >= 256:
                _POOL_GEOMETRIES.clear()
            _POOL_GEOMETRIES[key] = geo
        return geo
    return V.pool_geometry(shape, pool_size, strides, padding)


def _check_pool2d(x, pool_size, strides, padding):
    """V.check_pool2d, with the geometry from _pool_geometry."""
    x = V.as_float_array(x, "x")
    V.check_rank(x, 4, "x", "(batch, height, width, channels)")
    if 0 in x.shape:  # V's message for empty axes
        return V.check_pool2d(x, pool_size, strides, padding)
    return x, _pool_geometry(x.shape, pool_size, strides, padding)


def _input_shape(input_shape):
    """V.check_input_shape(input_shape, 4), without per-item ABC checks when it is a tuple of
    four positive Python ints (e.g. an array's .shape)."""
    if _plain_ints(input_shape, 4) and min(input_shape) >= 1:
        return input_shape
    return V.check_input_shape(input_shape, 4)


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    x, geo = _check_pool2d(x, pool_size, strides, padding)
    out = _empty(geo.output_shape + (geo.c,), dtype=x.dtype)
    _pool.max_pool2d_forward(_c(x), out, (geo.kh, geo.kw), geo.strides, _pads(geo), get_num_threads())
    return out


def max_pool2d_backward(dy, x, pool_size=2, strides=None, padding="valid"):
    x, geo = _check_pool2d(x, pool_size, strides, padding)
    dy = V.check_grad_output(dy, geo.output_shape + (geo.c,), x.dtype)
    dx = _empty(x.shape, dtype=x.dtype)
    _pool.max_pool2d_backward(_c(dy), _c(x), dx, (geo.kh, geo.kw), geo.strides, _pads(geo),
                              get_num_threads())
    return dx


def max_pool2d_forward_with_argmax(x, pool_size=2, strides=None, padding="valid"):
    """Return (y, argmax): max pooling and, per output, its window's first maximum as a uint8
    tap index (see `fastconv.reference.max_pool2d_forward_with_argmax`)."""
    x, geo = _check_pool2d(x, pool_size, strides, padding)
    _pool_ref.check_argmax_window(geo)
    out = _empty(geo.output_shape + (geo.c,), dtype=x.dtype)
    argmax = _empty(out.shape, dtype=np.uint8)
    _pool.max_pool2d_forward_argmax(_c(x), out, argmax, (geo.kh, geo.kw), geo.strides, _pads(geo),
                                    get_num_threads())
    return out, argmax


def max_pool2d_backward_from_argmax(dy, argmax, input_shape, pool_size=2, strides=None,
                                    padding="valid", dtype=None):
    """Gradient of max pooling from the argmax `max_pool2d_forward_with_argmax` returned:
    reads dy and one byte per output instead of the input x."""
    shape = _input_shape(input_shape)
    dy = V.as_float_array(dy, "dy", dtype)
    geo = _pool_geometry(shape, pool_size, strides, padding)
    _pool_ref.check_argmax_window(geo)
    dy = V.check_grad_output(dy, geo.output_shape + (geo.c,), dy.dtype)
    _pool_ref.check_argmax(argmax, dy.shape)
    dx = _empty(shape, dtype=dy.dtype)
    _pool.max_pool2d_backward_argmax(_c(dy), _c(argmax), dx, (geo.kh, geo.kw), geo.strides,
                                     _pads(geo), get_num_threads())
    return dx


def avg_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    x, geo = _check_pool2d(x, pool_size, strides, padding)
    out = _empty(geo.output_shape + (geo.c,), dtype=x.dtype)
    _pool.avg_pool2d_forward(_c(x), out, (geo.kh, geo.kw), geo.strides, _pads(geo), get_num_threads())
    return out


def avg_pool2d_backward(dy, input_shape, pool_size=2, strides=None, padding="valid", dtype=None):
    shape = _input_shape(input_shape)
    dy = V.as_float_array(dy, "dy", dtype)
    geo = _pool_geometry(shape, pool_size, strides, padding)
    dy = V.check_grad_output(dy, geo.output_shape + (geo.c,), dy.dtype)
    dx = _empty(shape, dtype=dy.dtype)
    _pool.avg_pool2d_backward(_c(dy), dx, (geo.kh, geo.kw), geo.strides, _pads(geo), get_num_threads())
    return dx


def _check_global(x):
    return V.check_global_pool(x)


def global_avg_pool2d_forward(x):
    x = _check_global(x)
    out = _empty((x.shape[0], x.shape[3]), dtype=x.dtype)
    _pool.global_avg_pool2d_forward(_c(x), out, get_num_threads())
    return out


def global_avg_pool2d_backward(dy, input_shape, dtype=None):
    n, h, w, c = _input_shape(input_shape)
    dy = V.check_grad_output(V.as_float_array(dy, "dy", dtype), (n, c), dtype)
    dx = _empty((n, h, w, c), dtype=dy.dtype)
    _pool.global_avg_pool2d_backward(_c(dy), dx, get_num_threads())
    return dx


def global_max_pool2d_forward(x):
    x = _check_global(x)
    out = _empty((x.shape[0], x.shape[3]), dtype=x.dtype)
    _pool.global_max_pool2d_forward(_c(x), out, get_num_threads())
    return out


def global_max_pool2d_backward(dy, x):
    x = _check_global(x)
    dy = V.check_grad_output(dy, (x.shape[0], x.shape[3]), x.dtype)
    dx = _empty(x.shape, dtype=x.dtype)
    _pool.global_max_pool2d_backward(_c(dy), _c(x), dx, get_num_threads())
    return dx


def _rows(a):
    """View an (..., C) array as (M, C) rows for the batch-norm kernels."""
    a = np.ascontiguousarray(a)
    return a.reshape(-1, a.shape[-1])


def batch_norm_forward_training(x, gamma, beta, epsilon=1e-3):
    """Return (y, mean, var): batch statistics over every axis but the last (biased var)."""
    return _bn_forward_training(x, gamma, beta, epsilon, _bn.batch_norm_forward_training)


def batch_norm_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    return _bn_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon,
                                 _bn.batch_norm_forward_inference)


def batch_norm_backward(dy, x, gamma, mean, var, epsilon=1e-3):
    """Return (dx, dgamma, dbeta) for training-mode batch norm."""
    return _bn_backward(dy, x, gamma, None, mean, var, epsilon)


# The plain and the BN + ReLU entry points share these bodies; `kernel` is the compiled one.
def _bn_forward_training(x, gamma, beta, epsilon, kernel):
    x, gamma, beta, epsilon = V.check_batch_norm(x, gamma, beta, epsilon)
    c = x.shape[-1]
    y = _empty(x.shape, dtype=x.dtype)
    mean = _empty((c,), dtype=x.dtype)
    var = _empty((c,), dtype=x.dtype)
    kernel(_rows(x), _c(gamma), _c(beta), epsilon, y.reshape(-1, c), mean, var, get_num_threads())
    return y, mean, var


def _bn_moving(x, gamma, beta, moving_mean, moving_var, epsilon):
    """Checked (x, gamma, beta, epsilon, mean, var) of an inference-mode batch norm."""
    x, gamma, beta, epsilon = V.check_batch_norm(x, gamma, beta, epsilon)
    c = x.shape[-1]
    mean = V.check_channel_vector(moving_mean, c, x.dtype, "moving_mean")
    var = V.check_channel_vector(moving_var, c, x.dtype, "moving_var")
    return x, gamma, beta, epsilon, mean, var


def _bn_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon, kernel):
    x, gamma, beta, epsilon, mean, var = _bn_moving(x, gamma, beta, moving_mean, moving_var, epsilon)
    y = _empty(x.shape, dtype=x.dtype)
    kernel(_rows(x), _c(gamma), _c(beta), _c(mean), _c(var), epsilon, y.reshape(-1, x.shape[-1]),
           get_num_threads())
    return y


def _bn_backward(dy, x, gamma, beta, mean, var, epsilon):
    """(dx, dgamma, dbeta) of batch norm (beta None) or of relu(batch norm) (beta given)."""
    x, gamma, checked_beta, epsilon = V.check_batch_norm(
        x, gamma, np.zeros_like(gamma) if beta is None else beta, epsilon)
    c = x.shape[-1]
    mean = V.check_channel_vector(mean, c, x.dtype, "mean")
    var = V.check_channel_vector(var, c, x.dtype, "var")
    dy = V.check_grad_output(dy, x.shape, x.dtype)
    dx = _empty(x.shape, dtype=x.dtype)
    dgamma = _empty((c,), dtype=x.dtype)
    dbeta = _empty((c,), dtype=x.dtype)
    args = (_rows(dy), _rows(x), _c(gamma)) + (() if beta is None else (_c(checked_beta),))
    kernel = _bn.batch_norm_backward if beta is None else _bn.batch_norm_relu_backward
    kernel(*args, _c(mean), _c(var), epsilon, dx.reshape(-1, c), dgamma, dbeta, get_num_threads())
    return dx, dgamma, dbeta


# -- batch norm followed by a ReLU, one pass each way (fastconv._fusion uses them in training) --
def batch_norm_relu_forward_training(x, gamma, beta, epsilon=1e-3):
    """Return (relu(y), mean, var) with y, mean, var those of `batch_norm_forward_training`,
    the ReLU applied in the same pass (bit for bit `relu_forward` of the plain output)."""
    return _bn_forward_training(x, gamma, beta, epsilon, _bn.batch_norm_relu_forward_training)


def batch_norm_relu_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    """relu(batch_norm_forward_inference(...)) in one pass (same bits as the two in turn)."""
    return _bn_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon,
                                 _bn.batch_norm_relu_forward_inference)


def batch_norm_relu_max_pool_forward_training(x, gamma, beta, epsilon=1e-3, pool_size=2,
                                               strides=None, padding="valid"):
    """Return (out, argmax, mean, var): `batch_norm_relu_forward_training` of NHWC x followed by
    `max_pool2d_forward_with_argmax`, bit for bit, without writing the batch norm's output
    (the pooling kernel normalises each value as it reads it)."""
    x, gamma, beta, epsilon = V.check_batch_norm(x, gamma, beta, epsilon)
    x, geo = _check_pool2d(x, pool_size, strides, padding)
    c = x.shape[-1]
    mean = _empty((c,), dtype=x.dtype)
    var = _empty((c,), dtype=x.dtype)
    _bn.batch_norm_forward_training(_rows(x), _c(gamma), _c(beta), epsilon, None, mean, var,
                                    get_num_threads())
    return _bn_relu_max_pool(x, geo, gamma, beta, mean, var, epsilon) + (mean, var)


def batch_norm_relu_max_pool_forward_inference(x, gamma, beta, moving_mean, moving_var,
                                                epsilon=1e-3, pool_size=2, strides=None,
                                                padding="valid"):
    """Return (out, argmax): `batch_norm_relu_forward_inference` of NHWC x followed by
    `max_pool2d_forward_with_argmax`, bit for bit, without writing the batch norm's output."""
    x, gamma, beta, epsilon, mean, var = _bn_moving(x, gamma, beta, moving_mean, moving_var, epsilon)
    x, geo = _check_pool2d(x, pool_size, strides, padding)
    return _bn_relu_max_pool(x, geo, gamma, beta, mean, var, epsilon)


def _bn_relu_max_pool(x, geo, gamma, beta, mean, var, epsilon):
    """Pooled max((x - mean) * scale + beta, 0) and argmax, with the batch norm kernels' scale
    gamma / sqrt(var + epsilon) (in double, rounded to x's dtype: the same bits)."""
    _pool_ref.check_argmax_window(geo)
    scale = (gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)).astype(x.dtype)
    out = _empty(geo.output_shape + (geo.c,), dtype=x.dtype)
    argmax = _empty(out.shape, dtype=np.uint8)
    _pool.max_pool2d_forward_argmax_bn_relu(_c(x), _c(mean), scale, _c(beta), out, argmax,
                                            (geo.kh, geo.kw), geo.strides, _pads(geo),
                                            get_num_threads())
    return out, argmax


def batch_norm_relu_backward(dy, x, gamma, beta, mean, var, epsilon=1e-3):
    """Return (dx, dgamma, dbeta) of relu(training-mode batch norm); dy is the gradient of the
    ReLU's output. Equals `relu_backward` then `batch_norm_backward` bit for bit, in one pass
    (the ReLU's mask is recomputed from x)."""
    return _bn_backward(dy, x, gamma, beta, mean, var, epsilon)


def batch_norm_frozen_factor(gamma, moving_var, epsilon):
    """gamma / sqrt(moving_var + epsilon) per channel (see `fastconv.reference`)."""
    return _bn_ref.batch_norm_frozen_factor(gamma, moving_var, epsilon)


def batch_norm_relu_backward_inference(dy, x, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    """dx of relu(batch_norm_forward_inference(x, ...)): relu_backward(dy, y) *
    batch_norm_frozen_factor(...), in one pass (y recomputed from x)."""
    x, gamma, beta, epsilon, mean, var = _bn_moving(x, gamma, beta, moving_mean, moving_var, epsilon)
    c = x.shape[-1]
    dy = V.check_grad_output(dy, x.shape, x.dtype)
    factor = _bn_ref.batch_norm_frozen_factor(gamma, var, epsilon)
    dx = _empty(x.shape, dtype=x.dtype)
    _bn.batch_norm_relu_backward_inference(_rows(dy), _rows(x), _c(gamma), _c(beta), _c(mean),
                                           _c(var), epsilon, _c(factor), dx.reshape(-1, c),
                                           get_num_threads())
    return dx


# Dense layers are 1x1 convolutions of (batch, 1, 1, features) images: they run on the same
# GEMM microkernels and OpenMP team as the convolutions, so a training step never alternates
# OpenMP regions with NumPy's BLAS thread pool (the two pools slow each other down).
def _dense_threads(n, features, units):
    """_conv_threads of the 1x1 convolution, from its flop count directly (its geometry is
    trivial; resolving it through the memoized geometry cost ~7 us per call)."""
    return _threads(2.0 * n * units * features, MIN_FLOPS_PER_THREAD)


def dense_forward(x, kernel, bias=None, activation=None):
    """y = x @ kernel + bias for x (batch, in_features) and kernel (in_features, units);
    `activation` ("relu" or "tanh") as in `conv2d_forward`."""
    x, kernel, bias = V.check_dense(x, kernel, bias)
    n, units = x.shape[0], kernel.shape[1]
    kernel4 = _c(kernel).reshape(1, 1, kernel.shape[0], units)
    out = _empty((n, units), dtype=x.dtype)
    _conv.conv2d_forward(_c(x).reshape(n, 1, 1, -1), kernel4, _c(bias), out.reshape(n, 1, 1, units),
                         (1, 1), (0, 0, 0, 0), (1, 1), 1, _dense_threads(n, x.shape[1], units),
                         activation=V.check_fused_activation(activation))
    return out


def dense_backward(dy, x, kernel, need_input_grad=True, need_bias_grad=True):
    """Return (dx or None, dkernel, dbias or None) of the dense layer."""
    x, kernel, _ = V.check_dense(x, kernel, None)
    n, (features, units) = x.shape[0], kernel.shape
    dy = V.check_grad_output(dy, (n, units), x.dtype)
    kernel4 = _c(kernel).reshape(1, 1, features, units)
    dx = _empty((n, features), dtype=x.dtype) if need_input_grad else None
    dkernel = _empty((features, units), dtype=x.dtype)
    dbias = _empty((units,), dtype=x.dtype) if need_bias_grad else None
    _conv.conv2d_backward(_c(dy).reshape(n, 1, 1, units), _c(x).reshape(n, 1, 1, features), kernel4,
                          None if dx is None else dx.reshape(n, 1, 1, features),
                          dkernel.reshape(1, 1, features, units), dbias, (1, 1), (0, 0, 0, 0),
                          (1, 1), 1, _dense_threads(n, features, units))
    return dx, dkernel, dbias


# -- elementwise: ReLU, activation gradients, dropout, optimizer updates -----------------------
# One compiled pass per operation (fastconv._core.elementwise), bit-identical to
# `fastconv.reference.elementwise`. Inputs the kernels do not take as they are (not plain
# C-contiguous float32/float64 arrays of one dtype and shape, NumPy scalars, ...) go to the
# reference, which defines the result for every input.
from .reference import elementwise as _ew_ref  # noqa: E402
from .reference import losses as _loss_ref  # noqa: E402

try:
    from ._core import elementwise as _ew
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        f"fastconv's compiled core is missing or failed to load ({exc}). Install the package "
        "with `pip install .` (or `pip install -e .`) so the extension modules are built, or "
        "use fastconv.set_backend('reference')."
    ) from exc

_EW_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _ew_ready(first, *others):
    """Whether the arrays can go to the kernels as they are: plain C-contiguous ndarrays of
    one shape (at least 1-D: NumPy returns scalars for 0-d input) and one dtype, float32 or
    float64."""
    if (type(first) is not np.ndarray or first.dtype not in _EW_DTYPES or first.ndim == 0
            or not first.flags.c_contiguous):
        return False
    for a in others:
        if (type(a) is not np.ndarray or a.dtype != first.dtype or a.shape != first.shape
                or not a.flags.c_contiguous):
            return False
    return True


def _python_real(*values):
    """Whether the scalars are Python floats or small ints: these round to the arrays' dtype
    exactly as NumPy's weak scalars do (NumPy scalars promote differently)."""
    return all(type(v) is float or (type(v) is int and abs(v) <= 1 << 24) for v in values)


def relu_forward(x):
    """max(x, 0) elementwise, as `numpy.maximum(x, 0)` (see `fastconv.reference.relu_forward`)."""
    if not _ew_ready(x):
        return _ew_ref.relu_forward(x)
    out = _empty(x.shape, dtype=x.dtype)
    _ew.relu_forward(x, out, get_num_threads())
    return out


def relu_backward(dy, x, threshold=0.0):
    """dy * (x >= threshold) (see `fastconv.reference.relu_backward`)."""
    if not (_ew_ready(dy, x) and _python_real(threshold)):
        return _ew_ref.relu_backward(dy, x, threshold)
    dx = _empty(dy.shape, dtype=dy.dtype)
    _ew.relu_backward(dy, x, threshold, dx, get_num_threads())
    return dx


def leaky_relu_forward(x, negative_slope=0.2):
    """x >= 0 ? x : negative_slope * x (see `fastconv.reference.leaky_relu_forward`)."""
    if not (_ew_ready(x) and _python_real(negative_slope)):
        return _ew_ref.leaky_relu_forward(x, negative_slope)
    out = _empty(x.shape, dtype=x.dtype)
    _ew.leaky_relu_forward(x, negative_slope, out, get_num_threads())
    return out


def leaky_relu_backward(dy, x, negative_slope=0.2):
    """x >= 0 ? dy : negative_slope * dy (see `fastconv.reference.leaky_relu_backward`)."""
    if not (_ew_ready(dy, x) and _python_real(negative_slope)):
        return _ew_ref.leaky_relu_backward(dy, x, negative_slope)
    dx = _empty(dy.shape, dtype=dy.dtype)
    _ew.leaky_relu_backward(dy, x, negative_slope, dx, get_num_threads())
    return dx


def tanh_backward(dy, y):
    """dy * (1 - y * y) (see `fastconv.reference.tanh_backward`)."""
    if not _ew_ready(dy, y):
        return _ew_ref.tanh_backward(dy, y)
    dx = _empty(dy.shape, dtype=dy.dtype)
    _ew.tanh_backward(dy, y, dx, get_num_threads())
    return dx


def sigmoid_backward(dy, y):
    """dy * y * (1 - y) (see `fastconv.reference.sigmoid_backward`)."""
    if not _ew_ready(dy, y):
        return _ew_ref.sigmoid_backward(dy, y)
    dx = _empty(dy.shape, dtype=dy.dtype)
    _ew.sigmoid_backward(dy, y, dx, get_num_threads())
    return dx


def adam_update(param, grad, m, v, alpha, beta_1, beta_2, epsilon, v_hat=None):
    """One Adam step in place, fused into one pass (see `fastconv.reference.adam_update`)."""
    arrays = (param, grad, m, v) if v_hat is None else (param, grad, m, v, v_hat)
    if not (_ew_ready(*arrays) and _python_real(alpha, beta_1, beta_2, epsilon)):
        return _ew_ref.adam_update(param, grad, m, v, alpha, beta_1, beta_2, epsilon, v_hat)
    _ew.adam_update(param, grad, m, v, v_hat, 1.0 - beta_1, 1.0 - beta_2, alpha, epsilon,
                    get_num_threads())


def adam_update_many(params, grads, ms, vs, alpha, beta_1, beta_2, epsilon, v_hats=None):
    """`adam_update` on every entry of the lists at once (one parallel region for all of a
    model's parameters; see `fastconv.reference.adam_update_many`)."""
    if (type(params) is list and type(grads) is list and type(ms) is list and type(vs) is list
            and (v_hats is None or type(v_hats) is list)
            and _python_real(alpha, beta_1, beta_2, epsilon)):
        # The optimizer's call, every step: straight to the kernel, which checks every array
        # before it writes any. Arrays it does not take as they are (and the errors, which
        # the path below raises again, or leaves to the reference) go entry by entry below.
        try:
            _ew.adam_update_many(params, grads, ms, vs, v_hats, 1.0 - beta_1, 1.0 - beta_2, alpha,
                                 epsilon, get_num_threads())
            return
        except (TypeError, ValueError):
            pass
    params, grads, ms, vs = list(params), list(grads), list(ms), list(vs)
    v_hats = None if v_hats is None else list(v_hats)
    lists = (params, grads, ms, vs) + ((v_hats,) if v_hats is not None else ())
    if len({len(seq) for seq in lists}) > 1:  # the reference names the mismatch
        return _ew_ref.adam_update_many(params, grads, ms, vs, alpha, beta_1, beta_2, epsilon, v_hats)
    entries = [(params[k], grads[k], ms[k], vs[k]) + ((v_hats[k],) if v_hats is not None else ())
               for k in range(len(params))]
    if not (_python_real(alpha, beta_1, beta_2, epsilon)
            and all(_ew_ready(*e) and e[0].dtype == params[0].dtype for e in entries)):
        for e in entries:  # one by one, each on the kernel or the reference
            adam_update(*e[:4], alpha, beta_1, beta_2, epsilon, *e[4:])
        return
    _ew.adam_update_many(params, grads, ms, vs, v_hats, 1.0 - beta_1, 1.0 - beta_2, alpha,
                         epsilon, get_num_threads())


def sparse_softmax_crossentropy(logits, labels):
    """(mean loss, gradient of the mean with respect to `logits`) of the softmax crossentropy
    of integer labels, or None if a label lies outside [0, classes) (see
    `fastconv.reference.sparse_softmax_crossentropy`): one kernel call, where the NumPy
    version's dozen calls on a batch's few logits cost ~50-90 us of a training step."""
    if (type(logits) is np.ndarray and logits.ndim == 2 and logits.dtype in _EW_DTYPES
            and logits.size and logits.flags.c_contiguous and type(labels) is np.ndarray
            and labels.dtype == np.int64 and labels.shape == logits.shape[:1]
            and labels.flags.c_contiguous):
        grad = _empty(logits.shape, dtype=logits.dtype)
        bad, total = _ew.sparse_softmax_crossentropy(logits, labels, grad)
        return None if bad >= 0 else (total / logits.shape[0], grad)
    return _loss_ref.sparse_softmax_crossentropy(logits, labels)


def sgd_update(param, grad, learning_rate, momentum=0.0, velocity=None, nesterov=False):
    """One SGD step in place, fused into one pass (see `fastconv.reference.sgd_update`)."""
    arrays = (param, grad) if velocity is None else (param, grad, velocity)
    if not (_ew_ready(*arrays) and _python_real(learning_rate, momentum)):
        return _ew_ref.sgd_update(param, grad, learning_rate, momentum, velocity, nesterov)
    _ew.sgd_update(param, grad, velocity, learning_rate, momentum, bool(nesterov),
                   get_num_threads())


dropout_drop_below = _ew_ref.dropout_drop_below
dropout_scale = _ew_ref.dropout_scale


def random_bits(seed, shape):
    """Counter-based random uint32 values (see `fastconv.reference.random_bits`), filled by
    the compiled kernel on the current threads: the same bits as the reference."""
    seed = V.check_seed64(seed)
    out = _empty(shape, dtype=np.uint32)
    _ew.random_bits(seed, out, get_num_threads())
    return out


def dropout_forward(x, bits, rate):
    """Inverted dropout from random uint32 bits: (y, keep) (see `fastconv.reference.dropout_forward`)."""
    if not (_ew_ready(x) and type(bits) is np.ndarray and bits.dtype == np.uint32
            and bits.shape == x.shape and bits.flags.c_contiguous):
        return _ew_ref.dropout_forward(x, bits, rate)
    y = _empty(x.shape, dtype=x.dtype)
    keep = _empty(x.shape, dtype=bool)
    _ew.dropout_forward(x, bits, dropout_drop_below(rate), dropout_scale(rate, x.dtype), y, keep,
                        get_num_threads())
    return y, keep


def dropout_backward(dy, keep, rate):
    """dy * (keep ? 1 / (1 - rate) : 0) (see `fastconv.reference.dropout_backward`)."""
    if not (_ew_ready(dy) and type(keep) is np.ndarray and keep.dtype == np.bool_
            and keep.shape == dy.shape and keep.flags.c_contiguous):
        return _ew_ref.dropout_backward(dy, keep, rate)
    dx = _empty(dy.shape, dtype=dy.dtype)
    _ew.dropout_backward(dy, keep, dropout_scale(rate, dy.dtype), dx, get_num_threads())
    return dx
