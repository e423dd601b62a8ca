"""Layers: shapes, Keras defaults and layouts, outputs against independent NumPy loops,
BatchNormalization statistics, trainable=False, Dropout, backends, serialisation, errors."""
import importlib
import inspect
import json
import math

import numpy as np
import pytest

import fastconv
from fastconv import initializers, layers, utils


def _compiled_available():
    try:
        importlib.import_module("fastconv.ops")
        return True
    except ImportError:
        return False


BACKENDS = ["reference"] + (["compiled"] if _compiled_available() else [])


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fastconv.use_backend(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _default_backend():
    """Tests without the `backend` fixture run on the compiled core when it is built, else on
    the reference (and are immune to a backend another test module left selected)."""
    with fastconv.use_backend(BACKENDS[-1]):
        yield


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-11, atol=1e-11)


# -- independent implementations used as expectations ----------------------------------------
def same_padding(size, k, s, d):
    """TensorFlow 'same': output ceil(size / s), the odd pixel of padding at the end."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def naive_conv2d(x, kernel, bias, strides, pads, dilation, groups):
    n, h, w, c = x.shape
    kh, kw, cg, f = kernel.shape
    (pt, pb), (pl, pr) = pads
    xp = np.zeros((n, h + pt + pb, w + pl + pr, c))
    xp[:, pt:pt + h, pl:pl + w, :] = x
    oh = (xp.shape[1] - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (xp.shape[2] - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    fg = f // groups
    y = np.zeros((n, oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            for o in range(f):
                g = o // fg
                total = np.zeros(n)
                for a in range(kh):
                    for b in range(kw):
                        pix = xp[:, i * strides[0] + a * dilation[0], j * strides[1] + b * dilation[1],
                                 g * cg:(g + 1) * cg]
                        total += pix @ kernel[a, b, :, o]
                y[:, i, j, o] = total + (0.0 if bias is None else bias[o])
    return y


def naive_depthwise(x, dkernel, bias, strides, pads):
    n, h, w, c = x.shape
    kh, kw, _, m = dkernel.shape
    (pt, pb), (pl, pr) = pads
    xp = np.zeros((n, h + pt + pb, w + pl + pr, c))
    xp[:, pt:pt + h, pl:pl + w, :] = x
    oh = (xp.shape[1] - kh) // strides[0] + 1
    ow = (xp.shape[2] - kw) // strides[1] + 1
    y = np.zeros((n, oh, ow, c * m))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw, :]
            for ch in range(c):
                for mult in range(m):  # Keras: output channel ch * m + mult
                    y[:, i, j, ch * m + mult] = (win[..., ch] * dkernel[:, :, ch, mult]).sum(axis=(1, 2))
    return y + (0.0 if bias is None else bias)


def naive_pool(x, pool, strides, pads, reduce):
    """Pooling over the real (unpadded) pixels of each window."""
    n, h, w, c = x.shape
    (pt, pb), (pl, pr) = pads
    oh = (h + pt + pb - pool[0]) // strides[0] + 1
    ow = (w + pl + pr - pool[1]) // strides[1] + 1
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * strides[0] - pt, j * strides[1] - pl
            win = x[:, max(r0, 0):r0 + pool[0], max(c0, 0):c0 + pool[1], :]
            y[:, i, j, :] = reduce(win.reshape(n, -1, c), axis=1)
    return y


# -- shapes ----------------------------------------------------------------------------------
SHAPES = [
    (lambda: layers.Conv2D(5, 3), (9, 8, 2), (7, 6, 5)),
    (lambda: layers.Conv2D(4, (3, 2), strides=2, padding="same"), (9, 8, 3), (5, 4, 4)),
    (lambda: layers.Conv2D(2, 3, dilation_rate=2), (9, 8, 1), (5, 4, 2)),
    (lambda: layers.Conv2D(2, 3, padding=((1, 2), (0, 1))), (5, 5, 1), (6, 4, 2)),
    (lambda: layers.Conv2D(2, 3, padding=1), (5, 5, 1), (5, 5, 2)),
    (lambda: layers.Conv2D(6, 3, groups=2, data_format="channels_first"), (2, 7, 6), (6, 5, 4)),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=3), (6, 6, 2), (4, 4, 6)),
    (lambda: layers.DepthwiseConv2D(2, strides=2, padding="same"), (5, 6, 4), (3, 3, 4)),
    (lambda: layers.MaxPooling2D(), (7, 5, 3), (3, 2, 3)),
    (lambda: layers.MaxPool2D(3, 2, "same"), (7, 5, 3), (4, 3, 3)),
    (lambda: layers.AveragePooling2D((2, 3)), (6, 7, 2), (3, 2, 2)),
    (lambda: layers.AvgPool2D(2, data_format="channels_first"), (2, 6, 7), (2, 3, 3)),
    (lambda: layers.GlobalAveragePooling2D(), (4, 5, 3), (3,)),
    (lambda: layers.GlobalAveragePooling2D(keepdims=True), (4, 5, 3), (1, 1, 3)),
    (lambda: layers.GlobalMaxPooling2D(data_format="channels_first", keepdims=True), (3, 4, 5),
     (3, 1, 1)),
    (lambda: layers.Flatten(), (2, 3, 4), (24,)),
    (lambda: layers.ZeroPadding2D(), (3, 4, 2), (5, 6, 2)),
    (lambda: layers.ZeroPadding2D(((1, 2), (3, 4))), (3, 4, 2), (6, 11, 2)),
    (lambda: layers.Dense(7), (5,), (7,)),
    (lambda: layers.BatchNormalization(), (4, 5, 3), (4, 5, 3)),
    (lambda: layers.Softmax(axis=1), (4, 3), (4, 3)),
]


@pytest.mark.parametrize("make, input_shape, expected", SHAPES)
@pytest.mark.parametrize("batch", [1, 2])
def test_output_shapes(make, input_shape, expected, batch, backend):
    layer = make()
    assert layer.compute_output_shape(input_shape) == expected
    x = np.random.default_rng(0).standard_normal((batch,) + input_shape).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == (batch,) + expected and y.dtype == np.float32
    assert layer.output_shape == expected
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32


# -- Keras argument names and defaults -------------------------------------------------------
KERAS_DEFAULTS = {
    layers.Conv2D: dict(strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                        groups=1, activation=None, use_bias=True,
                        kernel_initializer="glorot_uniform", bias_initializer="zeros",
                        kernel_regularizer=None, bias_regularizer=None),
    layers.DepthwiseConv2D: dict(strides=(1, 1), padding="valid", depth_multiplier=1,
                                 data_format=None, dilation_rate=(1, 1), activation=None,
                                 use_bias=True, depthwise_initializer="glorot_uniform",
                                 bias_initializer="zeros", depthwise_regularizer=None,
                                 bias_regularizer=None),
    layers.MaxPooling2D: dict(pool_size=(2, 2), strides=None, padding="valid", data_format=None),
    layers.AveragePooling2D: dict(pool_size=(2, 2), strides=None, padding="valid", data_format=None),
    layers.GlobalAveragePooling2D: dict(data_format=None, keepdims=False),
    layers.GlobalMaxPooling2D: dict(data_format=None, keepdims=False),
    layers.BatchNormalization: dict(axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                                    beta_initializer="zeros", gamma_initializer="ones",
                                    moving_mean_initializer="zeros",
                                    moving_variance_initializer="ones"),
    layers.Dense: dict(activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                       bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None),
    layers.Dropout: dict(noise_shape=None, seed=None),
    layers.ReLU: dict(max_value=None, negative_slope=0.0, threshold=0.0),
    layers.LeakyReLU: dict(negative_slope=0.3),
    layers.ELU: dict(alpha=1.0),
    layers.Softmax: dict(axis=-1),
    layers.ZeroPadding2D: dict(padding=(1, 1), data_format=None),
    layers.Flatten: dict(data_format=None),
}


@pytest.mark.parametrize("cls", list(KERAS_DEFAULTS), ids=lambda c: c.__name__)
def test_keras_argument_defaults(cls):
    params = inspect.signature(cls.__init__).parameters
    for name, default in KERAS_DEFAULTS[cls].items():
        assert name in params, f"{cls.__name__} lacks Keras argument {name!r}"
        assert params[name].default == default, f"{cls.__name__}({name}=...) default"


def test_aliases_and_required_arguments():
    assert layers.MaxPool2D is layers.MaxPooling2D
    assert layers.AvgPool2D is layers.AveragePooling2D
    assert list(inspect.signature(layers.Conv2D.__init__).parameters)[1:3] == ["filters", "kernel_size"]
    assert list(inspect.signature(layers.Dense.__init__).parameters)[1] == "units"
    assert list(inspect.signature(layers.Dropout.__init__).parameters)[1] == "rate"
    with pytest.warns(DeprecationWarning, match="alpha"):
        assert layers.LeakyReLU(alpha=0.1).negative_slope == 0.1


# -- weights: layout, order, set/get ---------------------------------------------------------
def test_weight_layouts_and_order():
    conv = layers.Conv2D(6, (3, 2), groups=2)
    conv.build((7, 7, 4))
    assert [w.shape for w in conv.get_weights()] == [(3, 2, 2, 6), (6,)]
    dw = layers.DepthwiseConv2D((2, 3), depth_multiplier=2)
    dw.build((5, 5, 3))
    assert [w.shape for w in dw.get_weights()] == [(2, 3, 3, 2), (6,)]
    dense = layers.Dense(4, use_bias=False)
    dense.build((9,))
    assert [w.shape for w in dense.get_weights()] == [(9, 4)]
    bn = layers.BatchNormalization()
    bn.build((3, 3, 5))
    assert [w.name for w in bn._weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    np.testing.assert_array_equal(bn.get_weights()[0], np.ones(5))
    np.testing.assert_array_equal(bn.get_weights()[3], np.ones(5))
    bn_nc = layers.BatchNormalization(center=False)
    bn_nc.build((4,))
    assert [w.name for w in bn_nc._weights] == ["gamma", "moving_mean", "moving_variance"]
    assert conv.count_params() == 3 * 2 * 2 * 6 + 6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_set_get_weights_round_trip(dtype):
    layer = layers.Conv2D(3, 2, dtype=dtype)
    layer.build((4, 4, 2))
    kernel_ref = layer.kernel
    rng = np.random.default_rng(0)
    new = [rng.standard_normal((2, 2, 2, 3)), rng.standard_normal(3).tolist()]
    layer.set_weights(new)
    got = layer.get_weights()
    assert all(g.dtype == np.dtype(dtype) for g in got)
    np.testing.assert_allclose(got[0], new[0], **_tol(dtype))
    np.testing.assert_allclose(got[1], new[1], **_tol(dtype))
    assert layer.kernel is kernel_ref  # updated in place: optimizers keep references
    got[0][...] = 0  # get_weights returns copies
    assert np.any(layer.kernel != 0)
    with pytest.raises(ValueError, match=r"expects 2 weight arrays"):
        layer.set_weights(new[:1])
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2, 3\).*\(3, 2, 2, 2\)"):
        layer.set_weights([new[0].transpose(3, 0, 1, 2), new[1]])


def test_initializer_and_regularizer_arguments():
    conv = layers.Conv2D(4, 3, kernel_initializer="zeros", bias_initializer=initializers.Constant(0.5))
    conv.build((5, 5, 2))
    np.testing.assert_array_equal(conv.kernel, 0)
    np.testing.assert_array_equal(conv.bias, 0.5)
    # he_uniform on a conv kernel uses fan_in = kh * kw * in_channels (Keras' fans).
    big = layers.Conv2D(64, 3, kernel_initializer="he_uniform")
    big.build((8, 8, 50))
    limit = math.sqrt(6 / (3 * 3 * 50))
    assert np.abs(big.kernel).max() <= limit and np.abs(big.kernel).max() > 0.99 * limit
    dense = layers.Dense(3, kernel_initializer=lambda shape, dtype: np.full(shape, 2.0, dtype))
    dense.build((2,))
    np.testing.assert_array_equal(dense.kernel, 2.0)

    from fastconv import regularizers

    reg = layers.Dense(3, kernel_regularizer="l2", bias_regularizer=regularizers.L1(0.1))
    reg.build((4,))
    assert isinstance(reg._weights[0].regularizer, regularizers.L2)
    assert reg._weights[1].regularizer.l1 == 0.1
    bn = layers.BatchNormalization(gamma_regularizer="l1")
    bn.build((3,))
    assert isinstance(bn._weights[0].regularizer, regularizers.L1)
    config = json.loads(json.dumps(layers.serialize(reg)))
    rebuilt = layers.deserialize(config)
    rebuilt.build((4,))
    assert rebuilt._weights[1].regularizer.l1 == 0.1


# -- outputs against independent NumPy loops, on each backend --------------------------------
CONV_CONFIGS = [
    dict(filters=4, kernel_size=3),
    dict(filters=3, kernel_size=(2, 3), strides=(2, 1), padding="same", activation="relu"),
    dict(filters=4, kernel_size=3, dilation_rate=(1, 2), padding="same", use_bias=False),
    dict(filters=6, kernel_size=2, groups=3, padding=((1, 0), (2, 1)), activation="tanh"),
    dict(filters=2, kernel_size=1, strides=3, padding=2),
]


def _resolve_pads(config, h, w):
    k = config["kernel_size"]
    k = (k, k) if isinstance(k, int) else k
    s = config.get("strides", 1)
    s = (s, s) if isinstance(s, int) else s
    d = config.get("dilation_rate", 1)
    d = (d, d) if isinstance(d, int) else d
    p = config.get("padding", "valid")
    if p == "valid":
        return ((0, 0), (0, 0)), s, d
    if p == "same":
        return (same_padding(h, k[0], s[0], d[0]), same_padding(w, k[1], s[1], d[1])), s, d
    if isinstance(p, int):
        return ((p, p), (p, p)), s, d
    return p, s, d


@pytest.mark.parametrize("config", CONV_CONFIGS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_matches_naive_loops(config, dtype, backend):
    rng = np.random.default_rng(1)
    layer = layers.Conv2D(**config, dtype=dtype, bias_initializer="random_normal")
    big = rng.standard_normal((2, 9, 14, 3))
    x = big[:, :, ::2, :]  # non-contiguous (7 wide) input
    y = layer.forward(x)
    pads, s, d = _resolve_pads(config, 9, 7)
    expected = naive_conv2d(x, layer.kernel.astype(np.float64),
                            None if layer.bias is None else layer.bias.astype(np.float64),
                            s, pads, d, config.get("groups", 1))
    if config.get("activation") == "relu":
        expected = np.maximum(expected, 0)
    elif config.get("activation") == "tanh":
        expected = np.tanh(expected)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, expected, **_tol(dtype))


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv2d_keras_channel_order(multiplier, backend):
    rng = np.random.default_rng(2)
    layer = layers.DepthwiseConv2D((3, 2), strides=(1, 2), depth_multiplier=multiplier,
                                   bias_initializer="random_uniform", dtype="float64")
    x = rng.standard_normal((2, 6, 7, 3))
    y = layer.forward(x)
    expected = naive_depthwise(x, layer.depthwise_kernel, layer.bias, (1, 2), ((0, 0), (0, 0)))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_dense_matches_formula(backend):
    rng = np.random.default_rng(3)
    layer = layers.Dense(5, activation="sigmoid", bias_initializer="random_normal", dtype="float64")
    x = rng.standard_normal((4, 7))
    y = layer.forward(x)
    expected = 1 / (1 + np.exp(-(x @ layer.kernel + layer.bias)))
    np.testing.assert_allclose(y, expected, rtol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool, strides, padding", [
    ((2, 2), None, "valid"), ((3, 2), (2, 1), "same"), ((3, 3), (2, 2), "same"), ((2, 3), (1, 2), "valid"),
])
def test_pooling_matches_naive_loops(kind, pool, strides, padding, backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 7, 6, 3))
    cls = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    y = cls(pool, strides, padding, dtype="float64").forward(x)
    s = pool if strides is None else strides
    pads = ((0, 0), (0, 0)) if padding == "valid" else (
        same_padding(7, pool[0], s[0], 1), same_padding(6, pool[1], s[1], 1))
    expected = naive_pool(x, pool, s, pads, np.max if kind == "max" else np.mean)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_global_pooling_and_zero_padding(backend):
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(layers.GlobalAveragePooling2D(dtype="float64").forward(x),
                               x.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(layers.GlobalMaxPooling2D(keepdims=True, dtype="float64").forward(x),
                               x.max(axis=(1, 2), keepdims=True))
    padded = layers.ZeroPadding2D(((1, 0), (2, 3)), dtype="float64").forward(x)
    assert padded.shape == (2, 4, 9, 5)
    np.testing.assert_array_equal(padded[:, 1:, 2:6, :], x)
    assert padded.sum() == pytest.approx(x.sum())


def test_channels_first_equals_channels_last(backend):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 7, 6, 4))
    x_cf = np.transpose(x, (0, 3, 1, 2))
    pairs = [
        (lambda fmt: layers.Conv2D(4, 3, strides=2, padding="same", data_format=fmt, dtype="float64")),
        (lambda fmt: layers.DepthwiseConv2D(2, depth_multiplier=2, data_format=fmt, dtype="float64")),
        (lambda fmt: layers.MaxPooling2D(3, 2, "same", data_format=fmt, dtype="float64")),
        (lambda fmt: layers.AveragePooling2D(2, data_format=fmt, dtype="float64")),
        (lambda fmt: layers.ZeroPadding2D((1, 2), data_format=fmt, dtype="float64")),
    ]
    for make in pairs:
        last, first = make("channels_last"), make("channels_first")
        last.build(x.shape[1:])
        first.build(x_cf.shape[1:])
        first.set_weights(last.get_weights())  # same layouts whatever the data format
        y_last = last.forward(x, training=True)
        y_first = first.forward(x_cf, training=True)
        np.testing.assert_allclose(np.transpose(y_first, (0, 2, 3, 1)), y_last, rtol=1e-12, atol=1e-12)
        dy = rng.standard_normal(y_last.shape)
        dx_last = last.backward(dy)
        dx_first = first.backward(np.transpose(dy, (0, 3, 1, 2)))
        np.testing.assert_allclose(np.transpose(dx_first, (0, 2, 3, 1)), dx_last, rtol=1e-12, atol=1e-12)
    flat_last = layers.Flatten().forward(x)
    flat_first = layers.Flatten(data_format="channels_first").forward(x_cf)
    np.testing.assert_array_equal(flat_first, flat_last)


def test_activation_argument_forms_agree(backend):
    x = np.random.default_rng(7).standard_normal((3, 4))
    outputs = []
    for act in ("elu", fastconv.activations.elu, fastconv.activations.get("elu")):
        layer = layers.Dense(2, activation=act, kernel_initializer=initializers.GlorotUniform(seed=3),
                             dtype="float64")
        outputs.append(layer.forward(x))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])


# -- BatchNormalization ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(16, 3), (4, 5, 3, 2)])
def test_batch_norm_training_and_moving_statistics(shape, backend):
    rng = np.random.default_rng(8)
    momentum, eps = 0.9, 1e-3
    layer = layers.BatchNormalization(momentum=momentum, epsilon=eps, dtype="float64")
    layer.build(shape[1:])
    c = shape[-1]
    gamma, beta = rng.uniform(0.5, 2, c), rng.standard_normal(c)
    layer.set_weights([gamma, beta, np.zeros(c), np.ones(c)])
    moving_mean, moving_var = np.zeros(c), np.ones(c)
    for step in range(3):
        x = 2.0 + 3.0 * rng.standard_normal(shape)
        flat = x.reshape(-1, c)
        mean = flat.mean(axis=0)
        var = ((flat - mean) ** 2).sum(axis=0) / flat.shape[0]  # biased, as Keras
        y = layer.forward(x, training=True)
        np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + eps) * gamma + beta, rtol=1e-10, atol=1e-10)
        moving_mean = moving_mean * momentum + mean * (1 - momentum)
        moving_var = moving_var * momentum + var * (1 - momentum)
        np.testing.assert_allclose(layer.moving_mean, moving_mean, rtol=1e-12)
        np.testing.assert_allclose(layer.moving_variance, moving_var, rtol=1e-12)
    # Inference: moving statistics, nothing updated.
    x = rng.standard_normal(shape)
    y = layer.forward(x, training=False)
    np.testing.assert_allclose(y, (x - moving_mean) / np.sqrt(moving_var + eps) * gamma + beta,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.moving_mean, moving_mean, rtol=1e-12)


def test_batch_norm_trainable_false_runs_in_inference_mode(backend):
    rng = np.random.default_rng(9)
    layer = layers.BatchNormalization(trainable=False, dtype="float64")
    layer.build((4,))
    weights = [rng.uniform(0.5, 2, 4), rng.standard_normal(4), rng.standard_normal(4), rng.uniform(0.5, 2, 4)]
    layer.set_weights(weights)
    x = rng.standard_normal((6, 4))
    y = layer.forward(x, training=True)
    gamma, beta, mm, mv = weights
    np.testing.assert_allclose(y, (x - mm) / np.sqrt(mv + 1e-3) * gamma + beta, rtol=1e-12)
    np.testing.assert_array_equal(layer.moving_mean, mm)  # not updated
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), dy * gamma / np.sqrt(mv + 1e-3), rtol=1e-12)
    assert layer.trainable_weights == [] and layer.get_gradients() == []
    assert len(layer.non_trainable_weights) == 4


def test_batch_norm_float32_moving_statistics_stay_float32(backend):
    layer = layers.BatchNormalization()
    layer.forward(np.random.default_rng(0).standard_normal((5, 3)), training=True)
    assert layer.moving_mean.dtype == np.float32 and layer.moving_variance.dtype == np.float32


# -- trainable, compute_input_gradient -------------------------------------------------------
def test_frozen_conv_has_no_gradients_but_propagates(backend):
    layer = layers.Conv2D(2, 3, trainable=False)
    x = np.random.default_rng(0).standard_normal((1, 5, 5, 2))
    y = layer.forward(x, training=True)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    assert layer.backward(np.ones_like(y)).shape == x.shape
    assert layer.get_gradients() == []


@pytest.mark.parametrize("make, shape", [
    (lambda: layers.Conv2D(3, 2, padding="same", dtype="float64"), (2, 4, 5, 2)),
    (lambda: layers.DepthwiseConv2D(2, depth_multiplier=2, dtype="float64"), (2, 4, 5, 2)),
    (lambda: layers.Dense(3, activation="relu", dtype="float64"), (4, 6)),
])
def test_compute_input_gradient_false(make, shape, backend):
    x = np.random.default_rng(1).standard_normal(shape)
    full, first = make(), make()
    full.build(shape[1:])
    first.build(shape[1:])
    first.set_weights(full.get_weights())
    first.compute_input_gradient = False
    dy = np.random.default_rng(2).standard_normal(full.forward(x, training=True).shape)
    first.forward(x, training=True)
    assert full.backward(dy) is not None
    assert first.backward(dy) is None
    for a, b in zip(full.get_gradients(), first.get_gradients()):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_backward_requires_training_forward():
    layer = layers.Dense(2)
    layer.forward(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.ones((1, 2)))


# -- Dropout ---------------------------------------------------------------------------------
def test_dropout_identity_at_inference_and_scaling_in_training():
    x = np.random.default_rng(0).uniform(1, 2, (200, 500)).astype(np.float32)
    layer = layers.Dropout(0.3, seed=0)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    y = layer.forward(x, training=True)
    dropped = y == 0
    # Kept values are scaled by 1 / (1 - rate) (inverted dropout).
    np.testing.assert_allclose(y[~dropped], x[~dropped] / 0.7, rtol=1e-6)
    # 100 000 Bernoulli(0.3) draws: the fraction is within 1% of 0.3 (> 6 standard errors).
    assert abs(dropped.mean() - 0.3) < 0.01
    dy = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dy), np.where(dropped, 0, np.float32(1 / 0.7)))
    np.testing.assert_array_equal(layers.Dropout(0.0).forward(x, training=True), x)


def test_dropout_seeds_and_noise_shape():
    x = np.ones((4, 3, 3, 6))
    a, b = layers.Dropout(0.5, seed=3), layers.Dropout(0.5, seed=3)
    first = a.forward(x, training=True)
    np.testing.assert_array_equal(first, b.forward(x, training=True))
    assert not np.array_equal(first, a.forward(x, training=True))  # a new mask every call
    utils.set_random_seed(11)
    unseeded = layers.Dropout(0.5).forward(x, training=True)
    utils.set_random_seed(11)
    np.testing.assert_array_equal(layers.Dropout(0.5).forward(x, training=True), unseeded)
    spatial = layers.Dropout(0.5, noise_shape=(None, 1, 1, None), seed=0).forward(x, training=True)
    # One decision per (sample, channel): constant over height and width.
    assert np.all(spatial == spatial[:, :1, :1, :])
    assert np.any(spatial == 0) and np.any(spatial == 2)
    with pytest.raises(ValueError, match="noise_shape"):
        layers.Dropout(0.5, noise_shape=(None, 2, 1, None)).forward(x, training=True)


# -- dtype and input handling ----------------------------------------------------------------
def test_input_dtypes(backend):
    layer = layers.Dense(2)
    assert layer.forward(np.ones((3, 4), dtype=np.float64)).dtype == np.float32
    assert layer.forward(np.ones((3, 4), dtype=np.int64)).dtype == np.float32
    assert layer.forward([[1, 2, 3, 4]]).shape == (1, 2)
    with pytest.raises(TypeError, match="dtype bool"):
        layer.forward(np.ones((3, 4), dtype=bool))
    with pytest.raises(TypeError, match="complex"):
        layer.forward(np.ones((3, 4), dtype=np.complex64))
    with pytest.raises(TypeError, match="`x`"):
        layer.forward(np.array([["a", "b", "c", "d"]]))


# -- compiled vs reference -------------------------------------------------------------------
def _stack():
    return [
        layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(3, 2, padding="same"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="elu"),
        layers.Conv2D(4, 2, groups=2, dilation_rate=2),
        layers.AveragePooling2D(2, strides=1, padding="same"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(5, activation="softmax"),
    ]


def _run(stack, x, dy_seed):
    y = x
    for layer in stack:
        y = layer.forward(y, training=True)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(np.float32)
    g = dy
    for layer in reversed(stack):
        g = layer.backward(g)
    return y, g, [gr for layer in stack for gr in layer.get_gradients()]


@pytest.mark.skipif(not _compiled_available(), reason="compiled core not built (CI builds it)")
def test_compiled_and_reference_layers_agree():
    x = np.random.default_rng(12).standard_normal((3, 13, 11, 3)).astype(np.float32)
    ref_stack, comp_stack = _stack(), _stack()
    shape = x.shape[1:]
    for a, b in zip(ref_stack, comp_stack):
        a.build(shape)
        b.build(shape)
        b.set_weights(a.get_weights())
        shape = a.output_shape
    with fastconv.use_backend("reference"):
        y_ref, dx_ref, g_ref = _run(ref_stack, x, 0)
    with fastconv.use_backend("compiled"):
        y_c, dx_c, g_c = _run(comp_stack, x, 0)
    np.testing.assert_allclose(y_c, y_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx_c, dx_ref, rtol=1e-3, atol=1e-4)
    for a, b in zip(g_c, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    for a, b in zip(comp_stack, ref_stack):  # BN moving statistics too
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)


# -- serialisation ---------------------------------------------------------------------------
SERIALIZABLE = [
    lambda: layers.Conv2D(4, (3, 2), strides=(2, 1), padding=((1, 0), (2, 1)), dilation_rate=1,
                          groups=2, activation="relu", use_bias=False,
                          kernel_initializer=initializers.HeNormal(seed=1), name="my_conv"),
    lambda: layers.Conv2D(2, 3, padding="same", data_format="channels_first", dtype="float64"),
    lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="elu"),
    lambda: layers.MaxPooling2D(3, 2, "same"),
    lambda: layers.AvgPool2D((2, 3)),
    lambda: layers.GlobalAveragePooling2D(keepdims=True),
    lambda: layers.GlobalMaxPooling2D(),
    lambda: layers.BatchNormalization(momentum=0.8, epsilon=1e-4, center=False, trainable=False),
    lambda: layers.Dense(3, activation=fastconv.activations.softmax, bias_initializer="ones"),
    lambda: layers.Flatten(),
    lambda: layers.Dropout(0.25, seed=4),
    lambda: layers.Activation("tanh"),
    lambda: layers.ReLU(max_value=6.0),
    lambda: layers.LeakyReLU(0.1),
    lambda: layers.ELU(0.5),
    lambda: layers.Softmax(axis=1),
    lambda: layers.ZeroPadding2D(((1, 2), (0, 1))),
]


@pytest.mark.parametrize("make", SERIALIZABLE)
def test_serialize_deserialize_round_trip(make, backend):
    layer = make()
    config = json.loads(json.dumps(layers.serialize(layer)))  # JSON-serialisable
    assert config["class_name"] == type(layer).__name__
    rebuilt = layers.deserialize(config)
    assert type(rebuilt) is type(layer)
    assert json.loads(json.dumps(rebuilt.get_config())) == config["config"]
    shape = (3, 4, 6) if not isinstance(layer, (layers.Dense, layers.Softmax)) else (4,)
    x = np.random.default_rng(0).standard_normal((2,) + shape)
    layer.build(shape)
    rebuilt.build(shape)
    rebuilt.set_weights(layer.get_weights())
    np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))


def test_deserialize_errors_and_custom_objects():
    with pytest.raises(ValueError, match="Unknown layer class 'Conv3D'"):
        layers.deserialize({"class_name": "Conv3D", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        layers.deserialize({"config": {}})
    assert type(layers.deserialize({"class_name": "MaxPool2D", "config": {}})) is layers.MaxPooling2D

    class Double(layers.Layer):
        def call(self, x, training):
            return 2 * x

    rebuilt = layers.deserialize({"class_name": "Double", "config": {"name": "d"}},
                                 custom_objects={"Double": Double})
    assert isinstance(rebuilt, Double) and rebuilt.name == "d"


# -- bad arguments and input -----------------------------------------------------------------
@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.Conv2D(0, 3), ValueError, "`filters`"),
    (lambda: layers.Conv2D(2.5, 3), ValueError, "`filters`"),
    (lambda: layers.Conv2D(4, "3"), ValueError, "`kernel_size`"),
    (lambda: layers.Conv2D(4, (3, 3, 3)), ValueError, "`kernel_size`"),
    (lambda: layers.Conv2D(4, 3, strides=0), ValueError, "`strides`"),
    (lambda: layers.Conv2D(4, 3, padding="full"), ValueError, "`padding`"),
    (lambda: layers.Conv2D(4, 3, padding=-1), ValueError, "`padding`"),
    (lambda: layers.Conv2D(4, 3, data_format="NCHW"), ValueError, "`data_format`"),
    (lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2), ValueError, "dilation_rate"),
    (lambda: layers.Conv2D(5, 3, groups=2), ValueError, "groups"),
    (lambda: layers.Conv2D(4, 3, activation="gelu_fancy"), ValueError, "activation"),
    (lambda: layers.Conv2D(4, 3, kernel_initializer="glorot"), ValueError, "kernel_initializer"),
    (lambda: layers.Conv2D(4, 3, kernel_constraint="non_neg"), ValueError, "kernel_constraint"),
    (lambda: layers.Conv2D(4, 3, activity_regularizer="l2"), ValueError, "activity_regularizer"),
    (lambda: layers.Conv2D(4, 3, fliters=3), TypeError, "fliters"),
    (lambda: layers.Conv2D(4, 3, dtype="int32"), TypeError, "dtype"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), ValueError, "depth_multiplier"),
    (lambda: layers.MaxPooling2D(padding=1), ValueError, "`padding`"),
    (lambda: layers.MaxPooling2D(pool_size=0), ValueError, "`pool_size`"),
    (lambda: layers.AveragePooling2D(strides=(1, 0)), ValueError, "`strides`"),
    (lambda: layers.Dense(0), ValueError, "`units`"),
    (lambda: layers.Dense(3, use_bias="yes"), TypeError, "`use_bias`"),
    (lambda: layers.Dropout(1.0), ValueError, r"`rate`.*\[0, 1\)"),
    (lambda: layers.Dropout(-0.1), ValueError, "`rate`"),
    (lambda: layers.Dropout(0.5, seed=-1), ValueError, "`seed`"),
    (lambda: layers.BatchNormalization(momentum=1.5), ValueError, "`momentum`"),
    (lambda: layers.BatchNormalization(epsilon=0), ValueError, "`epsilon`"),
    (lambda: layers.BatchNormalization(axis=[1, 2]), ValueError, "`axis`"),
    (lambda: layers.ReLU(max_value=-1), ValueError, "`max_value`"),
    (lambda: layers.ReLU(negative_slope=-0.1), ValueError, "`negative_slope`"),
    (lambda: layers.ReLU(threshold=None), ValueError, "`threshold`"),
    (lambda: layers.LeakyReLU(negative_slope=-1), ValueError, "`negative_slope`"),
    (lambda: layers.Softmax(axis=1.5), ValueError, "`axis`"),
    (lambda: layers.ZeroPadding2D("same"), ValueError, "`padding`"),
    (lambda: layers.ZeroPadding2D((1, 2, 3)), ValueError, "`padding`"),
])
def test_bad_constructor_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("layer, shape, match", [
    (layers.Dense(3), (2, 4, 4, 1), "Flatten"),
    (layers.Conv2D(2, 3), (2, 8, 8), r"4-D input"),
    (layers.Conv2D(2, 5), (1, 3, 8, 1), "larger than the padded input"),
    (layers.Conv2D(4, 3, groups=2), (1, 5, 5, 3), r"input channels \(3\).*`groups` \(2\)"),
    (layers.MaxPooling2D(3), (1, 2, 5, 1), "pool window"),
    (layers.GlobalAveragePooling2D(), (2, 3), "4-D input"),
    (layers.BatchNormalization(axis=0), (2, 3), "axis"),
    (layers.BatchNormalization(axis=3), (2, 3, 4), "axis"),
    (layers.Softmax(axis=2), (2, 3), "axis"),
    (layers.ZeroPadding2D(), (2, 3, 4), "4-D input"),
])
def test_bad_input_shapes(layer, shape, match, backend):
    with pytest.raises(ValueError, match=match):
        layer.forward(np.zeros(shape))


def test_input_shape_changes_after_build_are_refused(backend):
    layer = layers.Conv2D(2, 3, name="c1")
    layer.forward(np.zeros((1, 6, 6, 2)))
    with pytest.raises(ValueError, match=r"'c1'.*\(6, 6, 2\).*\(1, 6, 6, 3\)"):
        layer.forward(np.zeros((1, 6, 6, 3)))
