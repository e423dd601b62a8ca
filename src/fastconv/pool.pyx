"""Compiled 2-D max/average pooling and global pooling on NHWC arrays (fastconv._core.pool).

Called by `fastconv.ops`; the semantics are those of `fastconv.reference.pooling`. Every
function checks its arrays cheaply (ndarray, float32/float64 with one dtype for all,
C-contiguous, shapes consistent, outputs writeable and not overlapping the inputs), raising
TypeError/ValueError, then runs the C kernel (src/fastconv/kernels/pool2d.c) without the
GIL. Outputs may be uninitialised (np.empty): the kernels write every element.
"""
import numpy as np

cimport numpy as cnp
from libc.stddef cimport ptrdiff_t

cnp.import_array()

cdef extern from "pool2d.h" nogil:
    ctypedef struct fc_pool2d_geometry:
        ptrdiff_t n, h, w, c
        ptrdiff_t out_h, out_w
        ptrdiff_t pool_h, pool_w
        ptrdiff_t stride_h, stride_w
        ptrdiff_t pad_top, pad_left

    void fc_max_pool2d_forward_f32(const float *x, float *out, const fc_pool2d_geometry *g, int nt)
    void fc_max_pool2d_forward_f64(const double *x, double *out, const fc_pool2d_geometry *g, int nt)
    void fc_max_pool2d_backward_f32(const float *dy, const float *x, float *dx,
                                    const fc_pool2d_geometry *g, int nt)
    void fc_max_pool2d_backward_f64(const double *dy, const double *x, double *dx,
                                    const fc_pool2d_geometry *g, int nt)
    int FC_POOL_MAX_ARGMAX_TAPS
    void fc_max_pool2d_forward_argmax_f32(const float *x, float *out, unsigned char *argmax,
                                          const fc_pool2d_geometry *g, int nt)
    void fc_max_pool2d_forward_argmax_f64(const double *x, double *out, unsigned char *argmax,
                                          const fc_pool2d_geometry *g, int nt)
    void fc_max_pool2d_forward_argmax_bn_relu_f32(const float *x, const float *shift,
                                                  const float *scale, const float *bias,
                                                  float *out, unsigned char *argmax,
                                                  const fc_pool2d_geometry *g, int nt)
    void fc_max_pool2d_forward_argmax_bn_relu_f64(const double *x, const double *shift,
                                                  const double *scale, const double *bias,
                                                  double *out, unsigned char *argmax,
                                                  const fc_pool2d_geometry *g, int nt)
    void fc_max_pool2d_backward_argmax_f32(const float *dy, const unsigned char *argmax,
                                           float *dx, const fc_pool2d_geometry *g, int nt)
    void fc_max_pool2d_backward_argmax_f64(const double *dy, const unsigned char *argmax,
                                           double *dx, const fc_pool2d_geometry *g, int nt)
    void fc_avg_pool2d_forward_f32(const float *x, float *out, const fc_pool2d_geometry *g, int nt)
    void fc_avg_pool2d_forward_f64(const double *x, double *out, const fc_pool2d_geometry *g, int nt)
    void fc_avg_pool2d_backward_f32(const float *dy, float *dx, const fc_pool2d_geometry *g, int nt)
    void fc_avg_pool2d_backward_f64(const double *dy, double *dx, const fc_pool2d_geometry *g, int nt)
    void fc_global_avg_pool2d_forward_f32(const float *x, float *out, ptrdiff_t n, ptrdiff_t h,
                                          ptrdiff_t w, ptrdiff_t c, int nt)
    void fc_global_avg_pool2d_forward_f64(const double *x, double *out, ptrdiff_t n, ptrdiff_t h,
                                          ptrdiff_t w, ptrdiff_t c, int nt)
    void fc_global_avg_pool2d_backward_f32(const float *dy, float *dx, ptrdiff_t n, ptrdiff_t h,
                                           ptrdiff_t w, ptrdiff_t c, int nt)
    void fc_global_avg_pool2d_backward_f64(const double *dy, double *dx, ptrdiff_t n, ptrdiff_t h,
                                           ptrdiff_t w, ptrdiff_t c, int nt)
    void fc_global_max_pool2d_forward_f32(const float *x, float *out, ptrdiff_t n, ptrdiff_t h,
                                          ptrdiff_t w, ptrdiff_t c, int nt)
    void fc_global_max_pool2d_forward_f64(const double *x, double *out, ptrdiff_t n, ptrdiff_t h,
                                          ptrdiff_t w, ptrdiff_t c, int nt)
    void fc_global_max_pool2d_backward_f32(const float *dy, const float *x, float *dx, ptrdiff_t n,
                                           ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, int nt)
    void fc_global_max_pool2d_backward_f64(const double *dy, const double *x, double *dx,
                                           ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, int nt)

cdef extern from "pool2d.h":
    ptrdiff_t FC_STREAM_MIN_BYTES
    ptrdiff_t fc_pool2d_set_stream_min_bytes(ptrdiff_t nbytes)

cdef extern from "dispatch.h":
    int FC_DISPATCH_OK
    int fc_dispatch_init()


def _check_dispatch():
    # The kernels run on the ISA path dispatch.c selects; same rules as fastconv._core.cpu
    # (which raises the detailed error on import).
    if fc_dispatch_init() != FC_DISPATCH_OK:
        from . import cpu  # noqa: F401  (raises ValueError / RuntimeError explaining why)
        raise RuntimeError("FASTCONV_ISA names an instruction set that cannot be used here.")


_check_dispatch()


def _set_stream_min_bytes(nbytes=None):
    """Pooling backwards write a dx of at least `nbytes` bytes (None: the default, 16 MiB)
    with non-temporal stores where each pixel's channels are whole 64-byte lines: with
    AVX-512 those of windows that do not overlap, on every x86 ISA those of overlapping windows
    (staged a few rows at a time; the same values; see pool2d.h). For tests (0: every such
    dx) and benchmarks; returns the previous threshold."""
    return fc_pool2d_set_stream_min_bytes(FC_STREAM_MIN_BYTES if nbytes is None else nbytes)

_FLOAT32 = np.dtype(np.float32)
_UINT8 = np.dtype(np.uint8)
_FLOAT64 = np.dtype(np.float64)
# More threads than this only idle (and could exhaust the process); results do not change.
_MAX_THREADS = 512


cdef object _array(a, str name, int ndim, dtype=None, bint output=False):
    """Check one array argument; `dtype=None` means: float32 or float64 (the reference dtype).

    Dtype and flags are read through NumPy's C API (a.flags builds an object per access):
    a training step calls these kernels several times on small arrays."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray; received {type(a).__name__}.")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    # An array's dtype is usually the very object np.dtype(np.float32) returns; equality
    # (byte order included) decides otherwise.
    descr = <object>cnp.PyArray_DESCR(arr)
    if dtype is None:
        if descr is not _FLOAT32 and descr is not _FLOAT64 and descr != _FLOAT32 and descr != _FLOAT64:
            raise TypeError(f"`{name}` must have dtype float32 or float64; received dtype {a.dtype}.")
    elif descr is not dtype and descr != dtype:
        raise ValueError(f"`{name}` must have the same dtype as the other arrays ({dtype}); "
                         f"received dtype {a.dtype}.")
    if cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"`{name}` must be a {ndim}-D array; received shape {a.shape}.")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"`{name}` must be C-contiguous.")
    if cnp.PyArray_SIZE(arr) == 0:
        raise ValueError(f"`{name}` must not have empty axes; received shape {a.shape}.")
    if output and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"`{name}` (an output) must be writeable.")
    return a


cdef bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether two C-contiguous arrays share bytes (their memory is exactly [data, data + nbytes))."""
    cdef char *a0 = <char *>cnp.PyArray_DATA(a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(b)
    return a0 < b0 + cnp.PyArray_NBYTES(b) and b0 < a0 + cnp.PyArray_NBYTES(a)


def _separate(out, str out_name, inputs):
    """Refuse an output that overlaps an input: the kernels read while they write."""
    for arr, name in inputs:
        if _overlap(out, arr):
            raise ValueError(f"`{out_name}` must not overlap `{name}`.")


def _ints(value, str name, int count, int minimum):
    """A tuple of `count` Python ints >= minimum."""
    if type(value) is tuple and len(value) == count:  # the usual call: plain ints, no copies
        for v in value:
            if type(v) is not int or v < minimum:
                break
        else:
            return value
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a tuple of {count} ints; received {value!r}.") from None
    if len(items) != count or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                      for v in items):
        raise ValueError(f"`{name}` must be a tuple of {count} ints; received {value!r}.")
    items = tuple(int(v) for v in items)
    if any(v < minimum for v in items):
        raise ValueError(f"`{name}` must contain ints >= {minimum}; received {value!r}.")
    return items


def _threads(num_threads):
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"`num_threads` must be a positive int; received {num_threads!r}.")
    return int(min(num_threads, _MAX_THREADS))


cdef fc_pool2d_geometry _geometry(tuple in_shape, tuple out_shape, str out_name,
                                  pool, strides, pads) except *:
    """Validate the window arguments against the input and output shapes."""
    cdef fc_pool2d_geometry g
    ph, pw = _ints(pool, "pool", 2, 1)
    sh, sw = _ints(strides, "strides", 2, 1)
    pt, pb, pl, pr = _ints(pads, "pads", 4, 0)
    if pt >= ph or pb >= ph or pl >= pw or pr >= pw:
        raise ValueError(f"Each of `pads` (top, bottom, left, right) = {(pt, pb, pl, pr)} must be "
                         f"smaller than the pool size {(ph, pw)} on its axis, so that every "
                         "window holds a real pixel.")
    n, h, w, c = in_shape
    if h + pt + pb < ph or w + pl + pr < pw:
        raise ValueError(f"The pool window {(ph, pw)} is larger than the padded input "
                         f"({h + pt + pb}, {w + pl + pr}).")
    oh = (h + pt + pb - ph) // sh + 1
    ow = (w + pl + pr - pw) // sw + 1
    if out_shape != (n, oh, ow, c):
        raise ValueError(f"`{out_name}` must have shape {(n, oh, ow, c)} for input shape {in_shape}, "
                         f"pool {(ph, pw)}, strides {(sh, sw)} and pads {(pt, pb, pl, pr)}; "
                         f"received {out_shape}.")
    g.n, g.h, g.w, g.c = n, h, w, c
    g.out_h, g.out_w = oh, ow
    g.pool_h, g.pool_w = ph, pw
    g.stride_h, g.stride_w = sh, sw
    g.pad_top, g.pad_left = pt, pl
    return g


cdef inline void *_data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


def max_pool2d_forward(x, out, pool, strides, pads, num_threads):
    """Max pooling of NHWC `x` into the preallocated `out` (NaN propagates).

    Args:
        x: input, (N, H, W, C), float32 or float64, C-contiguous.
        out: output, (N, OH, OW, C), same dtype; every element is written.
        pool: (pool_h, pool_w).
        strides: (stride_h, stride_w).
        pads: (top, bottom, left, right), each smaller than the pool size on its axis.
        num_threads: OpenMP threads (>= 1); the result does not depend on it.
    """
    _array(x, "x", 4)
    _array(out, "out", 4, x.dtype, output=True)
    _separate(out, "out", [(x, "x")])
    cdef fc_pool2d_geometry g = _geometry(x.shape, out.shape, "out", pool, strides, pads)
    cdef int nt = _threads(num_threads)
    cdef void *px = _data(x)
    cdef void *po = _data(out)
    if x.dtype == _FLOAT32:
        with nogil:
            fc_max_pool2d_forward_f32(<const float *>px, <float *>po, &g, nt)
    else:
        with nogil:
            fc_max_pool2d_forward_f64(<const double *>px, <double *>po, &g, nt)


def max_pool2d_backward(dy, x, dx, pool, strides, pads, num_threads):
    """Gradient of max pooling: dy goes to the first maximal element of each window (row-major).

    Args:
        dy: gradient of the output, (N, OH, OW, C).
        x: the forward input, (N, H, W, C); the maxima are recomputed from it.
        dx: output, (N, H, W, C); overlapping windows add up, uncovered pixels get 0.
        pool, strides, pads, num_threads: as in `max_pool2d_forward`.
    """
    _array(x, "x", 4)
    _array(dy, "dy", 4, x.dtype)
    _array(dx, "dx", 4, x.dtype, output=True)
    if dx.shape != x.shape:
        raise ValueError(f"`dx` must have the shape of x {x.shape}; received {dx.shape}.")
    _separate(dx, "dx", [(x, "x"), (dy, "dy")])
    cdef fc_pool2d_geometry g = _geometry(x.shape, dy.shape, "dy", pool, strides, pads)
    cdef int nt = _threads(num_threads)
    cdef void *pdy = _data(dy)
    cdef void *px = _data(x)
    cdef void *pdx = _data(dx)
    if x.dtype == _FLOAT32:
        with nogil:
            fc_max_pool2d_backward_f32(<const float *>pdy, <const float *>px, <float *>pdx, &g, nt)
    else:
        with nogil:
            fc_max_pool2d_backward_f64(<const double *>pdy, <const double *>px, <double *>pdx, &g, nt)


cdef int _argmax_window(fc_pool2d_geometry g) except -1:
    if g.pool_h * g.pool_w > FC_POOL_MAX_ARGMAX_TAPS:
        raise ValueError(f"The argmax of a pooling window is stored in one byte: `pool` may have "
                         f"at most {FC_POOL_MAX_ARGMAX_TAPS} taps; received "
                         f"{(g.pool_h, g.pool_w)} ({g.pool_h * g.pool_w} taps).")
    return 0


def _argmax_array(a, str name, tuple shape, bint output=False):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray; received {type(a).__name__}.")
    if a.dtype != _UINT8:
        raise TypeError(f"`{name}` must have dtype uint8; received dtype {a.dtype}.")
    if a.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}; received {a.shape}.")
    if not a.flags.c_contiguous:
        raise ValueError(f"`{name}` must be C-contiguous.")
    if output and not a.flags.writeable:
        raise ValueError(f"`{name}` (an output) must be writeable.")
    return a


def max_pool2d_forward_argmax(x, out, argmax, pool, strides, pads, num_threads):
    """Max pooling that also records where each window's first maximum is.

    Args:
        x: input, (N, H, W, C), float32 or float64, C-contiguous.
        out: output, (N, OH, OW, C), same dtype; every element is written.
        argmax: output, (N, OH, OW, C), uint8: the tap index (row - top) * pool_w +
            (col - left) of the first maximum in row-major window order, counted from the
            window's padded corner, or 255 when the maximum is NaN.
        pool, strides, pads, num_threads: as in `max_pool2d_forward`; pool_h * pool_w <= 255.
    """
    _forward_argmax(x, None, out, argmax, pool, strides, pads, num_threads)


def max_pool2d_forward_argmax_bn_relu(x, shift, scale, bias, out, argmax, pool, strides, pads,
                                      num_threads):
    """`max_pool2d_forward_argmax` of max((x - shift) * scale + bias, 0), that array never
    written: a batch norm (shift = its mean, scale = gamma / sqrt(var + epsilon) rounded to the
    dtype, bias = beta) and a ReLU fused in front of the pooling, with the same bits as the
    batch norm kernel's output pooled.

    Args:
        x: input, (N, H, W, C), float32 or float64, C-contiguous.
        shift, scale, bias: (C,) arrays of x's dtype, C-contiguous.
        out, argmax, pool, strides, pads, num_threads: as in `max_pool2d_forward_argmax`.
    """
    _forward_argmax(x, (shift, scale, bias), out, argmax, pool, strides, pads, num_threads)


def _forward_argmax(x, coefficients, out, argmax, pool, strides, pads, num_threads):
    """Check the arguments and run the argmax forward (of the batch norm + ReLU of x when
    `coefficients` is (shift, scale, bias))."""
    _array(x, "x", 4)
    _array(out, "out", 4, x.dtype, output=True)
    cdef fc_pool2d_geometry g = _geometry(x.shape, out.shape, "out", pool, strides, pads)
    _argmax_window(g)
    _argmax_array(argmax, "argmax", out.shape, output=True)
    coef = []
    if coefficients is not None:
        for arr, name in zip(coefficients, ("shift", "scale", "bias")):
            _array(arr, name, 1, x.dtype)
            if arr.shape != (g.c,):
                raise ValueError(f"`{name}` must have shape ({g.c},); received {arr.shape}.")
            coef.append((arr, name))
    _separate(out, "out", [(x, "x"), (argmax, "argmax")] + coef)
    _separate(argmax, "argmax", [(x, "x")] + coef)
    cdef int nt = _threads(num_threads)
    cdef void *px = _data(x)
    cdef void *po = _data(out)
    cdef void *ps = NULL
    cdef void *pc = NULL
    cdef void *pb = NULL
    cdef unsigned char *pa = <unsigned char *>_data(argmax)
    if coefficients is not None:
        ps, pc, pb = _data(coef[0][0]), _data(coef[1][0]), _data(coef[2][0])
    if x.dtype == _FLOAT32 and ps == NULL:
        with nogil:
            fc_max_pool2d_forward_argmax_f32(<const float *>px, <float *>po, pa, &g, nt)
    elif x.dtype == _FLOAT32:
        with nogil:
            fc_max_pool2d_forward_argmax_bn_relu_f32(<const float *>px, <const float *>ps,
                                                     <const float *>pc, <const float *>pb,
                                                     <float *>po, pa, &g, nt)
    elif ps == NULL:
        with nogil:
            fc_max_pool2d_forward_argmax_f64(<const double *>px, <double *>po, pa, &g, nt)
    else:
        with nogil:
            fc_max_pool2d_forward_argmax_bn_relu_f64(<const double *>px, <const double *>ps,
                                                     <const double *>pc, <const double *>pb,
                                                     <double *>po, pa, &g, nt)


def max_pool2d_backward_argmax(dy, argmax, dx, pool, strides, pads, num_threads):
    """Gradient of max pooling from the argmax recorded by `max_pool2d_forward_argmax`.

    Args:
        dy: gradient of the output, (N, OH, OW, C).
        argmax: (N, OH, OW, C) uint8, as written by `max_pool2d_forward_argmax` (any other
            byte value names a tap of the window or none; padding taps get nothing).
        dx: output, (N, H, W, C); overlapping windows add up, uncovered pixels get 0.
        pool, strides, pads, num_threads: as in `max_pool2d_forward`; pool_h * pool_w <= 255.
    """
    _array(dy, "dy", 4)
    _array(dx, "dx", 4, dy.dtype, output=True)
    cdef fc_pool2d_geometry g = _geometry(dx.shape, dy.shape, "dy", pool, strides, pads)
    _argmax_window(g)
    _argmax_array(argmax, "argmax", dy.shape)
    _separate(dx, "dx", [(dy, "dy"), (argmax, "argmax")])
    cdef int nt = _threads(num_threads)
    cdef void *pdy = _data(dy)
    cdef const unsigned char *pa = <const unsigned char *>_data(argmax)
    cdef void *pdx = _data(dx)
    if dy.dtype == _FLOAT32:
        with nogil:
            fc_max_pool2d_backward_argmax_f32(<const float *>pdy, pa, <float *>pdx, &g, nt)
    else:
        with nogil:
            fc_max_pool2d_backward_argmax_f64(<const double *>pdy, pa, <double *>pdx, &g, nt)


def avg_pool2d_forward(x, out, pool, strides, pads, num_threads):
    """Average pooling: each window's sum divided by its number of real (unpadded) pixels.

    Args:
        x, out, pool, strides, pads, num_threads: as in `max_pool2d_forward`.
    """
    _array(x, "x", 4)
    _array(out, "out", 4, x.dtype, output=True)
    _separate(out, "out", [(x, "x")])
    cdef fc_pool2d_geometry g = _geometry(x.shape, out.shape, "out", pool, strides, pads)
    cdef int nt = _threads(num_threads)
    cdef void *px = _data(x)
    cdef void *po = _data(out)
    if x.dtype == _FLOAT32:
        with nogil:
            fc_avg_pool2d_forward_f32(<const float *>px, <float *>po, &g, nt)
    else:
        with nogil:
            fc_avg_pool2d_forward_f64(<const double *>px, <double *>po, &g, nt)


def avg_pool2d_backward(dy, dx, pool, strides, pads, num_threads):
    """Gradient of average pooling.

    Args:
        dy: gradient of the output, (N, OH, OW, C).
        dx: output, (N, H, W, C) (the input's shape).
        pool, strides, pads, num_threads: as in `max_pool2d_forward`.
    """
    _array(dy, "dy", 4)
    _array(dx, "dx", 4, dy.dtype, output=True)
    _separate(dx, "dx", [(dy, "dy")])
    cdef fc_pool2d_geometry g = _geometry(dx.shape, dy.shape, "dy", pool, strides, pads)
    cdef int nt = _threads(num_threads)
    cdef void *pdy = _data(dy)
    cdef void *pdx = _data(dx)
    if dy.dtype == _FLOAT32:
        with nogil:
            fc_avg_pool2d_backward_f32(<const float *>pdy, <float *>pdx, &g, nt)
    else:
        with nogil:
            fc_avg_pool2d_backward_f64(<const double *>pdy, <double *>pdx, &g, nt)


def _global_shapes(image, str image_name, vec, str vec_name):
    n, h, w, c = image.shape
    if vec.shape != (n, c):
        raise ValueError(f"`{vec_name}` must have shape {(n, c)} for `{image_name}` of shape "
                         f"{image.shape}; received {vec.shape}.")
    return n, h, w, c


def global_avg_pool2d_forward(x, out, num_threads):
    """Global average pooling: out (N, C) = mean of x (N, H, W, C) over H and W.

    Args:
        x: input, (N, H, W, C). out: output, (N, C). num_threads: OpenMP threads (>= 1).
    """
    _array(x, "x", 4)
    _array(out, "out", 2, x.dtype, output=True)
    _separate(out, "out", [(x, "x")])
    cdef ptrdiff_t n, h, w, c
    n, h, w, c = _global_shapes(x, "x", out, "out")
    cdef int nt = _threads(num_threads)
    cdef void *px = _data(x)
    cdef void *po = _data(out)
    if x.dtype == _FLOAT32:
        with nogil:
            fc_global_avg_pool2d_forward_f32(<const float *>px, <float *>po, n, h, w, c, nt)
    else:
        with nogil:
            fc_global_avg_pool2d_forward_f64(<const double *>px, <double *>po, n, h, w, c, nt)


def global_avg_pool2d_backward(dy, dx, num_threads):
    """Gradient of global average pooling: dx[n, h, w, c] = dy[n, c] / (H * W).

    Args:
        dy: (N, C). dx: output, (N, H, W, C). num_threads: OpenMP threads (>= 1).
    """
    _array(dy, "dy", 2)
    _array(dx, "dx", 4, dy.dtype, output=True)
    _separate(dx, "dx", [(dy, "dy")])
    cdef ptrdiff_t n, h, w, c
    n, h, w, c = _global_shapes(dx, "dx", dy, "dy")
    cdef int nt = _threads(num_threads)
    cdef void *pdy = _data(dy)
    cdef void *pdx = _data(dx)
    if dy.dtype == _FLOAT32:
        with nogil:
            fc_global_avg_pool2d_backward_f32(<const float *>pdy, <float *>pdx, n, h, w, c, nt)
    else:
        with nogil:
            fc_global_avg_pool2d_backward_f64(<const double *>pdy, <double *>pdx, n, h, w, c, nt)


def global_max_pool2d_forward(x, out, num_threads):
    """Global max pooling: out (N, C) = max of x (N, H, W, C) over H and W (NaN propagates).

    Args:
        x: input, (N, H, W, C). out: output, (N, C). num_threads: OpenMP threads (>= 1).
    """
    _array(x, "x", 4)
    _array(out, "out", 2, x.dtype, output=True)
    _separate(out, "out", [(x, "x")])
    cdef ptrdiff_t n, h, w, c
    n, h, w, c = _global_shapes(x, "x", out, "out")
    cdef int nt = _threads(num_threads)
    cdef void *px = _data(x)
    cdef void *po = _data(out)
    if x.dtype == _FLOAT32:
        with nogil:
            fc_global_max_pool2d_forward_f32(<const float *>px, <float *>po, n, h, w, c, nt)
    else:
        with nogil:
            fc_global_max_pool2d_forward_f64(<const double *>px, <double *>po, n, h, w, c, nt)


def global_max_pool2d_backward(dy, x, dx, num_threads):
    """Gradient of global max pooling: dy at the first maximal pixel (row-major), 0 elsewhere.

    As numpy's argmax, a NaN counts as the maximum (the first NaN takes the gradient).

    Args:
        dy: (N, C). x: the forward input, (N, H, W, C). dx: output, (N, H, W, C).
        num_threads: OpenMP threads (>= 1).
    """
    _array(x, "x", 4)
    _array(dy, "dy", 2, x.dtype)
    _array(dx, "dx", 4, x.dtype, output=True)
    if dx.shape != x.shape:
        raise ValueError(f"`dx` must have the shape of x {x.shape}; received {dx.shape}.")
    _separate(dx, "dx", [(x, "x"), (dy, "dy")])
    cdef ptrdiff_t n, h, w, c
    n, h, w, c = _global_shapes(x, "x", dy, "dy")
    cdef int nt = _threads(num_threads)
    cdef void *pdy = _data(dy)
    cdef void *px = _data(x)
    cdef void *pdx = _data(dx)
    if x.dtype == _FLOAT32:
        with nogil:
            fc_global_max_pool2d_backward_f32(<const float *>pdy, <const float *>px, <float *>pdx,
                                              n, h, w, c, nt)
    else:
        with nogil:
            fc_global_max_pool2d_backward_f64(<const double *>pdy, <const double *>px,
                                              <double *>pdx, n, h, w, c, nt)
