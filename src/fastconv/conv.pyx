"""Compiled 2-D convolution on NHWC input with HWIO kernels (float32 and float64).

Called by `fastconv.ops`, which validates the user's arguments and allocates the outputs;
the checks here are the cheap ones that keep the C kernels memory-safe (dtypes, ranks,
contiguity, shapes consistent with the geometry). The kernels (src/fastconv/kernels/conv2d.c)
run without the GIL, write every element of their outputs, and give bit-identical results
for any `num_threads`.
"""
import numbers
import os

import numpy as np

cimport cython
from cython cimport floating
from libc.stddef cimport ptrdiff_t
cimport numpy as cnp

cdef extern from "conv2d_params.h":
    ctypedef struct fc_conv2d_params:
        ptrdiff_t n, h, w, c
        ptrdiff_t kh, kw, f
        ptrdiff_t out_h, out_w
        ptrdiff_t stride_h, stride_w
        ptrdiff_t pad_top, pad_bottom, pad_left, pad_right
        ptrdiff_t dil_h, dil_w
        ptrdiff_t groups

cdef extern from "conv2d.h":
    int FC_CONV_OK
    int FC_CONV_NOMEM
    int fc_conv2d_forward_max_pool_f32(const fc_conv2d_params *p, const float *x, const float *w,
                                       const float *bias, int act, ptrdiff_t pool_h,
                                       ptrdiff_t pool_w, float *y, int num_threads) nogil
    int fc_conv2d_forward_max_pool_f64(const fc_conv2d_params *p, const double *x,
                                       const double *w, const double *bias, int act,
                                       ptrdiff_t pool_h, ptrdiff_t pool_w, double *y,
                                       int num_threads) nogil
    int fc_conv2d_backward_f32(const fc_conv2d_params *p, const float *dy, const float *x,
                               const float *w, float *dx, float *dw, float *db,
                               int num_threads) nogil
    int fc_conv2d_backward_f64(const fc_conv2d_params *p, const double *dy, const double *x,
                               const double *w, double *dx, double *dw, double *db,
                               int num_threads) nogil
    int FC_PATH_NARROW
    int FC_PATH_BROAD
    int FC_PATH_WINOGRAD
    int FC_PATH_WINOGRAD4
    int FC_PATH_WINOGRAD4_ALWAYS
    int FC_PATH_FLAT
    int FC_PATH_DOT
    int fc_conv2d_set_paths(int mask)
    ptrdiff_t FC_STREAM_MIN_BYTES
    int fc_conv2d_flat_lanes(int double_precision)
    ptrdiff_t fc_conv2d_set_stream_min_bytes(ptrdiff_t nbytes)
    int fc_conv2d_fail_thread_allocs(int mask)
    ptrdiff_t fc_conv2d_thread_allocs_denied()

cdef extern from "dispatch.h":
    int FC_DISPATCH_OK
    int fc_dispatch_init()


def _check_dispatch():
    # Same rules as fastconv._core.cpu (which raises the detailed error on import).
    if fc_dispatch_init() != FC_DISPATCH_OK:
        from . import cpu  # noqa: F401  (raises ValueError / RuntimeError explaining why)
        raise RuntimeError("FASTCONV_ISA names an instruction set that cannot be used here.")


_check_dispatch()
cnp.import_array()


def _set_paths(narrow=True, broad=True, winograd=True, winograd4=True, flat=True, dot=True):
    """Allow (or not) the optional kernel paths: narrow / broad GEMM tiles besides the wide
    ones (results unchanged), Winograd for 3x3 stride-1 layers (results equal to
    rounding; `winograd4`: its 4x4-tile variant where it pays, else 2x2 tiles; "always":
    4x4 tiles wherever Winograd runs), flat
    rows for layers with few filters or input channels and the single-filter kernel (`dot`)
    for one filter (results equal to rounding). For tests and benchmarks; returns the
    previous setting as a dict."""
    previous = fc_conv2d_set_paths((FC_PATH_NARROW if narrow else 0) |
                                   (FC_PATH_BROAD if broad else 0) |
                                   (FC_PATH_WINOGRAD if winograd else 0) |
                                   (FC_PATH_WINOGRAD4 if winograd4 else 0) |
                                   (FC_PATH_WINOGRAD4_ALWAYS if winograd4 == "always" else 0) |
                                   (FC_PATH_FLAT if flat else 0) |
                                   (FC_PATH_DOT if dot else 0))
    return dict(narrow=bool(previous & FC_PATH_NARROW), broad=bool(previous & FC_PATH_BROAD),
                winograd=bool(previous & FC_PATH_WINOGRAD),
                winograd4=("always" if previous & FC_PATH_WINOGRAD4_ALWAYS
                           else bool(previous & FC_PATH_WINOGRAD4)),
                flat=bool(previous & FC_PATH_FLAT), dot=bool(previous & FC_PATH_DOT))

def _set_stream_min_bytes(nbytes=None):
    """Outputs of at least `nbytes` bytes (None: the default, 16 MiB) that the implicit GEMM
    writes directly are stored with non-temporal stores (the same values; see conv2d.h).
    For tests (0: every such output) and benchmarks; returns the previous threshold."""
    return fc_conv2d_set_stream_min_bytes(FC_STREAM_MIN_BYTES if nbytes is None else nbytes)


def _fail_thread_allocs(mask=0):
    """Make the per-thread scratch allocations inside the kernels' parallel regions fail for
    the threads whose bit (1 << thread number) is set in `mask` (0: none). For tests of the
    out-of-memory path; returns the previous mask."""
    return fc_conv2d_fail_thread_allocs(int(mask))


def _thread_allocs_denied():
    """How many per-thread scratch allocations `_fail_thread_allocs` has made fail so far."""
    return fc_conv2d_thread_allocs_denied()


def _flat_lanes(dtype):
    """Vector length of the flat-row kernels for `dtype` on the selected ISA (for tests: the
    flat path serves layers with fewer filters than this and at most 8 input channels)."""
    return fc_conv2d_flat_lanes(np.dtype(dtype) == np.float64)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# FASTCONV_WINOGRAD=0: 3x3 layers use the direct GEMM path, whose float32 rounding is closer
# to a plain sum (see docs/performance.md); the default uses Winograd where it applies.
if os.environ.get("FASTCONV_WINOGRAD", "").strip() == "0":
    _set_paths(winograd=False)


def _int_tuple(value, n, name, low):
    if type(value) is tuple and len(value) == n:  # the usual call: a tuple of plain ints
        for v in value:
            if type(v) is not int or v < low:
                break
        else:
            return value
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if (items is None or len(items) != n
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items)
            or any(v < low for v in items)):
        raise ValueError(f"`{name}` must be a tuple of {n} integers >= {low}; received {value!r}.")
    return tuple(int(v) for v in items)


def _positive_int(value, name):
    if type(value) is int and value >= 1:
        return value
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")
    return int(value)


def _array(a, name, dtype, shape, optional=False):
    """Check that `a` is a C-contiguous ndarray of `dtype` and `shape` (None entries: any)."""
    if a is None:
        if optional:
            return None
        raise TypeError(f"`{name}` must be a numpy array, not None.")
    if not isinstance(a, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray; received {type(a).__name__}.")
    if dtype is None:
        if a.dtype not in _FLOATS:
            raise ValueError(f"`{name}` must have dtype float32 or float64; received {a.dtype}.")
    elif a.dtype != dtype:
        raise ValueError(f"`{name}` must have dtype {dtype} (that of `x`); received {a.dtype}.")
    if a.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
        expected = tuple("?" if s is None else s for s in shape)
        raise ValueError(f"`{name}` must have shape {expected}; received {a.shape}.")
    if not a.flags.c_contiguous:
        raise ValueError(f"`{name}` must be C-contiguous.")
    if any(s == 0 for s in a.shape):
        raise ValueError(f"`{name}` must not have empty axes; received shape {a.shape}.")
    return a


cdef object _checked(object a, str name, object dtype, tuple shape, bint optional=False):
    """`_array`'s checks, through NumPy's C API for the usual case (a native-endian, C-contiguous
    ndarray of the right dtype and shape); anything else goes to `_array`, which accepts or
    explains."""
    cdef cnp.ndarray arr
    cdef Py_ssize_t i, ndim = len(shape)
    cdef int type_num
    if type(a) is not np.ndarray:
        return _array(a, name, dtype, shape, optional)
    arr = <cnp.ndarray>a
    type_num = cnp.PyArray_TYPE(arr)
    if dtype is None:
        ok = type_num == cnp.NPY_FLOAT32 or type_num == cnp.NPY_FLOAT64
    else:
        ok = type_num == (<cnp.dtype>dtype).type_num
    ok = (ok and cnp.PyArray_ISNOTSWAPPED(arr) and cnp.PyArray_IS_C_CONTIGUOUS(arr)
          and cnp.PyArray_NDIM(arr) == ndim)
    if ok:
        for i in range(ndim):
            d = cnp.PyArray_DIM(arr, i)
            expected = shape[i]
            if d == 0 or (expected is not None and expected != d):
                ok = False
                break
    return a if ok else _array(a, name, dtype, shape, optional)


cdef fc_conv2d_params _geometry(x, kernel, strides, pads, dilation, groups) except *:
    """Geometry of the convolution; raises ValueError when it is inconsistent."""
    cdef fc_conv2d_params p
    sh, sw = _int_tuple(strides, 2, "strides", 1)
    pt, pb, pl, pr = _int_tuple(pads, 4, "pads", 0)
    dh, dw = _int_tuple(dilation, 2, "dilation", 1)
    groups = _positive_int(groups, "groups")
    n, h, w, c = x.shape
    kh, kw, kc, f = kernel.shape
    if c % groups or f % groups or kc != c // groups:
        raise ValueError(
            f"`groups`={groups} must divide the input channels ({c}) and the filters ({f}), and "
            f"`kernel` must have shape (kh, kw, {c // groups if c % groups == 0 else '?'}, f); "
            f"received kernel shape {kernel.shape}."
        )
    eff_h, eff_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if eff_h > h + pt + pb or eff_w > w + pl + pr:
        raise ValueError(
            f"The kernel (effective size {(eff_h, eff_w)} with dilation) is larger than the "
            f"padded input {(h + pt + pb, w + pl + pr)}."
        )
    p.n, p.h, p.w, p.c = n, h, w, c
    p.kh, p.kw, p.f = kh, kw, f
    p.out_h = (h + pt + pb - eff_h) // sh + 1
    p.out_w = (w + pl + pr - eff_w) // sw + 1
    p.stride_h, p.stride_w = sh, sw
    p.pad_top, p.pad_bottom, p.pad_left, p.pad_right = pt, pb, pl, pr
    p.dil_h, p.dil_w = dh, dw
    p.groups = groups
    return p


cdef int _check_status(int status) except -1:
    if status == FC_CONV_NOMEM:
        raise MemoryError("conv2d: could not allocate the kernel's workspace.")
    if status != FC_CONV_OK:
        raise RuntimeError(f"conv2d kernel failed with status {status}.")
    return 0


cdef int _forward(const fc_conv2d_params *p, const floating[:, :, :, ::1] x,
                  const floating[:, :, :, ::1] kernel, const floating[::1] bias,
                  floating[:, :, :, ::1] out, int act, ptrdiff_t pool_h, ptrdiff_t pool_w,
                  int num_threads) except -1:
    # pool_h == 0: no pooling (the plain forward)
    cdef const floating *bias_ptr = NULL
    cdef int status
    if bias is not None:
        bias_ptr = &bias[0]
    with nogil:
        if floating is float:
            status = fc_conv2d_forward_max_pool_f32(p, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                                    bias_ptr, act, pool_h, pool_w,
                                                    &out[0, 0, 0, 0], num_threads)
        else:
            status = fc_conv2d_forward_max_pool_f64(p, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                                    bias_ptr, act, pool_h, pool_w,
                                                    &out[0, 0, 0, 0], num_threads)
    return _check_status(status)


cdef int _backward(const fc_conv2d_params *p, const floating[:, :, :, ::1] dy,
                   const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] kernel,
                   floating[:, :, :, ::1] dx, floating[:, :, :, ::1] dkernel,
                   floating[::1] dbias, int num_threads) except -1:
    cdef floating *dx_ptr = NULL
    cdef floating *dw_ptr = NULL
    cdef floating *db_ptr = NULL
    cdef int status
    if dx is not None:
        dx_ptr = &dx[0, 0, 0, 0]
    if dkernel is not None:
        dw_ptr = &dkernel[0, 0, 0, 0]
    if dbias is not None:
        db_ptr = &dbias[0]
    with nogil:
        if floating is float:
            status = fc_conv2d_backward_f32(p, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                            &kernel[0, 0, 0, 0], dx_ptr,
                                            dw_ptr, db_ptr, num_threads)
        else:
            status = fc_conv2d_backward_f64(p, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                            &kernel[0, 0, 0, 0], dx_ptr,
                                            dw_ptr, db_ptr, num_threads)
    return _check_status(status)


# The fused output activations (conv2d.h: FC_ACT_*).
_ACTIVATIONS = {None: 0, "relu": 1, "tanh": 2}


def conv2d_forward(x, kernel, bias, out, strides, pads, dilation, groups, num_threads,
                   activation=None, max_pool=None):
    """out = activation(conv2d(x, kernel) + bias), written into the preallocated `out`, the
    activation applied while each block is in cache; with `max_pool`, out is the max pooling
    of that (pooled block by block as it is computed, where the kernel's path allows).

    Args:
        x: C-contiguous (N, H, W, C) float32 or float64 array.
        kernel: C-contiguous (KH, KW, C // groups, F) array of x's dtype.
        bias: C-contiguous (F,) array of x's dtype, or None.
        out: C-contiguous (N, OH, OW, F) array of x's dtype; fully overwritten.
        strides: (sh, sw). pads: (top, bottom, left, right). dilation: (dh, dw).
        groups: number of groups (C for depthwise).
        num_threads: OpenMP threads to use (>= 1).
        activation: None, "relu" (max(out, 0) as numpy.maximum computes it) or "tanh"
            (float32: within 6.3 ulp of the true tanh; float64: the C library's).
        max_pool: None, or (ph, pw) positive ints: max pooling in ph x pw windows with strides
            (ph, pw) and no padding; `out` is then (N, OH // ph, OW // pw, F) and gets the bits
            of max_pool2d_forward applied to the unpooled output.
    """
    x = _checked(x, "x", None, (None,) * 4)
    kernel = _checked(kernel, "kernel", x.dtype, (None,) * 4)
    cdef fc_conv2d_params p = _geometry(x, kernel, strides, pads, dilation, groups)
    bias = None if bias is None else _checked(bias, "bias", x.dtype, (p.f,))
    cdef ptrdiff_t pool_h = 0, pool_w = 0
    if max_pool is None:
        out = _checked(out, "out", x.dtype, (p.n, p.out_h, p.out_w, p.f))
    else:
        if (type(max_pool) is not tuple or len(max_pool) != 2
                or not all(type(v) is int and v > 0 for v in max_pool)):
            raise ValueError(f"`max_pool` must be None or a tuple of two positive ints; "
                             f"received {max_pool!r}.")
        pool_h, pool_w = max_pool
        out = _checked(out, "out", x.dtype, (p.n, p.out_h // pool_h, p.out_w // pool_w, p.f))
    nt = _positive_int(num_threads, "num_threads")
    act = _ACTIVATIONS.get(activation, -1) if activation is None or type(activation) is str else -1
    if act < 0:
        raise ValueError(f"`activation` must be None, 'relu' or 'tanh'; received {activation!r}.")
    if out.size == 0:  # (windows larger than the output: nothing to compute)
        return
    if x.dtype == np.float32:
        _forward[cython.float](&p, x, kernel, bias, out, act, pool_h, pool_w, nt)
    else:
        _forward[cython.double](&p, x, kernel, bias, out, act, pool_h, pool_w, nt)


def conv2d_backward(dy, x, kernel, dx, dkernel, dbias, strides, pads, dilation, groups,
                    num_threads):
    """Gradients of conv2d for the output gradient `dy`, written into preallocated arrays.

    Args:
        dy: C-contiguous (N, OH, OW, F) output gradient.
        x, kernel: the forward inputs (see `conv2d_forward`).
        dx: (N, H, W, C) input gradient, or None to skip it (e.g. for a first layer).
        dkernel: (KH, KW, C // groups, F) kernel gradient, or None to skip it (then `dbias`
            must be None too: the bias gradient is summed with the kernel gradient).
        dbias: (F,) bias gradient, or None.
        strides, pads, dilation, groups, num_threads: as in `conv2d_forward`.
    """
    x = _checked(x, "x", None, (None,) * 4)
    kernel = _checked(kernel, "kernel", x.dtype, (None,) * 4)
    cdef fc_conv2d_params p = _geometry(x, kernel, strides, pads, dilation, groups)
    dy = _checked(dy, "dy", x.dtype, (p.n, p.out_h, p.out_w, p.f))
    dx = None if dx is None else _checked(dx, "dx", x.dtype, x.shape)
    dkernel = None if dkernel is None else _checked(dkernel, "dkernel", x.dtype, kernel.shape)
    dbias = None if dbias is None else _checked(dbias, "dbias", x.dtype, (p.f,))
    if dkernel is None and dbias is not None:
        raise ValueError("`dbias` needs `dkernel`: the bias gradient is computed with the kernel "
                         "gradient; pass an array for `dkernel` too.")
    nt = _positive_int(num_threads, "num_threads")
    if x.dtype == np.float32:
        _backward[cython.float](&p, dy, x, kernel, dx, dkernel, dbias, nt)
    else:
        _backward[cython.double](&p, dy, x, kernel, dx, dkernel, dbias, nt)
