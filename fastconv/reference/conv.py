"""Reference 2-D convolution on NHWC input with HWIO kernels, in plain NumPy."""
import numpy as np

from .. import _validation as V
from ._windows import crop_padding, pad_nhwc, scatter_windows, windows
from .pooling import max_pool2d_forward


def apply_fused_activation(y, activation):
    """The output activation of a forward kernel, in place on the float array y: None,
    "relu" (numpy.maximum(y, 0)) or "tanh" (numpy.tanh)."""
    if activation == "relu":
        return np.maximum(y, 0, out=y)
    if activation == "tanh":
        return np.tanh(y, out=y)
    return y


def conv2d_forward(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1,
                   activation=None, max_pool=None):
    """y[n, oh, ow, f] = sum over the window and the group's channels of x * kernel (+ bias),
    then `activation` (None, "relu": numpy.maximum(y, 0), or "tanh": numpy.tanh(y)), then, with
    `max_pool` ((ph, pw) or an int), max_pool2d_forward(y, (ph, pw)) (strides equal, valid)."""
    activation = V.check_fused_activation(activation)
    if max_pool is not None:
        y = conv2d_forward(x, kernel, bias, strides, padding, dilation_rate, groups, activation)
        pool = V.check_fused_max_pool(max_pool, y.shape[1:3])
        return max_pool2d_forward(y, pool, pool, "valid")
    x, kernel, bias, geo, groups = V.check_conv2d(x, kernel, bias, strides, padding, dilation_rate, groups)
    kh, kw, cin_g, filters = kernel.shape
    win = windows(pad_nhwc(x, geo.padding), geo)  # (N, OH, OW, KH, KW, C)
    win = win.reshape(win.shape[:5] + (groups, cin_g))
    k = kernel.reshape(kh, kw, cin_g, groups, filters // groups)
    y = np.einsum("nhwijgc,ijcgf->nhwgf", win, k, optimize=True)
    y = y.reshape(geo.n, geo.out_h, geo.out_w, filters)
    if bias is not None:
        y = y + bias
    return apply_fused_activation(np.ascontiguousarray(y, dtype=x.dtype), activation)


def conv2d_backward(dy, x, kernel, strides=1, padding="valid", dilation_rate=1, groups=1,
                    need_input_grad=True, need_bias_grad=True, need_kernel_grad=True):
    """Return (dx or None, dkernel or None, dbias or None) for the loss gradient `dy`.

    `need_*_grad=False` skips that gradient (None in its place): a first layer needs no dx, a
    transposed convolution's forward pass needs only dx.
    """
    x, kernel, _, geo, groups = V.check_conv2d(x, kernel, None, strides, padding, dilation_rate, groups)
    kh, kw, cin_g, filters = kernel.shape
    dy = V.check_grad_output(dy, (geo.n, geo.out_h, geo.out_w, filters), x.dtype)
    xp = pad_nhwc(x, geo.padding)
    win = windows(xp, geo)
    win = win.reshape(win.shape[:5] + (groups, cin_g))
    dyg = dy.reshape(geo.n, geo.out_h, geo.out_w, groups, filters // groups)
    k = kernel.reshape(kh, kw, cin_g, groups, filters // groups)
    dkernel = None
    if need_kernel_grad:
        dkernel = np.einsum("nhwijgc,nhwgf->ijcgf", win, dyg, optimize=True).reshape(kernel.shape)
        dkernel = np.ascontiguousarray(dkernel, dtype=x.dtype)
    dbias = dy.sum(axis=(0, 1, 2)) if need_bias_grad else None
    dx = None
    if need_input_grad:
        dwin = np.einsum("nhwgf,ijcgf->nhwijgc", dyg, k, optimize=True)
        dwin = dwin.reshape(dwin.shape[:5] + (groups * cin_g,))
        dx = np.ascontiguousarray(crop_padding(scatter_windows(dwin, xp.shape, geo), geo.padding))
    return dx, dkernel, dbias
