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
