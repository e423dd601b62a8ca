"""Reference batch normalization over every axis but the last (channels), in plain NumPy."""
import numpy as np

from .. import _validation as V
from .elementwise import relu_backward, relu_forward
from .pooling import max_pool2d_forward_with_argmax


def batch_norm_forward_training(x, gamma, beta, epsilon=1e-3):
    """Normalise with batch statistics; return (y, mean, var) with the biased variance."""
    x, gamma, beta, epsilon = V.check_batch_norm(x, gamma, beta, epsilon)
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = ((x - mean) ** 2).mean(axis=axes)
    y = (x - mean) / np.sqrt(var + epsilon) * gamma + beta
    return y.astype(x.dtype, copy=False), mean, var


def batch_norm_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    x, gamma, beta, epsilon = V.check_batch_norm(x, gamma, beta, epsilon)
    c = x.shape[-1]
    mean = V.check_channel_vector(moving_mean, c, x.dtype, "moving_mean")
    var = V.check_channel_vector(moving_var, c, x.dtype, "moving_var")
    return ((x - mean) / np.sqrt(var + epsilon) * gamma + beta).astype(x.dtype, copy=False)


def batch_norm_backward(dy, x, gamma, mean, var, epsilon=1e-3):
    """Return (dx, dgamma, dbeta) for training-mode batch norm with batch statistics mean/var."""
    x, gamma, _, epsilon = V.check_batch_norm(x, gamma, np.zeros_like(gamma), epsilon)
    c = x.shape[-1]
    mean = V.check_channel_vector(mean, c, x.dtype, "mean")
    var = V.check_channel_vector(var, c, x.dtype, "var")
    dy = V.check_grad_output(dy, x.shape, x.dtype)
    axes = tuple(range(x.ndim - 1))
    m = x.size // c
    inv_std = 1.0 / np.sqrt(var + epsilon)
    xhat = (x - mean) * inv_std
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    dx = gamma * inv_std / m * (m * dy - dbeta - xhat * dgamma)
    return dx.astype(x.dtype, copy=False), dgamma, dbeta


# -- batch norm followed by a ReLU: defined as the composition --------------------------------
def _training_value(x, gamma, beta, mean, var, epsilon):
    """The value batch_norm_forward_training computed, from its statistics (same expression)."""
    return ((x - mean) / np.sqrt(var + epsilon) * gamma + beta).astype(x.dtype, copy=False)


def batch_norm_relu_forward_training(x, gamma, beta, epsilon=1e-3):
    """relu(batch norm with batch statistics): return (relu_forward(y), mean, var) with y, mean,
    var those of `batch_norm_forward_training`."""
    y, mean, var = batch_norm_forward_training(x, gamma, beta, epsilon)
    return relu_forward(y), mean, var


def batch_norm_relu_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    """relu_forward(batch_norm_forward_inference(...))."""
    return relu_forward(batch_norm_forward_inference(x, gamma, beta, moving_mean, moving_var,
                                                     epsilon))


def batch_norm_relu_max_pool_forward_training(x, gamma, beta, epsilon=1e-3, pool_size=2,
                                               strides=None, padding="valid"):
    """Return (out, argmax, mean, var): max_pool2d_forward_with_argmax of the output of
    `batch_norm_relu_forward_training` (NHWC x), and that call's statistics."""
    y, mean, var = batch_norm_relu_forward_training(x, gamma, beta, epsilon)
    return max_pool2d_forward_with_argmax(y, pool_size, strides, padding) + (mean, var)


def batch_norm_relu_max_pool_forward_inference(x, gamma, beta, moving_mean, moving_var,
                                                epsilon=1e-3, pool_size=2, strides=None,
                                                padding="valid"):
    """Return (out, argmax): max_pool2d_forward_with_argmax of
    `batch_norm_relu_forward_inference` (NHWC x)."""
    y = batch_norm_relu_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon)
    return max_pool2d_forward_with_argmax(y, pool_size, strides, padding)


def batch_norm_relu_backward(dy, x, gamma, beta, mean, var, epsilon=1e-3):
    """Return (dx, dgamma, dbeta) of relu(batch norm with batch statistics mean/var).

    dy is the gradient of the ReLU's output: relu_backward(dy, y) with y the batch norm's
    output (recomputed from x), then batch_norm_backward.
    """
    x, gamma, beta, epsilon = V.check_batch_norm(x, gamma, beta, epsilon)
    c = x.shape[-1]
    mean = V.check_channel_vector(mean, c, x.dtype, "mean")
    var = V.check_channel_vector(var, c, x.dtype, "var")
    dy = V.check_grad_output(dy, x.shape, x.dtype)
    y = _training_value(x, gamma, beta, mean, var, epsilon)
    return batch_norm_backward(relu_backward(dy, y), x, gamma, mean, var, epsilon)


def batch_norm_frozen_factor(gamma, moving_var, epsilon):
    """gamma / sqrt(moving_var + epsilon) in gamma's dtype: the derivative of inference-mode
    batch norm, per channel (BatchNormalization computes it so for a frozen layer)."""
    return (gamma / np.sqrt(moving_var + float(epsilon))).astype(gamma.dtype, copy=False)


def batch_norm_relu_backward_inference(dy, x, gamma, beta, moving_mean, moving_var, epsilon=1e-3):
    """dx of relu(batch_norm_forward_inference(x, ...)) (a frozen layer trained through):
    relu_backward(dy, y) * batch_norm_frozen_factor(gamma, moving_var, epsilon)."""
    y = batch_norm_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon)
    dy = V.check_grad_output(dy, y.shape, y.dtype)
    gamma = np.asarray(gamma, dtype=y.dtype)
    moving_var = np.asarray(moving_var, dtype=y.dtype)
    return relu_backward(dy, y) * batch_norm_frozen_factor(gamma, moving_var, epsilon)
