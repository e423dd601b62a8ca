"""Long runs: memory does not grow over thousands of steps, denormal inputs give the right
answers (and leave the caller's floating-point mode alone), and Ctrl-C during `fit` leaves a
usable model holding the weights of the last completed epoch.
"""
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading

import numpy as np
import pytest

import fastconv
from fastconv import layers as L
from fastconv import ops, reference
from fastconv.callbacks import Callback
from fastconv.utils import set_random_seed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _small_cnn(seed=0, dtype="float32"):
    set_random_seed(seed)
    model = fastconv.Sequential([
        L.Conv2D(6, 3, padding="same", activation="relu", dtype=dtype),
        L.BatchNormalization(dtype=dtype),
        L.MaxPooling2D(dtype=dtype),
        L.DepthwiseConv2D(3, activation="relu", dtype=dtype),
        L.AveragePooling2D(padding="same", dtype=dtype),
        L.Flatten(dtype=dtype),
        L.Dropout(0.2, dtype=dtype),
        L.Dense(5, activation="softmax", dtype=dtype),
    ], input_shape=(12, 12, 2))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_rss_does_not_grow_over_2000_training_steps():
    fastconv.set_num_threads(1)  # (memory does not depend on it; tiny kernels run faster)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 12, 12, 2)).astype(np.float32)
    y = rng.integers(0, 5, 16)
    model = _small_cnn()
    for _ in range(200):  # warm-up: allocator pools, OpenMP threads, code paths
        model.train_on_batch(x, y)
        model.predict_on_batch(x)
    gc.collect()
    before = _rss_bytes()
    steps = 2000
    for step in range(steps):
        model.train_on_batch(x, y)
        if step % 4 == 0:
            model.predict_on_batch(x)
    gc.collect()
    growth = _rss_bytes() - before
    print(f"\nRSS growth over {steps} train_on_batch steps (and {steps // 4} predictions): "
          f"{growth / 2**20:.2f} MiB")
    # A leak of one small array per step (16 x 12 x 12 x 6 floats = 55 KB) would add ~100 MB.
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over {steps} steps"


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_rss_does_not_grow_over_repeated_fit_and_checkpoints(tmp_path):
    from fastconv.callbacks import ModelCheckpoint

    fastconv.set_num_threads(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 12, 12, 2)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    model = _small_cnn(1)
    checkpoint = ModelCheckpoint(str(tmp_path / "ckpt.fcz"))

    def run(epochs):
        model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, validation_split=0.25, callbacks=[checkpoint])

    run(20)
    gc.collect()
    before = _rss_bytes()
    run(120)  # 360 steps, 120 validations, 120 checkpoint saves
    gc.collect()
    growth = _rss_bytes() - before
    print(f"\nRSS growth over 120 epochs with validation and checkpoints: {growth / 2**20:.2f} MiB")
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB"
    assert fastconv.models.load_model(tmp_path / "ckpt.fcz").count_params() == model.count_params()


# -- denormals ---------------------------------------------------------------------------------------------
def _denormal_inputs(dtype, rng):
    """Arrays mixing ordinary values, exact zeros and denormals (both signs)."""
    tiny = np.finfo(dtype).smallest_normal
    x = rng.standard_normal((3, 9, 8, 4)).astype(dtype)
    mask = rng.random(x.shape)
    x[mask < 0.5] *= tiny / 64  # denormal
    x[mask > 0.9] = 0
    assert np.count_nonzero((x != 0) & (np.abs(x) < tiny)) > x.size // 3
    return x


def _caller_keeps_denormals(dtype):
    tiny = np.array([np.finfo(dtype).smallest_normal / 8], dtype=dtype)
    return (tiny * dtype(1.0))[0] != 0 and (tiny + tiny)[0] > tiny[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_denormal_inputs_give_the_reference_results(dtype):
    rng = np.random.default_rng(2)
    x = _denormal_inputs(dtype, rng)
    kernel = rng.standard_normal((3, 3, 4, 5)).astype(dtype)
    kernel[0, 0] *= np.finfo(dtype).smallest_normal  # denormal-sized products as well
    dy_conv = rng.standard_normal((3, 9, 8, 5)).astype(dtype)
    dy_pool = rng.standard_normal((3, 5, 4, 4)).astype(dtype)
    gamma, beta = np.ones(4, dtype), np.zeros(4, dtype)
    dense_kernel = rng.standard_normal((x[0].size, 5)).astype(dtype)
    # Denormals (~1e-40 in float32) may be flushed to zero by the compiled kernels: an absolute
    # error of a few smallest-normal units, nothing more.
    atol = 64 * float(np.finfo(dtype).smallest_normal)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    cases = [
        ("conv2d_forward", (x, kernel), dict(padding="same")),
        ("conv2d_backward", (dy_conv, x, kernel), dict(padding="same")),
        ("avg_pool2d_forward", (x, 2, None, "same"), {}),
        ("global_avg_pool2d_forward", (x,), {}),
        ("dense_forward", (x.reshape(3, -1), dense_kernel), {}),
    ]
    for name, args, kwargs in cases:
        got, want = getattr(ops, name)(*args, **kwargs), getattr(reference, name)(*args, **kwargs)
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            assert np.isfinite(g).all(), name
            # Sums in another order: errors scale with the largest output, not with each one
            # (an output that cancels to near zero keeps the absolute error of the others).
            scale = float(np.abs(w).max(initial=0.0))
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol + rtol * scale, err_msg=name)
    # Comparisons and copies are exact: max pooling keeps denormals and routes the gradient
    # to the same element as the reference.
    np.testing.assert_array_equal(ops.max_pool2d_forward(x, 2, None, "same"),
                                  reference.max_pool2d_forward(x, 2, None, "same"))
    np.testing.assert_array_equal(ops.max_pool2d_backward(dy_pool, x, 2, None, "same"),
                                  reference.max_pool2d_backward(dy_pool, x, 2, None, "same"))
    np.testing.assert_array_equal(ops.global_max_pool2d_forward(x), reference.global_max_pool2d_forward(x))
    # Batch norm of a channel of denormals: mean/var of the data as the reference has them.
    y, mean, var = ops.batch_norm_forward_training(x, gamma, beta)
    want_y, want_mean, want_var = reference.batch_norm_forward_training(x, gamma, beta)
    np.testing.assert_allclose(mean, want_mean, rtol=rtol, atol=atol)
    np.testing.assert_allclose(var, want_var, rtol=rtol, atol=atol)
    np.testing.assert_allclose(y, want_y, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-4)
    assert _caller_keeps_denormals(dtype), "a kernel left flush-to-zero on in the calling thread"


def test_kernels_restore_the_floating_point_mode_of_every_calling_thread():
    """The kernels flush denormals while they run; afterwards numpy in the calling thread (the
    main thread or any other) must see denormals again."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 12, 12, 8)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)

    def run_all():
        ops.conv2d_forward(x, kernel, padding="same")
        ops.conv2d_backward(ops.conv2d_forward(x, kernel), x, kernel)
        ops.conv2d_forward(x, kernel[:, :, :1], groups=8)
        ops.avg_pool2d_forward(x, 3, 1, "same")
        ops.avg_pool2d_backward(x, x.shape, 3, 1, "same")
        ops.batch_norm_forward_training(x, np.ones(8, np.float32), np.zeros(8, np.float32))
        ops.batch_norm_backward(x, x, np.ones(8, np.float32), np.zeros(8, np.float32), np.ones(8, np.float32))
        return _caller_keeps_denormals(np.float32) and _caller_keeps_denormals(np.float64)

    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        assert run_all(), f"main thread, {threads} kernel threads"
        result = []
        worker = threading.Thread(target=lambda: result.append(run_all()))
        worker.start()
        worker.join()
        assert result == [True], f"other Python thread, {threads} kernel threads"


# -- Ctrl-C during fit -----------------------------------------------------------------------------------
class _RecordEpochEnds(Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = self.model.get_weights()


class _InterruptAt(Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def _assert_weights_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def _fit_data(n=40, seed=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 12, 12, 2)).astype(np.float32), rng.integers(0, 5, n)


@pytest.mark.parametrize("epoch,batch", [(2, 3), (0, 1), (1, 0)])
def test_keyboard_interrupt_restores_the_last_completed_epoch(epoch, batch):
    x, y = _fit_data()
    model = _small_cnn(5)
    initial = model.get_weights()
    record = _RecordEpochEnds()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[record, _InterruptAt(epoch, batch)])
    assert sorted(record.weights) == list(range(epoch))
    expected = record.weights[epoch - 1] if epoch > 0 else initial
    _assert_weights_equal(model.get_weights(), expected)
    # the steps of the interrupted epoch did change the weights before they were put back
    assert not all(np.array_equal(a, b) for a, b in zip(expected, record.weights.get(epoch, [np.nan])))
    assert len(model.history.history.get("loss", [])) == epoch
    # the model is usable: it predicts and trains on
    prediction = model.predict(x)
    assert prediction.shape == (len(x), 5) and np.isfinite(prediction).all()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(), expected))


def test_keyboard_interrupt_between_two_weight_updates_leaves_no_half_updated_model():
    x, y = _fit_data()
    model = _small_cnn(6)
    record = _RecordEpochEnds()
    optimizer = model.optimizer
    real_apply = optimizer.apply_gradients
    calls = {"n": 0}

    def interrupted_apply(pairs):
        pairs = list(pairs)
        calls["n"] += 1
        if calls["n"] == 8:  # during epoch 1 (5 steps per epoch): update half, then Ctrl-C
            real_apply(pairs[: len(pairs) // 2])
            raise KeyboardInterrupt
        return real_apply(pairs)

    optimizer.apply_gradients = interrupted_apply
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[record])
    _assert_weights_equal(model.get_weights(), record.weights[0])


_SIGINT_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastconv
    from fastconv import layers as L
    from fastconv.callbacks import Callback
    from fastconv.utils import set_random_seed

    set_random_seed(0)
    model = fastconv.Sequential([L.Conv2D(8, 3, activation="relu"), L.BatchNormalization(),
                                 L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")],
                                input_shape=(10, 10, 1))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, 10, 10, 1)).astype(np.float32)
    y = rng.integers(0, 3, 1200)

    class Report(Callback):
        def __init__(self):
            super().__init__()
            self.epoch_ends = {}
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_epoch_end(self, epoch, logs=None):
            self.epoch_ends[epoch] = self.model.get_weights()
        def on_train_batch_end(self, batch, logs=None):
            print(f"BATCH {self.epoch} {batch}", flush=True)

    report = Report()
    try:
        model.fit(x, y, batch_size=4, epochs=1000, verbose=0, callbacks=[report])
        result = {"interrupted": False}
    except KeyboardInterrupt:
        last = max(report.epoch_ends)
        same = all(np.array_equal(a, b) for a, b in zip(model.get_weights(), report.epoch_ends[last]))
        prediction = model.predict(x[:16])
        result = {"interrupted": True, "last_completed_epoch": last, "weights_are_last_epoch": same,
                  "epochs_in_history": len(model.history.history["loss"]),
                  "predict_ok": bool(prediction.shape == (16, 3) and np.isfinite(prediction).all())}
    print("RESULT " + json.dumps(result), flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_sigint_to_a_process_running_fit_stops_it_cleanly():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    # All of stdout goes through the one buffered reader (communicate() would read the raw pipe
    # and lose lines the reader had already buffered); stderr goes to a file so it cannot fill a
    # pipe meanwhile, and a timer kills a child that hangs.
    with tempfile.TemporaryFile(mode="w+") as err_file:
        child = subprocess.Popen([sys.executable, "-c", _SIGINT_CHILD], stdout=subprocess.PIPE,
                                 stderr=err_file, text=True, env=env)
        watchdog = threading.Timer(180, child.kill)
        watchdog.start()
        try:
            out_lines = []
            for line in child.stdout:
                out_lines.append(line)
                if line.startswith("BATCH 1 20"):  # the second epoch is under way
                    child.send_signal(signal.SIGINT)
            child.wait()
        finally:
            watchdog.cancel()
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        err_file.seek(0)
        err = err_file.read()
    out = "".join(out_lines)
    assert child.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    result = json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
    assert result["interrupted"] is True
    assert result["last_completed_epoch"] >= 0
    assert result["weights_are_last_epoch"] is True
    assert result["epochs_in_history"] == result["last_completed_epoch"] + 1
    assert result["predict_ok"] is True
