"""Reference batch normalization over every axis but the last (channels), in plain NumPy."""
import numpy as np

from .. import _validation as V


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
