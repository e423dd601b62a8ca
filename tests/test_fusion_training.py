"""BatchNormalization + ReLU run as one pass (fastconv._fusion): in training, fused vs unfused.

Sequential's fit / train_on_batch fuse a BatchNormalization followed by a plain ReLU; the
results must be those of the two layers run in turn, bit for bit: losses, weights, moving
statistics and predictions after several steps, on both backends, float32 and float64, 1 and
2 threads, trainable or frozen batch norm. Also: which pairs the plan fuses, the layers' state
after a fused step, the inference fusions, the fused layer-level backward against finite
differences, and the FASTCONV_FUSION=0 switch.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
import fastconv.backend
from fastconv import _fusion
from fastconv import layers as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def fusion():
    """Set _fusion.ENABLED for one test and restore it afterwards."""
    previous = _fusion.ENABLED

    def set_enabled(value):
        _fusion.ENABLED = value

    yield set_enabled
    _fusion.ENABLED = previous


@pytest.fixture
def threads():
    previous = fastconv.backend._num_threads
    yield fastconv.set_num_threads
    fastconv.set_num_threads(previous)


def _cnn(dtype="float32", bn_kwargs=None, relu=None, frozen_bn=False, pool=None):
    """Conv/BN/ReLU twice (one ReLU layer, one Activation('relu')), then Dense/BN/ReLU on 2-D;
    `pool` (keyword arguments of the MaxPooling2D after the first ReLU) 2x2 by default."""
    bn_kwargs = dict(bn_kwargs or {}, dtype=dtype)
    relu = relu or (lambda: L.ReLU(dtype=dtype))
    layers = [
        L.Conv2D(4, 3, padding="same", dtype=dtype), L.BatchNormalization(**bn_kwargs), relu(),
        L.MaxPooling2D(**(pool or {"pool_size": 2}), dtype=dtype),
        L.Conv2D(5, 3, dtype=dtype), L.BatchNormalization(**bn_kwargs),
        L.Activation("relu", dtype=dtype),
        L.Flatten(dtype=dtype), L.Dense(6, dtype=dtype), L.BatchNormalization(**bn_kwargs),
        L.ReLU(dtype=dtype), L.Dense(3, activation="softmax", dtype=dtype),
    ]
    if frozen_bn:
        layers[1].trainable = False
    return layers


def _data(dtype, n=6, shape=(9, 9, 2), classes=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape).astype(dtype), rng.integers(0, classes, n)


def _train(make_layers, enabled, x, y, steps, input_shape, set_enabled, weights=None,
           optimizer="adam"):
    """Build a model, load `weights`, train `steps` batches; return what must not change."""
    set_enabled(enabled)
    fastconv.utils.set_random_seed(0)
    model = fastconv.Sequential(make_layers(), input_shape=input_shape)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    if weights is not None:
        model.set_weights(weights)
    losses = [model.train_on_batch(x, y) for _ in range(steps)]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    return {"losses": np.array(losses + history.history["loss"]),
            "weights": model.get_weights(), "predict": model.predict(x, verbose=0),
            "model": model}


def _assert_same(a, b):
    assert a["losses"].tobytes() == b["losses"].tobytes()
    assert len(a["weights"]) == len(b["weights"])
    for wa, wb in zip(a["weights"], b["weights"]):
        assert wa.dtype == wb.dtype and wa.tobytes() == wb.tobytes()
    assert a["predict"].tobytes() == b["predict"].tobytes()


# ---- the plan ----------------------------------------------------------------------------------------

def test_plan_fuses_plain_relus_after_batch_norm(fusion):
    fusion(True)
    model = fastconv.Sequential(_cnn(), input_shape=(9, 9, 2))
    plan = _fusion.training_plan(model.layers)
    assert set(plan) == {1, 5, 9}
    # the max pooling after the first pair joins it; the others have none after them
    assert plan[1] is model.layers[3] and plan[5] is None and plan[9] is None
    fusion(False)
    assert _fusion.training_plan(model.layers) == {}


@pytest.mark.parametrize("pool", [
    lambda: L.MaxPooling2D(16, strides=1, padding="same"),  # 256 taps: no argmax kept
    lambda: L.AveragePooling2D(2),                         # not max pooling
    lambda: L.MaxPooling2D(2, data_format="channels_first"),
    lambda: L.MaxPooling2D(2, dtype="float64"),            # dtypes differ
])
def test_plan_joins_only_argmax_max_pooling(pool, fusion):
    fusion(True)
    model = fastconv.Sequential([L.BatchNormalization(), L.ReLU(), pool(), L.Flatten(),
                                 L.Dense(2)], input_shape=(6, 6, 3))
    assert _fusion.training_plan(model.layers) == {0: None}
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((3, 6, 6, 3)).astype(np.float32)
    assert np.isfinite(model.train_on_batch(x, np.zeros((3, 2), np.float32)))


@pytest.mark.parametrize("stack", [
    [L.BatchNormalization(), L.ReLU(max_value=6.0)],                 # capped
    [L.BatchNormalization(), L.ReLU(negative_slope=0.1)],            # leaky
    [L.BatchNormalization(), L.ReLU(threshold=0.5)],                 # threshold
    [L.BatchNormalization(), L.LeakyReLU()],                         # another activation
    [L.BatchNormalization(), L.Activation("relu6")],
    [L.BatchNormalization(axis=1), L.ReLU()],                        # not channels-last
    [L.BatchNormalization(dtype="float64"), L.ReLU()],               # dtypes differ
    [L.LayerNormalization(), L.ReLU()],                              # not a BatchNormalization
    [L.ReLU(), L.BatchNormalization()],                              # wrong order
])
def test_plan_leaves_other_pairs_alone(stack, fusion):
    fusion(True)
    model = fastconv.Sequential(stack, input_shape=(5, 4, 3))
    assert _fusion.training_plan(model.layers) == {}
    # And training them still works (through the unfused layers).
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((3, 5, 4, 3)).astype(np.float32)
    assert np.isfinite(model.train_on_batch(x, np.zeros_like(x)))


def test_fusion_switch_from_the_environment():
    code = "from fastconv import _fusion; print(_fusion.ENABLED)"
    for value, expected in (("0", "False"), ("1", "True")):
        env = dict(os.environ, FASTCONV_FUSION=value, PYTHONPATH=ROOT)
        proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == expected


# ---- fused training == unfused training, bit for bit ---------------------------------------------

@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool", [None, {"pool_size": 3, "strides": 2},  # overlapping windows
                                  {"pool_size": 3, "strides": 2, "padding": "same"}])
def test_training_fused_equals_unfused(backend, dtype, pool, fusion):
    x, y = _data(dtype)
    make = lambda: _cnn(dtype, pool=pool)  # noqa: E731
    with fastconv.use_backend(backend):
        weights = _train(make, False, x, y, 0, (9, 9, 2), fusion)["weights"]
        fused = _train(make, True, x, y, 4, (9, 9, 2), fusion, weights)
        plain = _train(make, False, x, y, 4, (9, 9, 2), fusion, weights)
    fusion(True)
    assert _fusion.training_plan(fused["model"].layers)[1] is fused["model"].layers[3]
    _assert_same(fused, plain)
    # Training did something (the comparison is not between two untouched models).
    assert not np.array_equal(fused["weights"][2], weights[2])  # a moving mean moved
    assert fused["losses"][0] != fused["losses"][3]


@pytest.mark.parametrize("bn_kwargs", [{"center": False}, {"scale": False},
                                       {"momentum": 0.5, "epsilon": 0.25}])
def test_training_fused_equals_unfused_bn_options(bn_kwargs, fusion):
    x, y = _data("float32", seed=2)
    make = lambda: _cnn("float32", bn_kwargs)  # noqa: E731
    weights = _train(make, False, x, y, 0, (9, 9, 2), fusion)["weights"]
    _assert_same(_train(make, True, x, y, 3, (9, 9, 2), fusion, weights),
                 _train(make, False, x, y, 3, (9, 9, 2), fusion, weights))


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_training_with_a_frozen_batch_norm(backend, fusion):
    # A frozen BatchNormalization trains through its moving statistics; its fused backward
    # must give the same input gradient (the Conv2D before it still learns).
    x, y = _data("float32", seed=3)
    make = lambda: _cnn("float32", frozen_bn=True)  # noqa: E731
    with fastconv.use_backend(backend):
        weights = _train(make, False, x, y, 0, (9, 9, 2), fusion)["weights"]
        rng = np.random.default_rng(4)  # moving statistics that make some outputs negative
        weights[2] = rng.standard_normal(weights[2].shape).astype(np.float32)
        weights[4] = rng.standard_normal(weights[4].shape).astype(np.float32)
        weights[5] = rng.uniform(0.2, 2.0, weights[5].shape).astype(np.float32)
        fused = _train(make, True, x, y, 3, (9, 9, 2), fusion, weights)
        plain = _train(make, False, x, y, 3, (9, 9, 2), fusion, weights)
    fusion(True)
    assert 1 in _fusion.training_plan(fused["model"].layers)
    _assert_same(fused, plain)
    assert not np.array_equal(fused["weights"][0], weights[0])  # the first conv learned
    np.testing.assert_array_equal(fused["weights"][4], weights[4])  # frozen statistics kept


def test_training_dead_channels_and_exact_zeros(fusion):
    # A channel whose batch-norm input is constant has y == beta exactly; with beta = 0 the ReLU
    # input is exactly 0, where the ReLU passes the gradient (x >= 0). The fused backward must
    # agree with the unfused ReLU there.
    make = lambda: [L.Conv2D(3, 1, dtype="float32"), L.BatchNormalization(dtype="float32"),  # noqa: E731
                    L.ReLU(dtype="float32"), L.Flatten(dtype="float32"),
                    L.Dense(2, activation="softmax", dtype="float32")]
    x, y = _data("float32", n=5, shape=(4, 4, 2), classes=2, seed=5)
    weights = _train(make, False, x, y, 0, (4, 4, 2), fusion)["weights"]
    weights[0][..., 1] = 0.0  # conv channel 1 is constant (its bias) over the batch
    _assert_same(_train(make, True, x, y, 3, (4, 4, 2), fusion, weights, optimizer="sgd"),
                 _train(make, False, x, y, 3, (4, 4, 2), fusion, weights, optimizer="sgd"))


def test_training_does_not_depend_on_threads(fusion, threads):
    x, y = _data("float32", n=16, shape=(12, 12, 2), seed=6)
    make = lambda: _cnn("float32")  # noqa: E731
    weights = _train(make, True, x, y, 0, (12, 12, 2), fusion)["weights"]
    runs = []
    for n in (1, 2):
        threads(n)
        runs.append(_train(make, True, x, y, 2, (12, 12, 2), fusion, weights))
    _assert_same(*runs)


def test_batch_of_one_and_relu_as_last_layer(fusion):
    make = lambda: [L.Dense(4, dtype="float64"), L.BatchNormalization(dtype="float64"),  # noqa: E731
                    L.Activation("relu", dtype="float64")]
    rng = np.random.default_rng(7)
    x, target = rng.standard_normal((1, 3)), rng.standard_normal((1, 4))
    results = []
    for enabled in (True, False):
        fusion(enabled)
        fastconv.utils.set_random_seed(0)
        model = fastconv.Sequential(make(), input_shape=(3,))
        model.compile(optimizer="sgd", loss="mse")
        losses = [model.train_on_batch(x, target) for _ in range(2)]
        results.append((losses, model.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        assert a.tobytes() == b.tobytes()


# ---- the layers' state and the unfused entry points ----------------------------------------------

def test_layer_state_after_a_fused_step(fusion):
    fusion(True)
    x, y = _data("float32")
    model = fastconv.Sequential(_cnn(), input_shape=(9, 9, 2))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    bn, relu = model.layers[1], model.layers[2]
    # The ReLU kept nothing for a backward of its own: refused as after an inference pass.
    with pytest.raises(RuntimeError, match="needs a preceding forward"):
        relu.backward(np.ones((6, 9, 9, 4), np.float32))
    # The batch norm's own backward still gives the batch norm's gradient.
    dy = np.random.default_rng(8).standard_normal((6, 9, 9, 4)).astype(np.float32)
    _, x_bn, gamma, _, mean, var = bn._cache
    expected = fastconv.ops.batch_norm_backward(dy, x_bn, gamma, mean, var, bn.epsilon)
    assert bn.backward(dy).tobytes() == expected[0].tobytes()
    assert bn.get_gradients()[0].tobytes() == expected[1].tobytes()


def test_direct_calls_and_manual_loops_are_not_fused(fusion):
    # model(x, training=True) and layer(x) run the layers one by one, so a hand-written loop
    # calling every layer's backward works as before, fusion on or off.
    x, _ = _data("float32")
    grads = []
    for enabled in (True, False):
        fusion(enabled)
        fastconv.utils.set_random_seed(0)
        model = fastconv.Sequential(_cnn(), input_shape=(9, 9, 2))
        out = model(x, training=True)
        g = np.ones_like(out)
        for layer in reversed(model.layers):
            g = layer.backward(g)
        direct = model.layers[2](model.layers[1](model.layers[0](x)))
        grads.append((g, direct))
    assert grads[0][0].tobytes() == grads[1][0].tobytes()
    assert grads[0][1].tobytes() == grads[1][1].tobytes()


# ---- inference ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inference_fused_equals_unfused(backend, dtype, fusion):
    stack = lambda: [  # noqa: E731
        L.Conv2D(4, 3, padding="same", dtype=dtype), L.BatchNormalization(dtype=dtype),
        L.ReLU(dtype=dtype),                                   # folded conv+BN, ReLU in place
        L.Conv2D(5, 3, activation="tanh", dtype=dtype), L.BatchNormalization(dtype=dtype),
        L.Activation("relu", dtype=dtype),                     # BN + ReLU fused kernel
        L.Flatten(dtype=dtype), L.Dense(3, dtype=dtype)]
    x, _ = _data(dtype, seed=9)
    outs = []
    with fastconv.use_backend(backend):
        for enabled in (True, False):
            fusion(enabled)
            fastconv.utils.set_random_seed(0)
            model = fastconv.Sequential(stack(), input_shape=(9, 9, 2))
            rng = np.random.default_rng(10)
            for layer in model.layers:
                if isinstance(layer, L.BatchNormalization):
                    c = layer.moving_mean.shape[0]
                    layer.set_weights([rng.uniform(0.5, 2, c), rng.standard_normal(c),
                                       rng.standard_normal(c), rng.uniform(0.1, 2, c)])
            outs.append((model.predict(x, verbose=0), model(x),
                         model.layers[5]._output_shape_seen))
    for a, b in zip(outs[0][:2], outs[1][:2]):
        assert a.tobytes() == b.tobytes()
    assert outs[0][2] == outs[1][2]


# ---- gradient check of the fused backward --------------------------------------------------------

@pytest.mark.parametrize("frozen", [False, True])
def test_fused_layer_backward_matches_finite_differences(frozen):
    # L = sum(w * relu(bn(x))) in float64; data chosen so that no batch-norm output sits within
    # the finite-difference step of the ReLU's kink.
    rng = np.random.default_rng(11)
    shape = (3, 2, 3, 4)
    bn = L.BatchNormalization(dtype="float64", trainable=not frozen)
    relu = L.ReLU(dtype="float64")
    bn.build(shape[1:])
    relu.build(shape[1:])
    bn.set_weights([rng.uniform(0.5, 2, 4), rng.standard_normal(4) * 0.3,
                    rng.standard_normal(4), rng.uniform(0.5, 2, 4)])
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape)

    def forward(xv):
        moving = [bn.moving_mean.copy(), bn.moving_variance.copy()]
        y = bn._forward_relu(xv, relu, training=True)
        bn.moving_mean[...], bn.moving_variance[...] = moving  # keep the statistics fixed
        return y

    z = bn.forward(x, training=True) if not frozen else bn.forward(x, training=False)
    assert np.abs(z).min() > 1e-3  # away from the kink
    y = forward(x)
    assert (y == 0).any() and (y > 0).any()  # the mask matters
    dx = bn._backward_relu(w)
    grads = bn.get_gradients()

    def numeric(value, f, h=1e-6):
        out = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + h
            up = f()
            value[idx] = old - h
            down = f()
            value[idx] = old
            out[idx] = (up - down) / (2 * h)
        return out

    loss = lambda: np.sum(w * forward(x))  # noqa: E731
    np.testing.assert_allclose(dx, numeric(x, loss), rtol=1e-6, atol=1e-7)
    if not frozen:
        np.testing.assert_allclose(grads[0], numeric(bn.gamma, loss), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(grads[1], numeric(bn.beta, loss), rtol=1e-6, atol=1e-7)


def test_backward_relu_needs_a_fused_training_forward():
    bn, relu = L.BatchNormalization(), L.ReLU()
    x = np.ones((2, 3), np.float32)
    bn.forward(x, training=True)
    with pytest.raises(RuntimeError, match="_forward_relu"):
        bn._backward_relu(np.ones((2, 3), np.float32))
    relu.build((3,))
    bn._forward_relu(x, relu, training=True)
    with pytest.raises(ValueError, match="dy"):
        bn._backward_relu(np.ones((2, 4), np.float32))
