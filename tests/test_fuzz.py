"""Property-based fuzzing of every kernel: valid arguments against the reference, invalid ones
must raise ValueError/TypeError.

Valid calls: random shapes (odd sizes, batch 1, 1x1 images), strides, padding (names, ints,
pairs, asymmetric pairs), dilation, groups (depthwise included), float32/float64, C-contiguous
or strided input; the compiled result must match `fastconv.reference`.

Invalid calls: a valid call with one argument replaced by a value that is invalid whatever the
rest (a bool/complex/object/string array, a wrong rank, an empty axis, a huge or negative
integer, a malformed padding, a mismatched shape...). They run in ONE child process
(`python tests/test_fuzz.py invalid N`) so that a segmentation fault fails the test instead of
killing pytest; faulthandler prints the Python stack of a crash.

Profiles, chosen with the environment variable FASTCONV_FUZZ_PROFILE:
  ci   (default) fixed seed (derandomize), a few hundred examples: the file runs in well under a minute;
  long thousands of examples per property and fresh random seeds each run, for local runs:
       FASTCONV_FUZZ_PROFILE=long python -m pytest -q tests/test_fuzz.py --hypothesis-show-statistics
"""
import faulthandler
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

PROFILE = os.environ.get("FASTCONV_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"FASTCONV_FUZZ_PROFILE must be 'ci' or 'long'; received {PROFILE!r}.")
LONG = PROFILE == "long"
# Examples per valid-argument property, and invalid calls made by the child process.
VALID_EXAMPLES = 3000 if LONG else 60
INVALID_EXAMPLES = 30000 if LONG else 1500

# Applied per test (not loaded as a global profile, which would change the other test files).
FUZZ = settings(max_examples=VALID_EXAMPLES, deadline=None, derandomize=not LONG, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])

DTYPES = st.sampled_from([np.float32, np.float64])


def _tolerance(dtype, terms):
    """(rtol, atol) for sums of `terms` products of N(0, 1) values."""
    if dtype == np.float32:
        return 2e-4, 2e-5 * max(terms, 1)
    return 1e-10, 1e-12 * max(terms, 1)


def _close(got, want, dtype, terms, what, scale=None):
    """Compare with a tolerance for `terms` summed products; `scale` bounds the magnitude of
    the intermediate values when it exceeds that of the result (cancellation)."""
    assert got.shape == want.shape, what
    assert got.dtype == want.dtype, what
    rtol, atol = _tolerance(dtype, terms)
    if scale is None:
        scale = float(np.abs(want).max(initial=0))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, scale), err_msg=what)


def _maybe_strided(draw, a):
    """`a`, or an equal array that is not C-contiguous (a strided view)."""
    if not draw(st.booleans()):
        return a
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    view = big[..., ::2]
    view[...] = a
    return view


@st.composite
def padding_for(draw, kernel_hw, dilation):
    """A padding argument in any of the accepted forms, with each side < the effective kernel."""
    eff = [(k - 1) * d + 1 for k, d in zip(kernel_hw, dilation)]
    form = draw(st.sampled_from(["valid", "same", "int", "pair", "explicit", "upper"]))
    if form in ("valid", "same"):
        return form
    if form == "upper":
        return "SAME" if draw(st.booleans()) else "Valid"
    if form == "int":
        return draw(st.integers(0, min(eff) - 1 if min(eff) > 1 else 1))
    if form == "pair":
        return tuple(draw(st.integers(0, max(e - 1, 1))) for e in eff)
    return tuple((draw(st.integers(0, max(e - 1, 1))), draw(st.integers(0, max(e - 1, 1)))) for e in eff)


def _padded_size(padding, size, k, s, d, axis):
    from fastconv import _validation as V

    kernel_hw = [1, 1]
    kernel_hw[axis] = k
    strides = [1, 1]
    strides[axis] = s
    dilation = [1, 1]
    dilation[axis] = d
    in_hw = [1, 1]
    in_hw[axis] = size
    pads = V.resolve_padding(padding, in_hw, kernel_hw, strides, dilation)
    return size + sum(pads[axis])


@st.composite
def conv_case(draw):
    dtype = draw(DTYPES)
    groups_kind = draw(st.sampled_from(["one", "grouped", "depthwise"]))
    if groups_kind == "one":
        groups, cin_g = 1, draw(st.integers(1, 5))
    elif groups_kind == "grouped":
        groups, cin_g = draw(st.integers(2, 3)), draw(st.integers(1, 3))
    else:
        groups, cin_g = draw(st.integers(1, 6)), 1
    c = groups * cin_g
    filters = groups * (draw(st.integers(1, 2)) if groups_kind == "depthwise" else draw(st.integers(1, 4)))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if draw(st.booleans()):
        strides, dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (1, 1)
    else:
        strides, dilation = (1, 1), (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(padding_for((kh, kw), dilation))
    # Image sizes from 1 up to a little more than the effective kernel; drop those it does not fit.
    h = draw(st.integers(1, (kh - 1) * dilation[0] + 5))
    w = draw(st.integers(1, (kw - 1) * dilation[1] + 5))
    assume(_padded_size(padding, h, kh, strides[0], dilation[0], 0) >= (kh - 1) * dilation[0] + 1)
    assume(_padded_size(padding, w, kw, strides[1], dilation[1], 1) >= (kw - 1) * dilation[1] + 1)
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, cin_g, filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype) if draw(st.booleans()) else None
    kwargs = dict(strides=strides if draw(st.booleans()) else list(strides), padding=padding,
                  dilation_rate=dilation, groups=groups)
    return _maybe_strided(draw, x), kernel, bias, kwargs, rng


@FUZZ
@given(conv_case())
def test_conv2d_forward_and_backward_match_the_reference(case):
    from fastconv import ops, reference

    x, kernel, bias, kwargs, rng = case
    dtype = x.dtype.type
    terms = int(np.prod(kernel.shape[:3]))
    want = reference.conv2d_forward(x, kernel, bias, **kwargs)
    got = ops.conv2d_forward(x, kernel, bias, **kwargs)
    _close(got, want, dtype, terms, f"conv2d_forward {x.shape} {kernel.shape} {kwargs}")

    dy = rng.standard_normal(want.shape).astype(dtype)
    need_dx = bool(rng.integers(0, 2))
    want_grads = reference.conv2d_backward(dy, x, kernel, need_input_grad=need_dx, **kwargs)
    got_grads = ops.conv2d_backward(dy, x, kernel, need_input_grad=need_dx, **kwargs)
    n_out = int(np.prod(want.shape[:3]))
    for name, g, w, t in zip(("dx", "dkernel", "dbias"), got_grads, want_grads,
                             (kernel.shape[0] * kernel.shape[1] * kernel.shape[3], n_out, n_out)):
        if w is None:
            assert g is None, name
        else:
            _close(g, w, dtype, t, f"conv2d_backward {name} {x.shape} {kernel.shape} {kwargs}")


@st.composite
def pool_case(draw):
    dtype = draw(DTYPES)
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4)), st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    low_h, low_w = (1, 1) if padding == "same" else (ph, pw)
    h, w = draw(st.integers(low_h, ph + 6)), draw(st.integers(low_w, pw + 6))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    return _maybe_strided(draw, x), (ph, pw), strides, padding, rng


@FUZZ
@given(pool_case())
def test_max_and_average_pooling_match_the_reference(case):
    from fastconv import ops, reference

    x, pool, strides, padding, rng = case
    dtype = x.dtype.type
    what = f"{x.shape} pool={pool} strides={strides} padding={padding}"
    for name in ("max_pool2d", "avg_pool2d"):
        want = getattr(reference, name + "_forward")(x, pool, strides, padding)
        got = getattr(ops, name + "_forward")(x, pool, strides, padding)
        if name == "max_pool2d":
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {what}")  # a max is exact
        else:
            _close(got, want, dtype, pool[0] * pool[1], f"{name} {what}")
        dy = rng.standard_normal(want.shape).astype(dtype)
        if name == "max_pool2d":
            got_dx = ops.max_pool2d_backward(dy, x, pool, strides, padding)
            want_dx = reference.max_pool2d_backward(dy, x, pool, strides, padding)
        else:
            got_dx = ops.avg_pool2d_backward(dy, x.shape, pool, strides, padding, dtype=dtype)
            want_dx = reference.avg_pool2d_backward(dy, x.shape, pool, strides, padding, dtype=dtype)
        _close(got_dx, want_dx, dtype, pool[0] * pool[1], f"{name} backward {what}")


@FUZZ
@given(DTYPES, st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 7),
       st.integers(0, 2**32 - 1), st.data())
def test_global_pooling_matches_the_reference(dtype, n, h, w, c, seed, data):
    from fastconv import ops, reference

    rng = np.random.default_rng(seed)
    x = _maybe_strided(data.draw, rng.standard_normal((n, h, w, c)).astype(dtype))
    dy = rng.standard_normal((n, c)).astype(dtype)
    what = f"{x.shape} {np.dtype(dtype).name}"
    np.testing.assert_array_equal(ops.global_max_pool2d_forward(x), reference.global_max_pool2d_forward(x), what)
    _close(ops.global_avg_pool2d_forward(x), reference.global_avg_pool2d_forward(x), dtype, h * w, what)
    _close(ops.global_max_pool2d_backward(dy, x), reference.global_max_pool2d_backward(dy, x), dtype, 1, what)
    _close(ops.global_avg_pool2d_backward(dy, x.shape, dtype=dtype),
           reference.global_avg_pool2d_backward(dy, x.shape, dtype=dtype), dtype, 1, what)


@st.composite
def batch_norm_case(draw):
    dtype = draw(DTYPES)
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=2, max_size=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offset = draw(st.sampled_from([0.0, 3.0, -50.0]))
    x = (rng.standard_normal(shape) + offset).astype(dtype)
    c = shape[-1]
    gamma = (rng.random(c) + 0.5).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    epsilon = draw(st.sampled_from([1e-3, 1e-5, 0.5]))
    return _maybe_strided(draw, x), gamma, beta, epsilon, rng


@FUZZ
@given(batch_norm_case())
def test_batch_norm_matches_the_reference(case):
    from fastconv import ops, reference

    x, gamma, beta, epsilon, rng = case
    dtype = x.dtype.type
    rows = x.size // x.shape[-1]
    what = f"{x.shape} {np.dtype(dtype).name} eps={epsilon}"
    want = reference.batch_norm_forward_training(x, gamma, beta, epsilon)
    got = ops.batch_norm_forward_training(x, gamma, beta, epsilon)
    for name, g, w in zip(("y", "mean", "var"), got, want):
        _close(g, w, dtype, rows, f"training {name} {what}")
    mean, var = want[1], want[2]
    _close(ops.batch_norm_forward_inference(x, gamma, beta, mean, var, epsilon),
           reference.batch_norm_forward_inference(x, gamma, beta, mean, var, epsilon), dtype, 1, f"inference {what}")
    dy = rng.standard_normal(x.shape).astype(dtype)
    # dx = gamma / std * (dy - mean(dy) - xhat * mean(dy * xhat)): its terms are as large as
    # gamma / std * |dy| even where they cancel to 0 (e.g. a single row).
    scale = float(np.max(np.abs(gamma / np.sqrt(var.astype(np.float64) + epsilon))) * np.abs(dy).max())
    for name, g, w in zip(("dx", "dgamma", "dbeta"), ops.batch_norm_backward(dy, x, gamma, mean, var, epsilon),
                          reference.batch_norm_backward(dy, x, gamma, mean, var, epsilon)):
        _close(g, w, dtype, rows, f"backward {name} {what}", scale if name == "dx" else None)


@FUZZ
@given(DTYPES, st.integers(1, 9), st.integers(1, 12), st.integers(1, 7), st.booleans(),
       st.integers(0, 2**32 - 1), st.data())
def test_dense_matches_numpy(dtype, batch, features, units, use_bias, seed, data):
    from fastconv import ops

    rng = np.random.default_rng(seed)
    x = _maybe_strided(data.draw, rng.standard_normal((batch, features)).astype(dtype))
    kernel = rng.standard_normal((features, units)).astype(dtype)
    bias = rng.standard_normal(units).astype(dtype) if use_bias else None
    x64, k64 = x.astype(np.float64), kernel.astype(np.float64)
    want = x64 @ k64 + (0 if bias is None else bias.astype(np.float64))
    got = ops.dense_forward(x, kernel, bias)
    _close(got.astype(np.float64), want, dtype, features, "dense_forward")
    dy = rng.standard_normal((batch, units)).astype(dtype)
    dx, dk, db = ops.dense_backward(dy, x, kernel)
    dy64 = dy.astype(np.float64)
    _close(dx.astype(np.float64), dy64 @ k64.T, dtype, units, "dense dx")
    _close(dk.astype(np.float64), x64.T @ dy64, dtype, batch, "dense dkernel")
    _close(db.astype(np.float64), dy64.sum(axis=0), dtype, batch, "dense dbias")


# ------------------------------------------------------------------------------------------------
# Invalid arguments: generated here, run in a child process.
# ------------------------------------------------------------------------------------------------
def _bad_dtype_array(draw, shape, allow_none=True):
    """An array of the right shape but a refused dtype, or something that is not an array
    (`allow_none=False` for optional arguments, where None is valid)."""
    kinds = ["bool", "complex64", "complex128", "object", "str", "bytes", "datetime", "timedelta", "void",
             "ragged", "dict", "string"] + (["None"] if allow_none else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "None":
        return None
    if kind == "ragged":
        return [[1.0, 2.0], [3.0]]
    if kind == "dict":
        return {"x": 1}
    if kind == "string":
        return "image"
    dtype = {"bool": bool, "complex64": np.complex64, "complex128": np.complex128, "object": object,
             "str": "U3", "bytes": "S2", "datetime": "M8[s]", "timedelta": "m8[ms]", "void": "V4"}[kind]
    return np.zeros(shape, dtype=dtype)


def _wrong_rank_array(draw, rank, dtype):
    other = draw(st.sampled_from([r for r in range(0, 7) if r != rank]))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=other, max_size=other)))
    return np.ones(shape, dtype)


def _empty_axis_array(draw, shape, dtype):
    axis = draw(st.integers(0, len(shape) - 1))
    shape = list(shape)
    shape[axis] = 0
    return np.ones(shape, dtype)


def _bad_array(draw, shape, dtype):
    """An invalid value for an array argument of `shape` (rank, dtype or emptiness)."""
    kind = draw(st.sampled_from(["dtype", "rank", "empty"]))
    if kind == "dtype":
        return _bad_dtype_array(draw, shape)
    if kind == "rank":
        return _wrong_rank_array(draw, len(shape), dtype)
    return _empty_axis_array(draw, shape, dtype)


def _other_shape(draw, shape, dtype):
    """A float array of the same rank whose shape differs from `shape`."""
    new = list(shape)
    axis = draw(st.integers(0, len(shape) - 1))
    new[axis] = draw(st.sampled_from([s for s in (1, 2, 3, 5, 8) if s != shape[axis]]))
    return np.ones(new, dtype)


HUGE = [2**31, 2**40, 2**63, 2**64 + 1, 10**30]


def _bad_positive_ints(draw, n=2):
    """Invalid strides / dilation / pool sizes: zero, negative, huge, float, bool, wrong length..."""
    kind = draw(st.sampled_from(["zero", "negative", "huge", "float", "bool", "string", "none", "length",
                                 "nested", "nan", "tuple-with-zero", "tuple-with-float"]))
    return {
        "zero": 0, "negative": draw(st.integers(-2**40, -1)), "huge": draw(st.sampled_from(HUGE)),
        "float": draw(st.sampled_from([1.0, 2.5, float("inf")])), "bool": True, "string": "2", "none": object(),
        "length": tuple([1] * draw(st.sampled_from([0, 1, 3, 4]))), "nested": ((1, 1), (1, 1)),
        "nan": float("nan"), "tuple-with-zero": (1, 0)[:n] if n == 2 else (0,),
        "tuple-with-float": (1, 1.5),
    }[kind]


def _bad_conv_padding(draw):
    return draw(st.sampled_from([-1, "full", "causal", "", 1.5, (1, -1), ((1, 2), (3,)), ((1, 2, 3), (1, 1)),
                                 ((1, -2), (0, 0)), (None, 1), [[1], [1]], 2**31, (2**40, 0), True, object()]))


def _bad_epsilon(draw):
    return draw(st.sampled_from([0, 0.0, -1e-3, float("nan"), float("inf"), -float("inf"), "1e-3", None, True,
                                 np.array([1e-3, 1e-3]), 1j]))


def _bad_input_shape(draw, shape):
    kind = draw(st.sampled_from(["rank", "zero", "negative", "float", "string", "none", "huge-rank"]))
    if kind == "rank":
        return tuple(shape[:3])
    if kind == "huge-rank":
        return tuple(shape) + (1,)
    if kind == "zero":
        return (shape[0], 0) + tuple(shape[2:])
    if kind == "negative":
        return (shape[0], -shape[1]) + tuple(shape[2:])
    if kind == "float":
        return (shape[0], shape[1] + 0.5) + tuple(shape[2:])
    if kind == "string":
        return "".join(str(s) for s in shape)
    return None


def _bad_dtype_argument(draw):
    return draw(st.sampled_from([np.int32, np.int64, bool, np.float16, np.complex64, "pixels", object, "U3"]))


def _one(draw, *makers):
    """Call one of `makers` (functions of no argument), chosen by hypothesis."""
    return draw(st.sampled_from(makers))()


def _bad_gradient(draw, shape, dtype):
    return _one(draw, lambda: _bad_dtype_array(draw, shape), lambda: _other_shape(draw, shape, dtype),
                lambda: _wrong_rank_array(draw, len(shape), dtype))


OPS = ["conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
       "avg_pool2d_forward", "avg_pool2d_backward", "global_avg_pool2d_forward", "global_avg_pool2d_backward",
       "global_max_pool2d_forward", "global_max_pool2d_backward", "batch_norm_forward_training",
       "batch_norm_forward_inference", "batch_norm_backward", "dense_forward", "dense_backward"]


def _invalid_conv(draw, op, x, dtype):
    n, h, w, c = x.shape
    groups = draw(st.sampled_from([1, 2, 4]))
    kernel = np.ones((2, 2, c // groups, 4), dtype)
    out_shape = (n, h - 1, w - 1, 4)
    args = {"x": x, "kernel": kernel, "strides": 1, "padding": "valid", "dilation_rate": 1, "groups": groups}
    if op == "conv2d_forward":
        args["bias"] = np.ones(4, dtype)
    else:
        args["dy"] = np.ones(out_shape, dtype)
    target = draw(st.sampled_from(sorted(args)))
    if target == "x":
        bad = _one(draw, lambda: _bad_array(draw, x.shape, dtype),
                   lambda: np.ones((n, h, w, draw(st.sampled_from([1, 3, 5, 8]))), dtype),  # channels
                   lambda: np.ones((n, 1, w, c), dtype))  # smaller than the kernel
    elif target == "kernel":
        makers = [lambda: _bad_array(draw, kernel.shape, dtype),
                  lambda: np.ones((2, 2, c // groups + draw(st.integers(1, 3)), 4), dtype),  # channels
                  lambda: np.ones((h + 1, 2, c // groups, 4), dtype)]  # larger than the input
        if groups > 1:
            makers.append(lambda: np.ones((2, 2, c // groups, groups + 1), dtype))  # filters % groups
        bad = _one(draw, *makers)
    elif target == "bias":
        bad = _one(draw, lambda: np.ones(5, dtype), lambda: np.ones((1, 4), dtype),
                   lambda: np.ones(4, complex), lambda: "bias")
    elif target == "dy":
        bad = _bad_gradient(draw, out_shape, dtype)
    elif target == "groups":
        bad = draw(st.sampled_from([0, -1, 1.0, True, "2", None, 2**40]
                                   + [g for g in (1, 2, 3, 4, 5, 8) if g != groups]))
    elif target == "padding":
        bad = _bad_conv_padding(draw)
    elif target == "strides" and draw(st.booleans()):
        bad = (2, 2)  # valid alone; refused together with a dilation > 1
        args["dilation_rate"] = 2
    else:  # strides or dilation_rate
        bad = _bad_positive_ints(draw)
    args[target] = bad
    first = ("dy", "x", "kernel") if op == "conv2d_backward" else ("x", "kernel", "bias")
    return tuple(args.pop(name) for name in first), args, target


def _invalid_pool(draw, op, x, dtype):
    n, h, w, c = x.shape
    kwargs = {"pool_size": 2, "strides": None, "padding": "valid"}
    out_shape = (n, h // 2, w // 2, c)
    targets = ["pool_size", "strides", "padding", "input_shape" if op == "avg_pool2d_backward" else "x"]
    if op.endswith("backward"):
        targets.append("dy")
    if op == "avg_pool2d_backward":
        targets.append("dtype")
    target = draw(st.sampled_from(targets))
    first = x.shape if op == "avg_pool2d_backward" else x
    dy = np.ones(out_shape, dtype)
    if target == "pool_size":
        kwargs["pool_size"] = _one(draw, lambda: _bad_positive_ints(draw), lambda: (h + 1, 2))
    elif target == "strides":
        kwargs["strides"] = _bad_positive_ints(draw)
    elif target == "padding":
        kwargs["padding"] = draw(st.sampled_from([1, 0, (1, 1), "full", "", None, 1.5, "VALID ", b"same"]))
    elif target == "x":
        first = _one(draw, lambda: _bad_array(draw, x.shape, dtype), lambda: np.ones((n, 1, w, c), dtype))
    elif target == "input_shape":
        first = _bad_input_shape(draw, x.shape)
    elif target == "dy":
        dy = _bad_gradient(draw, out_shape, dtype)
    else:
        kwargs["dtype"] = _bad_dtype_argument(draw)
    args = (dy, first) if op.endswith("backward") else (first,)
    return args, kwargs, target


def _invalid_global(draw, op, x, dtype):
    n, h, w, c = x.shape
    targets = ["x"]
    if op.endswith("backward"):
        targets += ["dy"] + (["dtype"] if op == "global_avg_pool2d_backward" else [])
    target = draw(st.sampled_from(targets))
    dy = np.ones((n, c), dtype)
    first = x.shape if op == "global_avg_pool2d_backward" else x
    kwargs = {}
    if target == "x":
        first = (_bad_input_shape(draw, x.shape) if op == "global_avg_pool2d_backward"
                 else _bad_array(draw, x.shape, dtype))
    elif target == "dy":
        dy = _bad_gradient(draw, (n, c), dtype)
    else:
        kwargs["dtype"] = _bad_dtype_argument(draw)
    args = (dy, first) if op.endswith("backward") else (first,)
    return args, kwargs, target


def _invalid_batch_norm(draw, op, x, dtype):
    n, h, w, c = x.shape
    rows = np.ones((n * h, c), dtype)
    names = {"batch_norm_forward_training": ["x", "gamma", "beta", "epsilon"],
             "batch_norm_forward_inference": ["x", "gamma", "beta", "mean", "var", "epsilon"],
             "batch_norm_backward": ["dy", "x", "gamma", "mean", "var", "epsilon"]}[op]
    values = {"x": rows, "dy": rows.copy(), "epsilon": 1e-3,
              **{name: np.ones(c, dtype) for name in ("gamma", "beta", "mean", "var")}}
    target = draw(st.sampled_from(names))
    if target == "x":
        values["x"] = _one(draw, lambda: _bad_dtype_array(draw, rows.shape), lambda: np.ones(c, dtype),
                           lambda: np.ones((0, c), dtype), lambda: np.ones((n, 0), dtype))
    elif target == "dy":
        values["dy"] = _bad_gradient(draw, rows.shape, dtype)
    elif target == "epsilon":
        values["epsilon"] = _bad_epsilon(draw)
    else:
        values[target] = _one(draw, lambda: _bad_dtype_array(draw, (c,)), lambda: np.ones(c + 1, dtype),
                              lambda: np.ones((1, c), dtype), lambda: np.ones((), dtype))
    return tuple(values[name] for name in names), {}, target


def _invalid_dense(draw, op, x, dtype):
    n, features, units = x.shape[0], 3, 2
    values = {"x": np.ones((n, features), dtype), "kernel": np.ones((features, units), dtype),
              "bias": np.ones(units, dtype), "dy": np.ones((n, units), dtype)}
    names = ["x", "kernel", "bias"] if op == "dense_forward" else ["dy", "x", "kernel"]
    target = draw(st.sampled_from(names))
    if target == "x":
        values["x"] = _one(draw, lambda: _bad_array(draw, (n, features), dtype), lambda: np.ones((n, 4), dtype))
    elif target == "kernel":
        values["kernel"] = _one(draw, lambda: _bad_array(draw, (features, units), dtype),
                                lambda: np.ones((features + 1, units), dtype))
    elif target == "bias":
        values["bias"] = _one(draw, lambda: _bad_dtype_array(draw, (units,), allow_none=False),
                              lambda: np.ones(units + 1, dtype))
    else:
        values["dy"] = _bad_gradient(draw, (n, units), dtype)
    return tuple(values[name] for name in names), {}, target


@st.composite
def invalid_call(draw):
    """(function name, args, kwargs, name of the broken argument) of a call that must be refused."""
    dtype = draw(DTYPES)
    x = np.ones((draw(st.integers(1, 2)), draw(st.integers(3, 6)), draw(st.integers(3, 6)), 4), dtype)
    op = draw(st.sampled_from(OPS))
    if op.startswith("conv2d"):
        make = _invalid_conv
    elif op.startswith("global"):
        make = _invalid_global
    elif "pool" in op:
        make = _invalid_pool
    elif op.startswith("batch_norm"):
        make = _invalid_batch_norm
    else:
        make = _invalid_dense
    args, kwargs, target = make(draw, op, x, dtype)
    return op, args, kwargs, target


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"ndarray{value.shape}:{value.dtype}"
    return repr(value)[:60]


def run_invalid_examples(max_examples):
    """Child process body: call every kernel of both backends with invalid arguments."""
    faulthandler.enable()  # a crash prints the Python stack of the offending call
    from fastconv import ops, reference

    outcomes = {}

    @settings(max_examples=max_examples, deadline=None, derandomize=not LONG, database=None,
              suppress_health_check=list(HealthCheck))
    @given(invalid_call())
    def refuse(case):
        op, args, kwargs, target = case
        for module in (ops, reference):
            # stderr before the call: if it crashes, the last line says which call it was.
            print(f"{module.__name__}.{op} bad {target}: {[_describe(a) for a in args]} "
                  f"{ {k: _describe(v) for k, v in kwargs.items()} }", file=sys.stderr)
            try:
                getattr(module, op)(*args, **kwargs)
            except (ValueError, TypeError) as exc:
                key = f"{type(exc).__name__}"
                outcomes[key] = outcomes.get(key, 0) + 1
                assert str(exc), f"{op}: empty message"
            else:
                raise AssertionError(f"{module.__name__}.{op} accepted an invalid `{target}`")

    refuse()
    print(json.dumps({"calls": sum(outcomes.values()), "outcomes": outcomes}))


def test_invalid_arguments_raise_python_exceptions_in_a_child_process():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "invalid", str(INVALID_EXAMPLES)],
                          capture_output=True, text=True, env=env, timeout=1800)
    tail = "\n".join(proc.stderr.splitlines()[-40:])
    assert proc.returncode == 0, f"child exited with {proc.returncode} (negative: killed by a signal)\n{tail}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    # Both backends for each example; hypothesis may stop a little early when it runs out of new cases.
    assert summary["calls"] >= INVALID_EXAMPLES, summary
    assert set(summary["outcomes"]) <= {"ValueError", "TypeError"}
    print(f"\ninvalid-argument fuzzing: {summary}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "invalid":
        run_invalid_examples(int(sys.argv[2]))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} invalid N")
