"""The one windowing primitive the reference convolution and pooling share."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pad_nhwc(x, padding, value=0.0):
    (pt, pb), (pl, pr) = padding
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def windows(xp, geo):
    """View of the windows of padded input `xp`: shape (N, OH, OW, KH, KW, C)."""
    dh, dw = geo.dilation
    sh, sw = geo.strides
    eff_h = (geo.kh - 1) * dh + 1
    eff_w = (geo.kw - 1) * dw + 1
    v = sliding_window_view(xp, (eff_h, eff_w), axis=(1, 2))  # (N, H', W', C, effh, effw)
    v = v[:, : (geo.out_h - 1) * sh + 1 : sh, : (geo.out_w - 1) * sw + 1 : sw, :, ::dh, ::dw]
    return v.transpose(0, 1, 2, 4, 5, 3)


def scatter_windows(dwin, padded_shape, geo):
    """Adjoint of `windows`: add window gradients (N, OH, OW, KH, KW, C) into a padded array."""
    dxp = np.zeros(padded_shape, dtype=dwin.dtype)
    dh, dw = geo.dilation
    sh, sw = geo.strides
    for i in range(geo.kh):
        for j in range(geo.kw):
            r0, c0 = i * dh, j * dw
            dxp[:, r0 : r0 + (geo.out_h - 1) * sh + 1 : sh,
                c0 : c0 + (geo.out_w - 1) * sw + 1 : sw, :] += dwin[:, :, :, i, j, :]
    return dxp


def crop_padding(xp, padding):
    (pt, pb), (pl, pr) = padding
    return xp[:, pt : xp.shape[1] - pb, pl : xp.shape[2] - pr, :]
