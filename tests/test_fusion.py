"""Inference-time folding of BatchNormalization into the Conv2D/Dense before it (fastconv._fusion)."""
import numpy as np
import pytest

import fastconv
from fastconv import _fusion
from fastconv import layers as L


def _layer_by_layer(model, x):
    for layer in model.layers:
        x = layer.forward(x, training=False)
    return x


def _randomise_bn(model, rng):
    """Give every BatchNormalization non-trivial statistics and affine weights."""
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            weights = []
            if layer.scale:
                weights.append(rng.uniform(0.5, 2.0, c))
            if layer.center:
                weights.append(rng.standard_normal(c))
            weights += [rng.standard_normal(c), rng.uniform(0.1, 3.0, c)]
            layer.set_weights(weights)


def _model(stack, input_shape, seed=0):
    fastconv.utils.set_random_seed(seed)
    model = fastconv.Sequential(stack, input_shape=input_shape)
    _randomise_bn(model, np.random.default_rng(seed))
    return model


def _conv_stack(dtype, **bn_kwargs):
    bn_kwargs["dtype"] = dtype
    return [L.Conv2D(5, 3, padding="same", dtype=dtype), L.BatchNormalization(**bn_kwargs),
            L.ReLU(dtype=dtype), L.Conv2D(4, 3, strides=2, use_bias=False, dtype=dtype),
            L.BatchNormalization(**bn_kwargs), L.Flatten(dtype=dtype), L.Dense(6, dtype=dtype),
            L.BatchNormalization(**bn_kwargs), L.Dense(3, dtype=dtype)]


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("bn_kwargs", [{}, {"center": False}, {"scale": False},
                                       {"center": False, "scale": False, "epsilon": 0.5}])
def test_folded_predictions_match_layer_by_layer(backend, dtype, tol, bn_kwargs):
    model = _model(_conv_stack(dtype, **bn_kwargs), (9, 8, 3))
    x = np.random.default_rng(1).standard_normal((4, 9, 8, 3)).astype(dtype)
    with fastconv.use_backend(backend):
        folded = model.predict(x)
        expected = _layer_by_layer(model, x)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(folded, expected, rtol=tol, atol=tol * scale)
    # The three pairs really were folded: the fused plan skips the BatchNormalization layers.
    pairs = [(a, b) for a, b in zip(model.layers, model.layers[1:]) if _fusion._foldable(a, b)]
    assert len(pairs) == 3


def test_not_folded_where_the_pair_is_not_an_affine_chain():
    x = np.random.default_rng(2).standard_normal((2, 7, 7, 2)).astype(np.float32)
    cases = [
        [L.Conv2D(3, 3, activation="relu"), L.BatchNormalization()],      # activation between
        [L.Conv2D(3, 3), L.BatchNormalization(axis=1)],                   # BN over a spatial axis
        [L.DepthwiseConv2D(3), L.BatchNormalization()],                   # not a Conv2D
        [L.Conv2D(3, 3), L.ReLU(), L.BatchNormalization()],               # not adjacent
    ]
    for stack in cases:
        model = _model(stack, (7, 7, 2))
        pairs = [(a, b) for a, b in zip(model.layers, model.layers[1:]) if _fusion._foldable(a, b)]
        assert pairs == []
        np.testing.assert_array_equal(model.predict(x), _layer_by_layer(model, x))


def test_channels_first_convolution_is_not_folded():
    model = _model([L.Conv2D(3, 3, data_format="channels_first", dtype="float64"),
                    L.BatchNormalization(axis=1, dtype="float64")], (2, 7, 7))
    assert not _fusion._foldable(*model.layers)
    x = np.random.default_rng(3).standard_normal((2, 2, 7, 7))
    np.testing.assert_array_equal(model.predict(x), _layer_by_layer(model, x))


def test_folding_follows_new_weights_and_training():
    model = _model(_conv_stack("float64"), (9, 8, 3))
    model.compile(optimizer="adam", loss=fastconv.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 9, 8, 3)), rng.integers(0, 3, 8)
    before = model.predict(x)
    model.train_on_batch(x, y)  # changes kernels, biases and the moving statistics
    after = model.predict(x)
    assert np.abs(after - before).max() > 1e-6
    np.testing.assert_allclose(after, _layer_by_layer(model, x), rtol=1e-12, atol=1e-12)
    _randomise_bn(model, np.random.default_rng(5))
    np.testing.assert_allclose(model.predict(x), _layer_by_layer(model, x), rtol=1e-12, atol=1e-12)


def test_backward_after_an_inference_pass_is_refused():
    model = _model(_conv_stack("float32"), (9, 8, 3))
    x = np.random.default_rng(6).standard_normal((2, 9, 8, 3)).astype(np.float32)
    y = model(x, training=True)
    model.predict(x)  # folded pass: the training caches are gone, as after forward(training=False)
    with pytest.raises(RuntimeError, match="needs a preceding forward"):
        model.layers[0].backward(np.ones((2, 9, 8, 5), np.float32))
    with pytest.raises(RuntimeError, match="needs a preceding forward"):
        model.layers[1].backward(np.ones((2, 9, 8, 5), np.float32))
    assert y.shape == (2, 3)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_applied_relu_matches_numpy_maximum(backend, dtype):
    """ops.conv2d_forward / dense_forward with activation="relu": numpy.maximum of the plain
    output, bit for bit, on both backends (NaN kept)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 8, 20)).astype(dtype)
    x[0, 0, 0, 0] = np.nan
    k = rng.standard_normal((3, 3, 20, 17)).astype(dtype)
    b = rng.standard_normal(17).astype(dtype)
    with fastconv.backend.use_backend(backend):
        ops = fastconv.backend.get_ops()
        for kw in (dict(padding="same"), dict(strides=2), dict(groups=1, dilation_rate=2)):
            plain = ops.conv2d_forward(x, k, b, **kw)
            np.testing.assert_array_equal(ops.conv2d_forward(x, k, b, activation="relu", **kw),
                                          np.maximum(plain, 0))
        # the compiled kernels rectify as they store a tile's last reduction block: one case
        # per way the implicit GEMM reads its input, with several reduction blocks where the
        # path has them, whole and partial tiles and column panels
        for xs, ks, kw in [((3, 11, 9, 1), (3, 3, 1, 19), dict(padding="same")),   # row-indirect
                           ((2, 9, 10, 6), (3, 3, 2, 15), dict(groups=3)),         # patch rows
                           ((2, 7, 8, 40), (3, 3, 40, 21), dict(padding="same")),  # taps in 2 blocks
                           ((2, 5, 7, 700), (1, 1, 700, 35), dict())]:             # 1x1, 3 blocks
            xc = rng.standard_normal(xs).astype(dtype)
            xc[0, 1, 1, 0] = np.nan
            kc = rng.standard_normal(ks).astype(dtype)
            bc = rng.standard_normal(ks[3]).astype(dtype)
            plain = ops.conv2d_forward(xc, kc, bc, **kw)
            got = ops.conv2d_forward(xc, kc, bc, activation="relu", **kw)
            want = np.where((plain > 0) | np.isnan(plain), plain, dtype(0))
            assert np.isnan(want).any() and (want == 0).any() and (want > 0).any()
            np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
        xd = x.reshape(2, -1)
        kd = rng.standard_normal((xd.shape[1], 33)).astype(dtype)
        plain = ops.dense_forward(xd, kd, None)
        np.testing.assert_array_equal(ops.dense_forward(xd, kd, None, activation="relu"), np.maximum(plain, 0))
        with pytest.raises(ValueError, match="`activation` must be None, 'relu' or 'tanh'"):
            ops.conv2d_forward(x, k, b, activation="yes")
        with pytest.raises(ValueError, match="`activation` must be None, 'relu' or 'tanh'"):
            ops.dense_forward(xd, kd, None, activation=True)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_relu_activation_fused_at_inference_only(backend):
    """Conv2D/Dense(activation="relu") at inference: the kernel's ReLU, same bits as the
    separate activation; in training the pre-activation is still kept for the backward."""
    fastconv.utils.set_random_seed(4)
    model = fastconv.Sequential([L.Conv2D(6, 3, padding="same", activation="relu"), L.Flatten(),
                                 L.Dense(7, activation="relu"), L.Dense(3)], input_shape=(6, 5, 4))
    x = np.random.default_rng(5).standard_normal((3, 6, 5, 4)).astype(np.float32)
    with fastconv.backend.use_backend(backend):
        ops = fastconv.backend.get_ops()
        conv, _, dense, _ = model.layers
        z = ops.conv2d_forward(x, conv.kernel, conv.bias, padding="same")
        h = np.maximum(z, 0).reshape(3, -1)
        want = np.maximum(ops.dense_forward(h, dense.kernel, dense.bias), 0)
        got = model.layers[2].forward(model.layers[1].forward(
            model.layers[0].forward(x, training=False), training=False), training=False)
        np.testing.assert_array_equal(got, want)
        y = conv.forward(x, training=True)  # training: pre-activation cached for the backward
        np.testing.assert_array_equal(y, np.maximum(z, 0))
        np.testing.assert_array_equal(conv._cache[1], z)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_activation_fused_in_float32(dtype):
    """Conv2D/Dense(activation="tanh"): float32 takes the kernel's tanh in training and at
    inference (only the output is kept: tanh's gradient needs nothing else), within a few ulp
    of NumPy's; float64 keeps NumPy's tanh bit for bit. Gradients match the reference
    backend's."""
    fastconv.utils.set_random_seed(6)
    name = np.dtype(dtype).name
    model = fastconv.Sequential([L.Conv2D(6, 3, padding="same", activation="tanh", dtype=name),
                                 L.Flatten(dtype=name), L.Dense(7, activation="tanh", dtype=name),
                                 L.Dense(3, dtype=name)], input_shape=(6, 5, 4))
    x = np.random.default_rng(7).standard_normal((3, 6, 5, 4)).astype(dtype)
    conv, _, dense, _ = model.layers
    z = fastconv.ops.conv2d_forward(x, conv.kernel, conv.bias, padding="same")
    for training in (False, True):
        y = conv.forward(x, training=training)
        if dtype == np.float32:
            np.testing.assert_allclose(y, np.tanh(z.astype(np.float64)), rtol=4e-7, atol=0)
        else:
            np.testing.assert_array_equal(y, np.tanh(z))
    assert (conv._cache[1] is None) == (dtype == np.float32)
    np.testing.assert_array_equal(conv._cache[2], y)
    dy = np.random.default_rng(8).standard_normal(y.shape).astype(dtype)
    dx = conv.backward(dy)
    with fastconv.backend.use_backend("reference"):
        conv.forward(x, training=True)
        dx_ref = conv.backward(dy)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    h = y.reshape(3, -1)
    hd = dense.forward(h, training=True)
    np.testing.assert_allclose(hd, np.tanh(fastconv.ops.dense_forward(h, dense.kernel, dense.bias)
                                           .astype(np.float64)), rtol=4e-7 if dtype == np.float32 else 0)
    assert (dense._cache[1] is None) == (dtype == np.float32)


def _pooling_stack(dtype):
    return [L.Conv2D(8, 3, padding="same", dtype=dtype), L.BatchNormalization(dtype=dtype),
            L.ReLU(dtype=dtype), L.MaxPooling2D(dtype=dtype),                 # folded + ReLU + pool
            L.Conv2D(16, 3, padding="same", activation="relu", dtype=dtype),
            L.MaxPooling2D((1, 2), dtype=dtype),                              # conv + ReLU + pool
            L.Conv2D(16, 3, padding="same", dtype=dtype), L.BatchNormalization(dtype=dtype),
            L.MaxPooling2D(dtype=dtype),                                      # folded + pool
            L.Conv2D(4, 1, dtype=dtype), L.MaxPooling2D(2, strides=1, dtype=dtype),  # overlapping
            L.Flatten(dtype=dtype), L.Dense(3, dtype=dtype)]


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pooling_applied_by_the_convolution_at_inference(backend, dtype):
    """A MaxPooling2D whose windows tile its input (strides equal, valid) after a Conv2D (with a
    kernel-applied activation, a folded BatchNormalization, a fused ReLU) is applied by the
    convolution kernel at inference: the same bits as with the fusion off."""
    model = _model(_pooling_stack(dtype), (16, 20, 3))
    x = np.random.default_rng(8).standard_normal((5, 16, 20, 3)).astype(dtype)
    with fastconv.use_backend(backend):
        fused = model.predict(x)
        for layer in model.layers[:4]:  # what each fused layer leaves behind
            assert layer._cache is None and layer._forward_training is False
        assert model.layers[2]._output_shape_seen == (5, 16, 20, 8)
        assert model.layers[3]._output_shape_seen == (5, 8, 10, 8)
        try:
            _fusion.ENABLED = False
            plain = model.predict(x)
        finally:
            _fusion.ENABLED = True
    np.testing.assert_array_equal(fused, plain)
    inputs = {0: (16, 20, 3), 4: (8, 10, 8), 6: (8, 5, 16), 9: (4, 2, 16)}
    windows = [_fusion._pool_window(model.layers, j, model.layers[i], np.zeros((1,) + inputs[i]))
               for i, j in ((0, 3), (4, 5), (6, 8), (9, 10))]
    assert windows == [(2, 2), (1, 2), (2, 2), None]


def test_max_pooling_not_applied_by_the_convolution_where_it_cannot_be():
    x = np.random.default_rng(9).standard_normal((2, 8, 8, 2))
    cases = [
        [L.Conv2D(3, 3, activation="elu", dtype="float64"), L.MaxPooling2D(dtype="float64")],
        [L.Conv2D(3, 3, activation="tanh", dtype="float64"), L.MaxPooling2D(dtype="float64")],
        [L.Conv2D(3, 3, dtype="float64"), L.MaxPooling2D(padding="same", dtype="float64")],
        [L.Conv2D(3, 3, dtype="float64"), L.MaxPooling2D(3, strides=2, dtype="float64")],
        [L.Conv2D(3, 3, dtype="float64"), L.AveragePooling2D(dtype="float64")],
        [L.DepthwiseConv2D(3, dtype="float64"), L.MaxPooling2D(dtype="float64")],
    ]
    for stack in cases:
        model = _model(stack, (8, 8, 2))
        assert _fusion._pool_window(model.layers, 1, model.layers[0], x) is None
        np.testing.assert_array_equal(model.predict(x), _layer_by_layer(model, x))
    model = _model([L.Conv2D(3, 3, data_format="channels_first", dtype="float64"),
                    L.MaxPooling2D(data_format="channels_first", dtype="float64")], (2, 8, 8))
    xc = x.transpose(0, 3, 1, 2)
    assert _fusion._pool_window(model.layers, 1, model.layers[0], xc) is None
    np.testing.assert_array_equal(model.predict(xc), _layer_by_layer(model, xc))
