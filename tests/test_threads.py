"""Threads: the kernels release the GIL, concurrent use from Python threads is correct, and
results are bit-identical for any thread count and across runs with the same seed.

That a kernel releases the GIL is shown by observation, not by timing: the outputs that
`fastconv.ops` allocates are pre-filled with NaN, and while one thread runs the kernel the main
thread looks at them. If it ever sees an output partly written (some NaN left, some values
already there), it ran Python code while the kernel was in the middle of its work, which a
call holding the GIL makes impossible. A control shows that a GIL-holding writer is never
observed mid-way.
"""
import sys
import threading

import numpy as np
import pytest

import fastconv
from fastconv import layers as L
from fastconv import ops
from fastconv._core import cpu as _cpu
from fastconv.utils import set_random_seed


class _NaNFilledEmpty:
    """Stands in for fastconv.ops' output allocator: NaN-filled arrays, recorded."""

    def __init__(self, allocate):
        self.allocate = allocate
        self.outputs = []

    def __call__(self, shape, dtype):
        out = self.allocate(shape, dtype)
        out[...] = np.nan
        self.outputs.append(out)
        return out


def _partly_written(arrays):
    for a in list(arrays):
        sample = a.reshape(-1)[:: max(1, a.size // 4096)]
        written = np.count_nonzero(~np.isnan(sample))
        if 0 < written < sample.size:
            return True
    return False


def _seen_mid_way(call, outputs, tries=20):
    """Run `call` in a thread up to `tries` times; True as soon as this thread sees one of
    `outputs` (a list the call appends to) partly written while the call runs."""
    for _ in range(tries):
        outputs.clear()
        done = threading.Event()
        errors = []

        def worker():
            try:
                call()
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=worker)
        thread.start()
        seen = False
        while not done.is_set() and not seen:
            seen = _partly_written(outputs)
        thread.join()
        if errors:
            raise errors[0]
        if seen:
            return True
    return False


def _kernel_calls():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 96, 96, 32))
    kernel = rng.standard_normal((5, 5, 32, 32))
    dy = rng.standard_normal((2, 92, 92, 32))
    big = rng.standard_normal((16, 192, 192, 16)).astype(np.float32)
    rows = big.reshape(-1, 16)
    gamma, beta = np.ones(16, np.float32), np.zeros(16, np.float32)
    return {
        "conv2d_forward": lambda: ops.conv2d_forward(x, kernel),
        "conv2d_backward": lambda: ops.conv2d_backward(dy, x, kernel),
        "depthwise_conv2d": lambda: ops.conv2d_forward(x, kernel[:, :, :1], groups=32),
        "max_pool2d_forward": lambda: ops.max_pool2d_forward(big, 3, 1, "same"),
        "max_pool2d_backward": lambda: ops.max_pool2d_backward(big, big, 3, 1, "same"),
        "avg_pool2d_backward": lambda: ops.avg_pool2d_backward(big, big.shape, 3, 1, "same"),
        "batch_norm_forward_training": lambda: ops.batch_norm_forward_training(rows, gamma, beta),
        "batch_norm_backward": lambda: ops.batch_norm_backward(rows, rows, gamma, beta, gamma),
        "global_max_pool2d_backward": lambda: ops.global_max_pool2d_backward(big[:, 0, 0, :], big),
    }


@pytest.mark.parametrize("name", list(_kernel_calls()))
def test_kernels_release_the_gil(name, monkeypatch):
    fastconv.set_num_threads(1)  # the observing thread gets the other core
    recorder = _NaNFilledEmpty(ops._empty)
    monkeypatch.setattr(ops, "_empty", recorder)
    call = _kernel_calls()[name]
    call()
    assert recorder.outputs, "fastconv.ops no longer allocates its outputs with _empty"
    assert _seen_mid_way(call, recorder.outputs), f"{name}: never observed while running"


def test_a_writer_holding_the_gil_is_never_seen_mid_way():
    """Control: numpy filling an array from a Python list holds the GIL throughout, so the
    observer only ever sees it untouched or complete (the test above can fail)."""
    values = [float(i) for i in range(1_000_000)]
    outputs = []

    def fill_holding_the_gil():
        out = np.full(len(values), np.nan)
        outputs.append(out)
        out[:] = values

    assert not _seen_mid_way(fill_holding_the_gil, outputs, tries=3)


# -- concurrent use from Python threads ---------------------------------------------------------------------
def _cnn(seed, dropout_seed=None):
    set_random_seed(seed)
    model = fastconv.Sequential([
        L.Conv2D(8, 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.MaxPooling2D(),
        L.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
        L.GlobalAveragePooling2D(),
        L.Dropout(0.25, seed=dropout_seed),
        L.Dense(4, activation="softmax"),
    ], input_shape=(12, 12, 3))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(seed, n=48):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 12, 12, 3)).astype(np.float32), rng.integers(0, 4, n)


def _run_in_threads(functions):
    results, errors = [None] * len(functions), []

    def run(i, fn):
        try:
            results[i] = fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_threads_predicting_with_one_model_get_the_serial_results():
    model = _cnn(0)
    x, _ = _data(1, n=96)
    slices = [slice(0, 96), slice(10, 70), slice(5, 37), slice(40, 96)]
    want = [model.predict(x[s], batch_size=16) for s in slices]
    rounds = 5
    got = _run_in_threads([lambda s=s: [model.predict(x[s], batch_size=16) for _ in range(rounds)]
                           for s in slices])
    for per_thread, expected in zip(got, want):
        for prediction in per_thread:
            np.testing.assert_array_equal(prediction, expected)


def test_models_trained_in_threads_equal_models_trained_one_after_the_other():
    """Separate models with their own data, optimizers and seeded Dropout, trained at the same time."""
    seeds = [11, 12, 13]
    concurrent = [_cnn(s, dropout_seed=s) for s in seeds]
    serial = [_cnn(s, dropout_seed=s) for s in seeds]
    data = [_data(s) for s in seeds]
    for a, b in zip(concurrent, serial):  # same starting point
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)

    def train(model, x, y):
        # shuffle=False: fit's shuffling draws from the process-wide generator, whose
        # interleaving between threads is not deterministic (see docs/robustness.md).
        return model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]

    losses = _run_in_threads([lambda m=m, d=d: train(m, *d) for m, d in zip(concurrent, data)])
    for model, (x, y), loss in zip(serial, data, losses):
        assert train(model, x, y) == loss
    for a, b in zip(concurrent, serial):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    # and the three models did learn different things (the comparison is not vacuous)
    assert not np.array_equal(concurrent[0].get_weights()[0], concurrent[1].get_weights()[0])


# -- determinism ----------------------------------------------------------------------------------------------
def _train_run(num_threads, seed, steps=6):
    """Weights after a seeded fit with shuffling, unseeded Dropout and every kernel type."""
    fastconv.set_num_threads(num_threads)
    model = _cnn(seed)
    set_random_seed(seed)
    rng = np.random.default_rng(100)
    x = rng.standard_normal((steps * 16, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 4, len(x))
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=True, verbose=0)
    return model.get_weights(), history.history["loss"]


def test_training_is_bit_identical_for_one_and_two_threads():
    assert fastconv.get_num_threads() >= 1
    weights_1, loss_1 = _train_run(1, seed=3)
    weights_2, loss_2 = _train_run(2, seed=3)
    assert loss_1 == loss_2
    assert len(weights_1) == len(weights_2)
    for a, b in zip(weights_1, weights_2):
        np.testing.assert_array_equal(a, b)


def test_training_is_bit_identical_across_runs_with_the_same_seed():
    weights_a, loss_a = _train_run(2, seed=5)
    weights_b, loss_b = _train_run(2, seed=5)
    assert loss_a == loss_b
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
    weights_c, _ = _train_run(2, seed=6)  # another seed: another run (the check can fail)
    assert not all(np.array_equal(a, c) for a, c in zip(weights_a, weights_c))


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_kernels_are_bit_identical_for_any_thread_count(threads):
    """Each kernel on a problem large enough to be split, against its one-thread result."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 30, 30, 16)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 8, 32)).astype(np.float32)
    dy = rng.standard_normal((4, 15, 15, 32)).astype(np.float32)
    pool_dy = rng.standard_normal((4, 15, 15, 16)).astype(np.float32)
    gamma, beta = rng.random(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    calls = [
        lambda: ops.conv2d_forward(x, kernel, strides=2, padding="same", groups=2),
        lambda: ops.conv2d_backward(dy, x, kernel, strides=2, padding="same", groups=2),
        lambda: ops.conv2d_backward(rng_dy_depthwise, x, depthwise, padding="same", groups=16),
        lambda: ops.max_pool2d_backward(pool_dy, x, 3, 2, "same"),
        lambda: ops.avg_pool2d_backward(pool_dy, x.shape, 3, 2, "same"),
        lambda: ops.batch_norm_forward_training(x, gamma, beta),
        lambda: ops.batch_norm_backward(x, x, gamma, beta, gamma + 1),
        lambda: ops.global_avg_pool2d_forward(x),
    ]
    depthwise = rng.standard_normal((3, 3, 1, 32)).astype(np.float32)
    rng_dy_depthwise = rng.standard_normal((4, 30, 30, 32)).astype(np.float32)
    fastconv.set_num_threads(1)
    want = [call() for call in calls]
    fastconv.set_num_threads(threads)
    for i, call in enumerate(calls):
        got = call()
        for g, w in zip(got if isinstance(got, tuple) else (got,), want[i] if isinstance(want[i], tuple) else (want[i],)):
            if w is not None:
                np.testing.assert_array_equal(g, w, err_msg=f"call {i} with {threads} threads")


# -- shared loops (kernel_common.h's fc_share) ---------------------------------------------------
@pytest.mark.parametrize("items,threads,chunk", [
    (0, 2, 1), (1, 2, 1), (7, 3, 1), (100, 2, 6), (101, 5, 3), (1000, 2, 1), (5, 8, 2),
    (300, 70, 1),  # more threads than blocks (64): threads share blocks
])
@pytest.mark.parametrize("patience", [0.0, 2.0])  # FC_SHARE_EAGER, FC_SHARE_PATIENT
def test_shared_loops_take_every_item_exactly_once(items, threads, chunk, patience):
    for stalled in (-1, threads - 1):
        owner, claims = _cpu._share_claims(items, threads, chunk, patience, stalled)
        np.testing.assert_array_equal(claims, np.ones(items, np.intc))
        assert ((owner >= 0) & (owner < threads)).all()


@pytest.mark.skipif(not _cpu.openmp_enabled(), reason="a build without OpenMP runs one thread")
@pytest.mark.parametrize("threads,stalled", [(2, 1), (2, 0), (3, 1)])
@pytest.mark.parametrize("patience", [0.0, 2.0])
def test_a_stalled_threads_items_are_taken_by_the_others(threads, stalled, patience):
    """The stalled thread starts once the others found nothing left: they took its block
    (patient threads once its owner had taken nothing for a while)."""
    items = 240
    owner, claims = _cpu._share_claims(items, threads, 4, patience, stalled)
    np.testing.assert_array_equal(claims, np.ones(items, np.intc))
    assert stalled not in set(owner.tolist())
    block = owner[items * stalled // threads: items * (stalled + 1) // threads]
    assert set(block.tolist()) <= set(range(threads)) - {stalled}


def test_one_thread_takes_every_item_in_order():
    owner, claims = _cpu._share_claims(50, 1, 3)
    np.testing.assert_array_equal(owner, np.zeros(50, np.intc))
    np.testing.assert_array_equal(claims, np.ones(50, np.intc))
