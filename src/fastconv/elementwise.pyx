"""Compiled elementwise kernels: ReLU, leaky ReLU, activation gradients, dropout, optimizer updates
(fastconv._core.elementwise).

Called by `fastconv.ops`; the semantics are those of `fastconv.reference.elementwise`, bit for
bit (see src/fastconv/kernels/elementwise.h for the one exception: the arithmetic kernels
flush denormals). Every function checks its arrays cheaply (ndarray, float32/float64 with one
dtype for all, C-contiguous, one shape for all, outputs writeable and not overlapping the
inputs), raising TypeError/ValueError, then runs the C kernel
(src/fastconv/kernels/elementwise.c) without the GIL. Outputs may be uninitialised (np.empty):
the kernels write every element.
"""
import numpy as np

cimport numpy as cnp
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, qsort

cnp.import_array()

cdef extern from "elementwise.h" nogil:
    void fc_relu_forward_f32(const float *x, float *y, ptrdiff_t n, int nt)
    void fc_relu_forward_f64(const double *x, double *y, ptrdiff_t n, int nt)
    void fc_relu_backward_f32(const float *dy, const float *x, float threshold, float *dx,
                              ptrdiff_t n, int nt)
    void fc_relu_backward_f64(const double *dy, const double *x, double threshold, double *dx,
                              ptrdiff_t n, int nt)
    void fc_leaky_relu_forward_f32(const float *x, float slope, float *y, ptrdiff_t n, int nt)
    void fc_leaky_relu_forward_f64(const double *x, double slope, double *y, ptrdiff_t n, int nt)
    void fc_leaky_relu_backward_f32(const float *dy, const float *x, float slope, float *dx,
                                    ptrdiff_t n, int nt)
    void fc_leaky_relu_backward_f64(const double *dy, const double *x, double slope, double *dx,
                                    ptrdiff_t n, int nt)
    void fc_tanh_backward_f32(const float *dy, const float *y, float *dx, ptrdiff_t n, int nt)
    void fc_tanh_backward_f64(const double *dy, const double *y, double *dx, ptrdiff_t n, int nt)
    void fc_sigmoid_backward_f32(const float *dy, const float *y, float *dx, ptrdiff_t n, int nt)
    void fc_sigmoid_backward_f64(const double *dy, const double *y, double *dx, ptrdiff_t n,
                                 int nt)
    void fc_adam_update_many_f32(ptrdiff_t count, float **param, const float **grad,
                                 float **m, float **v, float **v_hat, const ptrdiff_t *n,
                                 float b1, float b2, float alpha, float eps, int nt)
    void fc_adam_update_many_f64(ptrdiff_t count, double **param, const double **grad,
                                 double **m, double **v, double **v_hat, const ptrdiff_t *n,
                                 double b1, double b2, double alpha, double eps, int nt)
    void fc_sgd_update_f32(float *param, const float *grad, float *velocity, float lr,
                           float momentum, int nesterov, ptrdiff_t n, int nt)
    void fc_sgd_update_f64(double *param, const double *grad, double *velocity, double lr,
                           double momentum, int nesterov, ptrdiff_t n, int nt)
    void fc_dropout_forward_f32(const float *x, const uint32_t *bits, uint64_t drop_below,
                                float scale, float *y, uint8_t *keep, ptrdiff_t n, int nt)
    void fc_dropout_forward_f64(const double *x, const uint32_t *bits, uint64_t drop_below,
                                double scale, double *y, uint8_t *keep, ptrdiff_t n, int nt)
    void fc_random_bits(uint64_t seed, uint32_t *bits, ptrdiff_t n, int num_threads)
    void fc_dropout_backward_f32(const float *dy, const uint8_t *keep, float scale, float *dx,
                                 ptrdiff_t n, int nt)
    void fc_dropout_backward_f64(const double *dy, const uint8_t *keep, double scale,
                                 double *dx, ptrdiff_t n, int nt)
    ptrdiff_t fc_sparse_softmax_xent_f32(const float *z, const int64_t *labels, ptrdiff_t rows,
                                         ptrdiff_t classes, float *grad, double *loss_sum)
    ptrdiff_t fc_sparse_softmax_xent_f64(const double *z, const int64_t *labels, ptrdiff_t rows,
                                         ptrdiff_t classes, double *grad, double *loss_sum)

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
_UINT32 = np.dtype(np.uint32)
_BOOL = np.dtype(np.bool_)
_INT64 = np.dtype(np.int64)
# More threads than this only idle (and could exhaust the process); results do not change.
_MAX_THREADS = 512
_TWO_TO_32 = 1 << 32


cdef str _entry_name(str base, Py_ssize_t k):
    """`base` of entry k ("param[3]"), or `base` itself for k < 0."""
    return base if k < 0 else f"{base}[{k}]"


cdef cnp.ndarray _array(a, str name, dtype=None, tuple shape=None, bint output=False,
                        Py_ssize_t k=-1):
    """Check one array argument (entry k of a list argument when k >= 0, named so in the
    messages); `dtype=None` means: float32 or float64 (the reference dtype).

    The flags and the dtype are read through NumPy's C API, and messages are built only for
    an error: the optimizer calls these kernels on each parameter's arrays every step, mostly
    small ones, where Python attribute access (a.flags builds an object) cost more than the
    kernel."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"`{_entry_name(name, k)}` must be a numpy.ndarray; received {type(a).__name__}.")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    # An array's dtype is usually the very object np.dtype(np.float32) returns; equality
    # (byte order included) decides otherwise.
    descr = <object>cnp.PyArray_DESCR(arr)
    if dtype is None:
        if descr is not _FLOAT32 and descr is not _FLOAT64 and descr != _FLOAT32 and descr != _FLOAT64:
            raise TypeError(f"`{_entry_name(name, k)}` must have dtype float32 or float64; "
                            f"received dtype {a.dtype}.")
    elif descr is not dtype and descr != dtype:
        raise ValueError(f"`{_entry_name(name, k)}` must have dtype {dtype} (as the other arrays); "
                         f"received dtype {a.dtype}.")
    if shape is not None and a.shape != shape:
        raise ValueError(f"`{_entry_name(name, k)}` must have shape {shape} (as the other arrays); "
                         f"received {a.shape}.")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"`{_entry_name(name, k)}` must be C-contiguous.")
    if output and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"`{_entry_name(name, k)}` (an output) must be writeable.")
    return arr


cdef inline bint _bytes_overlap(const char *a0, const char *a1, const char *b0, const char *b1) noexcept nogil:
    """Whether the byte ranges [a0, a1) and [b0, b1) meet."""
    return a0 < b1 and b0 < a1


cdef bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether two C-contiguous arrays share bytes (their memory is exactly [data, data + nbytes))."""
    cdef char *a0 = <char *>cnp.PyArray_DATA(a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(b)
    return _bytes_overlap(a0, a0 + cnp.PyArray_NBYTES(a), b0, b0 + cnp.PyArray_NBYTES(b))


cdef _separate(cnp.ndarray out, str out_name, list others):
    """Refuse an output that overlaps another array argument."""
    for arr, name in others:
        if arr is not None and _overlap(out, arr):
            raise ValueError(f"`{out_name}` must not overlap `{name}`.")


cdef int _threads(num_threads) except -1:
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"`num_threads` must be a positive int; received {num_threads!r}.")
    return <int>min(num_threads, _MAX_THREADS)


cdef double _real(value, str name) except? -1.0:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"`{name}` must be a real number; received {value!r}.")
    return <double>value


cdef inline void *_data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


def relu_forward(x, out, num_threads):
    """out = numpy.maximum(x, 0) (NaN propagates, -0.0 becomes +0.0).

    Args:
        x: input, float32 or float64, C-contiguous, any shape.
        out: output, same dtype and shape; every element is written.
        num_threads: OpenMP threads (>= 1); the result does not depend on it.
    """
    cdef cnp.ndarray ax = _array(x, "x")
    cdef cnp.ndarray ao = _array(out, "out", ax.dtype, x.shape, output=True)
    _separate(ao, "out", [(ax, "x")])
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ax.size
    cdef void *px = _data(ax)
    cdef void *po = _data(ao)
    if ax.dtype == _FLOAT32:
        with nogil:
            fc_relu_forward_f32(<const float *>px, <float *>po, n, nt)
    else:
        with nogil:
            fc_relu_forward_f64(<const double *>px, <double *>po, n, nt)


def relu_backward(dy, x, threshold, dx, num_threads):
    """dx = dy * (x >= threshold), with `threshold` rounded to the arrays' dtype first.

    Args:
        dy: gradient of the output, float32 or float64, C-contiguous.
        x: the forward input, same dtype and shape.
        threshold: a real number.
        dx: output, same dtype and shape.
        num_threads: OpenMP threads (>= 1).
    """
    cdef cnp.ndarray ady = _array(dy, "dy")
    cdef cnp.ndarray ax = _array(x, "x", ady.dtype, dy.shape)
    cdef cnp.ndarray adx = _array(dx, "dx", ady.dtype, dy.shape, output=True)
    _separate(adx, "dx", [(ady, "dy"), (ax, "x")])
    cdef double t = _real(threshold, "threshold")
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ady.size
    cdef void *pdy = _data(ady)
    cdef void *px = _data(ax)
    cdef void *pdx = _data(adx)
    if ady.dtype == _FLOAT32:
        with nogil:
            fc_relu_backward_f32(<const float *>pdy, <const float *>px, <float>t, <float *>pdx, n, nt)
    else:
        with nogil:
            fc_relu_backward_f64(<const double *>pdy, <const double *>px, t, <double *>pdx, n, nt)


def leaky_relu_forward(x, negative_slope, out, num_threads):
    """out = x where x >= 0, else negative_slope * x (the slope rounded to x's dtype).

    Args:
        x: input, float32 or float64, C-contiguous, any shape.
        negative_slope: a real number.
        out: output, same dtype and shape.
        num_threads: OpenMP threads (>= 1).
    """
    cdef cnp.ndarray ax = _array(x, "x")
    cdef cnp.ndarray ao = _array(out, "out", ax.dtype, x.shape, output=True)
    _separate(ao, "out", [(ax, "x")])
    cdef double slope = _real(negative_slope, "negative_slope")
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ax.size
    cdef void *px = _data(ax)
    cdef void *po = _data(ao)
    if ax.dtype == _FLOAT32:
        with nogil:
            fc_leaky_relu_forward_f32(<const float *>px, <float>slope, <float *>po, n, nt)
    else:
        with nogil:
            fc_leaky_relu_forward_f64(<const double *>px, slope, <double *>po, n, nt)


def leaky_relu_backward(dy, x, negative_slope, dx, num_threads):
    """dx = dy where x >= 0, else negative_slope * dy (the slope rounded to the arrays' dtype).

    Args:
        dy: gradient of the output, float32 or float64, C-contiguous.
        x: the forward input, same dtype and shape.
        negative_slope: a real number.
        dx: output, same dtype and shape.
        num_threads: OpenMP threads (>= 1).
    """
    cdef cnp.ndarray ady = _array(dy, "dy")
    cdef cnp.ndarray ax = _array(x, "x", ady.dtype, dy.shape)
    cdef cnp.ndarray adx = _array(dx, "dx", ady.dtype, dy.shape, output=True)
    _separate(adx, "dx", [(ady, "dy"), (ax, "x")])
    cdef double slope = _real(negative_slope, "negative_slope")
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ady.size
    cdef void *pdy = _data(ady)
    cdef void *px = _data(ax)
    cdef void *pdx = _data(adx)
    if ady.dtype == _FLOAT32:
        with nogil:
            fc_leaky_relu_backward_f32(<const float *>pdy, <const float *>px, <float>slope,
                                       <float *>pdx, n, nt)
    else:
        with nogil:
            fc_leaky_relu_backward_f64(<const double *>pdy, <const double *>px, slope,
                                       <double *>pdx, n, nt)


def tanh_backward(dy, y, dx, num_threads):
    """dx = dy * (1 - y * y) for y = tanh(x).

    Args:
        dy: gradient of the output, float32 or float64, C-contiguous.
        y: the forward output, same dtype and shape.
        dx: output, same dtype and shape.
        num_threads: OpenMP threads (>= 1).
    """
    cdef cnp.ndarray ady = _array(dy, "dy")
    cdef cnp.ndarray ay = _array(y, "y", ady.dtype, dy.shape)
    cdef cnp.ndarray adx = _array(dx, "dx", ady.dtype, dy.shape, output=True)
    _separate(adx, "dx", [(ady, "dy"), (ay, "y")])
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ady.size
    cdef void *pdy = _data(ady)
    cdef void *py = _data(ay)
    cdef void *pdx = _data(adx)
    if ady.dtype == _FLOAT32:
        with nogil:
            fc_tanh_backward_f32(<const float *>pdy, <const float *>py, <float *>pdx, n, nt)
    else:
        with nogil:
            fc_tanh_backward_f64(<const double *>pdy, <const double *>py, <double *>pdx, n, nt)


def sigmoid_backward(dy, y, dx, num_threads):
    """dx = dy * y * (1 - y) for y = sigmoid(x).

    Args:
        dy, y, dx, num_threads: as in `tanh_backward`.
    """
    cdef cnp.ndarray ady = _array(dy, "dy")
    cdef cnp.ndarray ay = _array(y, "y", ady.dtype, dy.shape)
    cdef cnp.ndarray adx = _array(dx, "dx", ady.dtype, dy.shape, output=True)
    _separate(adx, "dx", [(ady, "dy"), (ay, "y")])
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ady.size
    cdef void *pdy = _data(ady)
    cdef void *py = _data(ay)
    cdef void *pdx = _data(adx)
    if ady.dtype == _FLOAT32:
        with nogil:
            fc_sigmoid_backward_f32(<const float *>pdy, <const float *>py, <float *>pdx, n, nt)
    else:
        with nogil:
            fc_sigmoid_backward_f64(<const double *>pdy, <const double *>py, <double *>pdx, n, nt)


# Adam's arrays in entry order, and the pairs that must not overlap: each output (param, m,
# v, v_hat) against every later array and the gradient.
_ADAM_NAMES = ("param", "grad", "m", "v", "v_hat")
cdef int _ADAM_PAIRS[10][2]
for _n, _pair in enumerate(((0, 1), (0, 2), (0, 3), (0, 4), (2, 1), (2, 3), (2, 4), (3, 1), (3, 4), (4, 1))):
    _ADAM_PAIRS[_n][0], _ADAM_PAIRS[_n][1] = _pair


cdef tuple _adam_entry(param, grad, m, v, v_hat, dtype, Py_ssize_t k):
    """Check one parameter's arrays (entry k of a list, or k = -1 for a single update);
    dtype None: the param's own (float32 or float64). Names go into messages only for an
    error, and the overlaps are compared in C: the optimizer checks every parameter's four
    arrays each step."""
    cdef cnp.ndarray ap = _array(param, "param", dtype, None, True, k)
    shape = param.shape
    cdef cnp.ndarray ag = _array(grad, "grad", ap.dtype, shape, False, k)
    cdef cnp.ndarray am = _array(m, "m", ap.dtype, shape, True, k)
    cdef cnp.ndarray av = _array(v, "v", ap.dtype, shape, True, k)
    cdef cnp.ndarray ah = None if v_hat is None else _array(v_hat, "v_hat", ap.dtype, shape, True, k)
    arrays = (ap, ag, am, av, ah)
    cdef char *lo[5]
    cdef char *hi[5]
    cdef bint present[5]
    cdef cnp.ndarray arr
    cdef int n, i, j
    for i in range(5):
        arr = arrays[i]
        present[i] = arr is not None
        if present[i]:
            lo[i] = <char *>cnp.PyArray_DATA(arr)
            hi[i] = lo[i] + cnp.PyArray_NBYTES(arr)
    for n in range(10):
        i, j = _ADAM_PAIRS[n][0], _ADAM_PAIRS[n][1]
        if present[i] and present[j] and _bytes_overlap(lo[i], hi[i], lo[j], hi[j]):
            raise ValueError(f"`{_entry_name(_ADAM_NAMES[i], k)}` must not overlap "
                             f"`{_entry_name(_ADAM_NAMES[j], k)}`.")
    return arrays


ctypedef struct _span:
    size_t start, stop
    int is_output
    Py_ssize_t k


cdef int _span_order(const void *a, const void *b) noexcept nogil:
    """By start, then stop, output flag and entry (the order of sorted (start, stop, ...) tuples)."""
    cdef const _span *s = <const _span *>a
    cdef const _span *t = <const _span *>b
    if s.start != t.start:
        return -1 if s.start < t.start else 1
    if s.stop != t.stop:
        return -1 if s.stop < t.stop else 1
    if s.is_output != t.is_output:
        return s.is_output - t.is_output
    return -1 if s.k < t.k else (1 if s.k > t.k else 0)


cdef _separate_entries(list entries):
    """Refuse an output of one entry that overlaps an array of another (the entries are
    updated concurrently): a sweep over the arrays' byte ranges sorted by start."""
    cdef Py_ssize_t count = len(entries), k, total = 0, s
    cdef _span *spans = <_span *>malloc(5 * count * sizeof(_span))
    if spans == NULL:
        raise MemoryError()
    cdef cnp.ndarray arr
    cdef int j
    for k in range(count):
        arrays = <tuple>entries[k]
        for j in range(5):
            arr = arrays[j]
            if arr is not None:
                spans[total].start = <size_t>cnp.PyArray_DATA(arr)
                spans[total].stop = spans[total].start + <size_t>cnp.PyArray_NBYTES(arr)
                spans[total].is_output = j != 1
                spans[total].k = k
                total += 1
    qsort(spans, total, sizeof(_span), _span_order)
    cdef size_t end_any = 0, end_out = 0
    cdef Py_ssize_t owner_any = -1, owner_out = -1, clash = -1
    for s in range(total):
        if spans[s].start == spans[s].stop:
            continue
        if ((spans[s].start < end_out and owner_out != spans[s].k)
                or (spans[s].is_output and spans[s].start < end_any and owner_any != spans[s].k)):
            clash = spans[s].k
            break
        if spans[s].stop > end_any:
            end_any, owner_any = spans[s].stop, spans[s].k
        if spans[s].is_output and spans[s].stop > end_out:
            end_out, owner_out = spans[s].stop, spans[s].k
    free(spans)
    if clash >= 0:
        raise ValueError("The parameters' arrays must not overlap each other "
                         f"(entry {clash} overlaps another entry).")


def adam_update_many(params, grads, ms, vs, v_hats, one_minus_beta_1, one_minus_beta_2, alpha,
                     epsilon, num_threads):
    """One Adam step on several parameters at once, in place: entry k updates params[k],
    ms[k], vs[k] (and v_hats[k]) from grads[k], exactly as `adam_update` would, but all
    entries run in one parallel region (an optimizer step over many small arrays).

    Args:
        params, grads, ms, vs: lists of the same length; entry k as `adam_update`'s param,
            grad, m, v. Every entry has the dtype of params[0]; no output array overlaps an
            array of another entry.
        v_hats: None, or a list of the running maxima (AMSGrad).
        one_minus_beta_1, one_minus_beta_2, alpha, epsilon, num_threads: as for `adam_update`.
    """
    for name, seq in (("params", params), ("grads", grads), ("ms", ms), ("vs", vs)):
        if type(seq) is not list:
            raise TypeError(f"`{name}` must be a list; received {type(seq).__name__}.")
    if v_hats is not None and type(v_hats) is not list:
        raise TypeError(f"`v_hats` must be None or a list; received {type(v_hats).__name__}.")
    cdef Py_ssize_t count = len(params)
    for name, seq in (("grads", grads), ("ms", ms), ("vs", vs), ("v_hats", v_hats)):
        if seq is not None and len(seq) != count:
            raise ValueError(f"`{name}` must have one entry per parameter ({count}); "
                             f"received {len(seq)}.")
    cdef double b1 = _real(one_minus_beta_1, "one_minus_beta_1")
    cdef double b2 = _real(one_minus_beta_2, "one_minus_beta_2")
    cdef double a = _real(alpha, "alpha")
    cdef double eps = _real(epsilon, "epsilon")
    cdef int nt = _threads(num_threads)
    if count == 0:
        return
    entries = []
    dtype = None
    for k in range(count):
        entry = _adam_entry(params[k], grads[k], ms[k], vs[k],
                            None if v_hats is None else v_hats[k], dtype, k)
        dtype = entry[0].dtype
        entries.append(entry)
    if count > 1:
        _separate_entries(entries)
    _run_adam(entries, v_hats is not None, b1, b2, a, eps, nt)


cdef _run_adam(list entries, bint amsgrad, double b1, double b2, double a, double eps, int nt):
    """The kernel call for checked entries (tuples of param, grad, m, v, v_hat arrays)."""
    cdef Py_ssize_t count = len(entries), k
    cdef void **ptrs = <void **>malloc(5 * count * sizeof(void *))
    cdef ptrdiff_t *sizes = <ptrdiff_t *>malloc(count * sizeof(ptrdiff_t))
    if ptrs == NULL or sizes == NULL:
        free(ptrs)
        free(sizes)
        raise MemoryError()
    cdef cnp.ndarray arr
    for k in range(count):
        for j in range(5):
            arr = entries[k][j] if j < 4 or amsgrad else None
            ptrs[j * count + k] = NULL if arr is None else _data(arr)
        sizes[k] = cnp.PyArray_SIZE(<cnp.ndarray>entries[k][0])
    cdef bint single = (<cnp.ndarray>entries[0][0]).dtype == _FLOAT32
    try:
        if single:
            with nogil:
                fc_adam_update_many_f32(count, <float **>ptrs, <const float **>(ptrs + count),
                                        <float **>(ptrs + 2 * count), <float **>(ptrs + 3 * count),
                                        <float **>(ptrs + 4 * count) if amsgrad else NULL, sizes,
                                        <float>b1, <float>b2, <float>a, <float>eps, nt)
        else:
            with nogil:
                fc_adam_update_many_f64(count, <double **>ptrs, <const double **>(ptrs + count),
                                        <double **>(ptrs + 2 * count), <double **>(ptrs + 3 * count),
                                        <double **>(ptrs + 4 * count) if amsgrad else NULL, sizes,
                                        b1, b2, a, eps, nt)
    finally:
        free(ptrs)
        free(sizes)


def adam_update(param, grad, m, v, v_hat, one_minus_beta_1, one_minus_beta_2, alpha, epsilon,
                num_threads):
    """One Adam step, in place on `param`, `m`, `v` (and `v_hat` for AMSGrad).

    The scalars are rounded to the arrays' dtype first, as NumPy does with Python floats.

    Args:
        param: the parameter, float32 or float64, C-contiguous, writeable.
        grad: its gradient, same dtype and shape.
        m, v: first and second moment estimates, same dtype and shape, writeable.
        v_hat: None, or the running maximum of v (AMSGrad), same dtype and shape.
        one_minus_beta_1, one_minus_beta_2: 1 - beta_1, 1 - beta_2.
        alpha: the step size with the bias correction folded in.
        epsilon: added to sqrt(v).
        num_threads: OpenMP threads (>= 1).
    """
    entry = _adam_entry(param, grad, m, v, v_hat, None, -1)
    cdef double b1 = _real(one_minus_beta_1, "one_minus_beta_1")
    cdef double b2 = _real(one_minus_beta_2, "one_minus_beta_2")
    cdef double a = _real(alpha, "alpha")
    cdef double eps = _real(epsilon, "epsilon")
    _run_adam([entry], v_hat is not None, b1, b2, a, eps, _threads(num_threads))


def sgd_update(param, grad, velocity, learning_rate, momentum, nesterov, num_threads):
    """One SGD step, in place on `param` (and `velocity`).

    Args:
        param: the parameter, float32 or float64, C-contiguous, writeable.
        grad: its gradient, same dtype and shape.
        velocity: None (plain SGD: param -= lr * grad) or the momentum buffer, same dtype and
            shape, writeable.
        learning_rate, momentum: real numbers (rounded to the arrays' dtype).
        nesterov: whether to apply Nesterov momentum.
        num_threads: OpenMP threads (>= 1).
    """
    cdef cnp.ndarray ap = _array(param, "param", None, None, True)
    cdef cnp.ndarray ag = _array(grad, "grad", ap.dtype, param.shape)
    cdef cnp.ndarray avel = None
    if velocity is not None:
        avel = _array(velocity, "velocity", ap.dtype, param.shape, output=True)
    _separate(ap, "param", [(ag, "grad"), (avel, "velocity")])
    if avel is not None:
        _separate(avel, "velocity", [(ag, "grad")])
    cdef double lr = _real(learning_rate, "learning_rate")
    cdef double mom = _real(momentum, "momentum")
    cdef int nest = 1 if nesterov else 0
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ap.size
    cdef void *pp = _data(ap)
    cdef void *pg = _data(ag)
    cdef void *pvel = NULL if avel is None else _data(avel)
    if ap.dtype == _FLOAT32:
        with nogil:
            fc_sgd_update_f32(<float *>pp, <const float *>pg, <float *>pvel, <float>lr,
                              <float>mom, nest, n, nt)
    else:
        with nogil:
            fc_sgd_update_f64(<double *>pp, <const double *>pg, <double *>pvel, lr, mom, nest,
                              n, nt)


def dropout_forward(x, bits, drop_below, scale, out, keep, num_threads):
    """Inverted dropout: keep = bits >= drop_below; out = x * (scale if keep else 0).

    Args:
        x: input, float32 or float64, C-contiguous.
        bits: uniform random uint32 of x's shape.
        drop_below: int in [0, 2**32]; 2**32 drops everything.
        scale: 1 / (1 - rate) (rounded to x's dtype).
        out: output, x's dtype and shape.
        keep: output, bool of x's shape.
        num_threads: OpenMP threads (>= 1).
    """
    cdef cnp.ndarray ax = _array(x, "x")
    cdef cnp.ndarray ab = _array(bits, "bits", _UINT32, x.shape)
    cdef cnp.ndarray ao = _array(out, "out", ax.dtype, x.shape, output=True)
    cdef cnp.ndarray ak = _array(keep, "keep", _BOOL, x.shape, output=True)
    _separate(ao, "out", [(ax, "x"), (ab, "bits"), (ak, "keep")])
    _separate(ak, "keep", [(ax, "x"), (ab, "bits")])
    if (isinstance(drop_below, bool) or not isinstance(drop_below, (int, np.integer))
            or not 0 <= drop_below <= _TWO_TO_32):
        raise ValueError(f"`drop_below` must be an int in [0, 2**32]; received {drop_below!r}.")
    cdef uint64_t thr = <uint64_t>drop_below
    cdef double s = _real(scale, "scale")
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ax.size
    cdef void *px = _data(ax)
    cdef void *pb = _data(ab)
    cdef void *po = _data(ao)
    cdef void *pk = _data(ak)
    if ax.dtype == _FLOAT32:
        with nogil:
            fc_dropout_forward_f32(<const float *>px, <const uint32_t *>pb, thr, <float>s,
                                   <float *>po, <uint8_t *>pk, n, nt)
    else:
        with nogil:
            fc_dropout_forward_f64(<const double *>px, <const uint32_t *>pb, thr, s,
                                   <double *>po, <uint8_t *>pk, n, nt)


def random_bits(seed, out, num_threads):
    """Fill the uint32 array `out` with counter-based random bits from the 64-bit `seed`
    (see fastconv.reference.random_bits for the definition).

    Args:
        seed: int in [0, 2**64).
        out: C-contiguous uint32 array, any shape.
        num_threads: OpenMP threads (>= 1).
    """
    if (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
            or not 0 <= seed < 2 ** 64):
        raise ValueError(f"`seed` must be an int in [0, 2**64); received {seed!r}.")
    cdef cnp.ndarray ao = _array(out, "out", _UINT32, None, output=True)
    cdef uint64_t s = <uint64_t>int(seed)
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ao.size
    cdef void *po = _data(ao)
    with nogil:
        fc_random_bits(s, <uint32_t *>po, n, nt)


def dropout_backward(dy, keep, scale, dx, num_threads):
    """dx = dy * (scale if keep else 0).

    Args:
        dy: gradient of the output, float32 or float64, C-contiguous.
        keep: bool of dy's shape (from `dropout_forward`).
        scale: 1 / (1 - rate) (rounded to dy's dtype).
        dx: output, dy's dtype and shape.
        num_threads: OpenMP threads (>= 1).
    """
    cdef cnp.ndarray ady = _array(dy, "dy")
    cdef cnp.ndarray ak = _array(keep, "keep", _BOOL, dy.shape)
    cdef cnp.ndarray adx = _array(dx, "dx", ady.dtype, dy.shape, output=True)
    _separate(adx, "dx", [(ady, "dy"), (ak, "keep")])
    cdef double s = _real(scale, "scale")
    cdef int nt = _threads(num_threads)
    cdef ptrdiff_t n = ady.size
    cdef void *pdy = _data(ady)
    cdef void *pk = _data(ak)
    cdef void *pdx = _data(adx)
    if ady.dtype == _FLOAT32:
        with nogil:
            fc_dropout_backward_f32(<const float *>pdy, <const uint8_t *>pk, <float>s,
                                    <float *>pdx, n, nt)
    else:
        with nogil:
            fc_dropout_backward_f64(<const double *>pdy, <const uint8_t *>pk, s, <double *>pdx,
                                    n, nt)


def sparse_softmax_crossentropy(logits, labels, grad):
    """Softmax crossentropy of integer labels from logits, and its gradient: returns (row,
    loss_sum). row is -1 when every label lies in [0, classes): grad (an output like logits)
    then holds the gradient of the mean loss with respect to the logits, and loss_sum the sum
    of the rows' losses (a float). Otherwise row is the first row whose label does not, and
    nothing was written.

    Args:
        logits: (rows, classes), float32 or float64, C-contiguous, rows and classes >= 1.
        labels: (rows,), int64, C-contiguous.
        grad: output, the dtype and shape of logits.
    """
    cdef cnp.ndarray az = _array(logits, "logits")
    if az.ndim != 2 or az.shape[0] < 1 or az.shape[1] < 1:
        raise ValueError(f"`logits` must have shape (rows, classes), both >= 1; received {logits.shape}.")
    cdef cnp.ndarray ag = _array(grad, "grad", az.dtype, logits.shape, output=True)
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"`labels` must be a numpy.ndarray; received {type(labels).__name__}.")
    cdef cnp.ndarray al = <cnp.ndarray>labels
    if labels.dtype != _INT64 or labels.shape != (logits.shape[0],) or not cnp.PyArray_IS_C_CONTIGUOUS(al):
        raise ValueError(f"`labels` must be a C-contiguous int64 array of shape ({logits.shape[0]},); "
                         f"received {labels.dtype} {labels.shape}.")
    _separate(ag, "grad", [(az, "logits"), (al, "labels")])
    cdef ptrdiff_t rows = az.shape[0], classes = az.shape[1], bad
    cdef double total = 0.0
    cdef void *z = _data(az)
    cdef void *lab = _data(al)
    cdef void *g = _data(ag)
    if az.dtype == _FLOAT32:
        with nogil:
            bad = fc_sparse_softmax_xent_f32(<const float *>z, <const int64_t *>lab, rows, classes,
                                             <float *>g, &total)
    else:
        with nogil:
            bad = fc_sparse_softmax_xent_f64(<const double *>z, <const int64_t *>lab, rows, classes,
                                             <double *>g, &total)
    return bad, total
