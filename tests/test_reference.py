"""The reference kernels are the specification: check them against naive loops and finite differences.

The loops below are written independently of `fastconv.reference` (direct definitions of the
ops, one output element at a time) on tiny shapes; the gradients are checked with centred
finite differences in float64.
"""
import itertools

import numpy as np
import pytest

from fastconv import reference as R
from fastconv._validation import resolve_padding


def naive_conv2d(x, k, b, strides, padding, dilation, groups):
    n, h, w, c = x.shape
    kh, kw, cg, f = k.shape
    (pt, pb), (pl, pr) = resolve_padding(padding, (h, w), (kh, kw), strides, dilation)
    sh, sw = strides
    dh, dw = dilation
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
    fg = f // groups
    y = np.zeros((n, oh, ow, f))
    for b_, i, j, o in itertools.product(range(n), range(oh), range(ow), range(f)):
        g = o // fg
        acc = 0.0 if b is None else b[o]
        for p, q, ci in itertools.product(range(kh), range(kw), range(cg)):
            r = i * sh + p * dh - pt
            s = j * sw + q * dw - pl
            if 0 <= r < h and 0 <= s < w:
                acc += x[b_, r, s, g * cg + ci] * k[p, q, ci, o]
        y[b_, i, j, o] = acc
    return y


def naive_pool(x, pool, strides, padding, op):
    n, h, w, c = x.shape
    (pt, pb), (pl, pr) = resolve_padding(padding, (h, w), pool, strides, (1, 1))
    oh = (h + pt + pb - pool[0]) // strides[0] + 1
    ow = (w + pl + pr - pool[1]) // strides[1] + 1
    y = np.zeros((n, oh, ow, c))
    for b_, i, j, ch in itertools.product(range(n), range(oh), range(ow), range(c)):
        vals = [x[b_, r, s, ch]
                for r in range(i * strides[0] - pt, i * strides[0] - pt + pool[0])
                for s in range(j * strides[1] - pl, j * strides[1] - pl + pool[1])
                if 0 <= r < h and 0 <= s < w]
        y[b_, i, j, ch] = max(vals) if op == "max" else sum(vals) / len(vals)
    return y


def finite_diff(f, x, dy, eps=1e-6):
    """d/dx of sum(f(x) * dy) by centred differences."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = np.sum(f(x) * dy)
        x[idx] = old - eps
        minus = np.sum(f(x) * dy)
        x[idx] = old
        g[idx] = (plus - minus) / (2 * eps)
    return g


CONV_CASES = [
    # (n, h, w, c, kh, kw, f, strides, padding, dilation, groups)
    (2, 5, 6, 3, 3, 3, 4, (1, 1), "valid", (1, 1), 1),
    (1, 7, 5, 4, 3, 2, 6, (2, 1), "same", (1, 1), 2),
    (2, 6, 6, 2, 2, 2, 3, (3, 3), "valid", (1, 1), 1),      # stride > kernel
    (1, 7, 7, 3, 3, 3, 3, (1, 1), "same", (2, 2), 3),       # dilation + depthwise
    (2, 5, 4, 4, 2, 3, 8, (2, 2), ((1, 0), (2, 1)), (1, 1), 4),  # explicit asymmetric padding
    (1, 4, 4, 1, 1, 1, 2, (1, 1), 1, (1, 1), 1),            # 1x1 with int padding
    (1, 6, 5, 2, 4, 4, 2, (2, 3), "same", (1, 1), 1),       # even kernel, asymmetric same
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_matches_naive_loops(case):
    n, h, w, c, kh, kw, f, s, p, d, g = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((n, h, w, c))
    k = rng.standard_normal((kh, kw, c // g, f))
    b = rng.standard_normal(f)
    np.testing.assert_allclose(R.conv2d_forward(x, k, b, s, p, d, g),
                               naive_conv2d(x, k, b, s, p, d, g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_backward_matches_finite_differences(case):
    n, h, w, c, kh, kw, f, s, p, d, g = case
    rng = np.random.default_rng(1 + hash(case) % 2**32)
    x = rng.standard_normal((n, h, w, c))
    k = rng.standard_normal((kh, kw, c // g, f))
    b = rng.standard_normal(f)
    y = R.conv2d_forward(x, k, b, s, p, d, g)
    dy = rng.standard_normal(y.shape)
    dx, dk, db = R.conv2d_backward(dy, x, k, s, p, d, g)
    np.testing.assert_allclose(dx, finite_diff(lambda v: R.conv2d_forward(v, k, b, s, p, d, g), x, dy),
                               atol=1e-6)
    np.testing.assert_allclose(dk, finite_diff(lambda v: R.conv2d_forward(x, v, b, s, p, d, g), k, dy),
                               atol=1e-6)
    np.testing.assert_allclose(db, finite_diff(lambda v: R.conv2d_forward(x, k, v, s, p, d, g), b, dy),
                               atol=1e-6)


POOL_CASES = [
    ((2, 2), None, "valid"),
    ((3, 3), (2, 2), "same"),
    ((2, 3), (1, 2), "same"),
    ((2, 2), (3, 3), "valid"),
    ((3, 2), (2, 1), "valid"),
]


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("pool,strides,padding", POOL_CASES)
def test_pooling_matches_naive_loops_and_finite_differences(op, pool, strides, padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 6, 3))
    fwd = R.max_pool2d_forward if op == "max" else R.avg_pool2d_forward
    y = fwd(x, pool, strides, padding)
    np.testing.assert_allclose(y, naive_pool(x, pool, strides or pool, padding, op), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    if op == "max":
        dx = R.max_pool2d_backward(dy, x, pool, strides, padding)
    else:
        dx = R.avg_pool2d_backward(dy, x.shape, pool, strides, padding)
    np.testing.assert_allclose(dx, finite_diff(lambda v: fwd(v, pool, strides, padding), x, dy),
                               atol=1e-6)


def test_max_pool_ties_go_to_the_first_element_in_window_order():
    x = np.zeros((1, 2, 2, 1))
    dx = R.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0], [0, 0]])


def test_batch_norm_matches_formula_and_finite_differences():
    rng = np.random.default_rng(4)
    x = 3 + 2 * rng.standard_normal((4, 3, 2, 5))
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    y, mean, var = R.batch_norm_forward_training(x, gamma, beta, 1e-3)
    flat = x.reshape(-1, 5)
    np.testing.assert_allclose(mean, flat.mean(0))
    np.testing.assert_allclose(var, flat.var(0))  # biased, as Keras
    np.testing.assert_allclose(y.reshape(-1, 5), (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-3)
                               * gamma + beta)
    dy = rng.standard_normal(x.shape)
    dx, dg, db = R.batch_norm_backward(dy, x, gamma, mean, var, 1e-3)
    f = lambda v: R.batch_norm_forward_training(v, gamma, beta, 1e-3)[0]  # noqa: E731
    np.testing.assert_allclose(dx, finite_diff(f, x, dy), atol=1e-6)
    np.testing.assert_allclose(
        dg, finite_diff(lambda g: R.batch_norm_forward_training(x, g, beta, 1e-3)[0], gamma, dy), atol=1e-6)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)))


def test_global_pooling():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(R.global_avg_pool2d_forward(x), x.mean(axis=(1, 2)))
    np.testing.assert_allclose(R.global_max_pool2d_forward(x), x.max(axis=(1, 2)))
    dy = rng.standard_normal((2, 5))
    np.testing.assert_allclose(R.global_avg_pool2d_backward(dy, x.shape),
                               finite_diff(R.global_avg_pool2d_forward, x, dy), atol=1e-6)
    np.testing.assert_allclose(R.global_max_pool2d_backward(dy, x),
                               finite_diff(R.global_max_pool2d_forward, x, dy), atol=1e-6)


def test_dense_forward_backward():
    rng = np.random.default_rng(6)
    x, k, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    y = R.dense_forward(x, k, b)
    np.testing.assert_allclose(y, x @ k + b)
    dy = rng.standard_normal(y.shape)
    dx, dk, db = R.dense_backward(dy, x, k)
    np.testing.assert_allclose(dx, finite_diff(lambda v: R.dense_forward(v, k, b), x, dy), atol=1e-6)
    np.testing.assert_allclose(dk, finite_diff(lambda v: R.dense_forward(x, v, b), k, dy), atol=1e-6)
    np.testing.assert_allclose(db, dy.sum(0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_keeps_the_input_dtype(dtype):
    x = np.ones((1, 4, 4, 2), dtype=dtype)
    k = np.ones((3, 3, 2, 2), dtype=dtype)
    assert R.conv2d_forward(x, k, np.zeros(2, dtype)).dtype == dtype
    assert R.max_pool2d_forward(x).dtype == dtype
    assert R.avg_pool2d_forward(x).dtype == dtype
    assert R.batch_norm_forward_training(x, np.ones(2, dtype), np.zeros(2, dtype))[0].dtype == dtype


def test_max_pool_gradient_never_goes_to_padding():
    # Every real pixel is -inf, like the padding: the gradient must still land on a real pixel.
    x = np.full((1, 3, 3, 1), -np.inf)
    dx = R.max_pool2d_backward(np.ones((1, 2, 2, 1)), x, 2, 2, "same")
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0, 1], [0, 0, 0], [1, 0, 1]])
