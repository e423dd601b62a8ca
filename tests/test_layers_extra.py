"""SeparableConv2D, Conv2DTranspose, UpSampling2D, Cropping2D, Reshape, SpatialDropout2D and
LayerNormalization: outputs against naive NumPy loops written here (Keras' shape formulas and
TensorFlow's padding rule), Keras weight layouts, every backward pass against finite
differences in float64 on both backends, and use in Sequential (fit, save, load)."""
import json
import math

import numpy as np
import pytest

import fastconv
from fastconv import layers, utils
from test_layers_gradcheck import _backends, _randomize_weights, gradcheck

F64 = {"dtype": "float64"}


@pytest.fixture(params=_backends())
def backend(request):
    with fastconv.use_backend(request.param):
        yield request.param


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def tf_same_pads(size, k_eff, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def naive_conv(x, kernel, strides, pads, dilation, groups=1):
    """Direct loops: y[n,i,j,f] = sum over taps and the group's channels of x * kernel."""
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, hp, wp, c = xp.shape
    kh, kw, cin_g, filters = kernel.shape
    oh = (hp - ((kh - 1) * dilation[0] + 1)) // strides[0] + 1
    ow = (wp - ((kw - 1) * dilation[1] + 1)) // strides[1] + 1
    per_group = filters // groups
    y = np.zeros((n, oh, ow, filters))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    pixel = xp[:, i * strides[0] + a * dilation[0], j * strides[1] + b * dilation[1]]
                    for f in range(filters):
                        g = f // per_group
                        y[:, i, j, f] += pixel[:, g * cin_g:(g + 1) * cin_g] @ kernel[a, b, :, f]
    return y


# -- SeparableConv2D -------------------------------------------------------------------------------
SEPARABLE_CASES = [
    dict(filters=4, kernel_size=3),
    dict(filters=3, kernel_size=(2, 3), strides=2, padding="same", depth_multiplier=2),
    dict(filters=2, kernel_size=3, dilation_rate=2, padding="same", use_bias=False),
    dict(filters=5, kernel_size=1, depth_multiplier=3, activation="relu"),
]


@pytest.mark.parametrize("kwargs", SEPARABLE_CASES)
def test_separable_conv_matches_depthwise_then_pointwise(kwargs, backend):
    layer = layers.SeparableConv2D(**kwargs, **F64)
    x = rand((2, 7, 6, 3), seed=1)
    _randomize_weights(layer, x.shape[1:])
    weights = layer.get_weights()
    depthwise, pointwise = weights[0], weights[1]
    kh, kw, c, m = depthwise.shape
    assert pointwise.shape == (1, 1, c * m, kwargs["filters"])  # Keras' layouts and order
    strides = (kwargs.get("strides", 1),) * 2
    dilation = (kwargs.get("dilation_rate", 1),) * 2
    if kwargs.get("padding") == "same":
        pads = (tf_same_pads(7, (kh - 1) * dilation[0] + 1, strides[0]),
                tf_same_pads(6, (kw - 1) * dilation[1] + 1, strides[1]))
    else:
        pads = ((0, 0), (0, 0))
    mid = naive_conv(x, depthwise.reshape(kh, kw, 1, c * m), strides, pads, dilation, groups=c)
    z = np.einsum("nhwc,cf->nhwf", mid, pointwise[0, 0])
    if kwargs.get("use_bias", True):
        z = z + weights[2]
    expected = np.maximum(z, 0) if kwargs.get("activation") == "relu" else z
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)


SEPARABLE_GRAD_CASES = {
    "basic": (lambda: layers.SeparableConv2D(3, 3, **F64), (2, 5, 5, 2)),
    "strided_multiplier_tanh": (lambda: layers.SeparableConv2D(
        2, (3, 2), strides=2, padding="same", depth_multiplier=2, activation="tanh", **F64), (2, 6, 5, 3)),
    "dilated_no_bias": (lambda: layers.SeparableConv2D(2, 2, dilation_rate=2, use_bias=False, **F64),
                        (1, 5, 5, 2)),
    "channels_first": (lambda: layers.SeparableConv2D(3, 2, data_format="channels_first", **F64),
                       (2, 2, 4, 5)),
}


@pytest.mark.parametrize("case", sorted(SEPARABLE_GRAD_CASES))
def test_separable_conv_gradients(case, backend):
    make, shape = SEPARABLE_GRAD_CASES[case]
    layer = make()
    _randomize_weights(layer, shape[1:])
    grads = gradcheck(layer, rand(shape, seed=2))
    assert len(grads) == (2 if "no_bias" in case else 3)


# -- Conv2DTranspose -------------------------------------------------------------------------------
def keras_deconv_length(size, k, padding, output_padding, stride, dilation):
    k = (k - 1) * dilation + 1
    if output_padding is None:
        return size * stride + max(k - stride, 0) if padding == "valid" else size * stride
    pad = k // 2 if padding == "same" else 0
    return (size - 1) * stride + k - 2 * pad + output_padding


def naive_conv_transpose(x, kernel, strides, padding, output_padding, dilation):
    """Scatter every input pixel through every tap; placement as TensorFlow's conv2d_transpose:
    the top/left offset is the 'same' padding of the matching convolution (0 for 'valid')."""
    n, h, w, c = x.shape
    kh, kw, filters, _ = kernel.shape
    op = output_padding or (None, None)
    out = [keras_deconv_length(s, k, padding, p, st, d)
           for s, k, p, st, d in zip((h, w), (kh, kw), op, strides, dilation)]
    offsets = []
    for s, k, o, st, d in zip((h, w), (kh, kw), out, strides, dilation):
        total = (s - 1) * st + (k - 1) * d + 1 - o
        offsets.append(max(total, 0) // 2 if padding == "same" else 0)
    y = np.zeros((n, out[0], out[1], filters))
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    r = i * strides[0] + a * dilation[0] - offsets[0]
                    q = j * strides[1] + b * dilation[1] - offsets[1]
                    if 0 <= r < out[0] and 0 <= q < out[1]:
                        y[:, r, q] += x[:, i, j] @ kernel[a, b].T
    return y


TRANSPOSE_CASES = [
    (3, 1, "valid", None, 1), (3, 2, "valid", None, 1), (3, 2, "same", None, 1),
    (4, 2, "same", None, 1), (2, 3, "valid", None, 1), (1, 2, "same", None, 1),
    (2, 3, "same", None, 1), (3, 2, "same", 1, 1), (3, 2, "same", 0, 1), (4, 2, "same", 1, 1),
    (4, 3, "valid", 2, 1), (5, 3, "same", 2, 1), (1, 2, "same", 1, 1), (3, 1, "same", None, 2),
    ((2, 3), (2, 1), "same", None, 1), (3, (1, 2), "valid", (0, 1), 1),
]


@pytest.mark.parametrize("kernel_size, strides, padding, output_padding, dilation", TRANSPOSE_CASES)
def test_conv_transpose_matches_scatter_loop(kernel_size, strides, padding, output_padding,
                                             dilation, backend):
    layer = layers.Conv2DTranspose(3, kernel_size, strides=strides, padding=padding,
                                   output_padding=output_padding, dilation_rate=dilation, **F64)
    x = rand((2, 4, 5, 2), seed=3)
    _randomize_weights(layer, x.shape[1:])
    kernel, bias = layer.get_weights()
    kh, kw = layer.kernel_size
    assert kernel.shape == (kh, kw, 3, 2)  # Keras: (kh, kw, filters, in_channels)
    op = None if output_padding is None else layer.output_padding
    expected = naive_conv_transpose(x, kernel, layer.strides, padding, op, layer.dilation_rate) + bias
    got = layer(x)
    assert got.shape == expected.shape == (2,) + layer.output_shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_conv_transpose_keras_shapes():
    def out(h, **kwargs):
        layer = layers.Conv2DTranspose(1, **kwargs)
        layer.build((h, h, 1))
        return layer.output_shape[0]

    assert out(5, kernel_size=3, strides=2, padding="same") == 10
    assert out(5, kernel_size=3, strides=2, padding="valid") == 11
    assert out(5, kernel_size=3, strides=2, padding="same", output_padding=1) == 10
    assert out(5, kernel_size=3, strides=2, padding="same", output_padding=0) == 9
    assert out(7, kernel_size=4, strides=2, padding="same") == 14
    assert out(7, kernel_size=1, strides=3, padding="valid") == 21
    assert out(6, kernel_size=3, strides=1, padding="valid", dilation_rate=2) == 10
    # Up-sampling is the transpose of the strided convolution: a 28 -> 14 -> 28 round trip.
    conv = layers.Conv2D(1, 3, strides=2, padding="same")
    conv.build((28, 28, 1))
    assert out(conv.output_shape[0], kernel_size=3, strides=2, padding="same") == 28


def test_conv_transpose_is_the_adjoint_of_conv2d(backend):
    # <ConvT_K(x), y> = <x, Conv_K(y)>: Conv2D with the same kernel (in/out swapped).
    t = layers.Conv2DTranspose(3, 3, strides=2, padding="same", use_bias=False, **F64)
    x = rand((2, 4, 4, 2), seed=5)
    _randomize_weights(t, x.shape[1:])
    y = rand((2,) + t.output_shape, seed=6)
    conv = layers.Conv2D(2, 3, strides=2, padding="same", use_bias=False, **F64)
    conv.build(t.output_shape)
    conv.set_weights([t.kernel])
    assert float((t(x) * y).sum()) == pytest.approx(float((x * conv(y)).sum()), rel=1e-12)


TRANSPOSE_GRAD_CASES = {
    "valid": (lambda: layers.Conv2DTranspose(2, 3, **F64), (2, 3, 4, 2)),
    "same_stride2_relu": (lambda: layers.Conv2DTranspose(3, 3, strides=2, padding="same",
                                                         activation="tanh", **F64), (2, 3, 3, 2)),
    "valid_stride3_small_kernel": (lambda: layers.Conv2DTranspose(2, 2, strides=3, **F64), (1, 3, 2, 2)),
    "output_padding": (lambda: layers.Conv2DTranspose(2, (3, 4), strides=2, padding="same",
                                                      output_padding=1, **F64), (2, 3, 3, 1)),
    "dilated_no_bias": (lambda: layers.Conv2DTranspose(2, 2, dilation_rate=2, use_bias=False, **F64),
                        (1, 3, 3, 2)),
    "channels_first": (lambda: layers.Conv2DTranspose(2, 3, strides=2, data_format="channels_first",
                                                      **F64), (2, 2, 3, 2)),
}


@pytest.mark.parametrize("case", sorted(TRANSPOSE_GRAD_CASES))
def test_conv_transpose_gradients(case, backend):
    make, shape = TRANSPOSE_GRAD_CASES[case]
    layer = make()
    _randomize_weights(layer, shape[1:])
    grads = gradcheck(layer, rand(shape, seed=4))
    assert len(grads) == (1 if "no_bias" in case else 2)


def test_conv_transpose_bad_arguments():
    with pytest.raises(ValueError, match="greater than output padding"):
        layers.Conv2DTranspose(2, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        layers.Conv2DTranspose(2, 3, padding=1)
    with pytest.raises(ValueError, match="dilation_rate"):
        layers.Conv2DTranspose(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="filters"):
        layers.Conv2DTranspose(0, 3)


# -- UpSampling2D, Cropping2D, Reshape ---------------------------------------------------------------
def test_upsampling_nearest_repeats_pixels():
    x = rand((2, 3, 4, 2))
    y = layers.UpSampling2D((2, 3), **F64)(x)
    assert y.shape == (2, 6, 12, 2)
    for i in range(6):
        for j in range(12):
            np.testing.assert_array_equal(y[:, i, j], x[:, i // 2, j // 3])


def _bilinear_matrix(size, factor):
    """1-D half-pixel bilinear interpolation weights (out, in), written with scalar loops."""
    m = np.zeros((size * factor, size))
    for o in range(size * factor):
        src = min(max((o + 0.5) / factor - 0.5, 0.0), size - 1.0)
        lo = int(math.floor(src))
        hi = min(lo + 1, size - 1)
        m[o, lo] += 1 - (src - lo)
        m[o, hi] += src - lo
    return m


def test_upsampling_bilinear_matches_half_pixel_interpolation():
    x = rand((2, 3, 4, 2))
    y = layers.UpSampling2D((2, 3), interpolation="bilinear", **F64)(x)
    expected = np.einsum("ah,nhwc,bw->nabc", _bilinear_matrix(3, 2), x, _bilinear_matrix(4, 3))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    # Keras/TF example: [[1, 2]] up-sampled by 2 along the width is [1, 1.25, 1.75, 2].
    widen = layers.UpSampling2D((1, 2), interpolation="bilinear", **F64)
    row = widen(np.array([1.0, 2.0]).reshape(1, 1, 2, 1))
    np.testing.assert_allclose(row.ravel(), [1.0, 1.25, 1.75, 2.0])


def test_cropping_and_reshape():
    x = rand((2, 6, 7, 3))
    np.testing.assert_array_equal(layers.Cropping2D(((1, 2), (0, 3)), **F64)(x), x[:, 1:4, 0:4])
    np.testing.assert_array_equal(layers.Cropping2D(1, **F64)(x), x[:, 1:5, 1:6])
    np.testing.assert_array_equal(layers.Cropping2D((2, 1), **F64)(x), x[:, 2:4, 1:6])
    first = layers.Cropping2D(((1, 0), (2, 1)), data_format="channels_first", **F64)
    np.testing.assert_array_equal(first(np.transpose(x, (0, 3, 1, 2))),
                                  np.transpose(x[:, 1:, 2:6], (0, 3, 1, 2)))
    with pytest.raises(ValueError, match="leaves nothing"):
        layers.Cropping2D(((3, 3), (0, 0))).build((6, 7, 3))
    np.testing.assert_array_equal(layers.Reshape((7, -1), **F64)(x), x.reshape(2, 7, 18))
    np.testing.assert_array_equal(layers.Reshape((126,), **F64)(x), x.reshape(2, 126))
    with pytest.raises(ValueError, match="cannot reshape"):
        layers.Reshape((5, -1)).build((6, 7, 3))
    with pytest.raises(ValueError, match="cannot reshape"):
        layers.Reshape((10, 10)).build((6, 7, 3))
    for bad in ((-1, -1), (0, 3), "abc", (2.5,)):
        with pytest.raises(ValueError, match="target_shape"):
            layers.Reshape(bad)


SHAPE_GRAD_CASES = {
    "upsampling_nearest": (lambda: layers.UpSampling2D((2, 3), **F64), (2, 3, 2, 2)),
    "upsampling_bilinear": (lambda: layers.UpSampling2D(2, interpolation="bilinear", **F64), (2, 3, 3, 2)),
    "upsampling_channels_first": (lambda: layers.UpSampling2D(
        (1, 2), data_format="channels_first", interpolation="bilinear", **F64), (1, 2, 3, 3)),
    "cropping": (lambda: layers.Cropping2D(((1, 0), (2, 1)), **F64), (2, 4, 5, 2)),
    "reshape": (lambda: layers.Reshape((-1, 3), **F64), (2, 2, 3, 3)),
}


@pytest.mark.parametrize("case", sorted(SHAPE_GRAD_CASES))
def test_shape_layer_gradients(case, backend):
    make, shape = SHAPE_GRAD_CASES[case]
    assert gradcheck(make(), rand(shape, seed=7)) == []


# -- SpatialDropout2D --------------------------------------------------------------------------------
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_spatial_dropout_drops_whole_channels(data_format):
    x = np.abs(rand((40, 4, 5, 6))) + 0.1
    if data_format == "channels_first":
        x = np.transpose(x, (0, 3, 1, 2))
    layer = layers.SpatialDropout2D(0.4, data_format=data_format, seed=3, **F64)
    np.testing.assert_array_equal(layer(x), x)  # inference: identity
    y = layer.forward(x, training=True)
    maps = y if data_format == "channels_first" else np.transpose(y, (0, 3, 1, 2))
    source = x if data_format == "channels_first" else np.transpose(x, (0, 3, 1, 2))
    dropped = np.all(maps == 0, axis=(2, 3))
    kept = ~dropped
    np.testing.assert_allclose(maps[kept], source[kept] / 0.6, rtol=1e-15)
    assert not np.any((maps == 0) & ~dropped[:, :, None, None])  # nothing but whole channels
    assert abs(dropped.mean() - 0.4) < 0.06
    config = json.loads(json.dumps(layers.serialize(layer)))
    again = layers.deserialize(config)
    assert (again.rate, again.data_format, again.seed) == (0.4, data_format, 3)


def test_spatial_dropout_gradient_with_fixed_mask(backend):
    layer = layers.SpatialDropout2D(0.5, **F64)
    gradcheck(layer, rand((3, 2, 3, 4), seed=8), before_forward=lambda: utils.set_random_seed(9))
    with pytest.raises(ValueError, match="4-D input"):
        layers.SpatialDropout2D(0.2).build((5, 3))


# -- LayerNormalization --------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, [1, 2, 3], [2, 3], 1])
def test_layer_normalization_formula(axis):
    x = 3.0 + 2.0 * rand((4, 3, 5, 2))
    layer = layers.LayerNormalization(axis=axis, **F64)
    _randomize_weights(layer, x.shape[1:])
    gamma, beta = layer.get_weights()
    axes = tuple(a % 4 for a in ([axis] if isinstance(axis, int) else axis))
    assert gamma.shape == tuple(x.shape[a] for a in sorted(axes))  # Keras' parameter shape
    shape = [x.shape[a] if a in axes else 1 for a in range(4)]
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma.reshape(shape) + beta.reshape(shape)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)
    # Per sample: the same with the sample alone, and the same in training.
    np.testing.assert_allclose(layer(x[1:2]), expected[1:2], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward(x, training=True), expected, rtol=1e-12, atol=1e-12)


LN_GRAD_CASES = {
    "last_axis": (lambda: layers.LayerNormalization(**F64), (3, 5)),
    "image_all_axes": (lambda: layers.LayerNormalization(axis=[1, 2, 3], **F64), (2, 3, 2, 3)),
    "image_channels": (lambda: layers.LayerNormalization(axis=-1, epsilon=0.1, **F64), (2, 2, 3, 4)),
    "no_center": (lambda: layers.LayerNormalization(axis=[1, 2], center=False, **F64), (2, 3, 2, 2)),
    "no_center_no_scale": (lambda: layers.LayerNormalization(center=False, scale=False, **F64), (3, 4)),
}


@pytest.mark.parametrize("case", sorted(LN_GRAD_CASES))
def test_layer_normalization_gradients(case, backend):
    make, shape = LN_GRAD_CASES[case]
    layer = make()
    if layer.scale or layer.center:
        _randomize_weights(layer, shape[1:])
    grads = gradcheck(layer, 1.0 + rand(shape, seed=10))
    assert len(grads) == int(layer.center) + int(layer.scale)


def test_layer_normalization_bad_arguments():
    with pytest.raises(ValueError, match="batch axis 0"):
        layers.LayerNormalization(axis=0).build((4,))
    with pytest.raises(ValueError, match="`axis`"):
        layers.LayerNormalization(axis="last")
    with pytest.raises(ValueError, match="epsilon"):
        layers.LayerNormalization(epsilon=0)
    with pytest.raises(ValueError, match="rms_scaling"):
        layers.LayerNormalization(rms_scaling=True)
    assert layers.LayerNormalization().epsilon == 1e-3


# -- models -----------------------------------------------------------------------------------
def test_new_layers_train_save_and_load(tmp_path):
    utils.set_random_seed(0)
    model = fastconv.Sequential([
        layers.SeparableConv2D(4, 3, padding="same", activation="relu", depth_multiplier=2),
        layers.SpatialDropout2D(0.2),
        layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1),
        layers.LayerNormalization(),
        layers.Cropping2D(1),
        layers.UpSampling2D(interpolation="bilinear"),
        layers.Reshape((-1, 3)),
        layers.Flatten(),
        layers.Dense(2, activation="softmax"),
    ], input_shape=(8, 8, 2))
    assert model.output_shape == (None, 2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rand((16, 8, 8, 2), seed=11)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(int)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert all(changed)  # every new layer's weights got gradients
    lines = []
    model.summary(print_fn=lines.append)
    assert any("conv2d_transpose" in line for line in lines)
    loaded = fastconv.models.load_model(model.save(tmp_path / "extra.fcz"))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for original, again in zip(model.layers, loaded.layers):
        assert type(again) is type(original)


@pytest.mark.parametrize("layer", [
    layers.SeparableConv2D(3, 2, strides=2, depth_multiplier=2, depthwise_initializer="he_normal"),
    layers.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1, activation="relu"),
    layers.UpSampling2D((2, 3), interpolation="bilinear"), layers.Cropping2D(((1, 2), (3, 4))),
    layers.Reshape((4, -1)), layers.SpatialDropout2D(0.3, seed=2), layers.LayerNormalization(axis=[1, 2]),
])
def test_serialization_round_trip(layer):
    config = json.loads(json.dumps(layers.serialize(layer)))
    again = layers.deserialize(config)
    assert type(again) is type(layer)
    assert json.loads(json.dumps(layers.serialize(again)))["config"] == config["config"]


def test_keras_aliases():
    assert layers.SeparableConvolution2D is layers.SeparableConv2D
    assert layers.Convolution2DTranspose is layers.Conv2DTranspose
    assert type(layers.deserialize({"class_name": "Convolution2DTranspose",
                                    "config": {"filters": 2, "kernel_size": 3}})) is layers.Conv2DTranspose


# -- float32 stays float32 through every new layer -------------------------------------------------
FLOAT32_LAYERS = {
    "separable": (lambda: layers.SeparableConv2D(3, 3, padding="same"), (2, 5, 5, 2)),
    "transpose": (lambda: layers.Conv2DTranspose(3, 3, strides=2), (2, 3, 3, 2)),
    "upsampling_bilinear": (lambda: layers.UpSampling2D(2, interpolation="bilinear"), (2, 3, 3, 2)),
    "upsampling_nearest": (lambda: layers.UpSampling2D(2), (2, 3, 3, 2)),
    "cropping": (lambda: layers.Cropping2D(1), (2, 4, 4, 2)),
    "reshape": (lambda: layers.Reshape((-1,)), (2, 3, 3, 2)),
    "spatial_dropout": (lambda: layers.SpatialDropout2D(0.5, seed=1), (2, 3, 3, 2)),
    "layer_norm": (lambda: layers.LayerNormalization(), (2, 3, 3, 2)),
    "prelu": (lambda: layers.PReLU(alpha_initializer="ones"), (2, 3, 3, 2)),
    "flip": (lambda: layers.RandomFlip(seed=1), (2, 3, 3, 2)),
    "rotation": (lambda: layers.RandomRotation(0.2, seed=1), (2, 3, 3, 2)),
    "translation_constant": (lambda: layers.RandomTranslation(
        0.2, 0.2, fill_mode="constant", fill_value=0.5, seed=1), (2, 3, 3, 2)),
    "zoom": (lambda: layers.RandomZoom(0.2, seed=1), (2, 3, 3, 2)),
    "crop_padded": (lambda: layers.RandomCrop(2, 2, padding=1, seed=1), (2, 3, 3, 2)),
    "crop_resize": (lambda: layers.RandomCrop(2, 2, seed=1), (2, 4, 5, 2)),
    "brightness": (lambda: layers.RandomBrightness(0.2, seed=1), (2, 3, 3, 2)),
    "contrast": (lambda: layers.RandomContrast(0.2, seed=1), (2, 3, 3, 2)),
    "rescaling": (lambda: layers.Rescaling(0.5, offset=1), (2, 3, 3, 2)),
    "normalization": (lambda: layers.Normalization(mean=1.0, variance=4.0), (2, 3, 3, 2)),
}


@pytest.mark.parametrize("case", sorted(FLOAT32_LAYERS))
def test_float32_forward_and_backward(case, backend):
    make, shape = FLOAT32_LAYERS[case]
    layer = make()
    x = rand(shape, seed=12).astype(np.float32)
    assert layer(x).dtype == np.float32
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and y.shape == (shape[0],) + layer.output_shape
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert all(g.dtype == np.float32 for g in layer.get_gradients())
