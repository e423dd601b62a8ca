"""Reference max/average pooling (TensorFlow semantics) and global pooling, in plain NumPy.

Max pooling sends each output's gradient to the first maximal element of its window in
row-major window order. Average pooling over 'same' windows divides by the number of real
(unpadded) pixels in the window, as TensorFlow does.
"""
import numpy as np

from .. import _validation as V
from ._windows import crop_padding, pad_nhwc, scatter_windows, windows


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    x, geo = V.check_pool2d(x, pool_size, strides, padding)
    win = windows(pad_nhwc(x, geo.padding, -np.inf), geo)
    return np.ascontiguousarray(win.max(axis=(3, 4)))


def max_pool2d_backward(dy, x, pool_size=2, strides=None, padding="valid"):
    x, geo = V.check_pool2d(x, pool_size, strides, padding)
    dy = V.check_grad_output(dy, geo.output_shape + (geo.c,), x.dtype)
    xp = pad_nhwc(x, geo.padding, -np.inf)
    win = windows(xp, geo)
    y = win.max(axis=(3, 4))
    # Padding never receives the gradient, even where every real pixel of a window is -inf.
    real = windows(pad_nhwc(np.ones((1, geo.h, geo.w, 1), dtype=bool), geo.padding, False),
                   geo._replace(n=1, c=1))
    taken = np.zeros(y.shape, dtype=bool)
    dwin = np.zeros(win.shape, dtype=x.dtype)
    for i in range(geo.kh):
        for j in range(geo.kw):
            hit = (win[:, :, :, i, j, :] == y) & real[:, :, :, i, j, :] & ~taken
            dwin[:, :, :, i, j, :] = np.where(hit, dy, 0)
            taken |= hit
    return np.ascontiguousarray(crop_padding(scatter_windows(dwin, xp.shape, geo), geo.padding))


def _window_counts(geo, dtype):
    """Number of real pixels in each pooling window: shape (1, OH, OW, 1)."""
    ones = np.ones((1, geo.h, geo.w, 1), dtype=dtype)
    return windows(pad_nhwc(ones, geo.padding), geo._replace(n=1, c=1)).sum(axis=(3, 4))


def avg_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    x, geo = V.check_pool2d(x, pool_size, strides, padding)
    win = windows(pad_nhwc(x, geo.padding), geo)
    return np.ascontiguousarray(win.sum(axis=(3, 4)) / _window_counts(geo, x.dtype))


def avg_pool2d_backward(dy, input_shape, pool_size=2, strides=None, padding="valid", dtype=None):
    shape = V.check_input_shape(input_shape, 4)
    dy = V.as_float_array(dy, "dy", dtype)
    geo = V.pool_geometry(shape, pool_size, strides, padding)
    dy = V.check_grad_output(dy, geo.output_shape + (geo.c,), dy.dtype)
    share = dy / _window_counts(geo, dy.dtype)
    dwin = np.broadcast_to(share[:, :, :, None, None, :],
                           (geo.n, geo.out_h, geo.out_w, geo.kh, geo.kw, geo.c))
    padded = (geo.n, geo.h + sum(geo.padding[0]), geo.w + sum(geo.padding[1]), geo.c)
    return np.ascontiguousarray(crop_padding(scatter_windows(dwin, padded, geo), geo.padding))


def _check_global(x):
    return V.check_global_pool(x)


def global_avg_pool2d_forward(x):
    x = _check_global(x)
    return x.mean(axis=(1, 2))


def global_avg_pool2d_backward(dy, input_shape, dtype=None):
    n, h, w, c = V.check_input_shape(input_shape, 4)
    dy = V.check_grad_output(V.as_float_array(dy, "dy", dtype), (n, c), dtype)
    return np.ascontiguousarray(np.broadcast_to(dy[:, None, None, :] / (h * w), (n, h, w, c)))


def global_max_pool2d_forward(x):
    x = _check_global(x)
    return x.max(axis=(1, 2))


def global_max_pool2d_backward(dy, x):
    """Gradient to the first maximal pixel (row-major) of each (sample, channel)."""
    x = _check_global(x)
    n, h, w, c = x.shape
    dy = V.check_grad_output(dy, (n, c), x.dtype)
    flat = x.reshape(n, h * w, c)
    first = flat.argmax(axis=1)  # argmax returns the first maximum
    dx = np.zeros_like(flat)
    np.put_along_axis(dx, first[:, None, :], dy[:, None, :], axis=1)
    return dx.reshape(x.shape)
