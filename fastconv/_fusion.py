"""Inference-time folding of BatchNormalization into the Conv2D or Dense layer before it.

At inference, BatchNormalization is the per-channel affine map y = z * s + t with
s = gamma / sqrt(moving_variance + epsilon) and t = beta - moving_mean * s. When it directly
follows a channels-last Conv2D or a Dense layer without activation, the pair is one layer with
kernel * s and bias * s + t: one pass over the activations instead of two, and no BN kernel
call. The folded weights are computed from the current weights at every call (the scale and
shift in float64, the kernel scaled in its dtype), which costs one multiply per weight, so
training, `set_weights` and `load_weights` need no cache invalidation. Outputs agree with the
unfused layers to rounding (float32: ~1e-6 relative).

`Sequential` runs its inference passes (predict, evaluate, `model(x)`) through `run_inference`.

BatchNormalization followed by a plain ReLU (`layers.ReLU()` with its defaults, or
`Activation("relu")`), both channels-last and of one dtype, also run as one pass:

- in training (`Sequential.fit` / `train_on_batch`, through `training_plan`,
  `run_training_forward` and `run_training_backward`): the batch norm writes max(y, 0) in the
  pass that writes y, and its backward masks the incoming gradient where y < 0 on the fly
  (`ops.batch_norm_relu_forward_training` / `ops.batch_norm_relu_backward`); the ReLU layer
  is skipped. Outputs, losses, gradients and moving statistics equal those of the two layers
  run in turn, bit for bit, on either backend (the reference backend runs the same plan
  through the reference's compositions). `model(x, training=True)` and `layer.forward` are not
  fused, so hand-written loops that call each layer's `backward` keep working.
- at inference: a standalone BatchNormalization + ReLU pair uses the fused inference kernel; a
  ReLU after a folded Conv2D/Dense + BatchNormalization pair is applied in place on the
  folded layer's fresh output instead of a separate pass allocating another array.

In training, a MaxPooling2D right after such a pair (channels-last, of the same dtype, windows
of up to 255 taps, so that it records argmaxes) joins it: the pooling kernel normalises and
rectifies each value as it reads it (`ops.batch_norm_relu_max_pool_forward_training`), so the
batch norm's output is never written nor read back; the pool is left with the argmax its own
forward would have recorded and runs its own backward. Same bits as the three layers.

At inference, a MaxPooling2D whose windows tile its input (strides equal to the windows,
"valid" padding, channels-last, same dtype) right after a Conv2D (alone with a linear or
kernel-applied activation, or ending a folded Conv2D + BatchNormalization [+ ReLU] chain) is
applied by the convolution kernel (`ops.conv2d_forward(..., max_pool=...)`): each block of
output rows is pooled as it is computed, so the unpooled output is never written nor read back
(MNIST CNN inference, 2 threads: 6.2 -> 4.9 ms). Same bits as the layers run in turn.

`ENABLED` (default True; the environment variable FASTCONV_FUSION=0 sets it False at import)
switches the BatchNormalization + ReLU fusion and the fused max pooling off, for tests and A/B
measurements; the Conv2D/Dense + BatchNormalization folding at inference is not affected.
"""
import os

import numpy as np

from .backend import get_ops
from .layers.advanced_activations import ReLU
from .layers.convolutional import Conv2D
from .layers.core import Activation, Dense
from .layers.normalization import BatchNormalization
from .layers.pooling import MaxPooling2D

ENABLED = os.environ.get("FASTCONV_FUSION", "1").strip() != "0"
_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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
    """(kernel * s, bias * s + t) in the layer's dtype; the output channels are the last axis.
    s and t come from float64 arithmetic; the kernel is scaled in its own dtype (one rounding
    of s, one of the product: float32 within ~1 ulp of the float64 product, as precise as the
    unfused pair's z * s). Scaling it in float64 had cost 0.22 ms of a 1.24 ms CIFAR CNN
    prediction of one image (260 K weights cast to float64 and back)."""
    var = norm.moving_variance.astype(np.float64)
    scale = 1.0 / np.sqrt(var + norm.epsilon)
    if norm.scale:
        scale = scale * norm.gamma.astype(np.float64)
    shift = -norm.moving_mean.astype(np.float64) * scale
    if norm.center:
        shift = shift + norm.beta.astype(np.float64)
    if layer.use_bias:
        shift = shift + layer.bias.astype(np.float64) * scale
    kernel = np.multiply(layer.kernel, scale.astype(layer.dtype), dtype=layer.dtype)
    return kernel, shift.astype(layer.dtype)


def _forget_training_pass(*layers):
    """What Layer.forward(x, training=False) leaves behind: no backward cache."""
    for layer in layers:
        layer._cache = None
        layer._forward_training = False


def _folded_forward(layer, norm, x, relu=False, max_pool=None):
    """The folded pair on x; with `relu`, also a plain ReLU after it, applied by the kernel as
    it writes the output (the same bits as numpy.maximum of the pair's output); with
    `max_pool` (a Conv2D's pair only), the pooling after that (see `_pool_window`)."""
    x = layer._prepare_input(x)
    kernel, bias = _folded_weights(layer, norm)
    ops = get_ops()
    if isinstance(layer, Dense):
        y = ops.dense_forward(x, kernel, bias, activation="relu" if relu else None)
    else:
        y = ops.conv2d_forward(x, kernel, bias, **layer._conv_args(x.shape[3]),
                               activation="relu" if relu else None, max_pool=max_pool)
    _forget_training_pass(layer, norm)
    return y


def _pool_window(layers, j, conv, x):
    """The windows of layers[j] if it is a MaxPooling2D that the forward kernel of Conv2D `conv`
    (the layer computing its input from x, through a folded BatchNormalization and ReLU, if
    any) can apply as it writes its output, else None: channels last, one dtype, windows that
    tile the output (strides equal to them, no padding), and an activation the kernel applies
    itself. The unpooled output is then never written (ops.conv2d_forward's `max_pool`)."""
    if not ENABLED or j >= len(layers) or type(conv) is not Conv2D or np.ndim(x) != 4:
        return None
    pool = layers[j]
    if (type(pool) is not MaxPooling2D or not pool.built or pool.dtype != conv.dtype
            or pool.data_format == "channels_first" or conv.data_format == "channels_first"
            or pool.padding != "valid" or pool.strides != pool.pool_size):
        return None
    if not (conv.activation.is_linear or conv.activation.fused(np.dtype(conv.dtype), False)):
        return None
    out_h, out_w = conv.compute_output_shape(np.shape(x)[1:])[:2]
    return pool.pool_size if pool.pool_size[0] <= out_h and pool.pool_size[1] <= out_w else None


def _pool_applied(pool, y):
    """What MaxPooling2D `pool` leaves behind at inference, its output y computed by the
    convolution kernel before it."""
    _forget_training_pass(pool)
    pool._output_shape_seen = y.shape


def _pooled_conv_forward(conv, x, window):
    """Conv2D `conv` on x at inference with the max pooling `window` applied by its kernel."""
    x = conv._prepare_input(x)
    act = None if conv.activation.is_linear else conv.activation.fused(x.dtype, False)
    y = get_ops().conv2d_forward(x, conv._conv_kernel(), conv.bias, **conv._conv_args(x.shape[3]),
                                 activation=act, max_pool=window)
    _forget_training_pass(conv)
    conv._output_shape_seen = (x.shape[0],) + tuple(conv.compute_output_shape(x.shape[1:]))
    return y


def _plain_relu(layer):
    """Whether `layer` is max(x, 0) with nothing else (no cap, slope or threshold)."""
    if type(layer) is ReLU:
        return layer.max_value is None and layer.negative_slope == 0 and layer.threshold == 0
    if type(layer) is Activation:
        act = layer.activation
        return (act.name == "relu" and act.params.get("negative_slope", 0.0) == 0
                and act.params.get("max_value") is None and act.params.get("threshold", 0.0) == 0)
    return False


def _bn_relu_fusable(norm, relu):
    """Whether BatchNormalization `norm` and the next layer `relu` can run as one pass."""
    if type(norm) is not BatchNormalization or not _plain_relu(relu):
        return False
    if not (norm.built and relu.built) or norm.dtype != relu.dtype or norm.dtype not in _FUSED_DTYPES:
        return False
    return norm._channel_axis(norm.input_shape) == len(norm.input_shape)  # channels last


def _pool_fusable(norm, pool):
    """Whether MaxPooling2D `pool` can join the fused pair ending before it (training only)."""
    return (type(pool) is MaxPooling2D and pool.built and pool.dtype == norm.dtype
            and pool.data_format != "channels_first" and len(norm.input_shape) == 3
            and pool._use_argmax())


def training_plan(layers):
    """The BatchNormalization layers that run fused with the ReLU after them.

    Returns a dict (empty when ENABLED is False): batch norm index -> the MaxPooling2D layer
    after its ReLU that joins them, or None. Pass it to `run_training_forward` and then to
    `run_training_backward` for the same step.
    """
    if not ENABLED:
        return {}
    fused, i = {}, 0
    while i + 1 < len(layers):
        if _bn_relu_fusable(layers[i], layers[i + 1]):
            pool = layers[i + 2] if i + 2 < len(layers) else None
            fused[i] = pool if pool is not None and _pool_fusable(layers[i], pool) else None
            i += 2 if fused[i] is None else 3
        else:
            i += 1
    return fused


def run_training_forward(layers, x, plan):
    """`layer.forward(x, training=True)` through `layers`, the pairs (and triples) in `plan`
    fused."""
    i = 0
    while i < len(layers):
        if i in plan:
            pool = plan[i]
            x = layers[i]._forward_relu(x, layers[i + 1], training=True, pool=pool)
            i += 2 if pool is None else 3
        else:
            x = layers[i].forward(x, training=True)
            i += 1
    return x


def run_training_backward(layers, first, grad, plan):
    """`grad = layer.backward(grad)` from the last layer down to `layers[first]` after
    `run_training_forward` with the same plan: a fused pair's ReLU is skipped and its batch
    norm takes the ReLU's output gradient (`_backward_relu`); a joined pool runs its own
    backward. Returns the last gradient."""
    i = len(layers) - 1
    while i >= first:
        if i - 1 in plan and i - 1 >= first:
            grad = layers[i - 1]._backward_relu(grad)
            i -= 2
        else:
            grad = layers[i].backward(grad)
            i -= 1
    return grad


def _relu_applied(relu, shape):
    """What the plain ReLU layer `relu` leaves behind at inference, its output (of `shape`)
    computed by the kernel before it."""
    _forget_training_pass(relu)
    relu._output_shape_seen = tuple(shape)


def run_inference(layers, x):
    """Apply `layers` in inference mode, folding each foldable (layer, BatchNormalization) pair
    and, when ENABLED, fusing the plain ReLU after a BatchNormalization and the max pooling
    after a convolution."""
    i = 0
    while i < len(layers):
        if i + 1 < len(layers) and _foldable(layers[i], layers[i + 1]):
            relu = ENABLED and i + 2 < len(layers) and _bn_relu_fusable(layers[i + 1], layers[i + 2])
            after = i + (3 if relu else 2)
            window = _pool_window(layers, after, layers[i], x)
            if window is not None:
                unpooled = (np.shape(x)[0],) + tuple(layers[i].compute_output_shape(np.shape(x)[1:]))
            x = _folded_forward(layers[i], layers[i + 1], x, relu=relu, max_pool=window)
            if relu:
                _relu_applied(layers[i + 2], x.shape if window is None else unpooled)
            if window is not None:
                _pool_applied(layers[after], x)
            i = after + (window is not None)
        elif (window := _pool_window(layers, i + 1, layers[i], x)) is not None:
            x = _pooled_conv_forward(layers[i], x, window)
            _pool_applied(layers[i + 1], x)
            i += 2
        elif ENABLED and i + 1 < len(layers) and _bn_relu_fusable(layers[i], layers[i + 1]):
            x = layers[i]._forward_relu(x, layers[i + 1], training=False)
            i += 2
        else:
            x = layers[i].forward(x, training=False)
            i += 1
    return x
