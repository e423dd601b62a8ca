"""fastconv._core.cpu: OpenMP threads, the run-time ISA dispatch and FASTCONV_ISA.

Forcing a path runs in a subprocess (the path is chosen once, at import).
"""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv._core import cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
ALL_PATHS = ["avx512", "avx2", "generic"]  # best first


def _run(code, isa=None, **extra_env):
    env = dict(os.environ, PYTHONPATH=ROOT, **extra_env)
    env.pop("FASTCONV_ISA", None)
    if isa is not None:
        env["FASTCONV_ISA"] = isa
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_isa_name_and_available_are_consistent():
    available = cpu.isa_available()
    assert isinstance(available, list) and available
    assert available[-1] == "generic"
    assert set(available) <= set(ALL_PATHS)
    assert available == [p for p in ALL_PATHS if p in available]  # best first, no duplicates
    assert cpu.isa_name() in available
    forced = os.environ.get("FASTCONV_ISA", "").strip().lower()
    if forced in ALL_PATHS:
        assert cpu.isa_name() == forced
    else:
        assert cpu.isa_name() == available[0]  # auto: the best path


def test_default_is_best_available_path():
    proc = _run("from fastconv._core import cpu; print(cpu.isa_name(), cpu.isa_available()[0])")
    assert proc.returncode == 0, proc.stderr
    name, best = proc.stdout.split()
    assert name == best


@pytest.mark.parametrize("path", ALL_PATHS)
def test_forcing_each_path(path):
    """An available path is used when forced (by both modules); an unavailable one refuses."""
    code = ("from fastconv._core import cpu, conv; import numpy as np; "
            "y = np.empty((1, 2, 2, 3), np.float32); "
            "conv.conv2d_forward(np.ones((1, 3, 3, 2), np.float32), np.ones((2, 2, 2, 3), np.float32), "
            "None, y, (1, 1), (0, 0, 0, 0), (1, 1), 1, 1); "
            "assert (y == 8).all(); print(cpu.isa_name())")
    proc = _run(code, isa=path)
    if path in cpu.isa_available():
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == path
    else:
        assert proc.returncode != 0
        assert "RuntimeError" in proc.stderr and "FASTCONV_ISA" in proc.stderr


@pytest.mark.parametrize("value", ["auto", "  AUTO "])
def test_auto_values_pick_the_best_path(value):
    proc = _run("from fastconv._core import cpu; print(cpu.isa_name())", isa=value)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == cpu.isa_available()[0]


def test_forced_path_ignores_case_and_blanks():
    proc = _run("from fastconv._core import cpu; print(cpu.isa_name())", isa=" Generic\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "generic"


@pytest.mark.parametrize("module", ["cpu", "conv"])
@pytest.mark.parametrize("value", ["sse9", "x" * 80])
def test_invalid_value_raises_at_import(module, value):
    proc = _run(f"import fastconv._core.{module}", isa=value)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr
    assert "FASTCONV_ISA must be one of" in proc.stderr


def test_invalid_value_reaches_the_user_through_ops():
    proc = _run("import fastconv.ops", isa="neon")
    assert proc.returncode != 0
    assert "FASTCONV_ISA" in proc.stderr and "'neon'" in proc.stderr


def test_omp_threads():
    assert isinstance(cpu.omp_max_threads(), int) and cpu.omp_max_threads() >= 1
    assert isinstance(cpu.openmp_enabled(), bool)
    proc = _run("from fastconv._core import cpu; import fastconv; "
                "print(cpu.omp_max_threads(), fastconv.get_num_threads())", OMP_NUM_THREADS="3")
    assert proc.returncode == 0, proc.stderr
    expected = "3 3" if cpu.openmp_enabled() else "1 1"
    assert proc.stdout.split() == expected.split()


def test_compiler_info():
    info = cpu.compiler_info()
    assert isinstance(info, str) and info
    if cpu.openmp_enabled():
        assert "OpenMP 20" in info  # the _OPENMP date, e.g. 201511
    else:
        assert "no OpenMP" in info


GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def test_keep_freed_memory_checks_its_arguments():
    with pytest.raises(ValueError, match="mmap_mib"):
        cpu.keep_freed_memory(256, 64)  # glibc refuses mmap thresholds above 32 MiB
    with pytest.raises(ValueError, match="trim_mib"):
        cpu.keep_freed_memory(0, 32)
    assert cpu.keep_freed_memory() is GLIBC


@pytest.mark.parametrize("setting,expected", [(None, GLIBC), ("1", GLIBC), ("0", False), (" 0 ", False)])
def test_compiled_backend_keeps_freed_memory_unless_told_not_to(setting, expected):
    extra = {} if setting is None else {"FASTCONV_KEEP_FREED_MEMORY": setting}
    code = ("import fastconv, fastconv.ops as ops; print(ops.KEEPS_FREED_MEMORY, "
            "fastconv.info.config_dict()['keeps freed memory'])")
    env = {k: v for k, v in os.environ.items() if k != "FASTCONV_KEEP_FREED_MEMORY"}
    proc = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONPATH=ROOT, **extra),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kept, shown = proc.stdout.strip().split(" ", 1)
    assert kept == str(expected)
    assert shown == ("yes (glibc)" if expected else "no")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint32, bool])
@pytest.mark.parametrize("shape", [(64, 28, 28, 32), (3, 1000, 7), (1025,), 4096, np.int64(3000), (5,), (),
                                   (0, 9), (7, 0), [6, np.int32(700)]])
def test_empty_aligned_is_a_c_contiguous_writable_array_on_a_cache_line(shape, dtype):
    out = cpu.empty_aligned(shape, dtype)
    expected_shape = np.empty(shape, dtype).shape  # what NumPy makes of the same argument
    assert out.shape == expected_shape and out.dtype == np.dtype(dtype)
    assert out.flags.c_contiguous and out.flags.writeable and out.flags.aligned
    if out.nbytes >= 4096:  # (smaller ones are NumPy's own arrays)
        assert out.ctypes.data % 64 == 0
        assert out.base is not None and out.base.nbytes >= out.nbytes
    # every byte is usable: a full write reads back, the buffer holds nothing else
    values = np.arange(out.size).reshape(out.shape).astype(dtype)
    out[...] = values
    assert np.array_equal(out, values)


def test_empty_aligned_arrays_are_distinct_and_freed():
    arrays = [cpu.empty_aligned((256, 256), np.float32) for _ in range(4)]
    for i, a in enumerate(arrays):
        a[...] = i
    assert [float(a[0, 0]) for a in arrays] == [0.0, 1.0, 2.0, 3.0]
    float64 = np.dtype(np.float64)
    cpu.empty_aligned((100, 100), float64)
    dtype_refs = sys.getrefcount(float64)
    for _ in range(1000):
        cpu.empty_aligned((100, 100), float64)
        cpu.empty_aligned((3,), float64)
    assert sys.getrefcount(float64) == dtype_refs  # no reference leaked or lost per call


def test_empty_aligned_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        cpu.empty_aligned((3, -1), np.float32)
    with pytest.raises(ValueError, match="dimensions"):
        cpu.empty_aligned((1,) * 33, np.float32)
    with pytest.raises(MemoryError, match="too large"):
        cpu.empty_aligned((2 ** 40, 2 ** 40), np.float32)
    with pytest.raises(TypeError):
        cpu.empty_aligned((2, "a"), np.float32)


def test_ops_outputs_start_on_a_cache_line():
    from fastconv import ops
    x = np.random.default_rng(0).standard_normal((4, 16, 16, 8)).astype(np.float32)
    k = np.random.default_rng(1).standard_normal((3, 3, 8, 16)).astype(np.float32)
    y = ops.conv2d_forward(x, k)
    pooled = ops.max_pool2d_forward(y, 2, 2, "valid")
    dx, dk, db = ops.conv2d_backward(y, x, k)
    for a in (y, pooled, dx):
        assert a.ctypes.data % 64 == 0


def test_core_round_trip_is_a_positive_time_with_openmp():
    """bench/race.py's probe of whether the two CPUs share an L3 (docs/performance.md)."""
    ns = cpu.core_round_trip_ns(20)
    if cpu.openmp_enabled():
        assert np.isfinite(ns) and ns > 0
    else:
        assert np.isnan(ns)
    with pytest.raises(ValueError, match="rounds"):
        cpu.core_round_trip_ns(0)
