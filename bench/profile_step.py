"""Per-layer time of one training step (and inference) of a benchmark model.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/profile_step.py mnist_cnn --threads 2

Wraps each layer's forward/backward and the optimizer with timers, runs warm-up steps, then
reports medians over the measured steps. Wall-clock only: the host is shared and noisy.
"""
import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # a checkout built in place

import fastconv  # noqa: E402
from models import batch, fastconv_model  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["lenet5", "mnist_cnn", "cifar_cnn"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    model = fastconv_model(args.model)
    x, y = batch(args.model)
    times = defaultdict(list)

    def timed(key, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            times[key].append(time.perf_counter() - t0)
            return out
        return wrapper

    for i, layer in enumerate(model.layers):
        layer.forward = timed((i, layer.name, "fwd"), layer.forward)
        layer.backward = timed((i, layer.name, "bwd"), layer.backward)
        if hasattr(layer, "_forward_relu"):  # BatchNormalization fused with the ReLU after it
            layer._forward_relu = timed((i, layer.name, "fwd+relu"), layer._forward_relu)
            layer._backward_relu = timed((i, layer.name, "bwd+relu"), layer._backward_relu)
    model.train_on_batch(x, y)
    model.optimizer.apply_gradients = timed((99, "optimizer", "apply"), model.optimizer.apply_gradients)
    loss_fn = model.loss.value_and_gradient
    model.loss.value_and_gradient = timed((98, "loss", "value+grad"), loss_fn)
    for _ in range(5):
        model.train_on_batch(x, y)
    times.clear()
    steps = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        steps.append(time.perf_counter() - t0)
    total = 0.0
    for key in sorted(times):
        med = statistics.median(times[key]) * 1e3
        total += med
        print(f"{key[1]:>28s} {key[2]:>10s} {med:8.3f} ms")
    print(f"{'sum of parts':>39s} {total:8.3f} ms")
    print(f"{'train_on_batch':>39s} {statistics.median(steps) * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
