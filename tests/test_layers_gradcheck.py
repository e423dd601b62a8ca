"""Every layer's backward pass (input gradient and every weight gradient) against centred
finite differences, in float64, on small odd shapes, on each available backend.

The loss is a random projection of the output, L = sum(y * r), so dL/dy = r.
"""
import importlib

import numpy as np
import pytest

import fastconv
from fastconv import activations, layers, utils


def _backends():
    names = ["reference"]
    try:
        importlib.import_module("fastconv.ops")
        names.append("compiled")
    except ImportError:
        pass  # compiled core not built here; CI always builds it, so both run there
    return names


@pytest.fixture(params=_backends())
def backend(request):
    with fastconv.use_backend(request.param):
        yield request.param


H = 1e-6


def _numeric_gradient(loss, array):
    """Centred differences of loss() with respect to `array`, perturbed in place."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        original = array[idx]
        array[idx] = original + H
        plus = loss()
        array[idx] = original - H
        minus = loss()
        array[idx] = original
        grad[idx] = (plus - minus) / (2 * H)
    return grad


def gradcheck(layer, x, before_forward=None):
    """Compare backward() with finite differences for the input and each trainable weight."""
    before_forward = before_forward or (lambda: None)
    rng = np.random.default_rng(1234)
    before_forward()
    y = layer.forward(x, training=True)
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r)
    grads = layer.get_gradients()
    weights = layer.trainable_weights
    assert len(grads) == len(weights)

    def loss():
        before_forward()
        return float((layer.forward(x, training=True) * r).sum())

    x = x.copy()
    np.testing.assert_allclose(dx, _numeric_gradient(loss, x), rtol=1e-5, atol=1e-6,
                               err_msg=f"{layer.name}: input gradient")
    for w, g in zip(weights, grads):
        assert g is not None and g.shape == w.shape
        # The layer holds `w` itself, so perturbing it in place changes the layer's output.
        np.testing.assert_allclose(g, _numeric_gradient(loss, w), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{layer.name}: weight gradient of shape {w.shape}")
    return grads


def _randomize_weights(layer, input_shape, seed=0, positive_from=None):
    """Build the layer and give it random weights (positive from index `positive_from` on)."""
    layer.build(input_shape)
    rng = np.random.default_rng(seed)
    new = []
    for i, w in enumerate(layer.get_weights()):
        v = rng.standard_normal(w.shape)
        if positive_from is not None and i >= positive_from:
            v = rng.uniform(0.5, 2.0, w.shape)
        new.append(v)
    layer.set_weights(new)


F64 = {"dtype": "float64"}

WEIGHTED_CASES = {
    "dense": (lambda: layers.Dense(4, **F64), (3, 5)),
    "dense_relu_no_bias": (lambda: layers.Dense(3, activation="relu", use_bias=False, **F64), (2, 7)),
    "dense_softmax": (lambda: layers.Dense(4, activation="softmax", **F64), (3, 5)),
    "conv_valid": (lambda: layers.Conv2D(3, 3, **F64), (2, 5, 6, 2)),
    "conv_strided_same": (lambda: layers.Conv2D(4, (3, 2), strides=(2, 3), padding="same",
                                                activation="tanh", **F64), (2, 7, 8, 3)),
    "conv_dilated_same": (lambda: layers.Conv2D(2, 3, dilation_rate=(2, 1), padding="same", **F64),
                          (1, 7, 5, 2)),
    "conv_groups_explicit_pad": (lambda: layers.Conv2D(6, 2, groups=3, padding=((1, 0), (0, 2)),
                                                       activation="sigmoid", **F64), (2, 5, 4, 3)),
    "conv_channels_first": (lambda: layers.Conv2D(3, 2, strides=2, data_format="channels_first",
                                                  **F64), (2, 2, 5, 5)),
    "depthwise_multiplier_2": (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                                              activation="elu", **F64), (2, 5, 4, 3)),
    "depthwise_strided_no_bias": (lambda: layers.DepthwiseConv2D((2, 3), strides=2, use_bias=False,
                                                                 **F64), (1, 6, 7, 2)),
    "depthwise_dilated": (lambda: layers.DepthwiseConv2D(2, dilation_rate=2, depth_multiplier=3,
                                                         **F64), (1, 5, 5, 2)),
}


@pytest.mark.parametrize("case", sorted(WEIGHTED_CASES))
def test_weighted_layers(case, backend):
    make, shape = WEIGHTED_CASES[case]
    layer = make()
    _randomize_weights(layer, shape[1:])
    x = np.random.default_rng(5).standard_normal(shape)
    grads = gradcheck(layer, x)
    assert len(grads) == (1 if "no_bias" in case else 2)


BN_CASES = {
    "2d": (lambda: layers.BatchNormalization(**F64), (6, 3)),
    "4d": (lambda: layers.BatchNormalization(momentum=0.5, **F64), (3, 3, 4, 2)),
    "4d_channels_first": (lambda: layers.BatchNormalization(axis=1, **F64), (2, 3, 3, 4)),
    "no_center_no_scale": (lambda: layers.BatchNormalization(center=False, scale=False, **F64),
                           (5, 4)),
    "scale_only": (lambda: layers.BatchNormalization(center=False, **F64), (2, 3, 2, 3)),
}


@pytest.mark.parametrize("case", sorted(BN_CASES))
def test_batch_normalization_training(case, backend):
    make, shape = BN_CASES[case]
    layer = make()
    n_trainable = int(layer.center) + int(layer.scale)
    _randomize_weights(layer, shape[1:], positive_from=n_trainable)
    x = 3.0 + 2.0 * np.random.default_rng(6).standard_normal(shape)
    grads = gradcheck(layer, x)
    assert len(grads) == n_trainable


def test_batch_normalization_frozen_uses_moving_statistics(backend):
    # trainable=False: forward(training=True) runs in inference mode, so dx = dy * gamma / std.
    layer = layers.BatchNormalization(trainable=False, **F64)
    _randomize_weights(layer, (2, 3, 4), positive_from=2)
    x = np.random.default_rng(7).standard_normal((2, 2, 3, 4))
    assert gradcheck(layer, x) == []


POOL_CASES = {
    "max_valid_floor": (lambda: layers.MaxPooling2D(**F64), (2, 5, 4, 3)),
    "max_same_strided": (lambda: layers.MaxPooling2D(3, strides=2, padding="same", **F64),
                         (2, 5, 6, 2)),
    "max_channels_first": (lambda: layers.MaxPool2D((2, 3), strides=1, data_format="channels_first",
                                                    **F64), (1, 2, 4, 5)),
    "avg_valid": (lambda: layers.AveragePooling2D((3, 2), strides=(1, 2), **F64), (2, 5, 5, 2)),
    "avg_same": (lambda: layers.AvgPool2D(3, strides=2, padding="same", **F64), (1, 6, 5, 3)),
    "global_avg": (lambda: layers.GlobalAveragePooling2D(**F64), (2, 3, 5, 3)),
    "global_avg_keepdims": (lambda: layers.GlobalAveragePooling2D(keepdims=True, **F64),
                            (2, 3, 2, 3)),
    "global_max": (lambda: layers.GlobalMaxPooling2D(**F64), (2, 3, 5, 3)),
    "global_max_channels_first": (lambda: layers.GlobalMaxPooling2D(
        data_format="channels_first", keepdims=True, **F64), (2, 3, 4, 3)),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pooling(case, backend):
    make, shape = POOL_CASES[case]
    x = np.random.default_rng(8).standard_normal(shape)
    assert gradcheck(make(), x) == []


ACTIVATION_NAMES = sorted(activations._FUNCTIONS)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_layer(name, backend):
    x = np.random.default_rng(9).uniform(-4, 4, size=(3, 5))
    assert gradcheck(layers.Activation(name, **F64), x) == []


SHAPE_CASES = {
    "relu": (lambda: layers.ReLU(**F64), (3, 5)),
    "relu_options": (lambda: layers.ReLU(max_value=1.2, negative_slope=0.1, threshold=0.3, **F64),
                     (2, 3, 5)),
    "leaky_relu": (lambda: layers.LeakyReLU(**F64), (3, 5)),
    "leaky_relu_alpha": (lambda: layers.LeakyReLU(negative_slope=0.05, **F64), (3, 5)),
    "elu": (lambda: layers.ELU(alpha=0.7, **F64), (3, 5)),
    "softmax_last": (lambda: layers.Softmax(**F64), (3, 5)),
    "softmax_axis1": (lambda: layers.Softmax(axis=1, **F64), (2, 4, 3)),
    "flatten": (lambda: layers.Flatten(**F64), (2, 3, 2, 3)),
    "flatten_channels_first": (lambda: layers.Flatten(data_format="channels_first", **F64),
                               (2, 3, 2, 3)),
    "zero_padding_int": (lambda: layers.ZeroPadding2D(1, **F64), (2, 3, 2, 2)),
    "zero_padding_asymmetric": (lambda: layers.ZeroPadding2D(((1, 2), (0, 3)), **F64),
                                (1, 3, 4, 2)),
    "zero_padding_channels_first": (lambda: layers.ZeroPadding2D((2, 1), data_format="channels_first",
                                                                 **F64), (1, 2, 3, 3)),
}


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_parameter_free_layers(case, backend):
    make, shape = SHAPE_CASES[case]
    x = np.random.default_rng(10).uniform(-2, 2, size=shape)
    assert gradcheck(make(), x) == []


@pytest.mark.parametrize("noise_shape", [None, (None, 1, 1, None)])
def test_dropout_with_fixed_mask(noise_shape, backend):
    # Reseeding before each forward reuses the same mask, so the layer is a fixed linear map.
    layer = layers.Dropout(0.4, noise_shape=noise_shape, **F64)
    x = np.random.default_rng(11).standard_normal((3, 2, 3, 4))
    gradcheck(layer, x, before_forward=lambda: utils.set_random_seed(2024))
    # The mask really drops something (so the check covered zeros and scaled values).
    utils.set_random_seed(2024)
    y = layer.forward(x, training=True)
    assert np.any(y == 0) and np.any(y != 0)
