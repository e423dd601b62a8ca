"""Inference-time folding of BatchNormalization into the Conv2D or Dense layer before it.

At inference, BatchNormalization is the per-channel affine map y = z * s + t with
s = gamma / sqrt(moving_variance + epsilon) and t = beta - moving_mean * s. When it directly
follows a channels-last Conv2D or a Dense layer without activation, the pair is one layer with
kernel * s and bias * s + t: one pass over the activations instead of two, and no BN kernel
call. The folded weights are computed (in float64) from the current weights at every call,
which costs one multiply per weight, so training, `set_weights` and `load_weights` need no
cache invalidation. Outputs agree with the unfused layers to rounding (float32: ~1e-6
relative).

`Sequential` runs its inference passes (predict, evaluate, `model(x)`) through `run_inference`.
"""
import numpy as np

from .backend import get_ops
from .layers.convolutional import Conv2D
from .layers.core import Dense
from .layers.normalization import BatchNormalization


def _foldable(layer, norm):
    """Whether `norm` (the next layer) can be folded into `layer`."""
    if type(layer) not in (Conv2D, Dense) or type(norm) is not BatchNormalization:
        return False
    if not (layer.built and norm.built) or not layer.activation.is_linear:
        return False
    if layer.dtype != norm.dtype or getattr(layer, "data_format", "channels_last") != "channels_last":
        return False
    return norm._channel_axis(norm.input_shape) == len(norm.input_shape)  # channels last


def _folded_weights(layer, norm):
    """(kernel * s, bias * s + t) in the layer's dtype; the output channels are the last axis."""
    var = norm.moving_variance.astype(np.float64)
    scale = 1.0 / np.sqrt(var + norm.epsilon)
    if norm.scale:
        scale = scale * norm.gamma.astype(np.float64)
    shift = -norm.moving_mean.astype(np.float64) * scale
    if norm.center:
        shift = shift + norm.beta.astype(np.float64)
    if layer.use_bias:
        shift = shift + layer.bias.astype(np.float64) * scale
    kernel = (layer.kernel.astype(np.float64) * scale).astype(layer.dtype)
    return kernel, shift.astype(layer.dtype)


def _forget_training_pass(*layers):
    """What Layer.forward(x, training=False) leaves behind: no backward cache."""
    for layer in layers:
        layer._cache = None
        layer._forward_training = False


def _folded_forward(layer, norm, x):
    x = layer._prepare_input(x)
    kernel, bias = _folded_weights(layer, norm)
    ops = get_ops()
    if isinstance(layer, Dense):
        y = ops.dense_forward(x, kernel, bias)
    else:
        y = ops.conv2d_forward(x, kernel, bias, **layer._conv_args(x.shape[3]))
    _forget_training_pass(layer, norm)
    return y


def run_inference(layers, x):
    """Apply `layers` in inference mode, folding each foldable (layer, BatchNormalization) pair."""
    i = 0
    while i < len(layers):
        if i + 1 < len(layers) and _foldable(layers[i], layers[i + 1]):
            x = _folded_forward(layers[i], layers[i + 1], x)
            i += 2
        else:
            x = layers[i].forward(x, training=False)
            i += 1
    return x
