"""A/B two builds of fastconv on a model's training step and inference, alternating processes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab.py /tmp/old . --model mnist_cnn

Each argument is a checkout built in place (`python setup.py build_ext --inplace`; e.g. a
`git worktree add /tmp/old <commit>` of the previous state). Every round runs one fresh process
per checkout, A then B, each timing `train_on_batch` and `predict_on_batch` for about a second
after a warm-up, and prints the 25th percentile of its calls; the summary gives the median over
the rounds and B / A. Separate processes alternated round by round, because on a shared host
the speed drifts by tens of percent within minutes: only such paired figures compare builds.
"""
import argparse
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import sys, time
import numpy as np
root, model_name, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
sys.path[:0] = [root, root + "/bench"]
import fastconv
from models import batch, fastconv_model
fastconv.set_num_threads(threads)
model = fastconv_model(model_name)
x, y = batch(model_name)
for name, fn in (("train", lambda: model.train_on_batch(x, y)), ("infer", lambda: model.predict_on_batch(x))):
    for _ in range(5):
        fn()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    print(name, np.percentile(times, 25) * 1e3)
"""


def run(root, model, threads, seconds):
    out = subprocess.run([sys.executable, "-c", _CHILD, os.path.abspath(root), model, str(threads),
                          str(seconds)], capture_output=True, text=True, check=True).stdout
    return {name: float(value) for name, value in (line.split() for line in out.splitlines())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="checkout A (e.g. the previous build)")
    parser.add_argument("b", help="checkout B (e.g. this one)")
    parser.add_argument("--model", default="mnist_cnn", choices=["lenet5", "mnist_cnn", "cifar_cnn"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per call kind")
    args = parser.parse_args(argv)
    results = {"a": [], "b": []}
    for r in range(args.rounds):
        for key in ("a", "b"):
            results[key].append(run(getattr(args, key), args.model, args.threads, args.seconds))
        print(f"round {r + 1}: " + "  ".join(
            f"{k} {kind} {results[k][-1][kind]:.2f} ms" for k in ("a", "b") for kind in ("train", "infer")),
            flush=True)
    for kind in ("train", "infer"):
        a = statistics.median(res[kind] for res in results["a"])
        b = statistics.median(res[kind] for res in results["b"])
        print(f"{args.model} {kind}, {args.threads} threads: A {a:.2f} ms, B {b:.2f} ms, B / A {b / a:.3f}")


if __name__ == "__main__":
    main()
