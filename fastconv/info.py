"""`fastconv.show_config()`: what this installation runs on."""
import platform
import sys

import numpy as np


def config_dict():
    """Version, build and run-time facts as a dict (what `show_config` prints)."""
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
    info.update({
        "compiler": cpu.compiler_info(),
        "openmp": "enabled" if cpu.openmp_enabled() else "DISABLED (single-threaded build)",
        "threads": get_num_threads(),
        "isa in use": cpu.isa_name(),
        "isa available": ", ".join(cpu.isa_available()),
    })
    try:
        from threadpoolctl import threadpool_info

        omp = [p for p in threadpool_info() if p.get("user_api") == "openmp"]
        if omp:
            info["openmp runtime"] = ", ".join(sorted({p["filepath"] for p in omp}))
    except ImportError:
        pass
    return info


def show_config(file=None):
    """Print fastconv's version, build compiler, OpenMP runtime, threads and ISA paths."""
    info = config_dict()
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}} : {value}", file=file or sys.stdout)
