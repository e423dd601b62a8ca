"""The compiled convolution (fastconv.ops / fastconv._core.conv) against fastconv.reference.

Forward and backward (dx, dkernel, dbias), float32 and float64, over a table of geometries
and a hypothesis property test: odd sizes, stride > kernel, non-square kernels and strides,
dilation, explicit asymmetric padding (also wider than the kernel), "same" with strides,
groups, depthwise with depth multipliers, 1x1 (the plain-GEMM path), filter counts that are
not multiples of the SIMD width, batch 1, bias None. Plus: non-contiguous input, outputs
prefilled with NaN (every element must be written), need_input_grad / need_bias_grad,
bit-identical results for 1 and 2 threads, every ISA path in a subprocess, centred finite
differences in float64, and bad arguments.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _validation as V
from fastconv import ops
from fastconv import reference as ref
from fastconv._core import conv as core
from fastconv._core import cpu

DTYPES = [np.float32, np.float64]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))

# (x shape, kernel shape, strides, padding, dilation, groups)
CASES = [
    ((2, 7, 9, 5), (3, 3, 5, 6), 1, "same", 1, 1),              # odd sizes
    ((2, 12, 11, 1), (3, 3, 1, 64), 1, "same", 1, 1),           # first layer: dW reads dy in place
    ((1, 9, 8, 2), (2, 2, 2, 40), 1, "valid", 1, 1),            # ... full panels + a copied tail
    ((1, 8, 8, 4), (1, 1, 4, 40), 1, "valid", 1, 1),            # 1x1: GEMM, W read in place + packed tail
    ((2, 6, 5, 8), (1, 1, 4, 34), 1, "valid", 1, 2),            # 1x1 grouped
    ((2, 9, 8, 6), (1, 1, 6, 7), 2, "valid", 1, 1),             # 1x1 strided: packed path
    ((1, 7, 7, 3), (1, 1, 3, 5), 1, 1, 1, 1),                   # 1x1 padded: packed path
    ((2, 9, 7, 6), (3, 2, 3, 8), (2, 3), ((1, 2), (0, 3)), 1, 2),  # asymmetric pads, groups
    ((2, 11, 10, 4), (3, 3, 4, 37), 1, "same", (2, 1), 1),      # dilation
    ((1, 12, 13, 3), (2, 3, 3, 4), 1, "valid", (3, 2), 1),      # dilation both axes
    ((2, 10, 9, 3), (2, 2, 3, 5), 3, "valid", 1, 1),            # stride > kernel
    ((2, 10, 9, 3), (2, 2, 3, 5), (3, 4), "same", 1, 1),        # "same" with strides
    ((1, 5, 4, 2), (2, 2, 2, 3), 1, ((3, 0), (0, 4)), 1, 1),    # padding wider than kernel
    ((1, 5, 5, 1), (5, 5, 1, 3), 1, "valid", 1, 1),             # kernel = input
    ((3, 14, 14, 32), (3, 3, 32, 64), 1, "same", 1, 1),         # many tiles and chunks
    ((2, 6, 6, 300), (3, 3, 300, 20), 1, "same", 1, 1),         # K > one K-block
    ((2, 6, 6, 8), (1, 1, 8, 300), 1, "valid", 1, 1),           # F > one panel
    ((1, 4, 5, 520), (1, 1, 520, 3), 1, "valid", 1, 1),         # long reduction, 1x1
    ((1, 5, 6, 4), (1, 1, 1, 300), 1, "valid", 1, 4),           # backward-data F-blocks
    ((2, 9, 9, 6), (3, 3, 1, 6), 1, "same", 1, 6),              # depthwise
    ((2, 9, 9, 6), (3, 3, 1, 12), 2, "same", 1, 6),             # depthwise, multiplier 2
    ((2, 9, 9, 6), (3, 3, 1, 6), 1, "valid", 2, 6),             # depthwise, dilation
    ((1, 8, 7, 3), (2, 3, 1, 9), (2, 1), ((0, 2), (1, 1)), 1, 3),  # depthwise, asymmetric
    ((2, 7, 6, 1), (3, 3, 1, 4), 1, "same", 1, 1),              # C=1 (depthwise path, mult 4)
    ((1, 9, 10, 8), (3, 3, 2, 12), 2, "same", 1, 4),            # groups with C_g = 2
    ((5, 30, 30, 4), (3, 3, 4, 6), 1, "same", 1, 1),            # weight gradient in 4 chunks
    ((4, 32, 32, 5), (3, 3, 1, 5), 1, "same", 1, 5),            # depthwise, 4 chunks
    # Few input channels (first layers): zero-bordered row paths of forward, weight gradient
    # (dW^T when filters are few) and col2im.
    ((3, 28, 28, 1), (5, 5, 1, 6), 1, "same", 1, 1),            # LeNet-5 C1
    ((4, 30, 30, 1), (5, 5, 1, 6), 1, "same", 1, 1),            # ... in 3 chunks
    ((3, 40, 31, 1), (3, 3, 1, 24), 1, "same", 1, 1),           # db from the dW GEMM, 3 chunks
    ((2, 9, 11, 2), (2, 2, 2, 20), 1, "valid", 1, 1),           # ... (K = 8), one chunk
    ((2, 13, 11, 3), (3, 4, 3, 5), (2, 3), ((4, 1), (7, 2)), 1, 1),  # pads wider than kernel
    ((2, 9, 9, 2), (2, 3, 2, 40), 1, ((0, 3), (5, 0)), (2, 1), 1),   # height dilation, F > NR
    ((1, 20, 21, 3), (11, 11, 3, 8), 4, 2, 1, 1),               # AlexNet-like stem
    # framed images: runs of whole tiles in one kernel call, kernel rows split over calls
    ((2, 31, 60, 3), (11, 11, 3, 20), 2, ((3, 2), (3, 4)), 1, 1),
    ((2, 10, 12, 9), (2, 3, 9, 6), 1, ((3, 2), (4, 1)), 1, 1),  # adjoint with negative pads
    # few filters, many channels (forward) and the reverse (input gradient): lanes along the
    # reduction, with zero-bordered rows where border pixels are most of a row
    ((3, 14, 14, 6), (5, 5, 6, 16), 1, "valid", 1, 1),          # LeNet-5 C3 (tiles over 3 rows)
    ((2, 6, 5, 10), (5, 5, 10, 7), 1, "same", 1, 1),
    ((7, 4, 5, 3), (3, 3, 3, 16), 1, "same", 1, 1),             # 20-pixel images: tiles span several
]
CASE_IDS = [f"x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-d{c[4]}-g{c[5]}" for c in CASES]


def _close(actual, expected, dtype, what=""):
    """Compare with a tolerance relative to the magnitude of the expected values."""
    scale = max(1.0, float(np.abs(expected).max()))
    rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def _kwargs(case):
    _, _, strides, padding, dilation, groups = case
    return dict(strides=strides, padding=padding, dilation_rate=dilation, groups=groups)


def _data(case, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case[0]).astype(dtype)
    k = rng.standard_normal(case[1]).astype(dtype)
    b = rng.standard_normal(case[1][3]).astype(dtype)
    return x, k, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_matches_reference(case, dtype):
    x, k, b = _data(case, dtype)
    kw = _kwargs(case)
    for bias in (b, None):
        y = ops.conv2d_forward(x, k, bias, **kw)
        y_ref = ref.conv2d_forward(x, k, bias, **kw)
        assert y.dtype == np.dtype(dtype) and y.shape == y_ref.shape
        _close(y, y_ref, dtype, f"bias={'yes' if bias is not None else 'None'}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_backward_matches_reference(case, dtype):
    x, k, _ = _data(case, dtype)
    kw = _kwargs(case)
    y_shape = ref.conv2d_forward(x, k, **kw).shape
    dy = np.random.default_rng(1).standard_normal(y_shape).astype(dtype)
    dx, dk, db = ops.conv2d_backward(dy, x, k, **kw)
    dx_ref, dk_ref, db_ref = ref.conv2d_backward(dy, x, k, **kw)
    for name, got, want in (("dx", dx, dx_ref), ("dkernel", dk, dk_ref), ("dbias", db, db_ref)):
        assert got.dtype == np.dtype(dtype) and got.shape == want.shape, name
        _close(got, want, dtype, name)


@st.composite
def conv_problems(draw):
    """Small random convolution problems that satisfy the validation rules."""
    groups = draw(st.sampled_from([1, 1, 2, 3, "depthwise"]))
    cin_g = draw(st.integers(1, 5))
    if groups == "depthwise":
        c = draw(st.integers(1, 7))
        groups, cin_g, f = c, 1, c * draw(st.integers(1, 3))
    else:
        c = cin_g * groups
        f = groups * draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    use_dilation = draw(st.booleans())
    strides = (1, 1) if use_dilation else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if use_dilation else (1, 1)
    mode = draw(st.sampled_from(["valid", "same", "explicit"]))
    if mode == "explicit":
        padding = tuple((draw(st.integers(0, 6)), draw(st.integers(0, 6))) for _ in range(2))
    else:
        padding = mode
    eff_h, eff_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    n = draw(st.integers(1, 3))
    h = draw(st.integers(max(1, eff_h - 6), eff_h + 8))
    w = draw(st.integers(max(1, eff_w - 6), eff_w + 8))
    try:  # the kernel may not fit the padded input: let hypothesis draw another
        V.window_geometry((n, h, w, c), (kh, kw), strides, padding, dilation)
    except ValueError:
        assume(False)
    return dict(x=(n, h, w, c), k=(kh, kw, cin_g, f), strides=strides, padding=padding,
                dilation_rate=dilation, groups=groups, bias=draw(st.booleans()),
                dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**16)))


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(conv_problems())
def test_property_forward_backward_match_reference(prob):
    dtype = prob["dtype"]
    rng = np.random.default_rng(prob["seed"])
    x = rng.standard_normal(prob["x"]).astype(dtype)
    k = rng.standard_normal(prob["k"]).astype(dtype)
    b = rng.standard_normal(prob["k"][3]).astype(dtype) if prob["bias"] else None
    kw = {key: prob[key] for key in ("strides", "padding", "dilation_rate", "groups")}
    y = ops.conv2d_forward(x, k, b, **kw)
    _close(y, ref.conv2d_forward(x, k, b, **kw), dtype, "forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = ops.conv2d_backward(dy, x, k, **kw)
    want = ref.conv2d_backward(dy, x, k, **kw)
    for name, g, r in zip(("dx", "dkernel", "dbias"), got, want):
        _close(g, r, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_input(dtype):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2, 8, 11, 7)).astype(dtype)
    x = base.transpose(0, 2, 1, 3)[:, ::2, 1:, 1:6]          # (2, 6, 7, 5), strided view
    assert not x.flags.c_contiguous
    k = np.asfortranarray(rng.standard_normal((3, 2, 5, 6)).astype(dtype))
    kw = dict(strides=(1, 2), padding="same")
    y = ops.conv2d_forward(x, k, None, **kw)
    _close(y, ref.conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(k), **kw), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)[:, ::-1]  # negative strides
    got = ops.conv2d_backward(dy, x, k, **kw)
    want = ref.conv2d_backward(np.ascontiguousarray(dy), np.ascontiguousarray(x),
                               np.ascontiguousarray(k), **kw)
    for g, r in zip(got, want):
        _close(g, r, dtype)


def _core_args(case):
    kw = _kwargs(case)
    x_shape, k_shape = case[0], case[1]
    geo = V.window_geometry(x_shape, k_shape[:2], V.normalize_tuple(kw["strides"], 2, "s"),
                            kw["padding"], V.normalize_tuple(kw["dilation_rate"], 2, "d"))
    (pt, pb), (pl, pr) = geo.padding
    return geo, (geo.strides, (pt, pb, pl, pr), geo.dilation, kw["groups"])


NAN_CASES = (0, 1, 5, 9, 13, 15, 18, 23, 24)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES[i] for i in NAN_CASES], ids=[CASE_IDS[i] for i in NAN_CASES])
def test_core_writes_every_output_element(case, dtype):
    """Outputs prefilled with NaN: any element the kernels forget to write stays NaN."""
    x, k, b = _data(case, dtype)
    geo, (strides, pads, dilation, groups) = _core_args(case)
    f = k.shape[3]
    y = np.full((geo.n, geo.out_h, geo.out_w, f), np.nan, dtype=dtype)
    core.conv2d_forward(x, k, b, y, strides, pads, dilation, groups, 2)
    _close(y, ref.conv2d_forward(x, k, b, **_kwargs(case)), dtype)
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    dx = np.full(x.shape, np.nan, dtype=dtype)
    dk = np.full(k.shape, np.nan, dtype=dtype)
    db = np.full((f,), np.nan, dtype=dtype)
    core.conv2d_backward(dy, x, k, dx, dk, db, strides, pads, dilation, groups, 2)
    want = ref.conv2d_backward(dy, x, k, **_kwargs(case))
    for name, g, r in zip(("dx", "dkernel", "dbias"), (dx, dk, db), want):
        assert not np.isnan(g).any(), name
        _close(g, r, dtype, name)


@pytest.mark.parametrize("backend", [ops, ref], ids=["compiled", "reference"])
@pytest.mark.parametrize("case", [CASES[0], CASES[9], CASES[18], CASES[25]],
                         ids=[CASE_IDS[0], CASE_IDS[9], CASE_IDS[18], CASE_IDS[25]])
def test_input_gradient_alone(backend, case):
    """need_kernel_grad=False (what Conv2DTranspose's forward asks for): dx only, the same dx."""
    x, k, _ = _data(case, np.float64)
    kw = _kwargs(case)
    dy = np.random.default_rng(6).standard_normal(ref.conv2d_forward(x, k, **kw).shape)
    dx, _, _ = backend.conv2d_backward(dy, x, k, **kw)
    dx2, dk2, db2 = backend.conv2d_backward(dy, x, k, need_kernel_grad=False, need_bias_grad=False, **kw)
    assert dk2 is None and db2 is None
    np.testing.assert_array_equal(dx2, dx)
    # The bias gradient alone still comes out right (computed with a scratch kernel gradient).
    _, dk3, db3 = backend.conv2d_backward(dy, x, k, need_kernel_grad=False, **kw)
    assert dk3 is None
    _close(db3, dy.sum(axis=(0, 1, 2)), np.float64)
    nothing = backend.conv2d_backward(dy, x, k, need_input_grad=False, need_kernel_grad=False,
                                      need_bias_grad=False, **kw)
    assert nothing == (None, None, None)


@pytest.mark.parametrize("case", [CASES[0], CASES[18]], ids=[CASE_IDS[0], CASE_IDS[18]])
def test_need_input_grad_and_bias_grad(case):
    x, k, _ = _data(case, np.float64)
    kw = _kwargs(case)
    dy = np.random.default_rng(5).standard_normal(ref.conv2d_forward(x, k, **kw).shape)
    dx, dk, db = ops.conv2d_backward(dy, x, k, **kw)
    dx2, dk2, db2 = ops.conv2d_backward(dy, x, k, need_input_grad=False, **kw)
    assert dx2 is None and dx is not None
    np.testing.assert_array_equal(dk2, dk)
    np.testing.assert_array_equal(db2, db)
    dx3, dk3, db3 = ops.conv2d_backward(dy, x, k, need_input_grad=False, need_bias_grad=False, **kw)
    assert dx3 is None and db3 is None
    np.testing.assert_array_equal(dk3, dk)


THREAD_CASES = [
    ((4, 32, 32, 8), (3, 3, 8, 8), 1, "same", 1, 1),      # 4 weight-gradient chunks
    ((4, 32, 32, 1), (3, 3, 1, 32), 1, "same", 1, 1),     # first layer, dy read in place
    ((4, 32, 32, 6), (3, 3, 1, 6), 1, "same", 1, 6),      # depthwise, 4 chunks
    ((4, 15, 13, 16), (3, 3, 16, 24), 1, "same", 1, 1),   # adjoint-conv input gradient
    ((3, 17, 16, 8), (3, 3, 8, 8), 2, "same", 1, 1),      # strided scatter bands
    ((2, 20, 20, 12), (3, 3, 1, 12), 1, "same", 1, 12),   # depthwise
    ((2, 16, 16, 32), (1, 1, 32, 40), 1, "valid", 1, 1),  # 1x1
    ((1, 40, 9, 6), (5, 3, 3, 10), 1, "same", (2, 1), 2),  # batch 1, dilated, grouped
    ((4, 30, 30, 1), (5, 5, 1, 6), 1, "same", 1, 1),      # first layer: dW^T in chunks
    ((3, 17, 17, 3), (3, 3, 3, 16), 2, "same", 1, 1),     # few channels, strided scatter
    ((3, 1, 1, 700), (1, 1, 700, 70), 1, "valid", 1, 1),  # dense-like: work split over panels, K blocks
    ((2, 5, 5, 40), (3, 3, 40, 50), 1, "same", 1, 1),     # one pixel block, two K blocks
    ((2, 30, 40, 3), (11, 11, 3, 16), 4, 2, 1, 1),        # AlexNet-like stem: kernel rows in one call
    ((2, 27, 33, 5), (11, 11, 5, 16), 4, 2, 1, 1),        # 11 x 55 values: kernel rows in 2 calls
    ((2, 130, 150, 3), (3, 3, 3, 7), 1, "same", 1, 1),    # flat rows: several bands per image
    ((8, 32, 32, 16), (3, 3, 16, 16), 1, "same", 1, 1),   # Winograd weight gradient in 2 chunks
    ((5, 28, 28, 1), (3, 3, 1, 32), 1, "same", 1, 1),     # one-channel weight gradient, 3 chunks
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", THREAD_CASES, ids=[f"x{c[0]}-k{c[1]}" for c in THREAD_CASES])
def test_bit_identical_for_any_thread_count(case, dtype):
    x, k, b = _data(case, dtype, seed=7)
    kw = _kwargs(case)
    results = []
    previous = fastconv.backend._num_threads  # None (OpenMP default) or the value set
    try:
        for threads in (1, 2, 3, 7):
            fastconv.set_num_threads(threads)
            y = ops.conv2d_forward(x, k, b, **kw)
            dy = np.cos(y)  # same dy for every thread count
            results.append((y,) + ops.conv2d_backward(dy, x, k, **kw))
    finally:
        fastconv.set_num_threads(previous)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(a, c)
    # And still the right answer.
    _close(results[0][0], ref.conv2d_forward(x, k, b, **kw), dtype)


TILE_CASES = [
    ((2, 9, 7, 5), (3, 3, 5, 64), 1, "same", 1, 1),       # 64 filters: broad tiles
    ((1, 6, 5, 70), (3, 3, 70, 130), 1, "same", 1, 1),    # 130 filters: broad + a masked tail
    ((3, 5, 6, 40), (1, 1, 40, 128), 1, "valid", 1, 1),   # 1x1 (direct rows, dW too)
    ((5, 1, 1, 300), (1, 1, 300, 128), 1, "valid", 1, 1),  # dense-like: broad with > 128 inputs
    ((2, 8, 8, 12), (3, 3, 12, 32), 2, "same", 1, 1),     # float64 broad = 32 columns
    ((2, 12, 11, 1), (5, 5, 1, 6), 1, "same", 1, 1),      # narrow tiles
    ((2, 7, 9, 5), (3, 3, 5, 37), 1, "same", 1, 1),       # wide tiles
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TILE_CASES, ids=[f"x{c[0]}-k{c[1]}" for c in TILE_CASES])
def test_tile_sets_give_identical_results(case, dtype):
    """Narrow, wide and broad GEMM tiles compute every element in the same order."""
    x, k, b = _data(case, dtype, seed=3)
    kw = _kwargs(case)
    dy = np.random.default_rng(4).standard_normal(ref.conv2d_forward(x, k, **kw).shape).astype(dtype)
    results = []
    try:
        for narrow, broad in ((True, True), (False, False), (True, False), (False, True)):
            core._set_paths(narrow, broad, winograd=False)
            results.append((ops.conv2d_forward(x, k, b, **kw),) + ops.conv2d_backward(dy, x, k, **kw))
    finally:
        core._set_paths()
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(a, c)
    want = (ref.conv2d_forward(x, k, b, **kw),) + ref.conv2d_backward(dy, x, k, **kw)
    for got, exp in zip(results[0], want):
        _close(got, exp, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_streamed_outputs_hold_the_stored_values(case, dtype):
    """Outputs past the non-temporal-store threshold (FC_GEMM_STREAM, conv2d.h) are the same
    bits: threshold 0 streams every output the implicit GEMM writes directly (whole tiles on
    vector boundaries; the others are stored as usual), against the default (none here)."""
    x, k, b = _data(case, dtype, seed=11)
    kw = _kwargs(case)
    dy = np.random.default_rng(12).standard_normal(ref.conv2d_forward(x, k, **kw).shape).astype(dtype)
    results = []
    previous = core._set_stream_min_bytes()
    try:
        core._set_paths(winograd=False)  # 3x3 layers through the implicit GEMM too
        for threshold in (0, None):
            core._set_stream_min_bytes(threshold)
            results.append((ops.conv2d_forward(x, k, b, **kw),
                            ops.conv2d_forward(x, k, b, **kw, activation="relu"))
                           + ops.conv2d_backward(dy, x, k, **kw))
    finally:
        core._set_stream_min_bytes(previous)
        core._set_paths()
    for name, streamed, stored in zip(("y", "relu(y)", "dx", "dkernel", "dbias"), *results):
        assert streamed.tobytes() == stored.tobytes(), name
    _close(results[0][0], ref.conv2d_forward(x, k, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 8, 16, 32, 40])  # bytes past a 64-byte line
@pytest.mark.parametrize("filters", [32, 20])  # rows whole 64-byte lines apart, or not
def test_streamed_outputs_at_any_alignment(offset, filters, dtype):
    """Non-temporal stores need aligned addresses (and are used for whole lines only): an
    output that starts anywhere (a caller's view) is streamed where its tiles are whole lines
    and stored otherwise."""
    case = ((2, 5, 7, 16), (1, 1, 16, filters), 1, "valid", 1, 1)
    x, k, b = _data(case, dtype, seed=13)
    geo, args = _core_args(case)
    size = geo.n * geo.out_h * geo.out_w * filters
    shift = offset // np.dtype(dtype).itemsize
    buf = cpu.empty_aligned(size + 16, dtype)
    y = buf[shift:shift + size].reshape(geo.n, geo.out_h, geo.out_w, filters)
    y[...] = np.nan
    previous = core._set_stream_min_bytes(0)
    try:
        core.conv2d_forward(x, k, b, y, *args, 2)
    finally:
        core._set_stream_min_bytes(previous)
    assert y.tobytes() == ops.conv2d_forward(x, k, b, **_kwargs(case)).tobytes()


# Paths whose threads allocate their scratch inside the parallel region (fc_thread_alloc),
# forward and backward: (case, the paths allowed).
THREAD_SCRATCH_CASES = [
    # flat rows, flat dW (where the vectors are too short for the flat rows, the portable C,
    # the implicit GEMM rather than the few-filter kernel, which allocates nothing here)
    (((4, 30, 30, 1), (5, 5, 1, 6), 1, "same", 1, 1), {"dot": False}),
    (((8, 33, 31, 8), (3, 3, 8, 24), 1, "same", 1, 1), {"winograd": False}),  # implicit GEMM
    (((8, 33, 33, 3), (3, 3, 3, 16), 2, "same", 1, 1), {}),                # strided scatter
    (((16, 63, 63, 3), (11, 11, 3, 16), 4, 2, 1, 1), {}),                  # framed few-channel
    (((8, 32, 32, 16), (3, 3, 16, 16), 1, "same", 1, 1), {}),              # Winograd, its dW
    (((8, 14, 14, 6), (5, 5, 6, 16), 1, "valid", 1, 1), {}),               # zero-bordered dx rows
]


@pytest.mark.parametrize("failing", [1, 2, 3], ids=["thread0", "thread1", "both"])
@pytest.mark.parametrize("case,paths", THREAD_SCRATCH_CASES,
                         ids=[f"x{c[0][0]}-k{c[0][1]}" for c in THREAD_SCRATCH_CASES])
def test_scratch_allocation_failure_raises_memory_error(case, paths, failing):
    """A call in which a thread's scratch could not be allocated raises MemoryError (the
    thread skips its share; no crash, no hang: the others still meet at the barriers), and
    only such a call; the next call, with memory, gives the same result as before. (Which
    calls allocate in the region depends on the ISA's paths: the one-channel weight gradient,
    for one, allocates nothing there.)"""
    x, k, b = _data(case, np.float32, seed=17)
    kw = _kwargs(case)
    previous = fastconv.backend._num_threads
    try:
        fastconv.set_num_threads(2)
        core._set_paths(**paths)
        y = ops.conv2d_forward(x, k, b, **kw)
        dy = np.cos(y)
        grads = ops.conv2d_backward(dy, x, k, **kw)
        calls = [lambda: ops.conv2d_forward(x, k, b, **kw)] + [
            lambda wanted=wanted: ops.conv2d_backward(dy, x, k, **kw, **wanted)
            for wanted in ({}, {"need_input_grad": False},
                           {"need_kernel_grad": False, "need_bias_grad": False})]
        first = core._thread_allocs_denied()
        core._fail_thread_allocs(failing)
        try:
            for call in calls:
                before = core._thread_allocs_denied()
                try:
                    call()
                    raised = False
                except MemoryError as e:
                    assert "workspace" in str(e)
                    raised = True
                assert raised == (core._thread_allocs_denied() > before)
        finally:
            core._fail_thread_allocs(0)
        assert core._thread_allocs_denied() > first  # (the forward allocates on every ISA)
        np.testing.assert_array_equal(ops.conv2d_forward(x, k, b, **kw), y)
        for again, first_grad in zip(ops.conv2d_backward(dy, x, k, **kw), grads):
            np.testing.assert_array_equal(again, first_grad)
    finally:
        core._set_paths()
        fastconv.set_num_threads(previous)


def _path_on_and_off(path, x, k, b, dy, kw, activation=None, **other_paths):
    """{True: results, False: results} with the optional kernel path `path` (a keyword of
    core._set_paths) allowed, then not; results = (y, dx, dkernel, dbias), plus y with the
    fused `activation` when given. The default paths are restored afterwards."""
    results = {}
    try:
        for on in (True, False):
            core._set_paths(**{path: on}, **other_paths)
            results[on] = (ops.conv2d_forward(x, k, b, **kw),) + ops.conv2d_backward(dy, x, k, **kw)
            if activation is not None:
                results[on] += (ops.conv2d_forward(x, k, b, **kw, activation=activation),)
    finally:
        core._set_paths()
    return results


# 3x3 stride-1 layers with >= 16 channels and filters: Winograd F(2x2, 3x3) forward and
# input gradient (the adjoint is such a layer too).
WINOGRAD_CASES = [
    ((2, 7, 9, 16), (3, 3, 16, 16), "same"),           # odd output: partial tiles
    ((1, 5, 6, 20), (3, 3, 20, 33), "valid"),          # 3x4 output, filter tail
    ((1, 9, 4, 17), (3, 3, 17, 130), ((2, 0), (1, 3))),  # asymmetric padding
    ((3, 2, 2, 24), (3, 3, 24, 18), ((1, 1), (1, 1))),  # 2x2 output: one tile per image
    ((2, 11, 13, 70), (3, 3, 70, 64), "same"),         # several tile blocks, broad tiles
    ((2, 8, 8, 24), (3, 3, 24, 40), "same"),           # whole 4x4 tiles
    ((1, 14, 9, 16), (3, 3, 16, 17), ((0, 1), (2, 0))),  # 4x4 tiles, partial at two borders
]


@pytest.mark.parametrize("tiles4", ["always", False], ids=["tiles-4x4", "tiles-2x2"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=[f"x{c[0]}-k{c[1]}" for c in WINOGRAD_CASES])
def test_winograd_matches_reference_and_direct(case, dtype, tiles4):
    x_shape, k_shape, padding = case
    x, k, b = _data((x_shape, k_shape), dtype, seed=5)
    kw = dict(strides=1, padding=padding, dilation_rate=1, groups=1)
    y_ref = ref.conv2d_forward(x, k, b, **kw)
    dy = np.random.default_rng(6).standard_normal(y_ref.shape).astype(dtype)
    want = (y_ref,) + ref.conv2d_backward(dy, x, k, **kw)
    results = _path_on_and_off("winograd", x, k, b, dy, kw, winograd4=tiles4)
    for name, got, direct, exp in zip(("y", "dx", "dkernel", "dbias"), results[True],
                                      results[False], want):
        _close(got, exp, dtype, name)
        _close(got, direct, dtype, name + " vs direct")
    # the paths really differ (the transforms round differently): Winograd did run
    assert not np.array_equal(results[True][0], results[False][0])
    assert not np.array_equal(results[True][1], results[False][1])
    assert not np.array_equal(results[True][2], results[False][2])


# Few filters (fewer than a vector) and few input channels: the flat-row path (forward,
# weight gradient, and the input gradient where the adjoint qualifies: stride 1, C < VL);
# and the one-channel weight gradient (below).
FLAT_CASES = [
    ((3, 32, 32, 1), (5, 5, 1, 6), 1, "valid", 1, 1),          # LeNet-5 C1
    ((2, 28, 28, 1), (5, 5, 1, 6), 1, "same", 1, 1),           # ... padded
    ((2, 17, 13, 3), (3, 3, 3, 5), 2, "same", 1, 1),           # strided, odd sizes
    ((1, 19, 23, 2), (4, 3, 2, 3), 3, "valid", 1, 1),          # stride 3: three column phases
    ((2, 15, 11, 3), (3, 3, 3, 7), 1, "same", (2, 2), 1),      # dilated
    ((1, 31, 29, 3), (11, 11, 3, 7), 4, "valid", 1, 1),        # AlexNet-like stem
    ((2, 9, 9, 4), (3, 3, 4, 3), 1, ((2, 1), (0, 3)), 1, 1),   # asymmetric padding
    ((1, 12, 14, 8), (2, 3, 8, 1), 1, ((0, 2), (3, 1)), (1, 2), 1),  # one filter, width dilation
    ((2, 130, 150, 3), (3, 3, 3, 7), 1, "same", 1, 1),         # several bands per image
    # wide rows of 32 pixels (whole blocks of the kernel that computes two output rows at once)
    ((2, 13, 32, 2), (3, 3, 2, 5), 1, "valid", 1, 1),          # rows in pairs + an odd one
    ((1, 16, 32, 1), (1, 3, 1, 7), 2, "valid", 1, 1),          # one kernel row, stride 2
    ((2, 11, 30, 1), (3, 3, 1, 7), 1, "same", 1, 1),           # 16 values expand to 7 vectors + a tail
    ((1, 9, 24, 1), (3, 1, 1, 8), 1, "same", 1, 1),            # 8 filters: one-vector pattern
    # One input channel, stride 1, whole vectors of filters: the one-channel weight gradient
    # (runs of up to three taps of a kernel row times the filters, sums kept in registers over
    # an output row), under the same switch ("flat" off: the GEMM path).
    ((3, 28, 28, 1), (3, 3, 1, 32), 1, "same", 1, 1),           # the MNIST CNN's first layer
    ((2, 12, 10, 1), (5, 5, 1, 16), 1, ((3, 1), (0, 4)), 1, 1),  # runs of 3 + 2 taps, asymmetric
    ((1, 9, 11, 1), (2, 4, 1, 8), 1, "valid", 1, 1),            # one vector of filters
    ((2, 7, 7, 1), (3, 3, 1, 40), 1, "same", 1, 1),             # filter groups 2 + 2 + 1 vectors
    ((3, 6, 5, 1), (1, 1, 1, 24), 1, "valid", 1, 1),            # 1x1
    ((1, 1, 9, 1), (1, 7, 1, 8), 1, "same", 1, 1),              # one output row
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FLAT_CASES, ids=[f"x{c[0]}-k{c[1]}" for c in FLAT_CASES])
def test_flat_rows_match_reference_and_gemm(case, dtype):
    x, k, b = _data(case, dtype, seed=8)
    kw = _kwargs(case)
    y_ref = ref.conv2d_forward(x, k, b, **kw)
    dy = np.random.default_rng(9).standard_normal(y_ref.shape).astype(dtype)
    want = (y_ref,) + ref.conv2d_backward(dy, x, k, **kw)
    results = _path_on_and_off("flat", x, k, b, dy, kw, activation="relu")
    want += (np.maximum(y_ref, 0),)
    for name, got, gemm, exp in zip(("y", "dx", "dkernel", "dbias", "relu(y)"), results[True],
                                    results[False], want):
        _close(got, exp, dtype, name)
        _close(got, gemm, dtype, name + " vs GEMM")
    assert not np.signbit(results[True][4]).any()  # max(y, 0) gives +0, never -0
    # the paths sum in different orders: the flat rows did run where they apply (fewer filters
    # than the selected ISA's vector holds: not every case on every ISA path)
    if k.shape[3] < core._flat_lanes(dtype):
        assert not np.array_equal(results[True][0], results[False][0])
        assert not np.array_equal(results[True][2], results[False][2])


# One to eight filters and more input channels than the flat rows take (forward), or one to
# eight input channels and more filters (the stride-1 input gradient: its adjoint has the
# layer's channels as filters): the few-filter kernel, whose lanes run along the reduction
# (runs of KW * C values; border pixels with shorter runs, or zero-bordered rows where they
# are most of a row).
DOT_CASES = [
    ((2, 11, 13, 12), (3, 3, 12, 1), 1, "same", 1, 1),
    ((2, 15, 17, 13), (3, 4, 13, 1), (2, 3), ((2, 1), (3, 0)), 1, 1),  # strided, asymmetric
    ((2, 13, 11, 10), (3, 3, 10, 1), 1, 1, (2, 1), 1),           # dilated rows
    ((1, 9, 8, 16), (2, 3, 16, 1), 1, ((3, 4), (5, 2)), 1, 1),   # pads wider than the kernel
    ((2, 7, 9, 24), (1, 1, 24, 1), 1, "valid", 1, 1),            # 1x1: matrix-vector
    ((3, 28, 28, 1), (3, 3, 1, 32), 1, "same", 1, 1),            # first layer: dx
    ((2, 12, 10, 1), (5, 5, 1, 20), 1, ((3, 1), (0, 4)), 1, 1),  # ... asymmetric padding
    # several filters (forward) or several channels (input gradient)
    ((2, 9, 11, 12), (3, 3, 12, 5), 1, "same", 1, 1),
    ((2, 15, 17, 16), (3, 4, 16, 3), (2, 3), ((2, 1), (3, 0)), 1, 1),  # strided, asymmetric
    ((1, 7, 9, 24), (3, 3, 24, 8), 1, ((3, 4), (5, 2)), 1, 1),  # pads wider than the kernel
    ((2, 6, 5, 10), (5, 5, 10, 7), 1, "same", 1, 1),            # zero-bordered rows
    ((2, 5, 6, 64), (1, 1, 64, 2), 1, "valid", 1, 1),           # 1x1
    ((2, 14, 14, 6), (5, 5, 6, 16), 1, "valid", 1, 1),          # LeNet-5 C3: dx
    ((2, 9, 8, 3), (3, 3, 3, 20), 1, "same", 1, 1),             # ... runs with a tail
    ((1, 10, 12, 8), (2, 3, 8, 24), 1, ((0, 2), (1, 3)), 1, 1),  # ... asymmetric padding
    ((2, 11, 9, 5), (4, 3, 5, 17), 1, "same", (2, 1), 1),       # ... dilated rows
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DOT_CASES, ids=[f"x{c[0]}-k{c[1]}" for c in DOT_CASES])
def test_single_filter_kernel_matches_reference_and_gemm(case, dtype):
    x, k, b = _data(case, dtype, seed=10)
    kw = _kwargs(case)
    y_ref = ref.conv2d_forward(x, k, b, **kw)
    dy = np.random.default_rng(11).standard_normal(y_ref.shape).astype(dtype)
    want = (y_ref,) + ref.conv2d_backward(dy, x, k, **kw) + (np.tanh(y_ref),)
    results = _path_on_and_off("dot", x, k, b, dy, kw, activation="tanh")
    for name, got, gemm, exp in zip(("y", "dx", "dkernel", "dbias", "tanh(y)"), results[True],
                                    results[False], want):
        _close(got, exp, dtype, name)
        _close(got, gemm, dtype, name + " vs GEMM")
    # the paths sum in different orders: the kernel did run (forward: one filter, or up to
    # eight with more input channels than the flat rows take; input gradient: one channel,
    # or up to eight with more filters than they take). With one-lane vectors (the
    # portable-C build) its sums run in the GEMM's order: same bits.
    channels, filters = k.shape[2], k.shape[3]
    if core._flat_lanes(dtype) > 1 and (filters == 1 or channels > 8 >= filters):
        assert not np.array_equal(results[True][0], results[False][0])
    if core._flat_lanes(dtype) > 1 and (channels == 1 or filters > 8 >= channels):
        assert not np.array_equal(results[True][1], results[False][1])


@pytest.mark.parametrize("filters", [1, 3, 6, 8])
@pytest.mark.parametrize("dtype", DTYPES)
def test_few_filter_sums_do_not_depend_on_the_pixel_grouping(filters, dtype):
    """The few-filter kernel adds up the lanes of P pixels x F filters at once (a transposition)
    and of a row's last pixels one at a time: every sum must get the same bits either way.
    Dropping the input's first column shifts each output pixel by one place in its row, so
    into another slot of its block (or out of a block)."""
    x, k, b = _data(((2, 7, 14, 16), (3, 3, 16, filters)), dtype, seed=21)
    full = ops.conv2d_forward(x, k, b)
    shifted = ops.conv2d_forward(np.ascontiguousarray(x[:, :, 1:]), k, b)
    np.testing.assert_array_equal(full[:, :, 1:], shifted)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flat_rows_keep_an_inf_to_the_gradients_it_reaches(dtype):
    """An inf in an input column that some taps never reach (past the last window of a
    'valid' layer for the left taps): those taps' weight gradients stay finite, as in the
    reference (the flat rows multiply only each output row's own pixels)."""
    x, k, _ = _data(((2, 12, 16, 1), (5, 5, 1, 6)), dtype, seed=13)
    x[1, 6, 14, 0] = np.inf  # column 14: only taps j >= 3 reach it (output columns 0..11)
    dy = np.random.default_rng(14).standard_normal((2, 8, 12, 6)).astype(dtype)
    with np.errstate(invalid="ignore"):  # inf * 0 in the reference's products
        _, dk, db = ops.conv2d_backward(dy, x, k, need_input_grad=False)
        _, dk_ref, db_ref = ref.conv2d_backward(dy, x, k, need_input_grad=False)
    np.testing.assert_array_equal(np.isfinite(dk), np.isfinite(dk_ref))
    assert np.isfinite(dk[:, :3]).all()
    finite = np.isfinite(dk_ref)
    _close(dk[finite], dk_ref[finite], dtype, "dkernel")
    _close(db, db_ref, dtype, "dbias")


ISA_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from fastconv import ops, reference as ref
    from fastconv._core import cpu
    assert cpu.isa_name() == sys.argv[1], (cpu.isa_name(), sys.argv[1])
    rng = np.random.default_rng(0)
    cases = [((2, 7, 9, 5), (3, 3, 5, 37), 1, "same", 1, 1),
             ((1, 6, 6, 20), (1, 1, 20, 19), 1, "valid", 1, 1),
             ((2, 9, 8, 6), (3, 2, 3, 8), (2, 3), ((1, 2), (0, 3)), 1, 2),
             ((2, 9, 9, 6), (3, 3, 1, 12), 2, "same", 1, 6),
             ((1, 11, 10, 4), (3, 3, 4, 17), 1, "same", (2, 2), 1),
             ((2, 6, 6, 300), (3, 3, 300, 9), 1, "same", 1, 1),
             ((2, 12, 11, 1), (5, 5, 1, 6), 1, "same", 1, 1),
             ((2, 12, 11, 3), (3, 3, 3, 6), 2, ((4, 1), (5, 2)), 1, 1),
             ((1, 30, 40, 3), (11, 11, 3, 16), 4, 2, 1, 1),
             ((2, 7, 6, 9), (3, 3, 9, 64), 1, "same", 1, 1),
             ((2, 5, 4, 33), (1, 1, 33, 130), 1, "valid", 1, 1),
             ((2, 7, 9, 17), (3, 3, 17, 33), 1, "same", 1, 1),
             ((1, 5, 6, 20), (3, 3, 20, 16), 1, "valid", 1, 1),
             ((1, 12, 10, 20), (3, 3, 20, 24), 1, "same", 1, 1),
             ((2, 13, 12, 2), (3, 5, 2, 1), (2, 1), "same", 1, 1),
             ((1, 15, 17, 3), (4, 3, 3, 3), 3, ((2, 1), (0, 3)), 1, 1),
             ((2, 10, 9, 5), (3, 3, 5, 2), 1, "same", 1, 1)]
    for dtype, rtol in ((np.float32, 1e-4), (np.float64, 1e-10)):
        for xs, ks, s, p, d, g in cases:
            kw = dict(strides=s, padding=p, dilation_rate=d, groups=g)
            x = rng.standard_normal(xs).astype(dtype)
            k = rng.standard_normal(ks).astype(dtype)
            b = rng.standard_normal(ks[3]).astype(dtype)
            y = ops.conv2d_forward(x, k, b, **kw)
            dy = rng.standard_normal(y.shape).astype(dtype)
            got = (y,) + ops.conv2d_backward(dy, x, k, **kw)
            want = (ref.conv2d_forward(x, k, b, **kw),) + ref.conv2d_backward(dy, x, k, **kw)
            for a, e in zip(got, want):
                scale = max(1.0, float(np.abs(e).max()))
                np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale)
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


def test_gradients_match_finite_differences():
    """Centred differences of L = sum(conv(x, k) + b) * r) in float64."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 6, 5, 4))
    k = rng.standard_normal((3, 2, 2, 6))
    b = rng.standard_normal(6)
    kw = dict(strides=(2, 1), padding=((1, 0), (2, 1)), dilation_rate=1, groups=2)
    r = rng.standard_normal(ops.conv2d_forward(x, k, b, **kw).shape)

    def loss(x_, k_, b_):
        return float(np.sum(ops.conv2d_forward(x_, k_, b_, **kw) * r))

    dx, dk, db = ops.conv2d_backward(r, x, k, **kw)
    eps = 1e-6
    for arr, grad in ((x, dx), (k, dk), (b, db)):
        for idx in list(np.ndindex(arr.shape))[:: max(1, arr.size // 25)]:
            saved = arr[idx]
            arr[idx] = saved + eps
            up = loss(x, k, b)
            arr[idx] = saved - eps
            down = loss(x, k, b)
            arr[idx] = saved
            np.testing.assert_allclose(grad[idx], (up - down) / (2 * eps), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "x_shape, k_shape, kwargs, error",
    [
        ((5, 5, 3), (3, 3, 3, 4), {}, ValueError),                         # x rank 3
        ((1, 5, 5, 3), (3, 3, 4), {}, ValueError),                         # kernel rank 3
        ((1, 5, 5, 6), (3, 3, 2, 4), dict(groups=4), ValueError),          # groups !| C
        ((1, 5, 5, 6), (3, 3, 2, 4), dict(groups=3), ValueError),          # groups !| F
        ((1, 5, 5, 6), (3, 3, 3, 4), dict(groups=3), ValueError),          # kernel C_g wrong
        ((1, 5, 5, 3), (6, 3, 3, 4), {}, ValueError),                      # kernel > input
        ((1, 5, 5, 3), (3, 3, 3, 4), dict(dilation_rate=3), ValueError),   # dilated kernel > input
        ((1, 5, 5, 3), (3, 3, 3, 4), dict(strides=0), ValueError),
        ((1, 5, 5, 3), (3, 3, 3, 4), dict(padding="full"), ValueError),
        ((1, 5, 5, 3), (3, 3, 3, 4), dict(groups=0), ValueError),
        ((0, 5, 5, 3), (3, 3, 3, 4), {}, ValueError),                      # empty batch
    ],
)
def test_bad_arguments_raise(x_shape, k_shape, kwargs, error):
    x = np.ones(x_shape, np.float32)
    k = np.ones(k_shape, np.float32)
    with pytest.raises(error):
        ops.conv2d_forward(x, k, **kwargs)
    with pytest.raises(error):
        ops.conv2d_backward(np.ones((1, 3, 3, 4), np.float32), x, k, **kwargs)


def test_bad_dtypes_and_shapes_raise():
    x = np.ones((1, 5, 5, 3), np.float32)
    k = np.ones((3, 3, 3, 4), np.float32)
    with pytest.raises(TypeError, match="x"):
        ops.conv2d_forward(x.astype(bool), k)
    with pytest.raises(TypeError, match="x"):
        ops.conv2d_forward(x.astype(np.complex64), k)
    with pytest.raises(TypeError, match="kernel"):
        ops.conv2d_forward(x, k.astype(np.complex128))
    with pytest.raises(TypeError, match="bias"):
        ops.conv2d_forward(x, k, np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="bias"):
        ops.conv2d_forward(x, k, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="dy"):
        ops.conv2d_backward(np.ones((1, 3, 3, 5), np.float32), x, k)
    with pytest.raises(TypeError, match="dy"):
        ops.conv2d_backward(np.ones((1, 3, 3, 4), np.complex64), x, k)


def test_core_boundary_checks():
    """The compiled entry points refuse inconsistent arrays instead of reading out of bounds."""
    x = np.ones((1, 5, 5, 3), np.float32)
    k = np.ones((3, 3, 3, 4), np.float32)
    y = np.empty((1, 3, 3, 4), np.float32)
    geo = ((1, 1), (0, 0, 0, 0), (1, 1), 1, 1)
    with pytest.raises(ValueError, match="`dbias` needs `dkernel`"):
        core.conv2d_backward(y, x, k, None, None, np.empty(4, np.float32), *geo)
    core.conv2d_forward(x, k, None, y, *geo)                       # consistent: fine
    with pytest.raises(ValueError, match="kernel"):
        core.conv2d_forward(x, k.astype(np.float64), None, y, *geo)   # dtype mismatch
    with pytest.raises(ValueError, match="out"):
        core.conv2d_forward(x, k, None, y.astype(np.float64), *geo)
    with pytest.raises(ValueError, match="bias"):
        core.conv2d_forward(x, k, np.ones(4), y, *geo)
    with pytest.raises(ValueError, match="out"):
        core.conv2d_forward(x, k, None, np.empty((1, 4, 3, 4), np.float32), *geo)
    with pytest.raises(ValueError, match="contiguous"):
        core.conv2d_forward(x, k, None, np.empty((1, 3, 3, 8), np.float32)[..., ::2], *geo)
    with pytest.raises(ValueError, match="dtype"):
        core.conv2d_forward(x.astype(np.int32), k, None, y, *geo)
    with pytest.raises(TypeError, match="x"):
        core.conv2d_forward([[1.0]], k, None, y, *geo)
    with pytest.raises(ValueError, match="groups"):
        core.conv2d_forward(x, k, None, y, (1, 1), (0, 0, 0, 0), (1, 1), 2, 1)
    with pytest.raises(ValueError, match="larger"):
        core.conv2d_forward(x, np.ones((7, 3, 3, 4), np.float32), None, y, *geo)
    with pytest.raises(ValueError, match="pads"):
        core.conv2d_forward(x, k, None, y, (1, 1), (0, 0, -1, 0), (1, 1), 1, 1)
    with pytest.raises(ValueError, match="num_threads"):
        core.conv2d_forward(x, k, None, y, (1, 1), (0, 0, 0, 0), (1, 1), 1, 0)
    dy = np.ones((1, 3, 3, 4), np.float32)
    dk = np.empty_like(k)
    with pytest.raises(ValueError, match="dx"):
        core.conv2d_backward(dy, x, k, np.empty((1, 5, 5, 4), np.float32), dk, None, *geo)
    with pytest.raises(ValueError, match="dkernel"):
        core.conv2d_backward(dy, x, k, None, dk.astype(np.float64), None, *geo)
    with pytest.raises(ValueError, match="dy"):
        core.conv2d_backward(dy[:, :2], x, k, None, dk, None, *geo)


def test_winograd_4x4_tiles_run_where_they_pay():
    """4x4 tiles run for 64 x 128 channels over 128 whole tiles (their rounding differs from
    2x2 tiles'), not over 4 tiles (the kernels' packing would outweigh the products saved),
    nor for 400 x 400 channels (36 transformed kernels of 400 x 400 floats, 23 MB, beyond
    FC_WINO4_MAX_U_BYTES); forced ("always"), they run there too."""
    def forward(x_shape, k_shape, tiles4):
        x, k, b = _data((x_shape, k_shape), np.float32, seed=8)
        try:
            core._set_paths(winograd4=tiles4)
            return ops.conv2d_forward(x, k, b, strides=1, padding="same", dilation_rate=1, groups=1)
        finally:
            core._set_paths()
    many = ((8, 16, 16, 64), (3, 3, 64, 128))
    assert not np.array_equal(forward(*many, True), forward(*many, False))
    for shapes in (((1, 8, 8, 64), (3, 3, 64, 128)), ((8, 16, 16, 400), (3, 3, 400, 400))):
        two = forward(*shapes, False)
        np.testing.assert_array_equal(forward(*shapes, True), two)
        assert not np.array_equal(forward(*shapes, "always"), two)
    assert core._set_paths(winograd4="always")["winograd4"] is True
    assert core._set_paths()["winograd4"] == "always"


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_weight_gradient_of_one_large_chunk_is_shared_by_the_threads(dtype):
    """384 -> 384 channels over 81 2x2 tiles: one chunk (its partial sums, 9.4 MB and more,
    would be too large to split), whose blocks the two threads share: the bits of one thread,
    and the reference's values."""
    x, k = _data(((1, 18, 18, 384), (3, 3, 384, 384)), dtype, seed=10)[:2]
    dy = np.random.default_rng(10).standard_normal((1, 18, 18, 384)).astype(dtype)
    previous = fastconv.backend._num_threads  # None (OpenMP default) or the value set
    results = {}
    try:
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            results[threads] = ops.conv2d_backward(dy, x, k, padding="same", need_input_grad=False)[1:]
    finally:
        fastconv.set_num_threads(previous)
    for one, two in zip(results[1], results[2]):
        np.testing.assert_array_equal(one, two)
    want = ref.conv2d_backward(dy, x, k, padding="same")[1:]
    _close(results[2][0], want[0], dtype, "dkernel")
    _close(results[2][1], want[1], dtype, "dbias")


def test_winograd_weight_gradient_takes_partial_4x4_tiles():
    """The weight gradient of a layer with 14x14 outputs takes partial 4x4 tiles on every ISA
    path, as the forward does: the two roundings show which ran."""
    x, k = _data(((2, 14, 14, 16), (3, 3, 16, 32)), np.float32, seed=9)[:2]
    dy = np.random.default_rng(9).standard_normal((2, 14, 14, 32)).astype(np.float32)

    def dkernel(tiles4):
        try:
            core._set_paths(winograd4=tiles4)
            return ops.conv2d_backward(dy, x, k, strides=1, padding="same", dilation_rate=1,
                                       groups=1, need_input_grad=False)[1]
        finally:
            core._set_paths()
    auto, two = dkernel(True), dkernel(False)
    _close(auto, ref.conv2d_backward(dy, x, k, padding="same")[1], np.float32, "dkernel")
    assert not np.array_equal(auto, two)


def test_winograd_can_be_turned_off_by_environment():
    """FASTCONV_WINOGRAD=0 at import gives the direct path's results."""
    script = textwrap.dedent(
        """
        import numpy as np
        from fastconv import ops
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 8, 8, 16)).astype(np.float32)
        k = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
        np.save("y.npy", ops.conv2d_forward(x, k, None, padding="same"))
        """
    )
    outputs = {}
    for value in ("0", "1"):
        with __import__("tempfile").TemporaryDirectory() as tmp:
            env = dict(os.environ, FASTCONV_WINOGRAD=value, PYTHONPATH=ROOT)
            proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr[-3000:]
            outputs[value] = np.load(os.path.join(tmp, "y.npy"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 16)).astype(np.float32)
    k = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    try:
        core._set_paths(winograd=False)
        direct = ops.conv2d_forward(x, k, None, padding="same")
    finally:
        core._set_paths()
    np.testing.assert_array_equal(outputs["0"], direct)
    assert not np.array_equal(outputs["1"], direct)


RELU_CASES = [
    ((2, 7, 9, 5), (3, 3, 5, 37), 1, "same", 1, 1),          # implicit GEMM
    ((2, 11, 13, 70), (3, 3, 70, 64), 1, "same", 1, 1),      # Winograd
    ((3, 1, 1, 700), (1, 1, 700, 70), 1, "valid", 1, 1),     # dense-like, work split over panels
    ((2, 9, 8, 6), (3, 2, 3, 8), (2, 3), ((1, 2), (0, 3)), 1, 2),  # groups
    ((2, 9, 9, 6), (3, 3, 1, 12), 2, "same", 1, 6),          # depthwise
    ((2, 12, 11, 1), (5, 5, 1, 6), 1, "same", 1, 1),         # few channels, narrow tiles
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", RELU_CASES, ids=[f"x{c[0]}-k{c[1]}" for c in RELU_CASES])
def test_core_forward_with_fused_relu(case, dtype):
    """activation="relu" gives numpy.maximum(conv + bias, 0) bit for bit (NaN kept, -0 -> +0)."""
    x, k, b = _data(case, dtype, seed=9)
    x[0, 0, 0, 0] = np.nan  # a NaN output reaches the ReLU
    plain = ops.conv2d_forward(x, k, b, **_kwargs(case))
    out = np.full_like(plain, -1.0)
    _, geometry = _core_args(case)
    ref_args = geometry + (2,)
    core.conv2d_forward(x, k, b, out, *ref_args, activation="relu")
    expected = np.maximum(plain, 0)
    assert np.isnan(expected).any()
    np.testing.assert_array_equal(out, expected)
    assert not np.signbit(out[out == 0]).any()
    for bad in (1, True, "ReLU", "sigmoid"):
        with pytest.raises(ValueError, match="`activation` must be None, 'relu' or 'tanh'"):
            core.conv2d_forward(x, k, b, out, *ref_args, activation=bad)


# float32: the fused tanh's rational approximation (activation_impl.h) is within 6.3 ulp of
# the true tanh (3.8e-7 relative); float64: the C library's tanh against NumPy's.
TANH_RTOL = {np.float32: 4e-7, np.float64: 1e-15}
TANH_CASES = RELU_CASES + [((2, 28, 28, 1), (5, 5, 1, 6), 1, "same", 1, 1)]  # + flat rows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TANH_CASES, ids=[f"x{c[0]}-k{c[1]}" for c in TANH_CASES])
def test_core_forward_with_fused_tanh(case, dtype):
    """activation="tanh": numpy.tanh of the plain output to within TANH_RTOL on every path
    (implicit GEMM, Winograd, dense, groups, depthwise, flat rows), NaN kept."""
    x, k, b = _data(case, dtype, seed=10)
    k *= 4 / np.std(ops.conv2d_forward(x, k, None, **_kwargs(case)))  # outputs ~ N(0, 4^2)
    x[0, 0, 0, 0] = np.nan
    plain = ops.conv2d_forward(x, k, b, **_kwargs(case))
    got = ops.conv2d_forward(x, k, b, **_kwargs(case), activation="tanh")
    want = np.tanh(plain.astype(np.float64))
    assert np.isnan(want).any() and (np.abs(plain) > 9).any() and (np.abs(plain) < 0.5).any()
    np.testing.assert_allclose(got, want, rtol=TANH_RTOL[dtype], atol=0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_tanh_special_values(dtype):
    """Through an identity dense layer: tanh of 0, tiny values (sign kept), +-inf, NaN, the
    edge at 9 and a dense sweep of [-10, 10], against NumPy in float64."""
    special = [0.0, -0.0, 1e-30, -1e-30, 1e-4, 0.5, -0.625, 8.999, 9.0, -9.0, 9.01, 20.0,
               np.inf, -np.inf, np.nan]
    x = np.concatenate([np.array(special), np.linspace(-10, 10, 20011)]).astype(dtype)
    plain = ops.dense_forward(x[:, None], np.ones((1, 1), dtype), None)[:, 0]
    got = ops.dense_forward(x[:, None], np.ones((1, 1), dtype), None, activation="tanh")[:, 0]
    np.testing.assert_array_equal(plain[2:], x[2:])  # (the GEMM's 0 + -0 * 1 is +0)
    want = np.tanh(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=TANH_RTOL[dtype], atol=0)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(plain))
    assert np.isnan(got[len(special) - 1])
    assert got[special.index(20.0)] == 1 and got[special.index(-np.inf)] == -1
    assert (np.abs(got[~np.isnan(got)]) <= 1).all()
    # non-decreasing up to the approximation's error (it wobbles by a few ulp near saturation)
    assert (np.diff(got[len(special):]) >= -7 * np.finfo(dtype).epsneg).all()


# Forward with the max pooling fused (ops.conv2d_forward(..., max_pool=...)): one case per
# path that pools block by block (row-indirect first layer, patch rows with groups, the
# indirection table, 1x1, Winograd with 4x4 and with 2x2 tiles, odd output sizes) and per
# path that pools its whole output afterwards (flat rows, depthwise, a Winograd tile the
# window does not divide).
POOLED_CASES = [
    # x shape, kernel shape, strides, padding, groups, window
    ((3, 28, 28, 1), (3, 3, 1, 32), 1, "same", 1, (2, 2)),         # row-indirect
    ((2, 9, 10, 4), (3, 3, 2, 12), 1, "same", 2, (2, 2)),          # patch rows (groups)
    ((2, 11, 9, 10), (2, 3, 10, 24), (2, 1), "same", 1, (2, 2)),   # indirection table
    ((2, 9, 9, 8), (1, 1, 8, 40), 1, "valid", 1, (3, 3)),          # 1x1
    ((2, 14, 14, 32), (3, 3, 32, 64), 1, "same", 1, (2, 2)),       # Winograd, 4x4 tiles
    ((2, 15, 13, 32), (3, 3, 32, 64), 1, "same", 1, (2, 2)),       # ... odd sizes
    ((2, 12, 12, 16), (3, 3, 16, 20), 1, "valid", 1, (1, 2)),      # ... 1 x 2 windows
    ((2, 10, 10, 128), (3, 3, 128, 130), 1, "same", 1, (2, 2)),    # Winograd, 2x2 tiles
    ((2, 14, 14, 32), (3, 3, 32, 64), 1, "same", 1, (3, 3)),       # Winograd, pooled after
    ((3, 28, 28, 1), (5, 5, 1, 6), 1, "same", 1, (2, 2)),          # flat rows, pooled after
    ((2, 10, 10, 4), (3, 3, 1, 8), 1, "same", 4, (2, 2)),          # depthwise, pooled after
    ((1, 7, 7, 3), (3, 3, 3, 17), 1, "same", 1, (7, 7)),           # one window
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOLED_CASES, ids=[f"x{c[0]}-k{c[1]}-w{c[5]}" for c in POOLED_CASES])
def test_forward_with_fused_max_pool_has_the_bits_of_conv_then_pool(case, dtype):
    xs, ks, strides, padding, groups, window = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xs).astype(dtype)
    k = rng.standard_normal(ks).astype(dtype)
    b = rng.standard_normal(ks[3]).astype(dtype)
    kw = dict(strides=strides, padding=padding, groups=groups)
    expected = ref.conv2d_forward(x, k, b, activation="relu", max_pool=window, **kw)
    np.testing.assert_allclose(ops.conv2d_forward(x, k, b, activation="relu", max_pool=window, **kw),
                               expected, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=(1e-4 if dtype == np.float32 else 1e-10) * np.abs(expected).max())
    x[0, 1, 1, 0] = np.nan  # NaN propagates as in the pooling kernel
    x[-1, 2, 3, -1] = -0.0
    try:
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            for act in (None, "relu", "tanh"):
                full = ops.conv2d_forward(x, k, b, activation=act, **kw)
                want = ops.max_pool2d_forward(full, window, window, "valid")
                got = ops.conv2d_forward(x, k, b, activation=act, max_pool=window, **kw)
                assert got.shape == want.shape == (xs[0], full.shape[1] // window[0],
                                                   full.shape[2] // window[1], ks[3])
                np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
    finally:
        fastconv.set_num_threads(None)


def test_fused_max_pool_arguments_are_checked():
    x = np.ones((1, 6, 6, 2), np.float32)
    k = np.ones((3, 3, 2, 4), np.float32)
    assert ops.conv2d_forward(x, k, max_pool=2).shape == (1, 2, 2, 4)
    assert ref.conv2d_forward(x, k, max_pool=(1, 4)).shape == (1, 4, 1, 4)
    for backend in (ops, ref):
        for bad in (0, (2,), (2, 0), (2, -1), "2", 1.5, (True, 2)):
            with pytest.raises(ValueError, match="`max_pool` must be None, a positive int"):
                backend.conv2d_forward(x, k, max_pool=bad)
        with pytest.raises(ValueError, match=r"`max_pool` windows \(5, 1\) do not fit"):
            backend.conv2d_forward(x, k, max_pool=(5, 1))
