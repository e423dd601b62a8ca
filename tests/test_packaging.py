"""What a user gets from the installed package (wheel, sdist build or editable install).

- The baseline ISA path, the one any x86-64 CPU runs, trains a whole model exactly like the
  NumPy reference. (Per-kernel checks of every path: tests/test_ops_conv.py
  ::test_every_isa_path_matches_reference and tests/test_cpu.py::test_forcing_each_path;
  the instruction-level check that AVX/AVX-512 code stays in its own files, and runs under an
  emulated CPU without AVX, are in tools/build_wheel.sh: tools/check_isa.py, tools/isa_smoke.py.)
- show_config() and `python -m fastconv info` report the build and run-time facts, the same.
- The NumPy floor in the metadata is the C-API target the modules were built for.
- The package holds compiled modules and data, no sources or build leftovers.
- `import fastconv` loads neither the compiled kernels nor the CLI or the data sets.
"""
import os
import re
import subprocess
import sys

import pytest

import fastconv

PACKAGE_DIR = os.path.dirname(os.path.abspath(fastconv.__file__))
PACKAGE_PARENT = os.path.dirname(PACKAGE_DIR)
COMPILED_MODULES = ("batchnorm", "conv", "cpu", "elementwise", "pool")


def run_python(code, **env_vars):
    """Run `code` in a new interpreter that imports this same fastconv; return stdout."""
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT, **env_vars)
    if "FASTCONV_ISA" not in env_vars:
        env.pop("FASTCONV_ISA", None)
    proc = subprocess.run([sys.executable, *(["-c", code] if isinstance(code, str) else code)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


GENERIC_MODEL_SCRIPT = """
import numpy as np
import fastconv
from fastconv import ops
from fastconv._core import cpu
from fastconv.layers import (AveragePooling2D, BatchNormalization, Conv2D, Dense,
                             DepthwiseConv2D, GlobalAveragePooling2D, MaxPooling2D)

assert cpu.isa_name() == "generic", cpu.isa_name()
ops.MIN_FLOPS_PER_THREAD = 0  # every kernel on both threads
fastconv.set_num_threads(2)
f64 = dict(dtype="float64")  # every layer: float32 rounding would hide real differences
model = fastconv.Sequential([
    Conv2D(8, 3, padding="same", activation="relu", **f64),
    BatchNormalization(**f64),
    MaxPooling2D(2, padding="same", **f64),
    DepthwiseConv2D(3, padding="same", depth_multiplier=2, **f64),
    Conv2D(12, (3, 2), strides=2, groups=4, **f64),
    AveragePooling2D(2, strides=1, **f64),
    GlobalAveragePooling2D(**f64),
    Dense(5, activation="softmax", **f64),
], input_shape=(13, 11, 3))
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.standard_normal((6, 13, 11, 3))
y = rng.integers(0, 5, 6)
initial = model.get_weights()
runs = {}
for backend in ("compiled", "reference"):
    model.set_weights(initial)
    with fastconv.use_backend(backend):
        losses = [model.train_on_batch(x, y) for _ in range(3)]
        prediction = model.predict(x, verbose=0)
    runs[backend] = (losses, model.get_weights(), prediction)
(l1, w1, p1), (l2, w2, p2) = runs["compiled"], runs["reference"]
np.testing.assert_allclose(l1, l2, rtol=1e-9)
assert len(w1) == len(w2) and len(w1) > 0
for a, b in zip(w1, w2):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
np.testing.assert_allclose(p1, p2, rtol=1e-9, atol=1e-12)
assert not any(np.array_equal(a, b) for a, b in zip(w1, initial))  # training changed them
print("ok", cpu.isa_name())
"""


def test_generic_isa_path_trains_a_model_like_the_reference():
    """FASTCONV_ISA=generic (what a CPU without AVX2 runs): three SGD steps and a prediction
    through conv/grouped/depthwise/BN/pooling layers equal the reference backend's."""
    out = run_python(GENERIC_MODEL_SCRIPT, FASTCONV_ISA="generic")
    assert out.strip() == "ok generic"


def test_show_config_reports_build_and_runtime():
    from fastconv._core import cpu

    info = fastconv.info.config_dict()
    assert info["fastconv"] == fastconv.__version__
    assert info["threads"] == fastconv.get_num_threads() >= 1
    assert info["isa in use"] == cpu.isa_name()
    assert info["isa available"].split(", ") == cpu.isa_available()
    assert info["isa in use"] in cpu.isa_available()
    assert re.match(r"(gcc|clang|msvc) \S+", info["compiler"]), info["compiler"]
    if cpu.openmp_enabled():
        assert info["openmp"] == "enabled"
        assert "OpenMP 20" in info["compiler"]  # _OPENMP is a date, e.g. 201511
        assert info["openmp runtime"] != "unknown"
    else:
        assert "single-threaded" in info["openmp"]
    # setup.py records the NumPy the modules were compiled against (2.x) and the C-API target.
    built_with = info["numpy (built with)"]
    assert re.match(r"2\.\d+\.\d+\S*, C-API target 1\.25 ", built_with), built_with


def test_cli_info_prints_what_show_config_prints():
    shown = run_python("import fastconv; fastconv.show_config()")
    cli = run_python(["-m", "fastconv", "info"])
    assert cli == shown
    for key in ("fastconv", "compiler", "openmp", "threads", "isa in use", "isa available",
                "numpy (built with)"):
        assert re.search(rf"^{re.escape(key)} +: \S", cli, re.M), key


def test_threads_line_follows_omp_num_threads():
    out = run_python("import fastconv; fastconv.show_config()", OMP_NUM_THREADS="3")
    assert re.search(r"^threads +: 3$", out, re.M), out


def _declared_numpy_floor():
    """The lower bound on numpy in the installed metadata (or pyproject.toml in a checkout)."""
    from importlib import metadata

    try:
        requirements = metadata.requires("fastconv") or []
    except metadata.PackageNotFoundError:  # in-place build, not installed: read the checkout
        import tomllib

        with open(os.path.join(PACKAGE_PARENT, "pyproject.toml"), "rb") as f:
            requirements = tomllib.load(f)["project"]["dependencies"]
    from packaging.requirements import Requirement

    numpy_reqs = [Requirement(r) for r in requirements if Requirement(r).name == "numpy"]
    assert len(numpy_reqs) == 1, requirements
    floors = [s.version for s in numpy_reqs[0].specifier if s.operator == ">="]
    assert len(floors) == 1, numpy_reqs
    return floors[0]


def test_numpy_floor_is_the_c_api_target():
    """pip must not install the wheel next to a NumPy older than its modules support."""
    from fastconv._core import _build_info

    assert _declared_numpy_floor() == _build_info.numpy_c_api_target == "1.25"
    assert int(_build_info.numpy_build_version.split(".")[0]) >= 2


def test_package_holds_modules_and_data_but_no_sources():
    files = []
    for folder, dirs, names in os.walk(PACKAGE_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        files += [os.path.relpath(os.path.join(folder, n), PACKAGE_DIR) for n in names]
    leftovers = [f for f in files if f.endswith((".c", ".pyx", ".pxd", ".h", ".o", ".obj"))]
    assert leftovers == []
    compiled = sorted(f.split(os.sep)[-1].split(".")[0] for f in files
                      if f.startswith("_core" + os.sep) and f.endswith((".so", ".pyd")))
    assert compiled == sorted(COMPILED_MODULES)  # one build each, no stale duplicates
    assert os.path.join("datasets", "data", "digits.npz") in files


def test_import_fastconv_is_lazy():
    """Importing the package stays cheap: the compiled kernels, the command line, the data sets
    and threadpoolctl load when first used."""
    out = run_python("import sys, fastconv; print(' '.join(sorted(sys.modules)))")
    loaded = set(out.split())
    assert "fastconv" in loaded
    eager = {"fastconv._core.conv", "fastconv._core.pool", "fastconv._core.batchnorm",
             "fastconv.cli", "argparse", "fastconv.datasets", "threadpoolctl"}
    assert loaded & eager == set()


@pytest.mark.parametrize("module", COMPILED_MODULES)
def test_each_compiled_module_imports_alone(module):
    """No module depends on another having been imported first (own dispatch init, symbols)."""
    out = run_python(f"import fastconv._core.{module} as m; print(m.__name__)")
    assert out.strip() == f"fastconv._core.{module}"
