"""fastconv living with the other OpenMP users of a process: scikit-learn, PyTorch, threadpoolctl,
and fork().

Each of scikit-learn, PyTorch and a fastconv wheel brings its own copy of an OpenMP runtime.
These tests run them in one process (one after the other and at the same time, from two
threads), check every result (fastconv against `fastconv.reference` or PyTorch, scikit-learn
against what its own outputs imply), and check that threadpoolctl's limits reach fastconv.
Anything that could deadlock runs in a child interpreter under a timeout, so a hang fails the
test instead of stopping the suite.

The PyTorch cross-checks need torch, which is neither a dependency nor a test extra: they
live in bench/test_torch_crosscheck.py and run with the benchmarks where torch is installed.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastconv
from fastconv import ops, reference

# Where `import fastconv` found the package (checkout or site-packages): children use the same.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
CHILD_TIMEOUT = 180  # seconds; the children below take ~1-5 s, a deadlock takes forever

# Preamble of every child script: the same fastconv, every kernel on 2 threads (tiny problems
# included), and a conv problem with its reference result.
CHILD_PREAMBLE = """
import os, sys, threading
import numpy as np
import fastconv
from fastconv import ops, reference
ops.MIN_FLOPS_PER_THREAD = 0
fastconv.set_num_threads(2)
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 13, 11, 6))
kernel = rng.standard_normal((3, 3, 6, 10))
expected = reference.conv2d_forward(x, kernel, strides=2, padding="same")

def fastconv_ok(rounds=1):
    for _ in range(rounds):
        y = ops.conv2d_forward(x, kernel, strides=2, padding="same")
        if not np.allclose(y, expected, rtol=1e-10, atol=1e-10):
            return False
        p = ops.max_pool2d_forward(x, 3, 2, "same")
        if not np.array_equal(p, reference.max_pool2d_forward(x, 3, 2, "same")):
            return False
    return True
"""


def run_child(body, timeout=CHILD_TIMEOUT):
    """Run CHILD_PREAMBLE + body in a new interpreter; fail on a hang, crash or non-zero exit."""
    code = CHILD_PREAMBLE + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    env.pop("FASTCONV_ISA", None)
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"child process hung (no exit after {timeout} s); output: {exc.stdout!r}")
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def conv_problem(rng, dtype=np.float32):
    x = rng.standard_normal((3, 12, 10, 5)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 5, 7)).astype(dtype)
    return x, kernel


# ---- threadpoolctl ----------------------------------------------------------------------------

def test_threadpoolctl_sees_the_openmp_runtime_fastconv_uses():
    out = run_child("""
        from threadpoolctl import threadpool_info
        from fastconv._core import cpu
        fastconv.set_num_threads(None)
        assert fastconv_ok()
        pools = [p for p in threadpool_info() if p["user_api"] == "openmp"]
        # numpy loads no OpenMP runtime, so every one listed here came with fastconv.
        if not cpu.openmp_enabled():  # a single-threaded build (no OpenMP found at build time)
            assert pools == [], pools
            sys.exit(0)
        assert len(pools) == 1, pools
        assert pools[0]["num_threads"] == fastconv.get_num_threads(), pools
        print(pools[0]["filepath"])
    """)
    path = out.strip()
    if os.path.isdir(os.path.join(PACKAGE_PARENT, "fastconv.libs")):  # installed from a wheel
        assert os.path.join("fastconv.libs", "libgomp") in path


def test_threadpool_limits_set_fastconvs_thread_count():
    from fastconv._core import cpu

    if not cpu.openmp_enabled():
        pytest.skip("single-threaded build (no OpenMP at build time): nothing to limit")
    rng = np.random.default_rng(1)
    x, kernel = conv_problem(rng)
    want = reference.conv2d_forward(x, kernel, padding="same")
    fastconv.set_num_threads(None)  # follow OpenMP (the default)
    before = fastconv.get_num_threads()
    # Raise first, so that limiting to 1 thread is a change on a machine of any size.
    with threadpool_limits(limits=3, user_api="openmp"):
        assert fastconv.get_num_threads() == 3
        with threadpool_limits(limits=1, user_api="openmp"):
            assert fastconv.get_num_threads() == 1
            openmp = [p for p in threadpool_info() if p["user_api"] == "openmp"]
            assert openmp and all(p["num_threads"] == 1 for p in openmp)
            np.testing.assert_allclose(ops.conv2d_forward(x, kernel, padding="same"), want,
                                       rtol=1e-4, atol=1e-4)
        assert fastconv.get_num_threads() == 3
    assert fastconv.get_num_threads() == before


# ---- scikit-learn -----------------------------------------------------------------------------

def _sklearn_checks(images):
    """Run OpenMP-parallel scikit-learn code and check it against plain NumPy."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances_argmin_min

    flat = images.reshape(len(images), -1).astype(np.float64)
    km = KMeans(n_clusters=10, n_init=2, random_state=0).fit(flat)
    distances = ((flat[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
    assert np.array_equal(km.labels_, distances.argmin(1))
    assert km.inertia_ == pytest.approx(distances.min(1).sum(), rel=1e-6)

    queries = flat[::7] + 0.01
    nearest, dist = pairwise_distances_argmin_min(queries, flat)
    exact = np.sqrt(((queries[:, None, :] - flat[None]) ** 2).sum(-1))
    np.testing.assert_allclose(dist, exact.min(1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(exact[np.arange(len(queries)), nearest], exact.min(1), rtol=1e-6)


def test_sklearn_and_fastconv_in_one_process():
    """Interleaved on all threads, then both under one threadpoolctl limit; all results right."""
    from fastconv.datasets import digits

    (images, _), _ = digits.load_data()
    images = images[:600]
    kernel = np.random.default_rng(2).standard_normal((3, 3, 1, 8)).astype(np.float32)
    want = reference.conv2d_forward(images, kernel, padding="same")
    fastconv.set_num_threads(2)

    np.testing.assert_allclose(ops.conv2d_forward(images, kernel, padding="same"), want,
                               rtol=1e-4, atol=1e-4)
    _sklearn_checks(images)
    np.testing.assert_allclose(ops.conv2d_forward(images, kernel, padding="same"), want,
                               rtol=1e-4, atol=1e-4)

    fastconv.set_num_threads(None)
    with threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
        _sklearn_checks(images)
        np.testing.assert_allclose(ops.conv2d_forward(images, kernel, padding="same"), want,
                                   rtol=1e-4, atol=1e-4)


def test_sklearn_and_fastconv_at_the_same_time():
    """fastconv kernels in one thread while scikit-learn's OpenMP loops run in another."""
    out = run_child("""
        from sklearn.cluster import KMeans
        from sklearn.datasets import make_blobs
        data, _ = make_blobs(n_samples=3000, n_features=20, centers=8, random_state=0)
        results = {}
        def sklearn_work():
            for seed in range(4):
                km = KMeans(n_clusters=8, n_init=1, random_state=seed).fit(data)
                d = ((data[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
                results.setdefault("sklearn", True)
                results["sklearn"] &= bool((km.labels_ == d.argmin(1)).all())
        worker = threading.Thread(target=sklearn_work)
        worker.start()
        results["fastconv"] = fastconv_ok(rounds=40)
        worker.join()
        assert results == {"sklearn": True, "fastconv": True}, results
        print("ok")
    """)
    assert out.strip() == "ok"


# ---- PyTorch (where installed) ----------------------------------------------------------------

# ---- fork -------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_forked_child_runs_kernels_without_hanging():
    """The parent's OpenMP threads exist when it forks; the child's kernels must still finish.

    (GNU libgomp would wait forever in the child for the parent's threads: fastconv runs a
    forked child's kernels on one thread, see fastconv.backend.)
    """
    out = run_child("""
        import time
        assert fastconv_ok(rounds=3)      # the parent's OpenMP thread pool is now running
        pid = os.fork()
        if pid == 0:
            ok = fastconv.get_num_threads() == 1 and fastconv_ok(rounds=3)
            os._exit(0 if ok else 1)
        deadline = time.monotonic() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                sys.exit("forked child hung")
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert fastconv.get_num_threads() == 2 and fastconv_ok()  # the parent is unchanged
        print("ok")
    """)
    assert out.strip() == "ok"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_multiprocessing_fork_pool_runs_kernels():
    """The usual way fork happens: a multiprocessing pool created after fastconv was used."""
    out = run_child("""
        import multiprocessing
        def child_job(seed):
            return bool(fastconv_ok())
        if __name__ == "__main__":
            assert fastconv_ok(rounds=3)
            with multiprocessing.get_context("fork").Pool(2) as pool:
                result = pool.map_async(child_job, range(4)).get(timeout=60)
            assert result == [True] * 4, result
            print("ok")
    """)
    assert out.strip() == "ok"
