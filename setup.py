"""Build the compiled core of fastconv.

Every ``src/fastconv/<name>.pyx`` becomes the extension module ``fastconv._core.<name>``,
linked with the C sources it lists in ``MODULE_SOURCES``. C files whose name ends in
``_avx2.c`` or ``_avx512.c`` are compiled with that ISA's flags only; everything else
is compiled for the baseline ISA, and the right kernels are chosen at run time
(``src/fastconv/kernels/dispatch.c``). Nothing is compiled with ``-march=native``.

OpenMP is detected with a test compile. Where it is missing, or with
``FASTCONV_NO_OPENMP=1``, the build succeeds single-threaded with a warning.

The modules are compiled against NumPy 2 headers with the C-API target set to NumPy 1.25,
so one wheel runs with NumPy 1.25+ and 2.x. Every build also writes
``fastconv/_core/_build_info.py`` (compiler, OpenMP flags, NumPy built against), which
``fastconv.show_config()`` prints.
"""
import copy
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import warnings
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = os.path.join("src", "fastconv")
KERNELS = os.path.join(SRC, "kernels")

# C sources linked into each extension module (besides its .pyx).
GEMM_SOURCES = [
    os.path.join(KERNELS, name)
    for name in ("dispatch.c", "gemm_generic.c", "gemm_avx2.c", "gemm_avx512.c")
]
MODULE_SOURCES = {
    "conv": GEMM_SOURCES + [os.path.join(KERNELS, "conv2d.c")],
    # The pooling kernels exist per ISA (pool2d_<isa>.c); pool2d.c picks one through dispatch.c.
    "pool": GEMM_SOURCES + [os.path.join(KERNELS, name) for name in (
        "pool2d.c", "pool2d_generic.c", "pool2d_avx2.c", "pool2d_avx512.c")],
    "batchnorm": GEMM_SOURCES + [os.path.join(KERNELS, name) for name in (
        "batchnorm.c", "batchnorm_generic.c", "batchnorm_avx2.c", "batchnorm_avx512.c")],
    "elementwise": [os.path.join(KERNELS, "elementwise.c")],
    "cpu": GEMM_SOURCES,
}

# Per-ISA flags, applied by file-name suffix (GCC/Clang and MSVC spellings).
ISA_FLAGS_UNIX = {
    "_avx2.c": ["-mavx2", "-mfma", "-mf16c"],
    "_avx512.c": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mfma", "-mavx2"],
}
ISA_FLAGS_MSVC = {"_avx2.c": ["/arch:AVX2"], "_avx512.c": ["/arch:AVX512"]}

# Oldest NumPy the compiled modules run with (their C-API target; keep in step with
# `dependencies` in pyproject.toml). Building against NumPy 2 with this target gives
# modules that import on NumPy 1.25+ and 2.x.
NUMPY_C_API_TARGET = ("1.25", "NPY_1_25_API_VERSION")


def _openmp_flags(compiler_type):
    """Return (compile_args, link_args) for OpenMP, or None when it is unavailable."""
    if os.environ.get("FASTCONV_NO_OPENMP", "") not in ("", "0"):
        return None
    if compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin":
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


def _compiles_with_openmp(compiler, flags):
    """Try to compile a tiny OpenMP program with the build's compiler and link it the way the
    extensions are linked: as a shared object, by the linker command that carries LDFLAGS (an
    executable is linked by the bare compiler without them, so a build with sanitizer CFLAGS
    and LDFLAGS failed this check and lost OpenMP)."""
    code = textwrap.dedent(
        """
        #include <omp.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            return n > 0 ? 0 : 1;
        }
        """
    )
    tmp = tempfile.mkdtemp(prefix="fastconv-omp-")
    try:
        src = os.path.join(tmp, "check_openmp.c")
        with open(src, "w") as f:
            f.write(code)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags[0])
        if compiler.compiler_type == "msvc":  # (no LDFLAGS there; as it always was)
            compiler.link_executable(objs, "check_openmp", output_dir=tmp, extra_postargs=flags[1])
        else:
            compiler.link_shared_object(objs, os.path.join(tmp, "check_openmp.so"),
                                        extra_postargs=flags[1])
        return True
    except Exception:  # any compile or link failure means: no OpenMP
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext with OpenMP detection, per-file ISA flags and a record of the build."""

    def finalize_options(self):
        super().finalize_options()
        # Compile the extension modules side by side (each is one compiler process at a time).
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self):
        super().run()
        self._write_build_info()

    def _write_build_info(self):
        """Record how the core was built, next to the modules (wheel, build dir, in-place)."""
        facts = getattr(self, "_fastconv_build_facts", None)
        if facts is None:  # nothing was (re)built: keep the existing record
            return
        text = (
            '"""How the compiled core was built (written by setup.py; not in git)."""\n'
            + "".join(f"{key} = {value!r}\n" for key, value in facts.items())
        )
        targets = {os.path.join(self.build_lib, "fastconv", "_core")}
        if self.inplace or self.editable_mode:
            targets.add(os.path.join("fastconv", "_core"))
        for folder in targets:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "_build_info.py"), "w") as f:
                f.write(text)

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        flags = _openmp_flags(ctype)
        if flags is not None and not _compiles_with_openmp(self.compiler, flags):
            flags = None
        if flags is None:
            msg = (
                "fastconv: building WITHOUT OpenMP; kernels will run single-threaded. "
                "Install an OpenMP runtime (libgomp / libomp) and rebuild for multithreading."
            )
            warnings.warn(msg)
            print("*" * 78 + "\n" + msg + "\n" + "*" * 78, file=sys.stderr)
            omp_compile, omp_link = [], []
        else:
            omp_compile, omp_link = flags
        if ctype == "msvc":
            base = ["/O2", "/fp:precise"]
            isa_flags = ISA_FLAGS_MSVC
        else:
            base = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-std=c99",
                    "-Wno-unused-function", "-Wno-unreachable-code"]
            isa_flags = ISA_FLAGS_UNIX
        for ext in self.extensions:
            ext.extra_compile_args = base + omp_compile + list(ext.extra_compile_args)
            ext.extra_link_args = omp_link + list(ext.extra_link_args)
            if flags is None:
                ext.define_macros.append(("FASTCONV_NO_OPENMP", "1"))
        self._fastconv_build_facts = {
            "compiler_type": ctype,
            "compile_args": base + omp_compile,
            "openmp_link_args": omp_link,
            "openmp": flags is not None,
            "numpy_build_version": np.__version__,
            "numpy_c_api_target": NUMPY_C_API_TARGET[0],
            "platform": sysconfig.get_platform(),
        }

        # Add the ISA flags to the files that ask for them, and only to those.
        original_compile = self.compiler._compile if hasattr(self.compiler, "_compile") else None
        is_x86 = _is_x86()

        # FASTCONV_PORTABLE_GENERIC=1 (tools/sanitize.sh): the generic path's files take the
        # plain-C kernels (FASTCONV_PORTABLE_C) instead of GCC vector extensions, so that tests
        # forcing FASTCONV_ISA=generic run the code other compilers build. Never for wheels.
        portable = os.environ.get("FASTCONV_PORTABLE_GENERIC", "") == "1"
        portable_flag = ["/DFASTCONV_PORTABLE_C"] if ctype == "msvc" else ["-DFASTCONV_PORTABLE_C"]

        if original_compile is not None:
            def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):
                extra = list(extra_postargs)
                for suffix, isa in isa_flags.items():
                    if src.endswith(suffix) and is_x86:
                        extra = extra + isa
                if portable and src.endswith("_generic.c"):
                    extra = extra + portable_flag
                return original_compile(obj, src, ext, cc_args, extra, pp_opts)

            self.compiler._compile = _compile
        super().build_extensions()

    def build_extension(self, ext):
        # The modules share kernel sources (the GEMM and dispatch files) and are built side by
        # side (self.parallel): in one build_temp, two compiler processes would write the same
        # object file at once and a module could link a half-written one. Each module gets its
        # own object folder, through a copy of this command (the threads share `self`).
        command = copy.copy(self)
        command.build_temp = os.path.join(self.build_temp, ext.name.rsplit(".", 1)[-1])
        build_ext.build_extension(command, ext)


def _is_x86():
    import platform

    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def extensions():
    # FASTCONV_BUILD_ONLY=conv,cpu builds a subset (for kernel development only).
    only = {n for n in os.environ.get("FASTCONV_BUILD_ONLY", "").split(",") if n}
    exts = []
    for pyx in sorted(glob(os.path.join(SRC, "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        exts.append(
            Extension(
                f"fastconv._core.{name}",
                sources=[pyx] + MODULE_SOURCES.get(name, []),
                include_dirs=[np.get_include(), SRC, KERNELS],
                # Rebuild when a kernel header changes (they hold templates included by the .c files).
                depends=sorted(glob(os.path.join(KERNELS, "*.h"))),
                define_macros=[
                    ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                    ("NPY_TARGET_VERSION", NUMPY_C_API_TARGET[1]),
                ],
            )
        )
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
