"""The compiled batch-norm kernels (fastconv.ops / fastconv._core.batchnorm) against the reference.

Training forward, inference forward and backward, float32 and float64, 2-D and 4-D input,
the kernels fused with a following ReLU (bit for bit the plain kernels and the ReLU kernels
in turn; close to the reference's composition),
M = 1, many reduction chunks and channel blocks, non-contiguous input, numerical soundness
with a large mean offset (against float64 statistics of the same data), outputs prefilled
with NaN (every element must be written), thread-count independence, finite differences and
bad arguments; and every ISA path (FASTCONV_ISA) against the reference, bit-identical to
the others (each channel's sums run over rows in the same order whatever the vector width).
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.backend
from fastconv import ops
from fastconv import reference as ref
from fastconv._core import batchnorm as core
from fastconv._core import cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DTYPES = [np.float32, np.float64]

SHAPES = [
    (5, 3),            # 2-D (Dense features)
    (1, 4),            # M = 1: variance 0
    (1, 1, 1, 1),
    (2, 5, 7, 3),      # 4-D NHWC
    (64, 300),         # more than one block of 256 channels
    (3000, 5),         # several reduction chunks (uneven last chunk)
    (7, 3, 5, 40),
    # Rows of whole vectors (the elementwise passes hold coefficients in registers, in
    # strips of 4, then 2, then 1 vector): one strip, one vector, strips plus single vectors,
    # a 2-vector strip then one (48 float32 channels with AVX-512).
    (3, 4, 5, 32),
    (9, 16),
    (2, 3, 3, 72),
    (3, 5, 48),
]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-11, atol=1e-11)


def _params(c, dtype, rng):
    gamma = (1.0 + 0.5 * rng.standard_normal(c)).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    return gamma, beta


def _stats64(x):
    """Mean and biased variance of the same data computed in float64: the ground truth."""
    rows = x.astype(np.float64).reshape(-1, x.shape[-1])
    mean = rows.mean(axis=0)
    return mean, ((rows - mean) ** 2).mean(axis=0)


@pytest.fixture
def threads():
    """Set the thread count for one test and restore the previous setting afterwards."""
    previous = fastconv.backend._num_threads
    yield fastconv.set_num_threads
    fastconv.set_num_threads(previous)


# ---- against the reference ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_training_matches_reference(shape, dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    gamma, beta = _params(shape[-1], dtype, rng)
    y, mean, var = ops.batch_norm_forward_training(x, gamma, beta, 1e-3)
    ry, rmean, rvar = ref.batch_norm_forward_training(x, gamma, beta, 1e-3)
    assert y.dtype == mean.dtype == var.dtype == dtype
    assert y.shape == shape and mean.shape == var.shape == (shape[-1],)
    tol = _tol(dtype)
    np.testing.assert_allclose(mean, rmean, **tol)
    np.testing.assert_allclose(var, rvar, **tol)
    np.testing.assert_allclose(y, ry, **tol)
    m64, v64 = _stats64(x)
    # The mean to a tiny fraction of the spread of the data, the variance relatively.
    spread = np.sqrt(v64).max()
    np.testing.assert_allclose(mean, m64, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-6 * spread)
    np.testing.assert_allclose(var, v64, rtol=1e-6 if dtype == np.float32 else 1e-13, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_inference_matches_reference(shape, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    c = shape[-1]
    gamma, beta = _params(c, dtype, rng)
    moving_mean = rng.standard_normal(c).astype(dtype)
    moving_var = rng.uniform(0.1, 3.0, c).astype(dtype)
    y = ops.batch_norm_forward_inference(x, gamma, beta, moving_mean, moving_var, 1e-3)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(
        y, ref.batch_norm_forward_inference(x, gamma, beta, moving_mean, moving_var, 1e-3), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_reference(shape, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _params(shape[-1], dtype, rng)
    _, mean, var = ref.batch_norm_forward_training(x, gamma, beta, 1e-3)
    dy = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, var, 1e-3)
    rdx, rdgamma, rdbeta = ref.batch_norm_backward(dy, x, gamma, mean, var, 1e-3)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    # Column sums over thousands of rows: the reference accumulates in the input dtype.
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dbeta, rdbeta, **tol)
    np.testing.assert_allclose(dgamma, rdgamma, **tol)
    np.testing.assert_allclose(dx, rdx, **tol)


def test_backward_matches_finite_differences():
    # L = sum(w * y(x, gamma, beta)) with batch statistics: dx includes the paths through
    # the mean and the variance.
    rng = np.random.default_rng(4)
    shape = (3, 2, 3, 4)
    x = rng.standard_normal(shape)
    gamma, beta = _params(4, np.float64, rng)
    w = rng.standard_normal(shape)
    eps = 1e-3

    def loss(xv, gv, bv):
        return np.sum(w * ops.batch_norm_forward_training(xv, gv, bv, eps)[0])

    _, mean, var = ops.batch_norm_forward_training(x, gamma, beta, eps)
    dx, dgamma, dbeta = ops.batch_norm_backward(w, x, gamma, mean, var, eps)
    _assert_matches_centred_differences(loss, (x, gamma, beta), (dx, dgamma, dbeta))


def test_m_equal_one_gives_beta():
    x = np.array([[3.0, -1.0, 7.5]], dtype=np.float32)
    gamma = np.array([2.0, 1.0, 0.5], dtype=np.float32)
    beta = np.array([0.25, -1.0, 4.0], dtype=np.float32)
    y, mean, var = ops.batch_norm_forward_training(x, gamma, beta, 1e-3)
    np.testing.assert_array_equal(mean, x[0])
    np.testing.assert_array_equal(var, np.zeros(3, np.float32))
    np.testing.assert_array_equal(y, beta[None, :])
    dx, dgamma, dbeta = ops.batch_norm_backward(np.ones_like(x), x, gamma, mean, var, 1e-3)
    np.testing.assert_array_equal(dx, np.zeros_like(x))  # one row: y does not depend on x
    np.testing.assert_array_equal(dbeta, np.ones(3, np.float32))
    np.testing.assert_array_equal(dgamma, np.zeros(3, np.float32))


def test_non_contiguous_input():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((4, 9, 8, 12))
    x = base[::2, 1::2, ::-1, 2:9]
    assert not x.flags.c_contiguous
    gamma, beta = _params(7, np.float64, rng)
    y, mean, var = ops.batch_norm_forward_training(x, gamma, beta)
    ry, rmean, rvar = ref.batch_norm_forward_training(x, gamma, beta)
    np.testing.assert_allclose(y, ry, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(var, rvar, rtol=1e-11)
    dy = rng.standard_normal(x.shape)[..., ::-1]
    for a, b in zip(ops.batch_norm_backward(dy, x, gamma, mean, var, 1e-3),
                    ref.batch_norm_backward(dy, x, gamma, mean, var, 1e-3)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ops.batch_norm_forward_inference(x, gamma, beta, mean, var),
                               ref.batch_norm_forward_inference(x, gamma, beta, mean, var), rtol=1e-11)


def test_inputs_are_left_untouched_and_denormal_mode_restored():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((50, 7)).astype(np.float32)
    gamma, beta = _params(7, np.float32, rng)
    dy = rng.standard_normal((50, 7)).astype(np.float32)
    before = [a.copy() for a in (x, gamma, beta, dy)]
    _, mean, var = ops.batch_norm_forward_training(x, gamma, beta)
    ops.batch_norm_forward_inference(x, gamma, beta, mean, var)
    ops.batch_norm_backward(dy, x, gamma, mean, var)
    for a, b in zip((x, gamma, beta, dy), before):
        np.testing.assert_array_equal(a, b)
    # The kernels flush denormals while they run; the caller's mode must be restored.
    tiny = np.array([1e-40], dtype=np.float32)
    assert (tiny * np.float32(1.0))[0] != 0


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
# Row 0 starts a reduction chunk whatever the tiling; 2730 = 8192 // 3 starts the second one
# with the current tiling (a non-finite value there must not poison the chunk's shift).
@pytest.mark.parametrize("row", [0, 5, 2730, 2999])
def test_non_finite_values_propagate_like_reference(value, row):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3000, 3)).astype(np.float32)
    x[row, 1] = value
    gamma, beta = _params(3, np.float32, rng)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    with np.errstate(invalid="ignore"):
        expected = ref.batch_norm_forward_training(x, gamma, beta)
        got = ops.batch_norm_forward_training(x, gamma, beta)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # NaN/Inf must match exactly
        _, mean, var = expected
        for a, b in zip(ops.batch_norm_backward(dy, x, gamma, mean, var),
                        ref.batch_norm_backward(dy, x, gamma, mean, var)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert np.isfinite(got[0][:, [0, 2]]).all()  # the other channels are unaffected


# ---- numerical soundness --------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["ascending", "descending", "outliers first", "steps"])
def test_statistics_do_not_depend_on_the_order_of_the_rows(order):
    # Each tile's sums are taken about the mean of its first rows: rows sorted by value, or a
    # first block of outliers, put that center far from the tile's mean (at most
    # sqrt((rows - k) / k) standard deviations for k of the rows). The variance must stay a
    # float32 rounding away from float64 statistics of the same numbers (a shifted sum with a
    # bad shift, or E[x^2] - E[x]^2, loses digits: ~1e-2 relative here).
    rng = np.random.default_rng(7)
    rows = 64 * 28 * 28
    x = 1e3 + rng.standard_normal((rows, 8))
    if order == "ascending":
        x = np.sort(x, axis=0)
    elif order == "descending":
        x = np.sort(x, axis=0)[::-1]
    elif order == "outliers first":
        x[:16] = 1e4
    else:  # a level per block of 16 rows
        x = 1e3 + np.repeat(rng.standard_normal((rows // 16, 8)) * 100, 16, axis=0) + 0.01 * x
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(64, 28, 28, 8)
    ones, zeros = np.ones(8, np.float32), np.zeros(8, np.float32)
    _, mean, var = ops.batch_norm_forward_training(x, ones, zeros, 1e-3)
    m64, v64 = _stats64(x)
    assert np.all(np.abs(mean - m64) <= 2 * np.spacing(np.abs(m64).astype(np.float32)))
    np.testing.assert_allclose(var, v64, rtol=5e-6)


@pytest.mark.parametrize("offset,spread", [(1e3, 1.0), (1e4, 1.0), (1e3, 1e-3), (-3e3, 0.05)])
def test_large_mean_offset_in_float32(offset, spread):
    # float32 data far from zero: E[x^2] - E[x]^2 in float32 loses every digit of the variance
    # (x^2 ~ 1e8, spacing ~ 8), and a float32 running sum over 50k rows drifts. The kernel's
    # statistics must match float64 statistics of the very same float32 numbers: the mean to
    # within one float32 spacing (correct rounding but for ties), the variance to 1e-6.
    rng = np.random.default_rng(6)
    x = (offset + spread * rng.standard_normal((64, 28, 28, 4))).astype(np.float32)
    gamma = np.ones(4, np.float32)
    beta = np.zeros(4, np.float32)
    y, mean, var = ops.batch_norm_forward_training(x, gamma, beta, 1e-3)
    m64, v64 = _stats64(x)
    assert np.all(np.abs(mean - m64) <= np.spacing(np.abs(m64).astype(np.float32)))
    np.testing.assert_allclose(var, v64, rtol=1e-6)
    # Normalising with those statistics: x - mean must not lose digits either.
    y64 = (x.astype(np.float64) - mean.astype(np.float64)) / np.sqrt(var.astype(np.float64) + 1e-3)
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-5)

    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, var, 1e-3)
    # The float64 reference with the same (float32) statistics the kernel was given.
    dx64, g64, b64 = ref.batch_norm_backward(dy.astype(np.float64), x.astype(np.float64),
                                             gamma.astype(np.float64), mean.astype(np.float64),
                                             var.astype(np.float64), 1e-3)
    np.testing.assert_allclose(dbeta, b64, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(dgamma, g64, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(dx, dx64, rtol=1e-4, atol=1e-4 * np.abs(dx64).max())


# ---- every output element is written ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (3000, 5), (64, 300), (333, 257)])
def test_kernels_write_every_element(shape, dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    gamma, beta = _params(c, dtype, rng)
    dy = rng.standard_normal(shape).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)

    y, mean, var = (np.full(shape, np.nan, dtype), np.full(c, np.nan, dtype), np.full(c, np.nan, dtype))
    core.batch_norm_forward_training(x, gamma, beta, 1e-3, y, mean, var, 2)
    for a, b in zip((y, mean, var), ref.batch_norm_forward_training(x, gamma, beta, 1e-3)):
        np.testing.assert_allclose(a, b, **tol)

    y = np.full(shape, np.nan, dtype)
    core.batch_norm_forward_inference(x, gamma, beta, mean, var, 1e-3, y, 2)
    np.testing.assert_allclose(y, ref.batch_norm_forward_inference(x, gamma, beta, mean, var, 1e-3), **tol)

    dx, dgamma, dbeta = (np.full(shape, np.nan, dtype), np.full(c, np.nan, dtype),
                         np.full(c, np.nan, dtype))
    core.batch_norm_backward(dy, x, gamma, mean, var, 1e-3, dx, dgamma, dbeta, 2)
    for a, b in zip((dx, dgamma, dbeta), ref.batch_norm_backward(dy, x, gamma, mean, var, 1e-3)):
        np.testing.assert_allclose(a, b, **tol)


# ---- thread-count independence ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
# Large enough (> 3 x 32768 elements) that the kernels do use 2 and 3 threads: smaller
# problems run on one thread whatever the setting.
@pytest.mark.parametrize("shape", [(100003, 4), (700, 600), (8, 65, 33, 24)])
def test_results_do_not_depend_on_thread_count(shape, dtype, threads):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal(shape) + 3).astype(dtype)
    gamma, beta = _params(shape[-1], dtype, rng)
    dy = rng.standard_normal(shape).astype(dtype)

    def run():
        y, mean, var = ops.batch_norm_forward_training(x, gamma, beta, 1e-3)
        yi = ops.batch_norm_forward_inference(x, gamma, beta, mean, var, 1e-3)
        return (y, mean, var, yi) + ops.batch_norm_backward(dy, x, gamma, mean, var, 1e-3)

    threads(1)
    one = run()
    for n in (2, 3):
        threads(n)
        for a, b in zip(one, run()):
            assert a.tobytes() == b.tobytes()


# ---- property test ---------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(1, 700), cols=st.integers(1, 300), dtype=st.sampled_from(DTYPES),
       offset=st.sampled_from([0.0, -5.0, 100.0]), seed=st.integers(0, 2**16))
def test_property_matches_reference(rows, cols, dtype, offset, seed):
    rng = np.random.default_rng(seed)
    x = (offset + rng.standard_normal((rows, cols))).astype(dtype)
    gamma, beta = _params(cols, dtype, rng)
    y, mean, var = ops.batch_norm_forward_training(x, gamma, beta, 1e-3)
    m64, v64 = _stats64(x)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(mean, m64, rtol=rtol, atol=rtol * np.sqrt(v64).max() + 1e-12)
    np.testing.assert_allclose(var, v64, rtol=10 * rtol, atol=1e-12)
    y64 = (x.astype(np.float64) - m64) / np.sqrt(v64 + 1e-3) * gamma + beta
    np.testing.assert_allclose(y, y64, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-4 if dtype == np.float32 else 1e-10)
    dy = rng.standard_normal((rows, cols)).astype(dtype)
    tol = dict(rtol=1e-3, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    for a, b in zip(ops.batch_norm_backward(dy, x, gamma, mean, var, 1e-3),
                    ref.batch_norm_backward(dy.astype(np.float64), x.astype(np.float64),
                                            gamma.astype(np.float64), mean.astype(np.float64),
                                            var.astype(np.float64), 1e-3)):
        np.testing.assert_allclose(a, b, **tol)


# ---- bad arguments ---------------------------------------------------------------------------------

X = np.zeros((4, 3), dtype=np.float32)
G = np.ones(3, dtype=np.float32)
B = np.zeros(3, dtype=np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: ops.batch_norm_forward_training(X, np.ones(4, np.float32), B), ValueError, "gamma"),
    (lambda: ops.batch_norm_forward_training(X, np.ones((1, 3)), B), ValueError, "gamma"),
    (lambda: ops.batch_norm_forward_training(X, G, np.zeros(2)), ValueError, "beta"),
    (lambda: ops.batch_norm_forward_training(X, G, B, epsilon=0.0), ValueError, "epsilon"),
    (lambda: ops.batch_norm_forward_training(X, G, B, epsilon=float("nan")), ValueError, "epsilon"),
    (lambda: ops.batch_norm_forward_training(np.zeros(3), G, B), ValueError, "at least 2"),
    (lambda: ops.batch_norm_forward_training(np.zeros((0, 3)), G, B), ValueError, "empty"),
    (lambda: ops.batch_norm_forward_training(X.astype(bool), G, B), TypeError, "dtype"),
    (lambda: ops.batch_norm_forward_inference(X, G, B, np.zeros(2), np.ones(3)), ValueError, "moving_mean"),
    (lambda: ops.batch_norm_forward_inference(X, G, B, np.zeros(3), np.ones(4)), ValueError, "moving_var"),
    (lambda: ops.batch_norm_backward(np.zeros((4, 2)), X, G, B, G), ValueError, "dy"),
    (lambda: ops.batch_norm_backward(X, X, G, np.zeros(4), G), ValueError, "mean"),
    (lambda: ops.batch_norm_backward(X, X, np.ones(2), B, G), ValueError, "gamma"),
])
def test_bad_arguments_through_ops(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _outs(shape=(4, 3), dtype=np.float32):
    return np.empty(shape, dtype), np.empty(shape[1], dtype), np.empty(shape[1], dtype)


@pytest.mark.parametrize("call,error,match", [
    (lambda: core.batch_norm_forward_training(X, G.astype(np.float64), B, 1e-3, *_outs(), 1),
     ValueError, "gamma"),
    (lambda: core.batch_norm_forward_training(X.astype(np.int64), G, B, 1e-3, *_outs(), 1),
     TypeError, "float32"),
    (lambda: core.batch_norm_forward_training(X.reshape(2, 2, 3), G, B, 1e-3, *_outs(), 1),
     ValueError, "2-D"),
    (lambda: core.batch_norm_forward_training(np.asfortranarray(np.zeros((4, 3), np.float32)), G, B,
                                              1e-3, *_outs(), 1), ValueError, "C-contiguous"),
    (lambda: core.batch_norm_forward_training(X, G, B, 1e-3, *_outs((4, 2)), 1), ValueError, "y"),
    (lambda: core.batch_norm_forward_training(X, G, B, -1.0, *_outs(), 1), ValueError, "epsilon"),
    (lambda: core.batch_norm_forward_training(X, G, B, "1e-3", *_outs(), 1), TypeError, "epsilon"),
    (lambda: core.batch_norm_forward_training(X, G, B, 1e-3, *_outs(), 0), ValueError, "num_threads"),
    (lambda: core.batch_norm_forward_training(X, G, B, 1e-3, X, G.copy(), B.copy(), 1),
     ValueError, "overlap"),
    (lambda: core.batch_norm_forward_inference(X, G, B, B, G, 1e-3, np.empty((4, 3)), 1),
     ValueError, "dtype"),
    (lambda: core.batch_norm_backward(X, X, G, B, G, 1e-3, *_outs(), True), ValueError, "num_threads"),
    (lambda: core.batch_norm_backward(X, X, G, B, G, 1e-3, "dx", G.copy(), B.copy(), 1),
     TypeError, "ndarray"),
])
def test_bad_arguments_to_the_kernels(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---- fused with a following ReLU ------------------------------------------------------------------

def _unfused(x, gamma, beta, dy, moving_mean, moving_var):
    """The fused kernels' results computed by the plain kernels and the ReLU kernels in turn."""
    z, mean, var = ops.batch_norm_forward_training(x, gamma, beta, 1e-3)
    back = ops.batch_norm_backward(ops.relu_backward(dy, z), x, gamma, mean, var, 1e-3)
    zi = ops.batch_norm_forward_inference(x, gamma, beta, moving_mean, moving_var, 1e-3)
    factor = (gamma / np.sqrt(moving_var + 1e-3)).astype(x.dtype)
    return ((ops.relu_forward(z), mean, var) + back
            + (ops.relu_forward(zi), ops.relu_backward(dy, zi) * factor))


def _fused(x, gamma, beta, dy, moving_mean, moving_var, lib=ops):
    y, mean, var = lib.batch_norm_relu_forward_training(x, gamma, beta, 1e-3)
    back = lib.batch_norm_relu_backward(dy, x, gamma, beta, mean, var, 1e-3)
    return ((y, mean, var) + tuple(back)
            + (lib.batch_norm_relu_forward_inference(x, gamma, beta, moving_mean, moving_var, 1e-3),
               lib.batch_norm_relu_backward_inference(dy, x, gamma, beta, moving_mean, moving_var,
                                                      1e-3)))


def _fused_case(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    c = shape[-1]
    gamma, beta = _params(c, dtype, rng)
    gamma[::3] *= -1  # negative scales too
    beta[0] = 0.0
    if x.size // c > 1:
        x[..., 0] = 1.25  # a constant channel: its batch-norm output is exactly beta = 0
    dy = rng.standard_normal(shape).astype(dtype)
    moving_mean = rng.standard_normal(c).astype(dtype)
    moving_var = rng.uniform(0.1, 3.0, c).astype(dtype)
    return x, gamma, beta, dy, moving_mean, moving_var


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_relu_equals_plain_kernels_bit_for_bit(shape, dtype):
    case = _fused_case(shape, dtype, 20)
    for got, want in zip(_fused(*case), _unfused(*case)):
        assert got.dtype == want.dtype == dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_relu_matches_reference_composition(shape, dtype):
    x, gamma, beta, dy, mm, mv = _fused_case(shape, dtype, 21)
    # Where a batch-norm output is within rounding of the ReLU's kink, the compiled and the
    # reference values may fall on either side: give those elements no gradient.
    z = ref.batch_norm_forward_training(x, gamma, beta, 1e-3)[0]
    zi = ref.batch_norm_forward_inference(x, gamma, beta, mm, mv, 1e-3)
    dy[((np.abs(z) < 1e-3) & (z != 0)) | (np.abs(zi) < 1e-3)] = 0
    got = _fused(x, gamma, beta, dy, mm, mv)
    want = _fused(x, gamma, beta, dy, mm, mv, lib=ref)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **tol)
    # The reference composition is the definition: relu(bn(x)) and relu' * bn'.
    np.testing.assert_array_equal(want[0], np.maximum(z, 0))
    np.testing.assert_array_equal(
        want[3], ref.batch_norm_backward(dy * (z >= 0), x, gamma, want[1], want[2], 1e-3)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("copies", [1, 4, 8])  # 4, 16 and 32 channels: odd, whole vectors, a strip
def test_fused_relu_special_values(copies, dtype):
    # Exact zeros (both signs), NaN/inf gradients and a NaN input: the fused kernels must treat
    # them as relu_forward / relu_backward do (z >= 0 passes, -0.0 -> +0.0, dy * 0 keeps NaN).
    def channels(rows):
        return np.tile(np.array(rows, dtype=dtype), copies)
    x = channels([[1.0, 2.0, 0.5, 3.0], [1.0, -2.0, 0.5, np.nan], [1.0, 4.0, 0.5, 1.0]])
    gamma = channels([1.0, 1.0, -1.0, 1.0])
    beta = channels([0.0, -5.0, -0.0, 0.0])
    dy = channels([[-1.0, np.inf, -2.0, 1.0], [np.nan, -3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 1.0]])
    mm, mv = np.zeros(4 * copies, dtype), np.ones(4 * copies, dtype)
    with np.errstate(invalid="ignore"):
        got, want = _fused(x, gamma, beta, dy, mm, mv), _unfused(x, gamma, beta, dy, mm, mv)
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
    assert np.signbit(got[0][:, 2::4]).sum() == 0  # -0.0 became +0.0
    assert np.isnan(got[3][:, 1::4]).all()  # inf * 0 (masked) is NaN and spreads through the sums
    assert np.isnan(got[0][1, 3::4]).all() and np.isnan(got[6][1, 3::4]).all()  # NaN x: NaN out


def test_fused_relu_non_contiguous_input():
    rng = np.random.default_rng(22)
    x = rng.standard_normal((4, 9, 8, 12))[::2, 1::2, ::-1, 2:9]
    dy = rng.standard_normal((4, 9, 8, 12))[::2, 1::2, :, 2:9]
    assert not x.flags.c_contiguous and not dy.flags.c_contiguous
    gamma, beta = _params(7, np.float64, rng)
    mm, mv = rng.standard_normal(7), rng.uniform(0.5, 2, 7)
    for got, want in zip(_fused(x, gamma, beta, dy, mm, mv),
                         _unfused(np.ascontiguousarray(x), gamma, beta, np.ascontiguousarray(dy),
                                  mm, mv)):
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(100003, 4), (8, 65, 33, 24)])
def test_fused_relu_does_not_depend_on_thread_count(shape, dtype, threads):
    case = _fused_case(shape, dtype, 23)
    threads(1)
    one = _fused(*case)
    for n in (2, 3):
        threads(n)
        for a, b in zip(one, _fused(*case)):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3000, 5), (333, 257)])
def test_fused_relu_kernels_write_every_element(shape, dtype):
    x, gamma, beta, dy, mm, mv = _fused_case(shape, dtype, 24)
    c = shape[1]
    want = _unfused(x, gamma, beta, dy, mm, mv)
    nan = lambda *s: np.full(s, np.nan, dtype)  # noqa: E731
    y, mean, var = nan(*shape), nan(c), nan(c)
    core.batch_norm_relu_forward_training(x, gamma, beta, 1e-3, y, mean, var, 2)
    dx, dgamma, dbeta = nan(*shape), nan(c), nan(c)
    core.batch_norm_relu_backward(dy, x, gamma, beta, mean, var, 1e-3, dx, dgamma, dbeta, 2)
    yi, dxi = nan(*shape), nan(*shape)
    core.batch_norm_relu_forward_inference(x, gamma, beta, mm, mv, 1e-3, yi, 2)
    factor = (gamma / np.sqrt(mv + 1e-3)).astype(dtype)
    core.batch_norm_relu_backward_inference(dy, x, gamma, beta, mm, mv, 1e-3, factor, dxi, 2)
    for a, b in zip((y, mean, var, dx, dgamma, dbeta, yi, dxi), want):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_streamed_outputs_hold_the_stored_values(shape, dtype):
    """Outputs past the non-temporal-store threshold (batchnorm.h) are the same bits: threshold
    0 streams every output whose rows are whole 64-byte lines (32, 16, 48 float32 channels;
    the others are stored as usual), against the default (none here): plain and fused kernels,
    training and inference forwards, backwards."""
    case = _fused_case(shape, dtype, 25)
    results = []
    previous = core._set_stream_min_bytes()
    try:
        for threshold in (0, None):
            core._set_stream_min_bytes(threshold)
            results.append(_fused(*case) + _unfused(*case))
    finally:
        core._set_stream_min_bytes(previous)
    for i, (streamed, stored) in enumerate(zip(*results)):
        assert streamed.tobytes() == stored.tobytes(), i


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 8, 16, 32, 40])  # bytes past a 64-byte line
@pytest.mark.parametrize("channels", [32, 24])  # rows whole 64-byte lines apart, or not
def test_streamed_outputs_at_any_alignment(offset, channels, dtype):
    """Non-temporal stores need aligned addresses (and are used for whole lines only): outputs
    that start anywhere (a caller's views) are streamed where their rows are whole lines from
    a line and stored otherwise; every element is written."""
    x, gamma, beta, dy, _, _ = _fused_case((37, channels), dtype, 26)
    size, shift = x.size, offset // np.dtype(dtype).itemsize

    def view():
        out = cpu.empty_aligned(size + 16, dtype)[shift:shift + size].reshape(x.shape)
        out[...] = np.nan
        return out
    y, dx = view(), view()
    mean, var = np.empty(channels, dtype), np.empty(channels, dtype)
    dgamma, dbeta = np.empty(channels, dtype), np.empty(channels, dtype)
    previous = core._set_stream_min_bytes(0)
    try:
        core.batch_norm_relu_forward_training(x, gamma, beta, 1e-3, y, mean, var, 2)
        core.batch_norm_relu_backward(dy, x, gamma, beta, mean, var, 1e-3, dx, dgamma, dbeta, 2)
    finally:
        core._set_stream_min_bytes(previous)
    want_y, want_mean, want_var = ops.batch_norm_relu_forward_training(x, gamma, beta, 1e-3)
    want_dx = ops.batch_norm_relu_backward(dy, x, gamma, beta, want_mean, want_var, 1e-3)[0]
    assert y.tobytes() == want_y.tobytes() and dx.tobytes() == want_dx.tobytes()


def test_fused_relu_backward_matches_finite_differences():
    # L = sum(w * relu(bn(x))) with batch statistics, float64; no output near the kink.
    rng = np.random.default_rng(25)
    shape = (3, 2, 3, 4)
    x = rng.standard_normal(shape)
    gamma, beta = _params(4, np.float64, rng)
    beta *= 0.3
    w = rng.standard_normal(shape)
    eps = 1e-3
    y, mean, var = ops.batch_norm_relu_forward_training(x, gamma, beta, eps)
    z = ops.batch_norm_forward_training(x, gamma, beta, eps)[0]
    assert np.abs(z).min() > 1e-3 and (y == 0).any() and (y > 0).any()
    dx, dgamma, dbeta = ops.batch_norm_relu_backward(w, x, gamma, beta, mean, var, eps)

    def loss(xv, gv, bv):
        return np.sum(w * ops.batch_norm_relu_forward_training(xv, gv, bv, eps)[0])

    _assert_matches_centred_differences(loss, (x, gamma, beta), (dx, dgamma, dbeta))


@pytest.mark.parametrize("call,error,match", [
    (lambda: ops.batch_norm_relu_forward_training(X, G, np.zeros(2)), ValueError, "beta"),
    (lambda: ops.batch_norm_relu_forward_training(X, G, B, epsilon=-1.0), ValueError, "epsilon"),
    (lambda: ops.batch_norm_relu_forward_inference(X, G, B, np.zeros(2), G), ValueError, "moving_mean"),
    (lambda: ops.batch_norm_relu_backward(np.zeros((4, 2)), X, G, B, B, G), ValueError, "dy"),
    (lambda: ops.batch_norm_relu_backward(X, X, G, np.zeros(4), B, G), ValueError, "beta"),
    (lambda: ops.batch_norm_relu_backward(X, X, G, B, B, np.ones(2)), ValueError, "var"),
    (lambda: ops.batch_norm_relu_backward_inference(X, X, G, B, B, np.ones(5)), ValueError, "moving_var"),
    (lambda: ops.batch_norm_relu_backward_inference(X.astype(bool), X, G, B, B, G), TypeError, "dy"),
    (lambda: core.batch_norm_relu_backward(X, X, G, B, B, G, 1e-3, *_outs(), 0), ValueError,
     "num_threads"),
    (lambda: core.batch_norm_relu_backward(X, X, G, np.zeros(3), B, G, 1e-3, *_outs(), 1),
     ValueError, "beta"),
    (lambda: core.batch_norm_relu_backward_inference(X, X, G, B, B, G, 1e-3, G[:2], X.copy(), 1),
     ValueError, "factor"),
    (lambda: core.batch_norm_relu_backward_inference(X, X, G, B, B, G, 1e-3, G, X, 1),
     ValueError, "overlap"),
    (lambda: core.batch_norm_relu_forward_inference(X, G, B, B, G, 1e-3, np.empty((4, 3)), 1),
     ValueError, "dtype"),
])
def test_fused_relu_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---- every ISA path ----------------------------------------------------------------------------------

ISA_SCRIPT = textwrap.dedent(
    """
    import hashlib
    import sys
    import numpy as np
    from fastconv import ops, reference as ref
    from fastconv._core import cpu
    assert cpu.isa_name() == sys.argv[1], (cpu.isa_name(), sys.argv[1])
    rng = np.random.default_rng(0)
    digest = hashlib.sha1()
    # Channel counts around the vector widths and the segment / column-block sizes.
    for shape in [(3, 5, 7, 32), (40, 17), (9, 600), (700, 3), (2, 4, 4, 300)]:
        for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-11)):
            x = (rng.standard_normal(shape) + 2).astype(dtype)
            c = shape[-1]
            gamma = rng.standard_normal(c).astype(dtype)
            beta = rng.standard_normal(c).astype(dtype)
            dy = rng.standard_normal(shape).astype(dtype)
            y, mean, var = ops.batch_norm_forward_training(x, gamma, beta, 1e-3)
            got = (y, mean, var, ops.batch_norm_forward_inference(x, gamma, beta, mean, var, 1e-3))
            got += ops.batch_norm_backward(dy, x, gamma, mean, var, 1e-3)
            want = ref.batch_norm_forward_training(x, gamma, beta, 1e-3)
            want += (ref.batch_norm_forward_inference(x, gamma, beta, mean, var, 1e-3),)
            want += ref.batch_norm_backward(dy, x, gamma, mean, var, 1e-3)
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
                digest.update(a.tobytes())
            # Fused with a ReLU: the plain kernels and the ReLU kernels in turn, bit for bit.
            z = got[0]
            fused = ops.batch_norm_relu_forward_training(x, gamma, beta, 1e-3)
            fused += ops.batch_norm_relu_backward(dy, x, gamma, beta, mean, var, 1e-3)
            fused += (ops.batch_norm_relu_forward_inference(x, gamma, beta, beta, var, 1e-3),
                      ops.batch_norm_relu_backward_inference(dy, x, gamma, beta, beta, var, 1e-3))
            zi = ops.batch_norm_forward_inference(x, gamma, beta, beta, var, 1e-3)
            plain = (ops.relu_forward(z), mean, var)
            plain += ops.batch_norm_backward(ops.relu_backward(dy, z), x, gamma, mean, var, 1e-3)
            plain += (ops.relu_forward(zi),
                      ops.relu_backward(dy, zi) * (gamma / np.sqrt(var + 1e-3)).astype(dtype))
            for a, b in zip(fused, plain):
                assert a.tobytes() == b.tobytes()
                digest.update(a.tobytes())
    print("ok", cpu.isa_name(), digest.hexdigest())
    """
)


def test_every_isa_path_matches_reference_and_the_others():
    digests = set()
    for isa in cpu.isa_available():
        env = dict(os.environ, FASTCONV_ISA=isa, PYTHONPATH=ROOT)
        proc = subprocess.run([sys.executable, "-c", ISA_SCRIPT, isa], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        word, name, digest = proc.stdout.split()
        assert (word, name) == ("ok", isa)
        digests.add(digest)
    assert len(digests) == 1


def _assert_matches_centred_differences(loss, inputs, gradients, h=1e-6):
    """Each gradient against centred differences of loss(*inputs) in that input (float64)."""
    for k, (value, analytic) in enumerate(zip(inputs, gradients)):
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + h
            up = loss(*inputs)
            value[idx] = old - h
            down = loss(*inputs)
            value[idx] = old
            numeric[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=f"input {k}")
