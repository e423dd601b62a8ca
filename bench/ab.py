"""A/B two builds of fastconv on a model or a convolution, alternating processes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab.py /tmp/old . --model mnist_cnn
    python bench/ab.py /tmp/old . --conv mnist_c1

With --model, the calls are the model's `train_on_batch` and `predict_on_batch`; with --conv
(a case of bench/conftest.py's CONV_CASES), `ops.conv2d_forward` and forward + backward.

Each argument is a checkout built in place (`python setup.py build_ext --inplace`; e.g. a
`git worktree add /tmp/old <commit>` of the previous state). Every round runs one fresh process
per checkout, A then B, each timing `train_on_batch` and `predict_on_batch` for about a second
after a warm-up (each kind of call), and prints the 25th percentile of its calls; the summary gives the median over
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
root, what, name, threads, seconds = sys.argv[1:4] + [int(sys.argv[4]), float(sys.argv[5])]
sys.path[:0] = [root, root + "/bench"]
import fastconv
fastconv.set_num_threads(threads)
if what == "model":
    from models import batch, fastconv_model
    model = fastconv_model(name)
    x, y = batch(name)
    calls = (("train", lambda: model.train_on_batch(x, y)), ("infer", lambda: model.predict_on_batch(x)))
else:
    from conftest import conv_inputs
    from fastconv import ops
    x, k, b, s, p = conv_inputs(name)
    calls = (("fwd", lambda: ops.conv2d_forward(x, k, b, s, p)),
             ("fwd+bwd", lambda: ops.conv2d_backward(ops.conv2d_forward(x, k, b, s, p), x, k, s, p)))
for name, fn in calls:
    for _ in range(5):
        fn()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    print(name, np.percentile(times, 25) * 1e3)
"""


def run(root, what, name, threads, seconds):
    out = subprocess.run([sys.executable, "-c", _CHILD, os.path.abspath(root), what, name, str(threads),
                          str(seconds)], capture_output=True, text=True, check=True).stdout
    return {name: float(value) for name, value in (line.split() for line in out.splitlines())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="checkout A (e.g. the previous build)")
    parser.add_argument("b", help="checkout B (e.g. this one)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--model", default="mnist_cnn", choices=["lenet5", "mnist_cnn", "cifar_cnn"])
    target.add_argument("--conv", help="a convolution case of bench/conftest.py instead of a model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per call kind")
    args = parser.parse_args(argv)
    what, name = ("conv", args.conv) if args.conv else ("model", args.model)
    results = {"a": [], "b": []}
    for r in range(args.rounds):
        for key in ("a", "b"):
            results[key].append(run(getattr(args, key), what, name, args.threads, args.seconds))
        print(f"round {r + 1}: " + "  ".join(
            f"{k} {kind} {ms:.3f} ms" for k in ("a", "b") for kind, ms in results[k][-1].items()), flush=True)
    for kind in results["a"][0]:
        a = statistics.median(res[kind] for res in results["a"])
        b = statistics.median(res[kind] for res in results["b"])
        print(f"{name} {kind}, {args.threads} threads: A {a:.3f} ms, B {b:.3f} ms, B / A {b / a:.3f}")


if __name__ == "__main__":
    main()
