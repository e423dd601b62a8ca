"""The compiled pooling kernels (fastconv.ops / fastconv._core.pool) against fastconv.reference.

Covers max/average pooling and global pooling, forward and backward, float32 and float64:
odd sizes, overlapping windows, stride > pool, non-square windows, 'valid' and 'same', batch 1,
one and many channels, non-contiguous input, ties (first-max rule), NaN, outputs prefilled
with NaN (every element must be written), thread-count independence, finite differences and
bad arguments. The argmax pair (max_pool2d_forward_with_argmax /
max_pool2d_backward_from_argmax) is held to the same standard, plus: its backward equals the
backward that re-reads x bit for bit, MaxPooling2D trains through it, and every ISA path
(FASTCONV_ISA) gives the reference's results.
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
from fastconv import _validation as V
from fastconv import ops
from fastconv import reference as ref
from fastconv._core import cpu
from fastconv._core import pool as core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DTYPES = [np.float32, np.float64]

# (input shape, pool_size, strides, padding)
CASES = [
    ((2, 7, 9, 5), 2, None, "valid"),        # odd sizes: last row/column not covered
    ((2, 7, 9, 5), 2, None, "same"),         # odd sizes, padded bottom/right
    ((1, 8, 8, 3), 3, 1, "same"),            # overlap, batch 1
    ((1, 9, 10, 2), 3, 2, "valid"),          # overlap with stride 2
    ((3, 10, 11, 1), (2, 3), (3, 2), "valid"),  # non-square pool and strides, C=1
    ((2, 9, 7, 4), 2, 3, "valid"),           # stride > pool: pixels in no window
    ((2, 9, 7, 4), 2, 3, "same"),
    ((1, 5, 6, 300), 3, 2, "same"),          # many channels (more than one block of 256)
    ((2, 6, 5, 7), (3, 1), (1, 2), "same"),
    ((1, 4, 4, 2), 4, 1, "valid"),           # one window covers everything
    ((2, 13, 1, 3), (3, 1), (2, 1), "same"),  # width 1
    ((1, 3, 3, 2), 5, 1, "same"),            # window larger than the input, heavy padding
    ((1, 3, 4, 2), 5, 2, "same"),
    ((1, 11, 3, 33), (4, 2), (1, 1), "same"),  # tall window, many overlapping rows
    ((2, 7, 9, 32), 3, 2, "same"),           # whole register vectors only (16 float / 8 double)
    ((1, 6, 7, 20), 2, None, "valid"),       # one vector + a per-channel tail
]
CASE_IDS = [f"{s}-p{p}-s{t}-{pad}" for s, p, t, pad in CASES]

GLOBAL_SHAPES = [(1, 1, 1, 1), (2, 5, 7, 3), (1, 3, 4, 300), (3, 1, 9, 2), (2, 6, 6, 17)]


def _tol(dtype):
    return dict(rtol=2e-6, atol=2e-6) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _random(shape, dtype, rng):
    return rng.standard_normal(shape).astype(dtype)


def _small_ints(shape, dtype, rng, high=3):
    """Values with many exact ties (and sums that are exact in any order)."""
    return rng.integers(0, high, size=shape).astype(dtype)


def _out_shape(shape, pool, strides, padding):
    return V.pool_geometry(shape, pool, strides, padding).output_shape + (shape[3],)


def _core_args(shape, pool, strides, padding):
    geo = V.pool_geometry(shape, pool, strides, padding)
    (pt, pb), (pl, pr) = geo.padding
    return (geo.kh, geo.kw), geo.strides, (pt, pb, pl, pr)


@pytest.fixture
def threads():
    """Set the thread count for one test and restore the previous setting afterwards."""
    previous = fastconv.backend._num_threads
    yield fastconv.set_num_threads
    fastconv.set_num_threads(previous)


# ---- forward and backward against the reference -------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", CASES, ids=CASE_IDS)
def test_max_pool_matches_reference(shape, pool, strides, padding, dtype):
    rng = np.random.default_rng(1)
    x = _random(shape, dtype, rng)
    y = ops.max_pool2d_forward(x, pool, strides, padding)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, ref.max_pool2d_forward(x, pool, strides, padding))
    dy = _random(y.shape, dtype, rng)
    dx = ops.max_pool2d_backward(dy, x, pool, strides, padding)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, ref.max_pool2d_backward(dy, x, pool, strides, padding), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", CASES, ids=CASE_IDS)
def test_max_pool_ties_take_first_maximum(shape, pool, strides, padding, dtype):
    # Integer data in {0, 1, 2}: nearly every window has tied maxima. Integer dy keeps every
    # sum exact, so the result must equal the reference exactly: a different tie-break would
    # move a gradient to another pixel.
    rng = np.random.default_rng(2)
    x = _small_ints(shape, dtype, rng)
    y = ops.max_pool2d_forward(x, pool, strides, padding)
    np.testing.assert_array_equal(y, ref.max_pool2d_forward(x, pool, strides, padding))
    dy = rng.integers(-4, 5, size=y.shape).astype(dtype)
    np.testing.assert_array_equal(ops.max_pool2d_backward(dy, x, pool, strides, padding),
                                  ref.max_pool2d_backward(dy, x, pool, strides, padding))


@pytest.mark.parametrize("ties", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", CASES, ids=CASE_IDS)
def test_max_pool_argmax_matches_reference(shape, pool, strides, padding, dtype, ties):
    rng = np.random.default_rng(21)
    x = _small_ints(shape, dtype, rng) if ties else _random(shape, dtype, rng)
    y, argmax = ops.max_pool2d_forward_with_argmax(x, pool, strides, padding)
    y_ref, argmax_ref = ref.max_pool2d_forward_with_argmax(x, pool, strides, padding)
    assert argmax.dtype == np.uint8 and argmax.shape == y.shape and y.dtype == dtype
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dy = rng.integers(-4, 5, size=y.shape).astype(dtype) if ties else _random(y.shape, dtype, rng)
    dx = ops.max_pool2d_backward_from_argmax(dy, argmax, shape, pool, strides, padding)
    assert dx.dtype == dtype and dx.shape == shape
    want = ref.max_pool2d_backward_from_argmax(dy, argmax_ref, shape, pool, strides, padding)
    # The argmax pair is the same function as the pair that re-reads x.
    np.testing.assert_array_equal(want, ref.max_pool2d_backward(dy, x, pool, strides, padding))
    if ties:  # integer sums are exact in any order
        np.testing.assert_array_equal(dx, want)
    else:
        np.testing.assert_allclose(dx, want, **_tol(dtype))
    # Same additions in the same order as the compiled backward that re-reads x.
    assert dx.tobytes() == ops.max_pool2d_backward(dy, x, pool, strides, padding).tobytes()


def test_argmax_counts_taps_from_the_padded_corner():
    # 'same' 3x3 windows, stride 1, on a 2x2 input: window (0, 0) starts at (-1, -1), so the
    # real pixel (r, c) is tap (r + 1) * 3 + (c + 1) of it.
    x = np.array([1.0, 4.0, 3.0, 2.0]).reshape(1, 2, 2, 1)
    for impl in (ops, ref):
        y, argmax = impl.max_pool2d_forward_with_argmax(x, 3, 1, "same")
        np.testing.assert_array_equal(y[..., 0], [[[4.0, 4.0], [4.0, 4.0]]])
        # Window (oh, ow) starts at (oh - 1, ow - 1); the 4.0 sits at (0, 1).
        np.testing.assert_array_equal(argmax[..., 0], [[[5, 4], [2, 1]]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_argmax_of_a_nan_window_is_255_and_takes_no_gradient(dtype):
    rng = np.random.default_rng(22)
    x = _random((2, 6, 7, 19), dtype, rng)  # 19 channels: vector lanes and a tail
    x[0, 1, 1, 0] = np.nan
    x[0, 2, 3, 17] = np.nan
    x[1, 4, 6, 18] = np.nan
    x[1, 0, 0, 1] = np.inf
    x[1, 5, 5, 1] = np.nan
    for pool, strides, padding in [(2, None, "same"), (3, 1, "valid"), (3, 2, "same")]:
        y, argmax = ops.max_pool2d_forward_with_argmax(x, pool, strides, padding)
        y_ref, argmax_ref = ref.max_pool2d_forward_with_argmax(x, pool, strides, padding)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(argmax, argmax_ref)
        assert (argmax[np.isnan(y)] == 255).all() and (argmax[~np.isnan(y)] < 255).all()
        dy = _random(y.shape, dtype, rng)
        np.testing.assert_allclose(
            ops.max_pool2d_backward_from_argmax(dy, argmax, x.shape, pool, strides, padding),
            ref.max_pool2d_backward(dy, x, pool, strides, padding), **_tol(dtype))


def test_argmax_backward_ignores_taps_outside_the_real_window():
    # A hand-made argmax may name padding taps or values past the window: nothing receives
    # those gradients (neither in the kernel nor in the reference), and nothing is read out
    # of bounds.
    shape = (1, 3, 3, 2)
    y, argmax = ref.max_pool2d_forward_with_argmax(np.zeros(shape), 3, 1, "same")
    argmax = np.random.default_rng(23).integers(0, 256, size=argmax.shape).astype(np.uint8)
    argmax[0, 0, 0, :] = 0  # window (0, 0)'s tap 0 is padding
    dy = np.arange(1.0, 1.0 + y.size).reshape(y.shape)
    got = ops.max_pool2d_backward_from_argmax(dy, argmax, shape, 3, 1, "same")
    np.testing.assert_array_equal(
        got, ref.max_pool2d_backward_from_argmax(dy, argmax, shape, 3, 1, "same"))


def test_argmax_padding_never_takes_the_gradient():
    x = np.full((1, 3, 4, 1), -np.inf)
    dy = np.arange(1.0, 13.0).reshape(1, 3, 4, 1)
    y, argmax = ops.max_pool2d_forward_with_argmax(x, 3, 1, "same")
    np.testing.assert_array_equal(y, np.full((1, 3, 4, 1), -np.inf))
    np.testing.assert_array_equal(ops.max_pool2d_backward_from_argmax(dy, argmax, x.shape, 3, 1, "same"),
                                  ops.max_pool2d_backward(dy, x, 3, 1, "same"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", CASES, ids=CASE_IDS)
def test_avg_pool_matches_reference(shape, pool, strides, padding, dtype):
    rng = np.random.default_rng(3)
    x = _random(shape, dtype, rng)
    y = ops.avg_pool2d_forward(x, pool, strides, padding)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_allclose(y, ref.avg_pool2d_forward(x, pool, strides, padding), **_tol(dtype))
    dy = _random(y.shape, dtype, rng)
    dx = ops.avg_pool2d_backward(dy, shape, pool, strides, padding)
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, ref.avg_pool2d_backward(dy, shape, pool, strides, padding),
                               **_tol(dtype))


def test_avg_pool_same_divides_by_real_pixels():
    # 3x3 input of ones, 2x2 windows, 'same': every window average is exactly 1, padded or not.
    x = np.ones((1, 3, 3, 1))
    np.testing.assert_array_equal(ops.avg_pool2d_forward(x, 2, None, "same"), np.ones((1, 2, 2, 1)))
    # The bottom-right window holds one real pixel: its gradient goes there undivided.
    dy = np.zeros((1, 2, 2, 1))
    dy[0, 1, 1, 0] = 8.0
    dx = ops.avg_pool2d_backward(dy, x.shape, 2, None, "same")
    expected = np.zeros((1, 3, 3, 1))
    expected[0, 2, 2, 0] = 8.0
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_pooling_matches_reference(shape, dtype):
    rng = np.random.default_rng(4)
    x = _random(shape, dtype, rng)
    dy = _random((shape[0], shape[3]), dtype, rng)
    np.testing.assert_allclose(ops.global_avg_pool2d_forward(x), ref.global_avg_pool2d_forward(x),
                               **_tol(dtype))
    np.testing.assert_array_equal(ops.global_avg_pool2d_backward(dy, shape),
                                  ref.global_avg_pool2d_backward(dy, shape))
    np.testing.assert_array_equal(ops.global_max_pool2d_forward(x), ref.global_max_pool2d_forward(x))
    np.testing.assert_array_equal(ops.global_max_pool2d_backward(dy, x),
                                  ref.global_max_pool2d_backward(dy, x))
    # Ties: the first maximal pixel in row-major order takes the gradient.
    xt = _small_ints(shape, dtype, rng)
    np.testing.assert_array_equal(ops.global_max_pool2d_forward(xt), ref.global_max_pool2d_forward(xt))
    np.testing.assert_array_equal(ops.global_max_pool2d_backward(dy, xt),
                                  ref.global_max_pool2d_backward(dy, xt))


def test_global_avg_pool_accumulates_accurately():
    # 100 x 100 pixels of 0.1 in float32: a float32 running sum drifts, a double one does not.
    x = np.full((1, 100, 100, 3), 0.1, dtype=np.float32)
    np.testing.assert_allclose(ops.global_avg_pool2d_forward(x), np.float32(0.1), rtol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_propagates_like_reference(dtype):
    rng = np.random.default_rng(5)
    shape = (2, 6, 7, 3)
    x = _random(shape, dtype, rng)
    x[0, 1, 1, 0] = np.nan
    x[1, 4, 6, 2] = np.nan
    x[1, 0, 0, 1] = np.inf
    x[1, 5, 5, 1] = np.nan  # an inf before a NaN: argmax (the reference) picks the NaN
    for pool, strides, padding in [(2, None, "same"), (3, 1, "valid")]:
        y = ops.max_pool2d_forward(x, pool, strides, padding)
        np.testing.assert_array_equal(y, ref.max_pool2d_forward(x, pool, strides, padding))
        assert np.isnan(y).any()
        dy = _random(y.shape, dtype, rng)
        np.testing.assert_allclose(ops.max_pool2d_backward(dy, x, pool, strides, padding),
                                   ref.max_pool2d_backward(dy, x, pool, strides, padding),
                                   **_tol(dtype))
    np.testing.assert_array_equal(ops.global_max_pool2d_forward(x), ref.global_max_pool2d_forward(x))
    dy = _random((2, 3), dtype, rng)
    np.testing.assert_array_equal(ops.global_max_pool2d_backward(dy, x),
                                  ref.global_max_pool2d_backward(dy, x))


def test_padding_never_takes_the_gradient():
    # All-(-inf) input: every real pixel ties with the -inf padding of the reference. The
    # kernel only considers real pixels, so each window's first real pixel gets the gradient.
    x = np.full((1, 3, 4, 1), -np.inf)
    dy = np.arange(1.0, 13.0).reshape(1, 3, 4, 1)
    dx = ops.max_pool2d_backward(dy, x, 3, 1, "same")  # pads (1, 1) on each axis
    expected = np.zeros_like(x)
    for oh in range(3):
        for ow in range(4):
            expected[0, max(oh - 1, 0), max(ow - 1, 0), 0] += dy[0, oh, ow, 0]
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(ops.max_pool2d_forward(x, 3, 1, "same"), np.full((1, 3, 4, 1), -np.inf))


def test_non_contiguous_input():
    rng = np.random.default_rng(6)
    base = rng.standard_normal((3, 12, 10, 8))
    x = base[::2, 1::2, ::-1, 1:6]  # strided, reversed and cropped view
    assert not x.flags.c_contiguous
    for pool, strides, padding in [(2, None, "valid"), (3, 2, "same")]:
        np.testing.assert_array_equal(ops.max_pool2d_forward(x, pool, strides, padding),
                                      ref.max_pool2d_forward(x, pool, strides, padding))
        np.testing.assert_allclose(ops.avg_pool2d_forward(x, pool, strides, padding),
                                   ref.avg_pool2d_forward(x, pool, strides, padding), rtol=1e-12)
        dy = rng.standard_normal(_out_shape(x.shape, pool, strides, padding))[..., ::-1]
        np.testing.assert_allclose(ops.max_pool2d_backward(dy, x, pool, strides, padding),
                                   ref.max_pool2d_backward(dy, x, pool, strides, padding), rtol=1e-12)
        np.testing.assert_allclose(ops.avg_pool2d_backward(dy, x.shape, pool, strides, padding),
                                   ref.avg_pool2d_backward(dy, x.shape, pool, strides, padding),
                                   rtol=1e-12)
    np.testing.assert_array_equal(ops.global_max_pool2d_forward(x), ref.global_max_pool2d_forward(x))
    np.testing.assert_allclose(ops.global_avg_pool2d_forward(x), ref.global_avg_pool2d_forward(x),
                               rtol=1e-12)


def test_integer_and_float16_input_follow_the_reference_dtypes():
    x = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
    y = ops.max_pool2d_forward(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, ref.max_pool2d_forward(x))
    y16 = ops.avg_pool2d_forward(x.astype(np.float16))
    assert y16.dtype == np.float32


def test_inputs_are_left_untouched_and_denormal_mode_restored():
    rng = np.random.default_rng(13)
    x = _random((2, 9, 8, 6), np.float32, rng)
    x_before = x.copy()
    dy = _random((2, 3, 3, 6), np.float32, rng)
    dy_before = dy.copy()
    ops.max_pool2d_backward(dy, x, 3, None, "same")
    ops.avg_pool2d_forward(x, 3, 2, "same")
    ops.avg_pool2d_backward(dy, x.shape, 3, None, "same")
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dy, dy_before)
    # The kernels flush denormals while they run; the caller's floating-point mode must be
    # restored, or numpy would silently flush them afterwards too.
    tiny = np.array([1e-40], dtype=np.float32)
    assert (tiny * np.float32(1.0))[0] != 0
    assert (tiny + tiny)[0] > tiny[0]


# ---- finite differences (float64) ----------------------------------------------------------------

def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = f(x)
        x[idx] = old - eps
        down = f(x)
        x[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("pool,strides,padding", [(2, None, "same"), (3, 2, "same"), ((2, 3), 1, "valid")])
def test_backward_matches_finite_differences(pool, strides, padding):
    rng = np.random.default_rng(7)
    # Distinct values spaced well above eps: the argmax does not move under the perturbation.
    shape = (2, 5, 6, 2)
    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.01
    w = rng.standard_normal(_out_shape(shape, pool, strides, padding))

    dx = ops.max_pool2d_backward(w, x, pool, strides, padding)
    num = _numeric_grad(lambda v: np.sum(w * ops.max_pool2d_forward(v, pool, strides, padding)), x)
    np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-7)
    argmax = ops.max_pool2d_forward_with_argmax(x, pool, strides, padding)[1]
    dx = ops.max_pool2d_backward_from_argmax(w, argmax, shape, pool, strides, padding)
    np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-7)

    dx = ops.avg_pool2d_backward(w, shape, pool, strides, padding)
    num = _numeric_grad(lambda v: np.sum(w * ops.avg_pool2d_forward(v, pool, strides, padding)), x)
    np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-7)


def test_global_backward_matches_finite_differences():
    rng = np.random.default_rng(8)
    shape = (2, 3, 4, 3)
    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.01
    w = rng.standard_normal((2, 3))
    num = _numeric_grad(lambda v: np.sum(w * ops.global_max_pool2d_forward(v)), x)
    np.testing.assert_allclose(ops.global_max_pool2d_backward(w, x), num, rtol=1e-7, atol=1e-7)
    num = _numeric_grad(lambda v: np.sum(w * ops.global_avg_pool2d_forward(v)), x)
    np.testing.assert_allclose(ops.global_avg_pool2d_backward(w, shape), num, rtol=1e-7, atol=1e-7)


# ---- every output element is written ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", CASES, ids=CASE_IDS)
def test_kernels_write_every_element(shape, pool, strides, padding, dtype):
    # Outputs prefilled with NaN go straight to the kernels: a skipped element stays NaN.
    rng = np.random.default_rng(9)
    x = _random(shape, dtype, rng)
    args = _core_args(shape, pool, strides, padding)
    out_shape = _out_shape(shape, pool, strides, padding)
    dy = _random(out_shape, dtype, rng)

    out = np.full(out_shape, np.nan, dtype=dtype)
    core.max_pool2d_forward(x, out, *args, 2)
    np.testing.assert_array_equal(out, ref.max_pool2d_forward(x, pool, strides, padding))
    out = np.full(out_shape, np.nan, dtype=dtype)
    core.avg_pool2d_forward(x, out, *args, 2)
    np.testing.assert_allclose(out, ref.avg_pool2d_forward(x, pool, strides, padding), **_tol(dtype))
    dx = np.full(shape, np.nan, dtype=dtype)
    core.max_pool2d_backward(dy, x, dx, *args, 2)
    np.testing.assert_allclose(dx, ref.max_pool2d_backward(dy, x, pool, strides, padding), **_tol(dtype))
    dx = np.full(shape, np.nan, dtype=dtype)
    core.avg_pool2d_backward(dy, dx, *args, 2)
    np.testing.assert_allclose(dx, ref.avg_pool2d_backward(dy, shape, pool, strides, padding),
                               **_tol(dtype))
    out = np.full(out_shape, np.nan, dtype=dtype)
    argmax = np.full(out_shape, 254, dtype=np.uint8)  # a valid-looking tap where unwritten
    core.max_pool2d_forward_argmax(x, out, argmax, *args, 2)
    y_ref, argmax_ref = ref.max_pool2d_forward_with_argmax(x, pool, strides, padding)
    np.testing.assert_array_equal(out, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dx = np.full(shape, np.nan, dtype=dtype)
    core.max_pool2d_backward_argmax(dy, argmax, dx, *args, 2)
    np.testing.assert_allclose(dx, ref.max_pool2d_backward(dy, x, pool, strides, padding), **_tol(dtype))


# Channels whole 64-byte lines or not (16, 32, 48 float32; 20). Windows that do not overlap
# (their dx streamed as it is assigned), then overlapping ones (accumulated in a stage of a few
# rows per thread, streamed out as rows are finished; a batch of 16 has one band per image, so
# its stage slides down the image).
STREAM_CASES = [
    ((2, 7, 9, 32), 2, None, "valid"),   # odd sizes: the last row and column in no window
    ((2, 8, 6, 16), 2, None, "same"),
    ((2, 9, 7, 48), 2, 3, "valid"),      # stride > pool: pixels in no window
    ((1, 7, 8, 16), 3, 3, "same"),       # 3x3/3, padded
    ((2, 6, 8, 20), 2, None, "valid"),   # rows of channels not whole lines (float32)
    ((2, 10, 11, 32), 3, 2, "valid"),    # 3x3/2: the last row and column in no window
    ((1, 9, 8, 16), 3, 2, "same"),       # batch 1, padded: several bands per image
    ((16, 13, 5, 16), 3, 2, "valid"),    # one band per image: the stage slides
    ((16, 9, 4, 48), 3, 1, "same"),      # stride 1: three windows on each row
    ((16, 11, 6, 16), (5, 3), 2, "same"),  # windows reaching two output rows up
    ((16, 11, 7, 32), (2, 3), (3, 2), "valid"),  # overlapping columns, rows in no window
    ((2, 9, 7, 20), 3, 2, "valid"),      # overlapping, rows not whole lines (float32)
    ((4, 33, 5, 16), 3, 2, "valid"),     # bands of 4 output rows from mid-image: slides there
    ((2, 9, 8, 32), (2, 3), 2, "valid"),  # rows of windows meet, columns overlap
    ((1, 9, 9, 16), 5, 1, "same"),       # batch 1, 5x5/1 padded: empty bands at the top
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", STREAM_CASES)
def test_streamed_dx_holds_the_stored_values(shape, pool, strides, padding, dtype):
    """A dx past the non-temporal-store threshold (pool2d.h) is the same bits: threshold 0
    streams every backward whose pixels' channels are whole 64-byte lines (disjoint windows
    with AVX-512, overlapping ones staged on every ISA), against the default (none here): max
    from the argmax, max from x, and average."""
    rng = np.random.default_rng(31)
    x = _random(shape, dtype, rng)
    dy = _random(_out_shape(shape, pool, strides, padding), dtype, rng)
    results = []
    previous = core._set_stream_min_bytes()
    try:
        for threshold in (0, None):
            core._set_stream_min_bytes(threshold)
            _, argmax = ops.max_pool2d_forward_with_argmax(x, pool, strides, padding)
            results.append((ops.max_pool2d_backward_from_argmax(dy, argmax, shape, pool, strides, padding),
                            ops.max_pool2d_backward(dy, x, pool, strides, padding),
                            ops.avg_pool2d_backward(dy, shape, pool, strides, padding)))
    finally:
        core._set_stream_min_bytes(previous)
    for name, streamed, stored in zip(("max argmax", "max", "avg"), *results):
        assert streamed.tobytes() == stored.tobytes(), name
    want_max = ref.max_pool2d_backward(dy, x, pool, strides, padding)
    np.testing.assert_allclose(results[0][0], want_max, **_tol(dtype))
    np.testing.assert_allclose(results[0][1], want_max, **_tol(dtype))
    np.testing.assert_allclose(results[0][2], ref.avg_pool2d_backward(dy, shape, pool, strides, padding),
                               **_tol(dtype))


def _argmax_problem(shape, pool, strides, dtype, seed):
    """x, the kernels' geometry arguments, dy and the argmax of a "valid" pooling."""
    rng = np.random.default_rng(seed)
    x = _random(shape, dtype, rng)
    args = _core_args(shape, pool, strides, "valid")
    out_shape = _out_shape(shape, pool, strides, "valid")
    dy = _random(out_shape, dtype, rng)
    y, argmax = np.empty(out_shape, dtype), np.empty(out_shape, np.uint8)
    core.max_pool2d_forward_argmax(x, y, argmax, *args, 1)
    return x, args, dy, argmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool,strides", [(3, 2), (3, 1), (2, None)])
def test_streamed_dx_is_the_same_on_any_thread_count(pool, strides, dtype):
    """Each thread stages (or streams) its own bands: large enough for 3 threads, every
    backward streamed (threshold 0) gives the stored bits on 1, 2 and 3 threads."""
    shape = (8, 33, 17, 32)
    x, args, dy, argmax = _argmax_problem(shape, pool, strides, dtype, 33)

    def backwards(threads):
        dxs = [cpu.empty_aligned(shape, dtype) for _ in range(3)]
        for dx in dxs:
            dx[...] = np.nan
        core.max_pool2d_backward_argmax(dy, argmax, dxs[0], *args, threads)
        core.max_pool2d_backward(dy, x, dxs[1], *args, threads)
        core.avg_pool2d_backward(dy, dxs[2], *args, threads)
        return [dx.tobytes() for dx in dxs]
    stored = backwards(1)
    previous = core._set_stream_min_bytes(0)
    try:
        streamed = {threads: backwards(threads) for threads in (1, 2, 3)}
    finally:
        core._set_stream_min_bytes(previous)
    for threads, got in streamed.items():
        assert got == stored, threads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 8, 16, 32, 40])  # bytes past a 64-byte line
@pytest.mark.parametrize("channels", [32, 24])  # pixels whole 64-byte lines apart, or not
@pytest.mark.parametrize("pool,strides", [(2, None), (3, 2)])  # disjoint / overlapping windows
def test_streamed_dx_at_any_alignment(pool, strides, offset, channels, dtype):
    """Non-temporal stores need aligned addresses (and are used for whole lines only): a dx
    that starts anywhere (a caller's view) is streamed where its pixels are whole lines from a
    line and stored otherwise; every element is written."""
    shape = (2, 7, 6, channels)
    x, args, dy, argmax = _argmax_problem(shape, pool, strides, dtype, 32)
    size, shift = x.size, offset // np.dtype(dtype).itemsize

    def view():
        dx = cpu.empty_aligned(size + 16, dtype)[shift:shift + size].reshape(shape)
        dx[...] = np.nan
        return dx
    dx_max, dx_max_x, dx_avg = view(), view(), view()
    previous = core._set_stream_min_bytes(0)
    try:
        core.max_pool2d_backward_argmax(dy, argmax, dx_max, *args, 2)
        core.max_pool2d_backward(dy, x, dx_max_x, *args, 2)
        core.avg_pool2d_backward(dy, dx_avg, *args, 2)
    finally:
        core._set_stream_min_bytes(previous)
    want_max = ops.max_pool2d_backward_from_argmax(dy, argmax, shape, pool, strides, "valid")
    assert dx_max.tobytes() == want_max.tobytes()
    assert dx_max_x.tobytes() == ops.max_pool2d_backward(dy, x, pool, strides, "valid").tobytes()
    assert dx_avg.tobytes() == ops.avg_pool2d_backward(dy, shape, pool, strides, "valid").tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_kernels_write_every_element(shape, dtype):
    rng = np.random.default_rng(10)
    x = _random(shape, dtype, rng)
    dy = _random((shape[0], shape[3]), dtype, rng)
    out = np.full(dy.shape, np.nan, dtype=dtype)
    core.global_avg_pool2d_forward(x, out, 2)
    np.testing.assert_allclose(out, ref.global_avg_pool2d_forward(x), **_tol(dtype))
    out = np.full(dy.shape, np.nan, dtype=dtype)
    core.global_max_pool2d_forward(x, out, 2)
    np.testing.assert_array_equal(out, ref.global_max_pool2d_forward(x))
    dx = np.full(shape, np.nan, dtype=dtype)
    core.global_avg_pool2d_backward(dy, dx, 2)
    np.testing.assert_array_equal(dx, ref.global_avg_pool2d_backward(dy, shape))
    dx = np.full(shape, np.nan, dtype=dtype)
    core.global_max_pool2d_backward(dy, x, dx, 2)
    np.testing.assert_array_equal(dx, ref.global_max_pool2d_backward(dy, x))


# ---- thread-count independence ---------------------------------------------------------------------

def _all_pool_outputs(x, dy_seed):
    rng = np.random.default_rng(dy_seed)
    results = []
    for pool, strides, padding in [(3, 1, "same"), (2, None, "valid"), ((4, 2), (3, 1), "same")]:
        y = ops.max_pool2d_forward(x, pool, strides, padding)
        dy = rng.standard_normal(y.shape).astype(x.dtype)
        y_a, argmax = ops.max_pool2d_forward_with_argmax(x, pool, strides, padding)
        results += [y, ops.max_pool2d_backward(dy, x, pool, strides, padding),
                    ops.avg_pool2d_forward(x, pool, strides, padding),
                    ops.avg_pool2d_backward(dy, x.shape, pool, strides, padding), y_a, argmax,
                    ops.max_pool2d_backward_from_argmax(dy, argmax, x.shape, pool, strides, padding)]
    dy = rng.standard_normal((x.shape[0], x.shape[3])).astype(x.dtype)
    results += [ops.global_avg_pool2d_forward(x), ops.global_max_pool2d_forward(x),
                ops.global_avg_pool2d_backward(dy, x.shape), ops.global_max_pool2d_backward(dy, x)]
    return results


# Large enough (> 3 x 32768 elements) that the kernels do use 2 and 3 threads: smaller
# problems run on one thread whatever the setting. Batch 1 splits rows between threads.
@pytest.mark.parametrize("shape", [(1, 129, 65, 48), (3, 40, 33, 110)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_results_do_not_depend_on_thread_count(shape, dtype, threads):
    x = _random(shape, dtype, np.random.default_rng(11))
    threads(1)
    one = _all_pool_outputs(x, 12)
    for n in (2, 3):
        threads(n)
        for a, b in zip(one, _all_pool_outputs(x, 12)):
            assert a.tobytes() == b.tobytes()


# ---- property test ---------------------------------------------------------------------------------

@st.composite
def pool_problems(draw):
    n = draw(st.integers(1, 3))
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    c = draw(st.integers(1, 6))
    padding = draw(st.sampled_from(["valid", "same"]))
    ph = draw(st.integers(1, h if padding == "valid" else 4))
    pw = draw(st.integers(1, w if padding == "valid" else 4))
    strides = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dtype = draw(st.sampled_from(DTYPES))
    ties = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return (n, h, w, c), (ph, pw), strides, padding, dtype, ties, seed


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(pool_problems())
def test_property_pooling_matches_reference(problem):
    shape, pool, strides, padding, dtype, ties, seed = problem
    rng = np.random.default_rng(seed)
    x = _small_ints(shape, dtype, rng) if ties else _random(shape, dtype, rng)
    out_shape = _out_shape(shape, pool, strides, padding)
    dy = rng.integers(-3, 4, size=out_shape).astype(dtype) if ties else _random(out_shape, dtype, rng)
    tol = _tol(dtype)
    np.testing.assert_array_equal(ops.max_pool2d_forward(x, pool, strides, padding),
                                  ref.max_pool2d_forward(x, pool, strides, padding))
    np.testing.assert_allclose(ops.max_pool2d_backward(dy, x, pool, strides, padding),
                               ref.max_pool2d_backward(dy, x, pool, strides, padding), **tol)
    np.testing.assert_allclose(ops.avg_pool2d_forward(x, pool, strides, padding),
                               ref.avg_pool2d_forward(x, pool, strides, padding), **tol)
    np.testing.assert_allclose(ops.avg_pool2d_backward(dy, shape, pool, strides, padding),
                               ref.avg_pool2d_backward(dy, shape, pool, strides, padding), **tol)
    y, argmax = ops.max_pool2d_forward_with_argmax(x, pool, strides, padding)
    np.testing.assert_array_equal(argmax, ref.max_pool2d_forward_with_argmax(x, pool, strides, padding)[1])
    np.testing.assert_allclose(ops.max_pool2d_backward_from_argmax(dy, argmax, shape, pool, strides, padding),
                               ref.max_pool2d_backward(dy, x, pool, strides, padding), **tol)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(pool_problems(), st.sampled_from([1, 2]))
def test_property_streamed_backwards_hold_the_stored_bits(problem, lines):
    """Any geometry, channels of `lines` whole 64-byte lines: every backward with the stream
    threshold at 0 (disjoint windows streamed, overlapping ones staged) gives the bits of the
    stored one."""
    shape, pool, strides, padding, dtype, ties, seed = problem
    shape = shape[:3] + (lines * 64 // np.dtype(dtype).itemsize,)
    rng = np.random.default_rng(seed)
    x = _small_ints(shape, dtype, rng) if ties else _random(shape, dtype, rng)
    dy = _random(_out_shape(shape, pool, strides, padding), dtype, rng)
    _, argmax = ops.max_pool2d_forward_with_argmax(x, pool, strides, padding)

    def backwards():
        return [ops.max_pool2d_backward(dy, x, pool, strides, padding).tobytes(),
                ops.avg_pool2d_backward(dy, shape, pool, strides, padding).tobytes(),
                ops.max_pool2d_backward_from_argmax(dy, argmax, shape, pool, strides, padding).tobytes()]
    stored = backwards()
    previous = core._set_stream_min_bytes(0)
    try:
        streamed = backwards()
    finally:
        core._set_stream_min_bytes(previous)
    assert streamed == stored


# ---- bad arguments ---------------------------------------------------------------------------------

X = np.zeros((2, 6, 6, 3), dtype=np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: ops.max_pool2d_forward(np.zeros((6, 6, 3))), ValueError, "4-D"),
    (lambda: ops.max_pool2d_forward(X, pool_size=0), ValueError, "pool_size"),
    (lambda: ops.max_pool2d_forward(X, pool_size=(2, 2, 2)), ValueError, "pool_size"),
    (lambda: ops.avg_pool2d_forward(X, strides=-1), ValueError, "strides"),
    (lambda: ops.max_pool2d_forward(X, padding="full"), ValueError, "padding"),
    (lambda: ops.max_pool2d_forward(X, pool_size=7), ValueError, "larger than the padded input"),
    (lambda: ops.max_pool2d_forward(np.zeros((2, 0, 6, 3))), ValueError, "empty"),
    (lambda: ops.max_pool2d_forward(X.astype(np.complex64)), TypeError, "dtype"),
    (lambda: ops.max_pool2d_forward("image"), TypeError, "dtype"),
    (lambda: ops.max_pool2d_backward(np.zeros((2, 2, 2, 3)), X), ValueError, "dy"),
    (lambda: ops.avg_pool2d_backward(np.zeros((2, 3, 3, 3)), (2, 6, 6)), ValueError, "input_shape"),
    (lambda: ops.avg_pool2d_backward(np.zeros((2, 2, 3, 3)), X.shape), ValueError, "dy"),
    (lambda: ops.global_avg_pool2d_forward(np.zeros((2, 3))), ValueError, "4-D"),
    (lambda: ops.global_max_pool2d_backward(np.zeros((2, 4)), X), ValueError, "dy"),
    (lambda: ops.global_avg_pool2d_backward(np.zeros((2, 3)), (2, 6, 6, 4)), ValueError, "dy"),
    (lambda: ops.max_pool2d_forward_with_argmax(np.zeros((1, 16, 16, 1)), 16), ValueError, "255 taps"),
    (lambda: ops.max_pool2d_forward_with_argmax(X, padding="full"), ValueError, "padding"),
    (lambda: ops.max_pool2d_backward_from_argmax(np.zeros((2, 3, 3, 3)), np.zeros((2, 3, 3, 3), np.int64),
                                                 X.shape), TypeError, "uint8"),
    (lambda: ops.max_pool2d_backward_from_argmax(np.zeros((2, 3, 3, 3)), np.zeros((2, 3, 3), np.uint8),
                                                 X.shape), ValueError, "argmax"),
    (lambda: ops.max_pool2d_backward_from_argmax(np.zeros((2, 3, 3, 3)), [[0]], X.shape), TypeError, "ndarray"),
    (lambda: ops.max_pool2d_backward_from_argmax(np.zeros((2, 2, 3, 3)), np.zeros((2, 2, 3, 3), np.uint8),
                                                 X.shape), ValueError, "dy"),
    (lambda: ops.max_pool2d_backward_from_argmax(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.uint8),
                                                 (1, 16, 16, 1), 16), ValueError, "255 taps"),
])
def test_bad_arguments_through_ops(call, error, match):
    with pytest.raises(error, match=match):
        call()


ARGS = ((2, 2), (2, 2), (0, 0, 0, 0))
OUT = np.empty((2, 3, 3, 3), dtype=np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: core.max_pool2d_forward(X, OUT.astype(np.float64), *ARGS, 1), ValueError, "dtype"),
    (lambda: core.max_pool2d_forward(X.astype(np.int32), OUT, *ARGS, 1), TypeError, "float32"),
    (lambda: core.max_pool2d_forward(X.tolist(), OUT, *ARGS, 1), TypeError, "ndarray"),
    (lambda: core.max_pool2d_forward(X[:, ::2], OUT, *ARGS, 1), ValueError, "C-contiguous"),
    (lambda: core.max_pool2d_forward(np.asfortranarray(X), OUT, *ARGS, 1), ValueError, "C-contiguous"),
    (lambda: core.max_pool2d_forward(X, np.empty((2, 3, 3, 4), np.float32), *ARGS, 1), ValueError, "out"),
    (lambda: core.avg_pool2d_forward(X, OUT, (2, 2), (2, 2), (2, 0, 0, 0), 1), ValueError, "pads"),
    (lambda: core.avg_pool2d_forward(X, OUT, (2,), (2, 2), (0, 0, 0, 0), 1), ValueError, "pool"),
    (lambda: core.avg_pool2d_forward(X, OUT, (2, 2), (0, 2), (0, 0, 0, 0), 1), ValueError, "strides"),
    (lambda: core.avg_pool2d_forward(X, OUT, *ARGS, 0), ValueError, "num_threads"),
    (lambda: core.max_pool2d_backward(OUT, X, X, *ARGS, 1), ValueError, "overlap"),
    (lambda: core.max_pool2d_backward(OUT, X, np.empty((2, 6, 6, 2), np.float32), *ARGS, 1),
     ValueError, "dx"),
    (lambda: core.avg_pool2d_backward(OUT, np.empty((2, 6, 6, 3)), *ARGS, 1), ValueError, "dtype"),
    (lambda: core.global_max_pool2d_forward(X, np.empty((2, 4), np.float32), 1), ValueError, "out"),
    (lambda: core.global_avg_pool2d_backward(np.empty((3, 3), np.float32), X.copy(), 1),
     ValueError, "dy"),
    (lambda: core.global_max_pool2d_backward(np.empty((2, 3), np.float32), X, X, 1),
     ValueError, "overlap"),
    (lambda: core.max_pool2d_forward_argmax(X, OUT, np.empty((2, 3, 3, 3), np.int8), *ARGS, 1),
     TypeError, "uint8"),
    (lambda: core.max_pool2d_forward_argmax(X, OUT, np.empty((2, 3, 3, 2), np.uint8), *ARGS, 1),
     ValueError, "argmax"),
    (lambda: core.max_pool2d_forward_argmax(X, OUT, OUT.view(np.uint8)[..., :3], *ARGS, 1),
     ValueError, "C-contiguous"),
    (lambda: core.max_pool2d_forward_argmax(X, OUT, X.view(np.uint8)[:, :3, :3, :3].copy(), (7, 7), (1, 1),
                                            (3, 3, 3, 3), 1), ValueError, "out"),
    (lambda: core.max_pool2d_backward_argmax(OUT, np.zeros((2, 3, 3, 3), np.uint8), np.empty(X.shape),
                                             *ARGS, 1), ValueError, "dtype"),
    (lambda: core.max_pool2d_backward_argmax(OUT, np.zeros((2, 3, 3, 3), np.uint8), OUT.copy(), *ARGS, 1),
     ValueError, "dy"),
    (lambda: core.max_pool2d_backward_argmax(np.empty((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.uint8),
                                             np.empty((1, 16, 16, 1), np.float32), (16, 16), (1, 1),
                                             (0, 0, 0, 0), 1), ValueError, "255 taps"),
])
def test_bad_arguments_to_the_kernels(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_read_only_output_is_refused():
    out = np.empty((2, 3, 3, 3), dtype=np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        core.max_pool2d_forward(X, out, *ARGS, 1)
    argmax = np.empty((2, 3, 3, 3), dtype=np.uint8)
    argmax.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        core.max_pool2d_forward_argmax(X, OUT.copy(), argmax, *ARGS, 1)


def test_argmax_output_overlapping_an_input_is_refused():
    x = np.zeros((1, 4, 4, 4), np.float32)
    out = np.empty((1, 2, 2, 4), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        core.max_pool2d_forward_argmax(x, out, x.view(np.uint8).reshape(-1)[:16].reshape(1, 2, 2, 4),
                                       (2, 2), (2, 2), (0, 0, 0, 0), 1)


# ---- the MaxPooling2D layer trains through the argmax pair --------------------------------------------

@pytest.mark.parametrize("pool,strides,padding,argmax", [
    (2, None, "valid", True), ((2, 3), (3, 3), "same", True), (3, 2, "same", True),
    (3, 1, "valid", True), (16, 16, "same", False)])
def test_max_pooling_layer_matches_the_reference_backend(pool, strides, padding, argmax):
    # Windows of up to 255 taps, disjoint or overlapping, train through the argmax pair;
    # (16, 16) windows (256 taps: too many for the argmax byte) keep x.
    from fastconv import layers
    rng = np.random.default_rng(24)
    x = rng.standard_normal((2, 9, 10, 20)).astype(np.float32)
    results = []
    for backend in ("compiled", "reference"):
        with fastconv.backend.use_backend(backend):
            layer = layers.MaxPooling2D(pool, strides=strides, padding=padding)
            y = layer.forward(x, training=True)
            assert (layer._cache[0] == "argmax") == argmax
            dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
            results.append((y, layer.backward(dy)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-6, atol=1e-6)
    # Compiled: bit for bit the backward that re-reads x (same additions, same order).
    assert results[0][1].tobytes() == ops.max_pool2d_backward(dy, x, pool, strides, padding).tobytes()


# ---- batch norm + ReLU fused in front of max pooling ---------------------------------------------

def _bn_inputs(shape, dtype, rng):
    """x with exact zeros (ReLU ties) and a NaN, gamma with a negative and a zero entry."""
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::5] = 0.0
    x.flat[3] = np.nan
    c = shape[3]
    gamma = rng.standard_normal(c).astype(dtype)
    gamma[0] = 0.0
    beta = rng.standard_normal(c).astype(dtype)
    return x, gamma, beta


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", CASES, ids=CASE_IDS)
def test_bn_relu_max_pool_is_the_composition_bit_for_bit(shape, pool, strides, padding, dtype):
    rng = np.random.default_rng(21)
    x, gamma, beta = _bn_inputs(shape, dtype, rng)
    out, argmax, mean, var = ops.batch_norm_relu_max_pool_forward_training(
        x, gamma, beta, 1e-3, pool, strides, padding)
    y, mean2, var2 = ops.batch_norm_relu_forward_training(x, gamma, beta, 1e-3)
    want, want_argmax = ops.max_pool2d_forward_with_argmax(y, pool, strides, padding)
    for got, exp in ((out, want), (argmax, want_argmax), (mean, mean2), (var, var2)):
        assert got.dtype == exp.dtype and got.tobytes() == exp.tobytes()
    # moving statistics (inference form): same bits as the two kernels in turn
    moving_var = np.abs(var) + dtype(0.5)
    out_i, argmax_i = ops.batch_norm_relu_max_pool_forward_inference(
        x, gamma, beta, mean, moving_var, 1e-3, pool, strides, padding)
    y_i = ops.batch_norm_relu_forward_inference(x, gamma, beta, mean, moving_var, 1e-3)
    want_i, want_argmax_i = ops.max_pool2d_forward_with_argmax(y_i, pool, strides, padding)
    assert out_i.tobytes() == want_i.tobytes() and argmax_i.tobytes() == want_argmax_i.tobytes()
    # and the reference's composition, to rounding
    ref_out, ref_argmax, ref_mean, ref_var = ref.batch_norm_relu_max_pool_forward_training(
        x, gamma, beta, 1e-3, pool, strides, padding)
    finite = np.isfinite(ref_out)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref_out))
    np.testing.assert_allclose(out[finite], ref_out[finite], rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-4 if dtype == np.float32 else 1e-10)


def test_bn_relu_max_pool_bad_arguments():
    x = np.ones((1, 4, 4, 3), np.float32)
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="gamma"):
        ops.batch_norm_relu_max_pool_forward_training(x, gamma[:2], beta)
    with pytest.raises(ValueError, match="x"):
        ops.batch_norm_relu_max_pool_forward_training(x[0], gamma, beta)
    with pytest.raises(ValueError):
        ops.batch_norm_relu_max_pool_forward_training(x, gamma, beta, pool_size=(16, 16))
    out = np.empty((1, 2, 2, 3), np.float32)
    argmax = np.empty(out.shape, np.uint8)
    with pytest.raises(ValueError, match="scale"):
        core.max_pool2d_forward_argmax_bn_relu(x, gamma, gamma[:2], beta, out, argmax, (2, 2),
                                               (2, 2), (0, 0, 0, 0), 1)
    with pytest.raises(ValueError, match="shift"):
        core.max_pool2d_forward_argmax_bn_relu(x, gamma.astype(np.float64), gamma, beta, out,
                                               argmax, (2, 2), (2, 2), (0, 0, 0, 0), 1)


# ---- every ISA path ----------------------------------------------------------------------------------

ISA_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from fastconv import ops, reference as ref
    from fastconv._core import cpu
    assert cpu.isa_name() == sys.argv[1], (cpu.isa_name(), sys.argv[1])
    rng = np.random.default_rng(0)
    for shape, pool, strides, padding in [((2, 7, 9, 37), 3, 2, "same"), ((1, 6, 8, 16), 2, None, "valid"),
                                          ((2, 5, 6, 9), (2, 3), 1, "same")]:
        for dtype, tol in ((np.float32, 2e-6), (np.float64, 1e-12)):
            x = rng.integers(0, 3, size=shape).astype(dtype)  # ties
            x[0, 1, 1, 0] = np.nan
            y, argmax = ops.max_pool2d_forward_with_argmax(x, pool, strides, padding)
            y_ref, argmax_ref = ref.max_pool2d_forward_with_argmax(x, pool, strides, padding)
            np.testing.assert_array_equal(y, y_ref)
            np.testing.assert_array_equal(ops.max_pool2d_forward(x, pool, strides, padding), y_ref)
            np.testing.assert_array_equal(argmax, argmax_ref)
            dy = rng.integers(-4, 5, size=y.shape).astype(dtype)
            want = ref.max_pool2d_backward(dy, x, pool, strides, padding)
            np.testing.assert_array_equal(ops.max_pool2d_backward(dy, x, pool, strides, padding), want)
            np.testing.assert_array_equal(
                ops.max_pool2d_backward_from_argmax(dy, argmax, shape, pool, strides, padding), want)
            x = rng.standard_normal(shape).astype(dtype)
            np.testing.assert_allclose(ops.avg_pool2d_forward(x, pool, strides, padding),
                                       ref.avg_pool2d_forward(x, pool, strides, padding), rtol=tol, atol=tol)
            np.testing.assert_allclose(ops.avg_pool2d_backward(dy, shape, pool, strides, padding),
                                       ref.avg_pool2d_backward(dy, shape, pool, strides, padding),
                                       rtol=tol, atol=tol)
            np.testing.assert_allclose(ops.global_max_pool2d_backward(dy[:, 0, 0], x),
                                       ref.global_max_pool2d_backward(dy[:, 0, 0], x), rtol=tol, atol=tol)
            gamma = rng.standard_normal(shape[3]).astype(dtype)
            beta = rng.standard_normal(shape[3]).astype(dtype)
            fused = ops.batch_norm_relu_max_pool_forward_training(x, gamma, beta, 1e-3, pool, strides,
                                                                 padding)
            y, mean, var = ops.batch_norm_relu_forward_training(x, gamma, beta, 1e-3)
            want = ops.max_pool2d_forward_with_argmax(y, pool, strides, padding) + (mean, var)
            for a, b in zip(fused, want):
                assert a.tobytes() == b.tobytes()
    print("ok", cpu.isa_name())
    """
)


@pytest.mark.parametrize("isa", cpu.isa_available())
def test_every_isa_path_matches_reference(isa):
    env = dict(os.environ, FASTCONV_ISA=isa, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", ISA_SCRIPT, isa], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"ok {isa}"
