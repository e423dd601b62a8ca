"""What the compiled core runs on: OpenMP threads, the instruction-set path, the compiler.

The ISA path is chosen once, at import, from what the CPU and the OS support; the
environment variable FASTCONV_ISA=generic|avx2|avx512 forces one ("auto" or unset: the
best). An unknown value raises ValueError and a path this machine (or this build) cannot
run raises RuntimeError when the module is imported: a forced path is never silently
replaced by another one.
"""

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
    """
    int fc_cpu_omp_max_threads()
    int fc_cpu_openmp_version()
    const char *fc_cpu_compiler()


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


_check_dispatch()
