"""Shared fixtures: the backends to run a test on."""
import importlib

import pytest


def compiled_core_available():
    try:
        importlib.import_module("fastconv.ops")
        return True
    except ImportError:
        return False


def backend_modules():
    """Kernel modules to check: the reference always, the compiled core where it is built.

    CI always builds the core (`pip install -e .`), so there both run.
    """
    mods = [importlib.import_module("fastconv.reference")]
    if compiled_core_available():
        mods.append(importlib.import_module("fastconv.ops"))
    return mods


@pytest.fixture(params=backend_modules(), ids=lambda m: m.__name__.split(".")[-1])
def kernels(request):
    return request.param


@pytest.fixture(autouse=True)
def _isolated_global_state():
    """Every test starts on the compiled backend with all threads and leaves no global change.

    The small-convolution thread heuristic in fastconv.ops is switched off so that the small
    shapes of the tests still run the convolutions on all threads.
    """
    import fastconv

    ops = None
    if compiled_core_available():
        ops = importlib.import_module("fastconv.ops")
        saved = ops.MIN_FLOPS_PER_THREAD
        ops.MIN_FLOPS_PER_THREAD = 0
    backend = fastconv.get_backend()
    threads = fastconv.backend._num_threads
    yield
    fastconv.set_backend(backend)
    fastconv.set_num_threads(threads)
    if ops is not None:
        ops.MIN_FLOPS_PER_THREAD = saved
