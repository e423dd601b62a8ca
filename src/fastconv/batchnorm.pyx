"""Compiled batch normalization over the rows of an (M, C) array (fastconv._core.batchnorm).

Called by `fastconv.ops`, which views (..., C) inputs as (M, C) rows; the semantics are those
of `fastconv.reference.normalization` (statistics per channel, biased variance). Every
function checks its arrays cheaply (ndarray, float32/float64 with one dtype for all,
C-contiguous, shapes consistent, outputs writeable and not overlapping the inputs), raising
TypeError/ValueError, then runs the C kernel (src/fastconv/kernels/batchnorm.c) without the
GIL. Outputs may be uninitialised (np.empty): the kernels write every element. Results are
bit-identical for any `num_threads`.
"""
import math

import numpy as np

cimport numpy as cnp
from libc.stddef cimport ptrdiff_t

cnp.import_array()

cdef extern from "batchnorm.h" nogil:
    int fc_batch_norm_forward_training_f32(const float *x, const float *gamma, const float *beta,
                                           double epsilon, float *y, float *mean, float *var,
                                           ptrdiff_t rows, ptrdiff_t cols, int nt)
    int fc_batch_norm_forward_training_f64(const double *x, const double *gamma,
                                           const double *beta, double epsilon, double *y,
                                           double *mean, double *var, ptrdiff_t rows,
                                           ptrdiff_t cols, int nt)
    int fc_batch_norm_forward_inference_f32(const float *x, const float *gamma, const float *beta,
                                            const float *mean, const float *var, double epsilon,
                                            float *y, ptrdiff_t rows, ptrdiff_t cols, int nt)
    int fc_batch_norm_forward_inference_f64(const double *x, const double *gamma,
                                            const double *beta, const double *mean,
                                            const double *var, double epsilon, double *y,
                                            ptrdiff_t rows, ptrdiff_t cols, int nt)
    int fc_batch_norm_backward_f32(const float *dy, const float *x, const float *gamma,
                                   const float *mean, const float *var, double epsilon,
                                   float *dx, float *dgamma, float *dbeta, ptrdiff_t rows,
                                   ptrdiff_t cols, int nt)
    int fc_batch_norm_backward_f64(const double *dy, const double *x, const double *gamma,
                                   const double *mean, const double *var, double epsilon,
                                   double *dx, double *dgamma, double *dbeta, ptrdiff_t rows,
                                   ptrdiff_t cols, int nt)

    int fc_batch_norm_relu_forward_training_f32(const float *x, const float *gamma,
                                                const float *beta, double epsilon, float *y,
                                                float *mean, float *var, ptrdiff_t rows,
                                                ptrdiff_t cols, int nt)
    int fc_batch_norm_relu_forward_training_f64(const double *x, const double *gamma,
                                                const double *beta, double epsilon, double *y,
                                                double *mean, double *var, ptrdiff_t rows,
                                                ptrdiff_t cols, int nt)
    int fc_batch_norm_relu_forward_inference_f32(const float *x, const float *gamma,
                                                 const float *beta, const float *mean,
                                                 const float *var, double epsilon, float *y,
                                                 ptrdiff_t rows, ptrdiff_t cols, int nt)
    int fc_batch_norm_relu_forward_inference_f64(const double *x, const double *gamma,
                                                 const double *beta, const double *mean,
                                                 const double *var, double epsilon, double *y,
                                                 ptrdiff_t rows, ptrdiff_t cols, int nt)
    int fc_batch_norm_relu_backward_f32(const float *dy, const float *x, const float *gamma,
                                        const float *beta, const float *mean, const float *var,
                                        double epsilon, float *dx, float *dgamma, float *dbeta,
                                        ptrdiff_t rows, ptrdiff_t cols, int nt)
    int fc_batch_norm_relu_backward_f64(const double *dy, const double *x, const double *gamma,
                                        const double *beta, const double *mean,
                                        const double *var, double epsilon, double *dx,
                                        double *dgamma, double *dbeta, ptrdiff_t rows,
                                        ptrdiff_t cols, int nt)
    int fc_batch_norm_relu_backward_inference_f32(const float *dy, const float *x,
                                                  const float *gamma, const float *beta,
                                                  const float *mean, const float *var,
                                                  double epsilon, const float *factor, float *dx,
                                                  ptrdiff_t rows, ptrdiff_t cols, int nt)
    int fc_batch_norm_relu_backward_inference_f64(const double *dy, const double *x,
                                                  const double *gamma, const double *beta,
                                                  const double *mean, const double *var,
                                                  double epsilon, const double *factor,
                                                  double *dx, ptrdiff_t rows, ptrdiff_t cols,
                                                  int nt)

cdef extern from "batchnorm.h":
    ptrdiff_t FC_STREAM_MIN_BYTES
    ptrdiff_t fc_batch_norm_set_stream_min_bytes(ptrdiff_t nbytes)

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
    """Outputs of at least `nbytes` bytes (None: the default, 16 MiB) whose rows are whole
    64-byte lines are written with non-temporal stores (the same values; see batchnorm.h).
    For tests (0: every such output) and benchmarks; returns the previous threshold."""
    return fc_batch_norm_set_stream_min_bytes(FC_STREAM_MIN_BYTES if nbytes is None else nbytes)

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
# More threads than this only idle (and could exhaust the process); results do not change.
_MAX_THREADS = 512


def _rows_array(x, str name):
    """Check the (M, C) data array; it fixes the dtype of all the others."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray; received {type(x).__name__}.")
    if x.dtype != _FLOAT32 and x.dtype != _FLOAT64:
        raise TypeError(f"`{name}` must have dtype float32 or float64; received dtype {x.dtype}.")
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array (rows, channels); received shape {x.shape}.")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"`{name}` must not have empty axes; received shape {x.shape}.")
    if not x.flags.c_contiguous:
        raise ValueError(f"`{name}` must be C-contiguous.")
    return x


def _like(a, str name, tuple shape, dtype, bint output=False):
    """Check an array that must have the given shape and dtype."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray; received {type(a).__name__}.")
    if a.dtype != dtype:
        raise ValueError(f"`{name}` must have the same dtype as x ({dtype}); received dtype {a.dtype}.")
    if a.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}; received shape {a.shape}.")
    if not a.flags.c_contiguous:
        raise ValueError(f"`{name}` must be C-contiguous.")
    if output and not a.flags.writeable:
        raise ValueError(f"`{name}` (an output) must be writeable.")
    return a


cdef bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether two C-contiguous arrays share bytes (their memory is exactly [data, data + nbytes))."""
    cdef char *a0 = <char *>cnp.PyArray_DATA(a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(b)
    return a0 < b0 + cnp.PyArray_NBYTES(b) and b0 < a0 + cnp.PyArray_NBYTES(a)


def _separate(outputs, inputs):
    """Refuse outputs that overlap an input or each other: the kernels read while they write."""
    for i, (out, out_name) in enumerate(outputs):
        for arr, name in list(inputs) + list(outputs[i + 1:]):
            if _overlap(out, arr):
                raise ValueError(f"`{out_name}` must not overlap `{name}`.")


def _epsilon(epsilon):
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.integer, np.floating)):
        raise TypeError(f"`epsilon` must be a number; received {epsilon!r}.")
    eps = float(epsilon)
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"`epsilon` must be a positive finite number; received {epsilon!r}.")
    return eps


def _threads(num_threads):
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"`num_threads` must be a positive int; received {num_threads!r}.")
    return int(min(num_threads, _MAX_THREADS))


cdef inline void *_data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


def batch_norm_forward_training(x, gamma, beta, epsilon, y, mean, var, num_threads):
    """Batch norm with batch statistics: fill y, mean and the biased variance var.

    Args:
        x: input rows, (M, C), float32 or float64, C-contiguous.
        gamma, beta: (C,) scale and offset, same dtype.
        epsilon: positive number added to the variance.
        y: output, (M, C), or None for the statistics only. mean, var: outputs, (C,).
        num_threads: OpenMP threads (>= 1); the results do not depend on it.

    Raises:
        MemoryError: if the kernel's scratch memory cannot be allocated.
    """
    _forward_training(x, gamma, beta, epsilon, y, mean, var, num_threads, False)


def batch_norm_relu_forward_training(x, gamma, beta, epsilon, y, mean, var, num_threads):
    """`batch_norm_forward_training` followed by a ReLU in the same pass: y = max(bn(x), 0).

    The values are those of the plain kernel passed through `elementwise.relu_forward`, bit
    for bit; mean and var are the same. Arguments as `batch_norm_forward_training`.
    """
    _forward_training(x, gamma, beta, epsilon, y, mean, var, num_threads, True)


def _forward_training(x, gamma, beta, epsilon, y, mean, var, num_threads, bint relu):
    """Check the arguments and run the training forward kernel (with relu: fused ReLU)."""
    _rows_array(x, "x")
    dt = x.dtype
    cdef ptrdiff_t rows = x.shape[0], cols = x.shape[1]
    channel = (cols,)
    _like(gamma, "gamma", channel, dt)
    _like(beta, "beta", channel, dt)
    if y is not None:
        _like(y, "y", x.shape, dt, output=True)
    _like(mean, "mean", channel, dt, output=True)
    _like(var, "var", channel, dt, output=True)
    _separate([(mean, "mean"), (var, "var")] + ([] if y is None else [(y, "y")]),
              [(x, "x"), (gamma, "gamma"), (beta, "beta")])
    cdef double eps = _epsilon(epsilon)
    cdef int nt = _threads(num_threads)
    cdef void *px = _data(x)
    cdef void *pg = _data(gamma)
    cdef void *pb = _data(beta)
    cdef void *py = NULL if y is None else _data(y)
    cdef void *pm = _data(mean)
    cdef void *pv = _data(var)
    cdef int status
    if dt == _FLOAT32 and relu:
        with nogil:
            status = fc_batch_norm_relu_forward_training_f32(
                <const float *>px, <const float *>pg, <const float *>pb, eps, <float *>py,
                <float *>pm, <float *>pv, rows, cols, nt)
    elif dt == _FLOAT32:
        with nogil:
            status = fc_batch_norm_forward_training_f32(
                <const float *>px, <const float *>pg, <const float *>pb, eps, <float *>py,
                <float *>pm, <float *>pv, rows, cols, nt)
    elif relu:
        with nogil:
            status = fc_batch_norm_relu_forward_training_f64(
                <const double *>px, <const double *>pg, <const double *>pb, eps, <double *>py,
                <double *>pm, <double *>pv, rows, cols, nt)
    else:
        with nogil:
            status = fc_batch_norm_forward_training_f64(
                <const double *>px, <const double *>pg, <const double *>pb, eps, <double *>py,
                <double *>pm, <double *>pv, rows, cols, nt)
    if status != 0:
        raise MemoryError("batch_norm_forward_training: could not allocate its scratch memory.")


def batch_norm_forward_inference(x, gamma, beta, mean, var, epsilon, y, num_threads):
    """Batch norm with given statistics: y = (x - mean) / sqrt(var + epsilon) * gamma + beta.

    Args:
        x: input rows, (M, C). gamma, beta, mean, var: (C,). epsilon: positive number.
        y: output, (M, C). num_threads: OpenMP threads (>= 1).
    """
    _forward_inference(x, gamma, beta, mean, var, epsilon, y, num_threads, False)


def batch_norm_relu_forward_inference(x, gamma, beta, mean, var, epsilon, y, num_threads):
    """`batch_norm_forward_inference` followed by a ReLU in the same pass (same bits as the
    two kernels in turn). Arguments as `batch_norm_forward_inference`."""
    _forward_inference(x, gamma, beta, mean, var, epsilon, y, num_threads, True)


def _forward_inference(x, gamma, beta, mean, var, epsilon, y, num_threads, bint relu):
    _rows_array(x, "x")
    dt = x.dtype
    cdef ptrdiff_t rows = x.shape[0], cols = x.shape[1]
    channel = (cols,)
    _like(gamma, "gamma", channel, dt)
    _like(beta, "beta", channel, dt)
    _like(mean, "mean", channel, dt)
    _like(var, "var", channel, dt)
    _like(y, "y", x.shape, dt, output=True)
    _separate([(y, "y")], [(x, "x"), (gamma, "gamma"), (beta, "beta"), (mean, "mean"), (var, "var")])
    cdef double eps = _epsilon(epsilon)
    cdef int nt = _threads(num_threads)
    cdef void *px = _data(x)
    cdef void *pg = _data(gamma)
    cdef void *pb = _data(beta)
    cdef void *pm = _data(mean)
    cdef void *pv = _data(var)
    cdef void *py = _data(y)
    cdef int status
    if dt == _FLOAT32 and relu:
        with nogil:
            status = fc_batch_norm_relu_forward_inference_f32(
                <const float *>px, <const float *>pg, <const float *>pb, <const float *>pm,
                <const float *>pv, eps, <float *>py, rows, cols, nt)
    elif dt == _FLOAT32:
        with nogil:
            status = fc_batch_norm_forward_inference_f32(
                <const float *>px, <const float *>pg, <const float *>pb, <const float *>pm,
                <const float *>pv, eps, <float *>py, rows, cols, nt)
    elif relu:
        with nogil:
            status = fc_batch_norm_relu_forward_inference_f64(
                <const double *>px, <const double *>pg, <const double *>pb, <const double *>pm,
                <const double *>pv, eps, <double *>py, rows, cols, nt)
    else:
        with nogil:
            status = fc_batch_norm_forward_inference_f64(
                <const double *>px, <const double *>pg, <const double *>pb, <const double *>pm,
                <const double *>pv, eps, <double *>py, rows, cols, nt)
    if status != 0:
        raise MemoryError("batch_norm_forward_inference: could not allocate its scratch memory.")


def batch_norm_backward(dy, x, gamma, mean, var, epsilon, dx, dgamma, dbeta, num_threads):
    """Gradients of training-mode batch norm whose batch statistics were mean/var.

    Args:
        dy: gradient of y, (M, C). x: the forward input, (M, C).
        gamma, mean, var: (C,). epsilon: positive number.
        dx: output, (M, C). dgamma, dbeta: outputs, (C,).
        num_threads: OpenMP threads (>= 1); the results do not depend on it.
    """
    _backward(dy, x, gamma, None, mean, var, epsilon, dx, dgamma, dbeta, num_threads,
              "batch_norm_backward")


def batch_norm_relu_backward(dy, x, gamma, beta, mean, var, epsilon, dx, dgamma, dbeta,
                             num_threads):
    """Gradients of relu(training-mode batch norm) whose batch statistics were mean/var.

    The ReLU's mask is recomputed from x with the forward's arithmetic, so the results equal
    `elementwise.relu_backward` of the forward's batch-norm output followed by
    `batch_norm_backward`, bit for bit, without the masked gradient being written.

    Args:
        dy: gradient of the ReLU's output, (M, C). x: the batch norm's input, (M, C).
        gamma, beta, mean, var: (C,), as in the forward. epsilon: positive number.
        dx: output, (M, C). dgamma, dbeta: outputs, (C,).
        num_threads: OpenMP threads (>= 1); the results do not depend on it.
    """
    _backward(dy, x, gamma, beta, mean, var, epsilon, dx, dgamma, dbeta, num_threads,
              "batch_norm_relu_backward")


def _backward(dy, x, gamma, beta, mean, var, epsilon, dx, dgamma, dbeta, num_threads, str what):
    """Check the arguments and run the backward kernel: of relu(batch norm) when beta is given,
    of the plain batch norm when it is None."""
    _rows_array(x, "x")
    dt = x.dtype
    cdef ptrdiff_t rows = x.shape[0], cols = x.shape[1]
    channel = (cols,)
    _like(dy, "dy", x.shape, dt)
    inputs = [(dy, "dy"), (x, "x"), (gamma, "gamma")] + ([] if beta is None else [(beta, "beta")])
    inputs += [(mean, "mean"), (var, "var")]
    for arr, name in inputs[2:]:
        _like(arr, name, channel, dt)
    _like(dx, "dx", x.shape, dt, output=True)
    _like(dgamma, "dgamma", channel, dt, output=True)
    _like(dbeta, "dbeta", channel, dt, output=True)
    _separate([(dx, "dx"), (dgamma, "dgamma"), (dbeta, "dbeta")], inputs)
    cdef double eps = _epsilon(epsilon)
    cdef int nt = _threads(num_threads)
    cdef void *pdy = _data(dy)
    cdef void *px = _data(x)
    cdef void *pg = _data(gamma)
    cdef void *pb = NULL if beta is None else _data(beta)  # NULL: the plain backward
    cdef void *pm = _data(mean)
    cdef void *pv = _data(var)
    cdef void *pdx = _data(dx)
    cdef void *pdg = _data(dgamma)
    cdef void *pdb = _data(dbeta)
    cdef int status
    if dt == _FLOAT32:
        with nogil:
            status = fc_batch_norm_relu_backward_f32(
                <const float *>pdy, <const float *>px, <const float *>pg, <const float *>pb,
                <const float *>pm, <const float *>pv, eps, <float *>pdx, <float *>pdg,
                <float *>pdb, rows, cols, nt)
    else:
        with nogil:
            status = fc_batch_norm_relu_backward_f64(
                <const double *>pdy, <const double *>px, <const double *>pg,
                <const double *>pb, <const double *>pm, <const double *>pv, eps,
                <double *>pdx, <double *>pdg, <double *>pdb, rows, cols, nt)
    if status != 0:
        raise MemoryError(f"{what}: could not allocate its scratch memory.")


def batch_norm_relu_backward_inference(dy, x, gamma, beta, mean, var, epsilon, factor, dx,
                                       num_threads):
    """dx of relu(batch norm with given statistics) for a frozen layer in training:
    (dy * (z >= 0)) * factor, z = `batch_norm_forward_inference`'s value recomputed from x.

    Equals `elementwise.relu_backward(dy, z)` times factor in NumPy, bit for bit.

    Args:
        dy: gradient of the ReLU's output, (M, C). x: the batch norm's input, (M, C).
        gamma, beta, mean, var: (C,), as in the forward. epsilon: positive number.
        factor: (C,), the layer's gamma / sqrt(var + epsilon). dx: output, (M, C).
        num_threads: OpenMP threads (>= 1); the results do not depend on it.
    """
    _rows_array(x, "x")
    dt = x.dtype
    cdef ptrdiff_t rows = x.shape[0], cols = x.shape[1]
    channel = (cols,)
    _like(dy, "dy", x.shape, dt)
    for arr, name in ((gamma, "gamma"), (beta, "beta"), (mean, "mean"), (var, "var"),
                      (factor, "factor")):
        _like(arr, name, channel, dt)
    _like(dx, "dx", x.shape, dt, output=True)
    _separate([(dx, "dx")], [(dy, "dy"), (x, "x"), (gamma, "gamma"), (beta, "beta"),
                             (mean, "mean"), (var, "var"), (factor, "factor")])
    cdef double eps = _epsilon(epsilon)
    cdef int nt = _threads(num_threads)
    cdef void *pdy = _data(dy)
    cdef void *px = _data(x)
    cdef void *pg = _data(gamma)
    cdef void *pb = _data(beta)
    cdef void *pm = _data(mean)
    cdef void *pv = _data(var)
    cdef void *pf = _data(factor)
    cdef void *pdx = _data(dx)
    cdef int status
    if dt == _FLOAT32:
        with nogil:
            status = fc_batch_norm_relu_backward_inference_f32(
                <const float *>pdy, <const float *>px, <const float *>pg, <const float *>pb,
                <const float *>pm, <const float *>pv, eps, <const float *>pf, <float *>pdx,
                rows, cols, nt)
    else:
        with nogil:
            status = fc_batch_norm_relu_backward_inference_f64(
                <const double *>pdy, <const double *>px, <const double *>pg,
                <const double *>pb, <const double *>pm, <const double *>pv, eps,
                <const double *>pf, <double *>pdx, rows, cols, nt)
    if status != 0:
        raise MemoryError(
            "batch_norm_relu_backward_inference: could not allocate its scratch memory.")
