"""What the compiled core runs on: OpenMP threads, the instruction-set path, the compiler.

The ISA path is chosen once, at import, from what the CPU and the OS support; the
environment variable FASTCONV_ISA=generic|avx2|avx512 forces one ("auto" or unset: the
best). An unknown value raises ValueError and a path this machine (or this build) cannot
run raises RuntimeError when the module is imported: a forced path is never silently
replaced by another one.
"""

import operator

import numpy as np

cimport numpy as cnp
from cpython.object cimport PyObject, PyTypeObject
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.ref cimport Py_INCREF

cnp.import_array()

cdef extern from "dispatch.h":
    int FC_ISA_COUNT
    int FC_DISPATCH_OK
    int FC_DISPATCH_BAD_NAME
    int FC_DISPATCH_UNSUPPORTED
    int fc_dispatch_init()
    int fc_isa_selected()
    int fc_isa_supported(int isa)
    const char *fc_isa_name(int isa)
    const char *fc_isa_requested()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fc_cpu_omp_max_threads(void) { return omp_get_max_threads(); }
    static int fc_cpu_openmp_version(void) { return _OPENMP; }
    #else
    static int fc_cpu_omp_max_threads(void) { return 1; }
    static int fc_cpu_openmp_version(void) { return 0; }
    #endif
    #if defined(__clang__)
    #define FC_CPU_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define FC_CPU_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define FC_CPU_COMPILER_STR2(x) #x
    #define FC_CPU_COMPILER_STR(x) FC_CPU_COMPILER_STR2(x)
    #define FC_CPU_COMPILER "msvc " FC_CPU_COMPILER_STR(_MSC_FULL_VER)
    #else
    #define FC_CPU_COMPILER "unknown compiler"
    #endif
    static const char *fc_cpu_compiler(void) { return FC_CPU_COMPILER; }
    #include <stdlib.h> /* defines __GLIBC__ on glibc */
    #if defined(__GLIBC__)
    #include <malloc.h>
    static int fc_cpu_keep_freed_memory(int trim_bytes, int mmap_bytes)
    {
        return mallopt(M_TRIM_THRESHOLD, trim_bytes) == 1 && mallopt(M_MMAP_THRESHOLD, mmap_bytes) == 1;
    }
    #else
    static int fc_cpu_keep_freed_memory(int trim_bytes, int mmap_bytes)
    {
        (void)trim_bytes; (void)mmap_bytes;
        return 0;
    }
    #endif
    """
    int fc_cpu_omp_max_threads()
    int fc_cpu_openmp_version()
    const char *fc_cpu_compiler()
    int fc_cpu_keep_freed_memory(int trim_bytes, int mmap_bytes)


cdef extern from *:
    """
    #include "kernel_common.h"
    /* Test hook of the kernels' shared loops (fc_share): a team of `threads` takes the items
     * [0, items) `chunk` at a time, with the given patience (FC_SHARE_EAGER / _PATIENT);
     * owner[i] gets the number of the thread that took item i and claims[i] counts the takes. Thread `stalled` (if any: -1 none) starts only once every
     * other thread has found nothing left, so the others must have drained its block. */
    static void fc_cpu_share_claims(ptrdiff_t items, int threads, ptrdiff_t chunk, double patience,
                                    int stalled, int *owner, int *claims)
    {
        fc_share share;
        ptrdiff_t finished = 0;
        fc_share_init(&share, items, threads, chunk, patience);
    #ifdef _OPENMP
    #pragma omp parallel num_threads(threads)
    #endif
        {
    #ifdef _OPENMP
            const int me = omp_get_thread_num(), team = omp_get_num_threads();
    #else
            const int me = 0, team = 1;
    #endif
            if (me == stalled)
                while (fc_share_load(&finished) < team - 1) fc_spin_pause();
            FC_SHARE_FOR(&share, item) {
                owner[item] = me;
    #ifdef _OPENMP
    #pragma omp atomic
    #endif
                claims[item]++;
            }
            if (me != stalled) fc_share_fetch_add(&finished, 1);
        }
    }
    """
    void fc_cpu_share_claims(Py_ssize_t items, int threads, Py_ssize_t chunk, double patience,
                             int stalled, int *owner, int *claims) nogil


cdef extern from *:
    """
    #include <math.h>
    /* Mean round trip (seconds) of a cache line bounced `rounds` times between the two threads
     * of an OpenMP team: ~60-90 ns when the two CPUs share an L3, ~330 ns across L3s
     * (a host may move a VM's vCPUs between the two). NAN without two threads. */
    static double fc_cpu_round_trip(long rounds)
    {
        double seconds = NAN;
    #if defined(_OPENMP)
        FC_LINE_ALIGNED ptrdiff_t line[64 / sizeof(ptrdiff_t)]; /* the flag alone on its line */
        ptrdiff_t *flag = line;
        *flag = 0;
    #pragma omp parallel num_threads(2)
        {
            if (omp_get_num_threads() == 2) {
                const int me = omp_get_thread_num();
                const ptrdiff_t last = 2 * (ptrdiff_t)rounds; /* (private: off the flag's line) */
    #pragma omp barrier
                const double t0 = omp_get_wtime();
                for (ptrdiff_t v = me; v < last; v += 2) { /* thread 0 writes odd values, 1 even */
                    while (fc_share_load(flag) != v) fc_spin_pause();
                    fc_share_store(flag, v + 1);
                }
                if (me == 0) seconds = (omp_get_wtime() - t0) / (double)rounds;
            }
        }
    #else
        (void)rounds;
    #endif
        return seconds;
    }
    """
    double fc_cpu_round_trip(long rounds) nogil


def _names():
    return [fc_isa_name(i).decode() for i in range(FC_ISA_COUNT)]


def _check_dispatch():
    """Resolve the ISA path; raise if FASTCONV_ISA asks for something impossible."""
    status = fc_dispatch_init()
    if status == FC_DISPATCH_OK:
        return
    requested = fc_isa_requested().decode(errors="replace")
    if status == FC_DISPATCH_BAD_NAME:
        raise ValueError(
            f"FASTCONV_ISA must be one of {_names()} or 'auto' (or unset); received {requested!r}."
        )
    raise RuntimeError(
        f"FASTCONV_ISA={requested!r} forces an instruction set this CPU, OS or build does not "
        f"support; available here: {isa_available()}. Unset FASTCONV_ISA to use the best one."
    )


def _share_claims(Py_ssize_t items, int threads, Py_ssize_t chunk, double patience=0.0,
                  int stalled=-1):
    """(owner, claims) of a shared loop's items (a test hook: see fc_cpu_share_claims)."""
    if items < 0 or threads < 1 or chunk < 1 or patience < 0 or stalled >= threads:
        raise ValueError("items >= 0, threads >= 1, chunk >= 1, patience >= 0 and stalled < threads "
                         "expected.")
    cdef int[::1] owner = np.full(items, -1, np.intc)
    cdef int[::1] claims = np.zeros(items, np.intc)
    with nogil:
        fc_cpu_share_claims(items, threads, chunk, patience, stalled, &owner[0] if items else NULL,
                            &claims[0] if items else NULL)
    return np.asarray(owner), np.asarray(claims)


def core_round_trip_ns(long rounds=5000):
    """Nanoseconds a cache line takes to go to another OpenMP thread and back (mean of `rounds`),
    NaN without OpenMP. Tells whether the two CPUs share an L3: see docs/performance.md."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1; received {rounds}.")
    cdef double seconds
    with nogil:
        seconds = fc_cpu_round_trip(rounds)
    return seconds * 1e9


def omp_max_threads():
    """OpenMP's default number of threads (omp_get_max_threads()), 1 without OpenMP."""
    return max(1, fc_cpu_omp_max_threads())


def openmp_enabled():
    """True if the compiled core was built with OpenMP."""
    return fc_cpu_openmp_version() != 0


def isa_name():
    """The instruction-set path the kernels use: "avx512", "avx2" or "generic"."""
    return fc_isa_name(fc_isa_selected()).decode()


def isa_available():
    """Paths this CPU + OS + build can run, best first (always ends with "generic")."""
    return [fc_isa_name(i).decode() for i in range(FC_ISA_COUNT - 1, -1, -1) if fc_isa_supported(i)]


def compiler_info():
    """The compiler (and OpenMP version) the compiled core was built with."""
    omp = fc_cpu_openmp_version()
    text = fc_cpu_compiler().decode(errors="replace")
    return f"{text}, OpenMP {omp}" if omp else f"{text}, no OpenMP"


def keep_freed_memory(int trim_mib=256, int mmap_mib=32):
    """Let glibc keep freed memory for reuse instead of handing it back to the OS.

    A training step allocates and frees the same activation-sized arrays every step. By
    default glibc returns freed heap memory above a threshold that adapts to the largest
    block (and serves blocks above another from fresh mmaps), so every step faults its
    arrays back in and the kernel zeroes their pages again (~10% of an MNIST-CNN step on
    2 threads). This sets M_TRIM_THRESHOLD to `trim_mib` MiB and M_MMAP_THRESHOLD to
    `mmap_mib` MiB (glibc's largest), for the whole process. Returns True if glibc took
    both; False where the C library is not glibc (nothing changes).
    """
    if not 0 < trim_mib <= 2047 or not 0 < mmap_mib <= 32:
        raise ValueError(f"trim_mib must be in 1..2047 and mmap_mib in 1..32; received "
                         f"{trim_mib}, {mmap_mib}.")
    return bool(fc_cpu_keep_freed_memory(trim_mib << 20, mmap_mib << 20))


cdef extern from "numpy/arrayobject.h":
    PyTypeObject PyArray_Type
    # (not in NumPy's .pxd; steals the reference to descr)
    object fc_new_from_descr "PyArray_NewFromDescr" (PyTypeObject *subtype, cnp.dtype descr, int nd,
                                                      cnp.npy_intp *dims, cnp.npy_intp *strides,
                                                      void *data, int flags, PyObject *obj)

cdef enum:
    _LINE = 64  # empty_aligned's data alignment: a cache line (and an AVX-512 vector)
    _MAX_DIMS = 32
    _SMALL = 4096  # arrays below this many bytes: NumPy's own buffer (one allocation, not two)


def empty_aligned(shape, dtype):
    """`np.empty(shape, dtype)` (C order) whose data starts on a 64-byte cache line.

    NumPy's own buffers start 16 bytes into a line, so every other 32-byte vector a kernel
    stores into them straddles two lines (a split store; the 64x28x28x64 -> 128 pointwise
    forward on one thread: 10.5 -> 9.1 ms with its output aligned). The array is a view of
    a slightly larger uint8 buffer (its `.base`); below 4 KiB, a plain NumPy array.
    """
    cdef cnp.dtype descr = np.dtype(dtype)
    cdef cnp.npy_intp dims[_MAX_DIMS]
    cdef Py_ssize_t nd, i, nbytes = descr.itemsize
    try:
        shape = tuple(shape)
    except TypeError:  # one size: an int, or an integer-like scalar (np.int64) as np.empty takes
        shape = (operator.index(shape),)
    nd = len(shape)
    if nd > _MAX_DIMS:
        raise ValueError(f"shape must have at most {_MAX_DIMS} dimensions; received {nd}.")
    for i in range(nd):
        dims[i] = shape[i]
        if dims[i] < 0:
            raise ValueError(f"shape must hold non-negative sizes; received {shape}.")
        if dims[i] > 0 and nbytes > (PY_SSIZE_T_MAX - _LINE) // dims[i]:
            raise MemoryError(f"an array of shape {shape} and dtype {descr} is too large.")
        nbytes *= dims[i]
    Py_INCREF(descr)  # taken by PyArray_NewFromDescr
    if nbytes < _SMALL:
        return fc_new_from_descr(&PyArray_Type, descr, <int>nd, dims, NULL, NULL, 0, NULL)
    cdef cnp.npy_intp raw_len = nbytes + _LINE - 1
    cdef cnp.ndarray raw = cnp.PyArray_EMPTY(1, &raw_len, cnp.NPY_UINT8, 0)
    cdef char *data = <char *>cnp.PyArray_DATA(raw)
    data += (-<size_t>data) & (_LINE - 1)
    arr = fc_new_from_descr(&PyArray_Type, descr, <int>nd, dims, NULL, data,
                            cnp.NPY_ARRAY_CARRAY, NULL)
    cnp.set_array_base(arr, raw)
    return arr


_check_dispatch()
