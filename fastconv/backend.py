"""Which implementation the layers run on, and how many threads the compiled kernels use.

`set_backend("compiled")` (default) runs every layer on `fastconv.ops`;
`set_backend("reference")` on the pure-NumPy `fastconv.reference`, so any model can be
checked end to end against the specification. `use_backend(name)` does the same for a block.
"""
import contextlib
import importlib
import os
import sys
import threading

_BACKENDS = ("compiled", "reference")


class _ThreadState(threading.local):
    # A class-level default: reading `name` in a thread that never set it is a plain
    # attribute lookup (getattr with a default raised and caught an AttributeError there,
    # ~1 us per call, a few dozen calls per training step).
    name = None


_state = _ThreadState()
_default_backend = "compiled"
_num_threads = None  # None: follow OpenMP's own default (OMP_NUM_THREADS, threadpoolctl)


def _check_name(name):
    if name not in _BACKENDS:
        raise ValueError(f"`backend` must be one of {_BACKENDS}; received {name!r}.")
    return name


def set_backend(name):
    """Select the backend for all threads: "compiled" or "reference"."""
    global _default_backend
    _default_backend = _check_name(name)
    _state.name = None


def get_backend():
    return _state.name or _default_backend


@contextlib.contextmanager
def use_backend(name):
    """Run the block (in this thread) on the given backend."""
    _check_name(name)
    previous = _state.name
    _state.name = name
    try:
        yield
    finally:
        _state.name = previous


def get_ops():
    """The module of kernels for the current backend (`fastconv.ops` or `fastconv.reference`)."""
    name = "fastconv.reference" if get_backend() == "reference" else "fastconv.ops"
    # Layers call this a few dozen times per training step: after the first import the module
    # is in sys.modules, and a dict lookup costs a tenth of import_module.
    module = sys.modules.get(name)
    return module if module is not None else importlib.import_module(name)


def _one_thread_after_fork():
    # GNU libgomp is not fork-safe: a child forked after the parent ran a parallel region
    # waits forever in its first region of more than one thread (for the parent's worker
    # threads, which fork does not copy). So a forked child runs the kernels on one thread;
    # `set_num_threads(n)` in the child overrides this (safe only if the parent ran no kernel).
    global _num_threads
    _num_threads = 1


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_one_thread_after_fork)


def set_num_threads(n):
    """Use `n` threads in the compiled kernels (None: back to OpenMP's default)."""
    global _num_threads
    if n is None:
        _num_threads = None
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive integer number of threads; received {n!r}.")
    _num_threads = n


def get_num_threads():
    """Threads the compiled kernels use: the value set, else OpenMP's max (OMP_NUM_THREADS)."""
    if _num_threads is not None:
        return _num_threads
    from ._core import cpu

    return max(1, cpu.omp_max_threads())
