"""`fastconv.show_config()`: what this installation runs on."""
import os
import sys

import numpy as np

# Shared-library names of the OpenMP runtimes (GNU, LLVM, Intel, MSVC).
_OPENMP_LIBRARIES = ("libgomp", "libomp", "libiomp", "vcomp")


def _build_record():
    """The facts setup.py recorded at build time, or {} (e.g. a build from before it did)."""
    try:
        from ._core import _build_info
    except ImportError:
        return {}
    return {k: v for k, v in vars(_build_info).items() if not k.startswith("_")}


def _openmp_runtimes():
    """Paths (and versions) of the OpenMP runtimes loaded in this process, best effort.

    threadpoolctl knows every platform; without it, Linux's /proc/self/maps still tells.
    A wheel's runtime is the copy vendored into fastconv.libs/ (or .dylibs/ on macOS).
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        found = {}
        for pool in threadpool_info():
            if pool.get("user_api") == "openmp":
                version = pool.get("version")
                found[pool["filepath"]] = f" ({version})" if version else ""
        return [path + version for path, version in sorted(found.items())]
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if len(line.split()) >= 6}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.basename(p).startswith(_OPENMP_LIBRARIES))


def _keeps_freed_memory():
    """Whether the compiled backend told glibc to keep freed memory (see fastconv.ops)."""
    ops = sys.modules.get("fastconv.ops")
    if ops is None:
        return "not yet (the compiled kernels were not used)"
    return "yes (glibc)" if ops.KEEPS_FREED_MEMORY else "no"


def config_dict():
    """Version, build and run-time facts as a dict (what `show_config` prints)."""
    import platform  # here, not at module level: it costs `import fastconv` ~10 ms

    from . import __version__
    from .backend import get_backend, get_num_threads

    info = {
        "fastconv": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "backend": get_backend(),
    }
    try:
        from ._core import cpu
    except ImportError as exc:
        info["compiled core"] = f"NOT AVAILABLE ({exc})"
        return info
    build = _build_record()
    if "numpy_build_version" in build:
        info["numpy (built with)"] = (
            f"{build['numpy_build_version']}, C-API target {build['numpy_c_api_target']} "
            f"(runs with NumPy >= {build['numpy_c_api_target']})"
        )
    info.update({
        "compiler": cpu.compiler_info(),
        "openmp": "enabled" if cpu.openmp_enabled() else "DISABLED (single-threaded build)",
        "threads": get_num_threads(),
        "isa in use": cpu.isa_name(),
        "keeps freed memory": _keeps_freed_memory(),
        "isa available": ", ".join(cpu.isa_available()),
    })
    if cpu.openmp_enabled():
        info["openmp runtime"] = ", ".join(_openmp_runtimes()) or "unknown"
    return info


def show_config(file=None):
    """Print fastconv's version, build compiler, OpenMP runtime, threads and ISA paths.

    Args:
        file: where to print (default: `sys.stdout`).
    """
    info = config_dict()
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}} : {value}", file=file or sys.stdout)
