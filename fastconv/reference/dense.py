"""Reference fully-connected layer: y = x @ kernel + bias."""
import numpy as np

from .. import _validation as V
from .conv import apply_fused_activation


def _c(*arrays):
    # BLAS and numpy's pairwise sums round differently for Fortran-ordered or strided operands;
    # C order makes the result independent of the caller's memory layout.
    return [None if a is None else np.ascontiguousarray(a) for a in arrays]


def dense_forward(x, kernel, bias=None, activation=None):
    """y = activation(x @ kernel + bias); activation None, "relu" or "tanh" (as
    `fastconv.reference.conv2d_forward`'s)."""
    activation = V.check_fused_activation(activation)
    x, kernel, bias = _c(*V.check_dense(x, kernel, bias))
    y = x @ kernel
    y = y + bias if bias is not None else y
    return apply_fused_activation(np.ascontiguousarray(y), activation)


def dense_backward(dy, x, kernel, need_input_grad=True, need_bias_grad=True):
    x, kernel, _ = V.check_dense(x, kernel, None)
    dy = V.check_grad_output(dy, (x.shape[0], kernel.shape[1]), x.dtype)
    x, kernel, dy = _c(x, kernel, dy)
    dx = dy @ kernel.T if need_input_grad else None
    return dx, x.T @ dy, (dy.sum(axis=0) if need_bias_grad else None)
