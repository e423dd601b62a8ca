"""The compiled elementwise kernels (fastconv._core.elementwise through fastconv.ops) against
the NumPy reference (fastconv.reference.elementwise): ReLU, tanh/sigmoid gradients, Adam and
SGD updates, dropout. The compiled results must equal the reference bit for bit (NaN, inf and
-0.0 included), for one and two threads; the layers and optimizers must give the same
results on both backends."""
import numpy as np
import pytest

import fastconv
from fastconv import activations, layers, optimizers
from fastconv import reference as R

ops = pytest.importorskip("fastconv.ops")
from fastconv._core import elementwise as E  # noqa: E402

DTYPES = [np.float32, np.float64]
# 0, 1, odd sizes, and sizes large enough to run two threads (> 2 * 32768 elements).
SHAPES = [(0,), (1,), (7,), (3, 5, 17), (70001,), (4, 33, 29, 19)]
SPECIALS = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-310, -1e-310, 1.0, -1.0]


def _data(shape, dtype, seed, specials=True, low=None):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape) if low is None else rng.uniform(low, 1.0, shape)
    a = a.astype(dtype)
    if specials and a.size:
        flat = a.reshape(-1)
        picks = rng.integers(0, a.size, size=min(a.size, 3 * len(SPECIALS)))
        flat[picks] = np.resize(np.array(SPECIALS, dtype=dtype), picks.size)
    return a


def assert_same_bits(actual, expected):
    """Same dtype, shape and bits; NaNs match NaNs (payloads may differ)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    if actual.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected)
        return
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    uint = np.uint32 if actual.dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(actual[~nan].view(uint), expected[~nan].view(uint))


def _on_threads(fn):
    """fn() with one thread and with two; both results must be bitwise equal."""
    fastconv.set_num_threads(1)
    one = fn()
    fastconv.set_num_threads(2)
    two = fn()
    for a, b in zip(one if isinstance(one, tuple) else (one,), two if isinstance(two, tuple) else (two,)):
        assert_same_bits(a, b)
    return two


# -- ReLU and activation gradients ------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_relu_forward_matches_numpy_maximum(shape, dtype):
    x = _data(shape, dtype, 1)
    y = _on_threads(lambda: ops.relu_forward(x))
    assert_same_bits(y, R.relu_forward(x))
    assert_same_bits(y, np.maximum(x, 0))
    # NaN payloads survive, -0.0 becomes +0.0, denormals are kept (no flushing).
    special = np.array([np.nan, -0.0, 1e-310 if dtype == np.float64 else 1e-40, -1e-40], dtype)
    out = ops.relu_forward(special)
    np.testing.assert_array_equal(out.view(np.uint8), np.maximum(special, 0).view(np.uint8))
    assert not np.signbit(out[1]) and out[2] > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("threshold", [0.0, 0.5, 2])
def test_relu_backward_matches_reference(shape, dtype, threshold):
    x, dy = _data(shape, dtype, 2), _data(shape, dtype, 3)
    if x.size > 2:
        x.reshape(-1)[:2] = threshold  # exactly at the threshold: the gradient passes
    dx = _on_threads(lambda: ops.relu_backward(dy, x, threshold))
    with np.errstate(invalid="ignore"):
        expected = R.relu_backward(dy, x, threshold)
        assert_same_bits(dx, expected)
        assert_same_bits(dx, (dy * (x >= threshold)).astype(dtype))


def test_relu_backward_threshold_is_compared_in_the_input_dtype():
    x = np.array([0.1, 0.0999999], np.float32)
    dy = np.ones(2, np.float32)
    for threshold in (0.1000000016, 0.1):  # rounds to float32(0.1) as NumPy's weak scalar does
        assert_same_bits(ops.relu_backward(dy, x, threshold), R.relu_backward(dy, x, threshold))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("slope", [0.0, 0.3, 0.2])
def test_leaky_relu_matches_reference(shape, dtype, slope):
    x, dy = _data(shape, dtype, 20), _data(shape, dtype, 21)
    with np.errstate(invalid="ignore", under="ignore"):
        y = _on_threads(lambda: ops.leaky_relu_forward(x, slope))
        assert_same_bits(y, R.leaky_relu_forward(x, slope))
        assert_same_bits(y, np.where(x >= 0, x, dtype(slope) * x))
        dx = _on_threads(lambda: ops.leaky_relu_backward(dy, x, slope))
        assert_same_bits(dx, R.leaky_relu_backward(dy, x, slope))
        assert_same_bits(dx, np.where(x >= 0, dy, dtype(slope) * dy))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_tanh_and_sigmoid_backward_match_reference(shape, dtype):
    # Without denormals: these kernels flush them (tested below).
    y = _data(shape, dtype, 4, specials=False)
    dy = _data(shape, dtype, 5, specials=False)
    if y.size > 6:
        y.reshape(-1)[:6] = [np.nan, np.inf, -np.inf, -0.0, 1.0, -1.0]
        dy.reshape(-1)[6:9] = [np.nan, -np.inf, -0.0] if y.size > 9 else dy.reshape(-1)[6:9]
    with np.errstate(invalid="ignore", over="ignore"):
        assert_same_bits(_on_threads(lambda: ops.tanh_backward(dy, y)), R.tanh_backward(dy, y))
        assert_same_bits(_on_threads(lambda: ops.sigmoid_backward(dy, y)), R.sigmoid_backward(dy, y))
        assert_same_bits(ops.sigmoid_backward(dy, y), dy * y * (1.0 - y))
        assert_same_bits(ops.tanh_backward(dy, y), dy * (1.0 - y * y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_arithmetic_kernels_flush_denormals_to_signed_zero(dtype):
    tiny = np.finfo(dtype).smallest_normal
    dy = np.array([tiny / 4, -tiny / 4, tiny, 1.0], dtype)
    y = np.full(4, 0.5, dtype)
    out, ref = ops.tanh_backward(dy, y), R.tanh_backward(dy, y)
    normal = np.abs(ref) >= tiny
    assert_same_bits(out[normal], ref[normal])
    np.testing.assert_array_equal(out[~normal], 0)
    np.testing.assert_array_equal(np.signbit(out[~normal]), np.signbit(ref[~normal]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_and_sigmoid_gradients_against_finite_differences(dtype):
    x = np.random.default_rng(6).uniform(-2, 2, 50)
    dy = np.random.default_rng(7).standard_normal(50)
    h = 1e-6
    for fn, backward in ((np.tanh, ops.tanh_backward), (activations.sigmoid, ops.sigmoid_backward)):
        numeric = dy * (fn(x + h) - fn(x - h)) / (2 * h)
        analytic = backward(dy.astype(dtype), fn(x).astype(dtype))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6 if dtype == np.float64 else 1e-3,
                                   atol=1e-6 if dtype == np.float64 else 1e-4)


def test_activation_objects_are_identical_on_both_backends():
    x = _data((6, 11, 13, 5), np.float32, 8)
    dy = _data(x.shape, np.float32, 9, specials=False)
    for name in ("relu", "leaky_relu", "tanh", "sigmoid"):
        act = activations.get(name)
        with np.errstate(invalid="ignore", over="ignore"):
            y = act.forward(x)
            dx = act.backward(x, y, dy)
            with fastconv.use_backend("reference"):
                y_ref = act.forward(x)
                dx_ref = act.backward(x, y_ref, dy)
        assert_same_bits(y, y_ref)
        assert_same_bits(dx, dx_ref)
    for layer in (layers.ReLU(threshold=0.25), layers.LeakyReLU(0.1)):
        with np.errstate(invalid="ignore"):
            y = layer.forward(x, training=True)
            dx = layer.backward(dy)
            with fastconv.use_backend("reference"):
                assert_same_bits(layer.forward(x, training=True), y)
                assert_same_bits(layer.backward(dy), dx)


def test_inputs_the_kernels_do_not_take_go_to_the_reference():
    x64 = _data((9, 8), np.float64, 10, specials=False)
    dy32 = _data((9, 8), np.float32, 11, specials=False)
    cases = [
        (ops.relu_forward, R.relu_forward, (x64[:, ::2],)),                # non-contiguous
        (ops.relu_forward, R.relu_forward, (np.arange(-3, 4),)),            # integers
        (ops.relu_forward, R.relu_forward, (np.asarray(-2.0),)),            # 0-d: a NumPy scalar
        (ops.relu_forward, R.relu_forward, (x64.astype(np.float16),)),      # float16
        (ops.relu_backward, R.relu_backward, (dy32, x64)),                   # mixed dtypes
        (ops.relu_backward, R.relu_backward, (dy32, x64.astype(np.float32), np.float64(0.1))),
        (ops.leaky_relu_forward, R.leaky_relu_forward, (dy32, np.float64(0.1))),  # strong scalar
        (ops.leaky_relu_forward, R.leaky_relu_forward, (np.arange(-3, 4), 0.5)),
        (ops.leaky_relu_backward, R.leaky_relu_backward, (dy32, x64, 0.1)),
        (ops.tanh_backward, R.tanh_backward, (dy32, x64)),
        (ops.sigmoid_backward, R.sigmoid_backward, (dy32.T, x64.T.astype(np.float32))),
        (ops.sigmoid_backward, R.sigmoid_backward, (dy32, 0.5)),
    ]
    for op, ref, args in cases:
        out, expected = op(*args), ref(*args)
        assert type(out) is type(expected)
        assert_same_bits(out, expected)


# -- optimizers -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("size", [1, 37, 70001])
def test_adam_update_matches_reference(dtype, amsgrad, size):
    rng = np.random.default_rng(size)
    states = []
    for _ in range(2):
        param = rng.standard_normal(size).astype(dtype)
        states.append([param, np.zeros_like(param), np.zeros_like(param),
                       np.zeros_like(param) if amsgrad else None])
    states[1] = [None if a is None else a.copy() for a in states[0]]
    for step in range(1, 5):
        grad = rng.standard_normal(size).astype(dtype) * 10.0 ** rng.integers(-3, 3)
        alpha = 1e-2 * np.sqrt(1 - 0.999 ** step) / (1 - 0.9 ** step)
        for kernels, (p, m, v, v_hat) in zip((ops, R), states):
            kernels.adam_update(p, grad, m, v, float(alpha), 0.9, 0.999, 1e-7, v_hat=v_hat)
    for a, b in zip(*states):
        if a is not None:
            assert_same_bits(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_adam_update_many_matches_one_by_one(dtype, amsgrad, threads):
    """All parameters in one call: the bits of the reference applied entry by entry, for
    sizes that put the threads' block edges inside and between the arrays (and an empty one)."""
    rng = np.random.default_rng(threads)
    sizes = [1, 150, 0, 6, 70001, 37, 129, 10]
    shapes = [(s,) if s % 2 else (1, s) for s in sizes]
    states = []
    for _ in range(2):
        entries = []
        for shape in shapes:
            param = rng.standard_normal(shape).astype(dtype)
            entries.append([param, rng.random(shape).astype(dtype), rng.random(shape).astype(dtype),
                            rng.random(shape).astype(dtype) if amsgrad else None])
        states.append(entries)
    states[1] = [[None if a is None else a.copy() for a in e] for e in states[0]]
    fastconv.set_num_threads(threads)
    try:
        for step in range(1, 4):
            grads = [rng.standard_normal(shape).astype(dtype) * 10.0 ** rng.integers(-3, 3)
                     for shape in shapes]
            alpha = float(1e-2 * np.sqrt(1 - 0.999 ** step) / (1 - 0.9 ** step))
            for kernels, entries in zip((ops, R), states):
                columns = list(zip(*entries))
                kernels.adam_update_many(columns[0], grads, columns[1], columns[2], alpha, 0.9,
                                         0.999, 1e-7, v_hats=columns[3] if amsgrad else None)
    finally:
        fastconv.set_num_threads(None)
    for e_ops, e_ref in zip(*states):
        for a, b in zip(e_ops, e_ref):
            if a is not None:
                assert_same_bits(a, b)


def test_adam_update_many_rejects_bad_entries():
    x = np.ones((4, 5), np.float32)
    p = [x.copy(), x.copy()]
    g = [x.copy(), x.copy()]
    m = [x.copy(), x.copy()]
    v = [x.copy(), x.copy()]
    shared = x.copy()
    cases = [
        (lambda: E.adam_update_many(tuple(p), g, m, v, None, 0.1, 0.1, 0.1, 0.1, 1), TypeError, "`params` must be a list"),
        (lambda: E.adam_update_many(p, g[:1], m, v, None, 0.1, 0.1, 0.1, 0.1, 1), ValueError, r"`grads` must have one entry per parameter \(2\)"),
        (lambda: E.adam_update_many(p, g, m, [x.copy(), x[:2].copy()], None, 0.1, 0.1, 0.1, 0.1, 1), ValueError, r"`v\[1\]` must have shape \(4, 5\)"),
        (lambda: E.adam_update_many(p, [x.copy(), x.astype(np.float64)], m, v, None, 0.1, 0.1, 0.1, 0.1, 1), ValueError, r"`grad\[1\]` must have dtype float32"),
        (lambda: E.adam_update_many([x.copy(), x.astype(np.float64)], g, m, v, None, 0.1, 0.1, 0.1, 0.1, 1), ValueError, r"`param\[1\]` must have dtype float32"),
        (lambda: E.adam_update_many(p, g, [x.copy(), shared], [shared, x.copy()], None, 0.1, 0.1, 0.1, 0.1, 1), ValueError, "must not overlap each other"),
        (lambda: E.adam_update_many(p, [x.copy(), p[0]], m, v, None, 0.1, 0.1, 0.1, 0.1, 1), ValueError, "must not overlap each other"),
        (lambda: E.adam_update_many(p, g, m, v, [x.copy()], 0.1, 0.1, 0.1, 0.1, 1), ValueError, "`v_hats` must have one entry"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    # gradients may share memory (they are only read); an empty list is a no-op
    E.adam_update_many(p, [shared, shared], m, v, None, 0.1, 0.1, 0.1, 0.1, 2)
    E.adam_update_many([], [], [], [], None, 0.1, 0.1, 0.1, 0.1, 2)
    with pytest.raises(ValueError, match="must have the same length"):
        R.adam_update_many(p, g, m, v[:1], 0.1, 0.9, 0.999, 1e-7)
    with pytest.raises(ValueError, match="must have the same length"):
        ops.adam_update_many(p, g, m, v[:1], 0.1, 0.9, 0.999, 1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.8, True)])
def test_sgd_update_matches_reference(dtype, momentum, nesterov):
    rng = np.random.default_rng(12)
    p_ops = rng.standard_normal((70001,)).astype(dtype)
    p_ref = p_ops.copy()
    v_ops = np.zeros_like(p_ops) if momentum else None
    v_ref = None if v_ops is None else v_ops.copy()
    for _ in range(4):
        grad = rng.standard_normal(p_ops.shape).astype(dtype)
        ops.sgd_update(p_ops, grad, 0.01, momentum, v_ops, nesterov)
        R.sgd_update(p_ref, grad, 0.01, momentum, v_ref, nesterov)
    assert_same_bits(p_ops, p_ref)
    if momentum:
        assert_same_bits(v_ops, v_ref)


def _train_params(make_optimizer, backend, num_threads, dtype):
    fastconv.set_num_threads(num_threads)
    rng = np.random.default_rng(13)
    params = [rng.standard_normal(s).astype(dtype) for s in [(3, 3, 4, 8), (8,), (70001,)]]
    optimizer = make_optimizer()
    with fastconv.use_backend(backend):
        for _ in range(4):
            grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
            optimizer.apply_gradients(zip(grads, params))
    return params


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_optimizer", [
    lambda: optimizers.Adam(1e-2),
    lambda: optimizers.Adam(1e-2, amsgrad=True),
    lambda: optimizers.AdamW(1e-2, weight_decay=0.1),
    lambda: optimizers.SGD(0.05),
    lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
], ids=["adam", "amsgrad", "adamw", "sgd", "nesterov"])
def test_optimizers_identical_on_both_backends_and_thread_counts(make_optimizer, dtype):
    reference = _train_params(make_optimizer, "reference", 1, dtype)
    for threads in (1, 2):
        compiled = _train_params(make_optimizer, "compiled", threads, dtype)
        for a, b in zip(compiled, reference):
            assert_same_bits(a, b)


def test_optimizers_still_update_non_contiguous_parameters():
    base = np.random.default_rng(14).standard_normal((6, 8))
    for make in (lambda: optimizers.Adam(0.1), lambda: optimizers.SGD(0.1, momentum=0.5)):
        results = []
        for backend in ("compiled", "reference"):
            param = base.copy()[:, ::2]
            with fastconv.use_backend(backend):
                opt = make()
                for _ in range(3):
                    opt.apply_gradients([(np.ones((6, 4), np.float32), param)])
            results.append(param)
        assert_same_bits(*results)
        assert not np.array_equal(results[0], base[:, ::2])


# -- dropout ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 1 - 2.0 ** -40])
def test_dropout_matches_reference(shape, dtype, rate):
    x = _data(shape, dtype, 15)
    dy = _data(shape, dtype, 16)
    bits = np.random.default_rng(17).integers(0, 2 ** 32, size=shape, dtype=np.uint32)
    if bits.size > 2:
        bits.reshape(-1)[:2] = [0, 2 ** 32 - 1]
    with np.errstate(invalid="ignore"):
        y, keep = _on_threads(lambda: ops.dropout_forward(x, bits, rate))
        y_ref, keep_ref = R.dropout_forward(x, bits, rate)
        assert_same_bits(y, y_ref)
        np.testing.assert_array_equal(keep, keep_ref)
        assert keep.dtype == bool
        dx = _on_threads(lambda: ops.dropout_backward(dy, keep, rate))
        assert_same_bits(dx, R.dropout_backward(dy, keep_ref, rate))


def test_dropout_keep_rate_and_scaling():
    x = np.ones((400, 500), np.float32)
    for rate in (0.1, 0.5, 0.75):
        y = layers.Dropout(rate, seed=1).forward(x, training=True)
        kept = y != 0
        # 200 000 Bernoulli draws: within 0.005 of 1 - rate (> 5 standard errors).
        assert abs(kept.mean() - (1 - rate)) < 0.005
        np.testing.assert_array_equal(y[kept], np.float32(1 / (1 - rate)))


def test_dropout_layer_is_reproducible_and_identical_on_both_backends():
    x = _data((8, 7, 5, 9), np.float32, 18, specials=False)
    dy = _data(x.shape, np.float32, 19, specials=False)
    results = []
    for backend in ("compiled", "reference"):
        with fastconv.use_backend(backend):
            fastconv.utils.set_random_seed(5)
            unseeded = layers.Dropout(0.4)
            seeded = layers.Dropout(0.4, seed=3)
            spatial = layers.SpatialDropout2D(0.5, seed=4)
            out = []
            for layer in (unseeded, seeded, spatial):
                out += [layer.forward(x, training=True), layer.backward(dy)]
            out.append(seeded.forward(x, training=True))  # the next mask differs
            results.append(out)
    for a, b in zip(*results):
        assert_same_bits(a, b)
    first, second = results[0][2], results[0][-1]
    assert not np.array_equal(first, second)


# -- bad input to the compiled module -----------------------------------------------------------------
def test_compiled_module_rejects_bad_arrays():
    x = np.ones((4, 5), np.float32)
    out = np.empty_like(x)
    readonly = np.empty_like(x)
    readonly.flags.writeable = False
    cases = [
        (lambda: E.relu_forward([1.0], out, 1), TypeError, "`x` must be a numpy.ndarray"),
        (lambda: E.relu_forward(x.astype(np.int32), out, 1), TypeError, "`x` must have dtype float32 or float64"),
        (lambda: E.relu_forward(x, out.astype(np.float64), 1), ValueError, "`out` must have dtype float32"),
        (lambda: E.relu_forward(x, np.empty((5, 4), np.float32), 1), ValueError, r"`out` must have shape \(4, 5\)"),
        (lambda: E.relu_forward(x, readonly, 1), ValueError, "`out` .* must be writeable"),
        (lambda: E.relu_forward(x, x, 1), ValueError, "`out` must not overlap `x`"),
        (lambda: E.relu_forward(x, out, 0), ValueError, "`num_threads` must be a positive int"),
        (lambda: E.relu_backward(x, x[:, ::2], 0.0, out, 1), ValueError, "`x` must have shape"),
        (lambda: E.relu_backward(x, np.ones((5, 4), np.float32).T, 0.0, out, 1), ValueError, "`x` must be C-contiguous"),
        (lambda: E.relu_backward(x, x, "0", out, 1), TypeError, "`threshold` must be a real number"),
        (lambda: E.tanh_backward(x, x, out[:, :1], 1), ValueError, "`dx` must have shape"),
        (lambda: E.leaky_relu_forward(x, None, out, 1), TypeError, "`negative_slope` must be a real number"),
        (lambda: E.leaky_relu_backward(x, x.astype(np.float64), 0.1, out, 1), ValueError, "`x` must have dtype float32"),
        (lambda: E.sigmoid_backward(x, None, out, 1), TypeError, "`y` must be a numpy.ndarray"),
        (lambda: E.adam_update(x.copy(), x, out, out, None, 0.1, 0.1, 0.1, 0.1, 1), ValueError, "`m` must not overlap `v`"),
        (lambda: E.adam_update(readonly, x, x.copy(), x.copy(), None, 0.1, 0.1, 0.1, 0.1, 1), ValueError, "`param` .* must be writeable"),
        (lambda: E.adam_update(x.copy(), x, x.copy(), x.copy(), None, None, 0.1, 0.1, 0.1, 1), TypeError, "`one_minus_beta_1`"),
        (lambda: E.sgd_update(x.copy(), x.astype(np.float64), None, 0.1, 0.0, False, 1), ValueError, "`grad` must have dtype float32"),
        (lambda: E.dropout_forward(x, np.ones((4, 5), np.int32), 0, 1.0, out, np.empty((4, 5), bool), 1), ValueError, "`bits` must have dtype uint32"),
        (lambda: E.dropout_forward(x, np.ones((4, 5), np.uint32), 2 ** 32 + 1, 1.0, out, np.empty((4, 5), bool), 1), ValueError, r"`drop_below` must be an int in \[0, 2\*\*32\]"),
        (lambda: E.dropout_backward(x, np.ones((4, 5), np.uint8), 1.0, out, 1), ValueError, "`keep` must have dtype bool"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def test_reference_rejects_bad_arguments():
    p = np.ones(3)
    with pytest.raises(ValueError, match=r"`grad` must have the shape of `param` \(3,\)"):
        ops.adam_update(p, np.ones(4), np.zeros(3), np.zeros(3), 0.1, 0.9, 0.999, 1e-7)
    with pytest.raises(TypeError, match="`param` must be a floating-point numpy.ndarray"):
        ops.sgd_update([1.0], np.ones(1), 0.1)
    with pytest.raises(ValueError, match="`x` must have the shape of `dy`"):
        ops.relu_backward(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="`bits` must be a uint32"):
        ops.dropout_forward(np.ones(3), np.ones(3), 0.5)
