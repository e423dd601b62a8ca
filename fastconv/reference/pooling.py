"""Reference max/average pooling (TensorFlow semantics) and global pooling, in plain NumPy.

Max pooling sends each output's gradient to the first maximal element of its window in
row-major window order. `max_pool2d_forward_with_argmax` records that element per output
(one byte: its tap index in the window) so that `max_pool2d_backward_from_argmax` needs
neither x nor a second search. Average pooling over 'same' windows divides by the number of real
(unpadded) pixels in the window, as TensorFlow does.
"""
import numpy as np

from .. import _validation as V
from ._windows import crop_padding, pad_nhwc, scatter_windows, windows


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    x, geo = V.check_pool2d(x, pool_size, strides, padding)
    win = windows(pad_nhwc(x, geo.padding, -np.inf), geo)
    return np.ascontiguousarray(win.max(axis=(3, 4)))


def _first_maxima(x, geo):
    """Yield (i, j, hit) per window tap in row-major order: hit marks the windows whose first
    maximal real element is tap (i, j). A NaN maximum equals nothing: no tap is hit."""
    win = windows(pad_nhwc(x, geo.padding, -np.inf), geo)
    y = win.max(axis=(3, 4))
    # Padding never receives the gradient, even where every real pixel of a window is -inf.
    real = windows(pad_nhwc(np.ones((1, geo.h, geo.w, 1), dtype=bool), geo.padding, False),
                   geo._replace(n=1, c=1))
    taken = np.zeros(y.shape, dtype=bool)
    for i in range(geo.kh):
        for j in range(geo.kw):
            hit = (win[:, :, :, i, j, :] == y) & real[:, :, :, i, j, :] & ~taken
            taken |= hit
            yield i, j, hit


def _window_gradient_to_input(dwin, geo):
    padded = (geo.n, geo.h + sum(geo.padding[0]), geo.w + sum(geo.padding[1]), geo.c)
    return np.ascontiguousarray(crop_padding(scatter_windows(dwin, padded, geo), geo.padding))


def max_pool2d_backward(dy, x, pool_size=2, strides=None, padding="valid"):
    x, geo = V.check_pool2d(x, pool_size, strides, padding)
    dy = V.check_grad_output(dy, geo.output_shape + (geo.c,), x.dtype)
    dwin = np.zeros((geo.n, geo.out_h, geo.out_w, geo.kh, geo.kw, geo.c), dtype=x.dtype)
    for i, j, hit in _first_maxima(x, geo):
        dwin[:, :, :, i, j, :] = np.where(hit, dy, 0)
    return _window_gradient_to_input(dwin, geo)


# The argmax of a window is one byte: tap indices 0..254, and this value for "no maximum".
NO_ARGMAX = 255
MAX_ARGMAX_TAPS = 255


def check_argmax_window(geo):
    """Refuse windows whose tap index does not fit in the argmax byte."""
    if geo.kh * geo.kw > MAX_ARGMAX_TAPS:
        raise ValueError(f"The argmax of a pooling window is stored in one byte: `pool_size` may "
                         f"have at most {MAX_ARGMAX_TAPS} taps; received {(geo.kh, geo.kw)} "
                         f"({geo.kh * geo.kw} taps).")


def check_argmax(argmax, expected_shape):
    """The argmax array of `max_pool2d_backward_from_argmax`: uint8 with dy's shape."""
    if not isinstance(argmax, np.ndarray):
        raise TypeError(f"`argmax` must be a numpy.ndarray; received {type(argmax).__name__}.")
    if argmax.dtype != np.uint8:
        raise TypeError(f"`argmax` must have dtype uint8 (as max_pool2d_forward_with_argmax "
                        f"returns it); received dtype {argmax.dtype}.")
    if tuple(argmax.shape) != tuple(expected_shape):
        raise ValueError(f"`argmax` must have shape {tuple(expected_shape)} (that of dy); "
                         f"received {argmax.shape}.")
    return argmax


def max_pool2d_forward_with_argmax(x, pool_size=2, strides=None, padding="valid"):
    """Max pooling that also returns where each window's first maximum is.

    Returns:
        (y, argmax): y as `max_pool2d_forward`; argmax, uint8 of y's shape, the tap index
        i * pool_w + j of the first maximal element in row-major window order, (i, j)
        counted from the window's padded top-left corner, or 255 where the maximum is NaN
        (no element takes the gradient then, as in `max_pool2d_backward`). Windows may have
        at most 255 taps.
    """
    x, geo = V.check_pool2d(x, pool_size, strides, padding)
    check_argmax_window(geo)
    argmax = np.full(geo.output_shape + (geo.c,), NO_ARGMAX, dtype=np.uint8)
    for i, j, hit in _first_maxima(x, geo):
        argmax[hit] = i * geo.kw + j
    return max_pool2d_forward(x, pool_size, strides, padding), argmax


def max_pool2d_backward_from_argmax(dy, argmax, input_shape, pool_size=2, strides=None,
                                    padding="valid", dtype=None):
    """Gradient of max pooling from the argmax of `max_pool2d_forward_with_argmax`.

    Each output's dy goes to the tap its argmax names; values naming no real pixel of the
    window (a padding tap, 255) send nothing. Overlapping windows add up.
    """
    shape = V.check_input_shape(input_shape, 4)
    dy = V.as_float_array(dy, "dy", dtype)
    geo = V.pool_geometry(shape, pool_size, strides, padding)
    check_argmax_window(geo)
    dy = V.check_grad_output(dy, geo.output_shape + (geo.c,), dy.dtype)
    check_argmax(argmax, dy.shape)
    dwin = np.zeros((geo.n, geo.out_h, geo.out_w, geo.kh, geo.kw, geo.c), dtype=dy.dtype)
    for i in range(geo.kh):
        for j in range(geo.kw):
            dwin[:, :, :, i, j, :] = np.where(argmax == i * geo.kw + j, dy, 0)
    return _window_gradient_to_input(dwin, geo)


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
