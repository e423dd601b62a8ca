"""Race fastconv against PyTorch (and, optionally, Keras) side by side; write bench/RESULTS.md.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/race.py --threads 2
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/race.py --keras --sections models

The two OPENBLAS_* variables are unset for this command only: they slow NumPy's matmul, which
the GEMM-peak ceiling uses. Every comparison interleaves the contenders round by round in one
process and reports the median per-call time, so host drift hits all of them alike; ratios are
peer time / fastconv time (> 1 means fastconv is faster).
"""
import argparse
import datetime
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # a source checkout built in place also works uninstalled

import fastconv  # noqa: E402
from fastconv import ops  # noqa: E402
from fastconv._core import cpu as _cpu  # noqa: E402

from conftest import CONV_CASES, conv_flops, conv_inputs, torch, torch_padding  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"


def _per_call(fn, min_time):
    fn()
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / reps


# Core-to-core round trips (ns) probed before each round: whether the host ran the two CPUs
# on one L3 or on two then (see docs/performance.md, "Measuring"). The threshold sits between
# the Zen 4 host's ~60-90 ns within an L3 and ~320-340 across, above an Intel mesh's ~120-165.
L3_PROBES = []
ACROSS_L3_NS = 250.0


def l3_state_line():
    probes = [p for p in L3_PROBES if p == p]  # (NaN: no OpenMP)
    if not probes:
        return "Host state: not probed (one thread or no OpenMP)."
    across = [p for p in probes if p > ACROSS_L3_NS]
    within = [p for p in probes if p <= ACROSS_L3_NS]
    med = lambda v: f"{statistics.median(v):.0f} ns" if v else "-"  # noqa: E731
    return (f"Host state (a core-to-core round trip probed before each round): {len(across)} of "
            f"{len(probes)} probes across L3s (> {ACROSS_L3_NS:.0f} ns; medians {med(within)} within "
            f"an L3, {med(across)} across).")


def interleaved(contenders, rounds=5, min_time=0.1):
    """Median seconds per call of each contender, alternating them round by round."""
    times = {name: [] for name in contenders}
    for fn in contenders.values():  # warm up: workspaces, caches, thread pools
        fn()
    for _ in range(rounds):
        if fastconv.get_num_threads() > 1:
            L3_PROBES.append(_cpu.core_round_trip_ns())
        for name, fn in contenders.items():
            times[name].append(_per_call(fn, min_time))
    return {name: statistics.median(t) for name, t in times.items()}


def ceilings(threads):
    """GEMM peak (NumPy sgemm) and memory bandwidth (copy) measured now."""
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.copy()
    src = np.ones(64 * 1024 * 1024 // 4, np.float32)
    dst = np.empty_like(src)
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(threads, user_api="blas")
    except ImportError:
        limit = None
    t = interleaved({"gemm": lambda: a @ b, "copy": lambda: np.copyto(dst, src)}, rounds=3)
    if limit is not None:
        limit.unregister() if hasattr(limit, "unregister") else limit.restore_original_limits()
    return 2.0 * n ** 3 / t["gemm"] / 1e9, 2.0 * src.nbytes / t["copy"] / 1e9


def torch_conv_fns(case, threads):
    x, k, b, s, p = conv_inputs(case)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    wt = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))).contiguous(
        memory_format=torch.channels_last)
    bt = torch.from_numpy(b)
    pt = torch_padding(p, k.shape[0])
    xg, wg, bg = (t.clone().requires_grad_(True) for t in (xt, wt, bt))

    def fwd():
        with torch.no_grad():
            torch.nn.functional.conv2d(xt, wt, bt, s, pt)

    def fwd_bwd():
        y = torch.nn.functional.conv2d(xg, wg, bg, s, pt)
        y.backward(y.detach())

    return fwd, fwd_bwd


def fastconv_conv_fns(case):
    x, k, b, s, p = conv_inputs(case)

    def fwd():
        ops.conv2d_forward(x, k, b, s, p)

    def fwd_bwd():
        y = ops.conv2d_forward(x, k, b, s, p)
        ops.conv2d_backward(y, x, k, s, p)

    return fwd, fwd_bwd


def race_conv(threads, rounds, peak):
    rows = ["| case | fwd ms fastconv | fwd ms torch | fwd ratio | fwd GF/s (% peak) | "
            "fwd+bwd ms fastconv | fwd+bwd ms torch | fwd+bwd ratio | fwd+bwd GF/s (% peak) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for case in CONV_CASES:
        f_fwd, f_fb = fastconv_conv_fns(case)
        cont = {"f_fwd": f_fwd, "f_fb": f_fb}
        if torch is not None:
            t_fwd, t_fb = torch_conv_fns(case, threads)
            cont.update(t_fwd=t_fwd, t_fb=t_fb)
        t = interleaved(cont, rounds)
        fl = conv_flops(case)
        gf, gfb = fl / t["f_fwd"] / 1e9, 3 * fl / t["f_fb"] / 1e9
        tf = lambda k: f"{t[k] * 1e3:.2f}" if k in t else "-"  # noqa: E731
        ratio = lambda a, b: f"{t[b] / t[a]:.2f}x" if b in t else "-"  # noqa: E731
        rows.append(f"| {case} | {tf('f_fwd')} | {tf('t_fwd')} | {ratio('f_fwd', 't_fwd')} | "
                    f"{gf:.0f} ({100 * gf / peak:.0f}%) | {tf('f_fb')} | {tf('t_fb')} | "
                    f"{ratio('f_fb', 't_fb')} | {gfb:.0f} ({100 * gfb / peak:.0f}%) |")
        print(rows[-1], flush=True)
    return rows


SCALING_CASES = ("mnist_c2", "cifar", "res", "alex_c1", "pw_1x1")


def race_scaling(threads, rounds):
    """fwd+bwd time on 1 thread / on `threads` threads, the two alternated in one process."""
    rows = [f"| case | fwd+bwd ms, 1 thread | fwd+bwd ms, {threads} threads | speed-up |", "|---|---|---|---|"]
    for case in SCALING_CASES:
        _, f_fb = fastconv_conv_fns(case)

        def on(n, fn=f_fb):
            def run():
                fastconv.set_num_threads(n)
                fn()
            return run
        t = interleaved({"one": on(1), "all": on(threads)}, rounds)
        fastconv.set_num_threads(threads)
        rows.append(f"| {case} | {t['one'] * 1e3:.2f} | {t['all'] * 1e3:.2f} | {t['one'] / t['all']:.2f}x |")
        print(rows[-1], flush=True)
    return rows


POOL_CASES = [("maxpool 2x2", (64, 28, 28, 32), "max", 2, 2), ("avgpool 2x2", (64, 28, 28, 32), "avg", 2, 2),
              ("maxpool 3x3/2", (64, 28, 28, 32), "max", 3, 2), ("batchnorm train", (64, 28, 28, 32), "bn", 0, 0),
              ("maxpool 2x2", (64, 32, 32, 64), "max", 2, 2), ("avgpool 2x2", (64, 32, 32, 64), "avg", 2, 2),
              ("maxpool 3x3/2", (64, 32, 32, 64), "max", 3, 2), ("batchnorm train", (64, 32, 32, 64), "bn", 0, 0)]


def race_pool_bn(threads, rounds, bandwidth):
    rows = ["| case | shape | fwd ms fastconv | fwd ms torch | fwd ratio | fwd GB/s | "
            "fwd+bwd ms fastconv | fwd+bwd ms torch | fwd+bwd ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for label, shape, kind, pool, stride in POOL_CASES:
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        c = shape[3]
        gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
        if kind == "bn":
            def f_fwd():
                return ops.batch_norm_forward_training(x, gamma, beta, 1e-3)

            def f_fb():
                y, m, v = ops.batch_norm_forward_training(x, gamma, beta, 1e-3)
                ops.batch_norm_backward(y, x, gamma, m, v, 1e-3)
            out_bytes = x.nbytes
        else:
            fwd = ops.max_pool2d_forward if kind == "max" else ops.avg_pool2d_forward

            def f_fwd():
                return fwd(x, pool, stride, "valid")

            def f_fb():  # what the layers run in training (see MaxPooling2D._use_argmax)
                if kind == "max":  # the argmax pair
                    y, argmax = ops.max_pool2d_forward_with_argmax(x, pool, stride, "valid")
                    ops.max_pool2d_backward_from_argmax(y, argmax, x.shape, pool, stride, "valid")
                else:
                    y = fwd(x, pool, stride, "valid")
                    ops.avg_pool2d_backward(y, x.shape, pool, stride, "valid")
            out_bytes = f_fwd().nbytes
        cont = {"f_fwd": f_fwd, "f_fb": f_fb}
        if torch is not None:
            xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # NHWC memory = channels_last
            xg = xt.clone().requires_grad_(True)
            if kind == "bn":
                bn = torch.nn.BatchNorm2d(c).train()
                tfun = bn
            elif kind == "max":
                tfun = lambda v: torch.nn.functional.max_pool2d(v, pool, stride)  # noqa: E731
            else:
                tfun = lambda v: torch.nn.functional.avg_pool2d(v, pool, stride)  # noqa: E731

            def t_fwd():
                with torch.no_grad():
                    tfun(xt)

            def t_fb():
                y = tfun(xg)
                y.backward(y.detach())
            cont.update(t_fwd=t_fwd, t_fb=t_fb)
        t = interleaved(cont, rounds)
        gbs = (x.nbytes + out_bytes) / t["f_fwd"] / 1e9
        tf = lambda k: f"{t[k] * 1e3:.3f}" if k in t else "-"  # noqa: E731
        ratio = lambda a, b: f"{t[b] / t[a]:.2f}x" if b in t else "-"  # noqa: E731
        rows.append(f"| {label} | {'x'.join(map(str, shape))} | {tf('f_fwd')} | {tf('t_fwd')} | "
                    f"{ratio('f_fwd', 't_fwd')} | {gbs:.1f} ({100 * gbs / bandwidth:.0f}% of copy) | "
                    f"{tf('f_fb')} | {tf('t_fb')} | {ratio('f_fb', 't_fb')} |")
        print(rows[-1], flush=True)
    return rows


def race_models(threads, rounds, with_keras):
    import models as M

    rows = ["| model | train ms fastconv | train ms torch | train ms keras | train ratio vs best peer | "
            "infer ms fastconv | infer ms torch | infer ms keras | infer ratio vs best peer |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in ("lenet5", "mnist_cnn", "cifar_cnn"):
        x, y = M.batch(name)
        fm = M.fastconv_model(name)
        cont = {"f_train": lambda: fm.train_on_batch(x, y),
                "f_infer": lambda: fm.predict_on_batch(x)}
        if torch is not None:
            net = M.torch_model(name).to(memory_format=torch.channels_last)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            lossf = torch.nn.CrossEntropyLoss()
            xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
            yt = torch.from_numpy(y)

            def t_train():
                net.train()
                opt.zero_grad()
                loss = lossf(net(xt), yt)
                loss.backward()
                opt.step()

            def t_infer():
                net.eval()
                with torch.no_grad():
                    net(xt)
            cont.update(t_train=t_train, t_infer=t_infer)
        if with_keras:
            km = M.keras_model(name)
            cont.update(k_train=lambda: km.train_on_batch(x, y), k_infer=lambda: km.predict_on_batch(x))
        t = interleaved(cont, rounds, min_time=0.3)
        tf = lambda k: f"{t[k] * 1e3:.2f}" if k in t else "-"  # noqa: E731

        def best_ratio(kind):
            peers = [t[k] for k in (f"t_{kind}", f"k_{kind}") if k in t]
            return f"{min(peers) / t[f'f_{kind}']:.2f}x" if peers else "-"
        rows.append(f"| {name} | {tf('f_train')} | {tf('t_train')} | {tf('k_train')} | {best_ratio('train')} | "
                    f"{tf('f_infer')} | {tf('t_infer')} | {tf('k_infer')} | {best_ratio('infer')} |")
        print(rows[-1], flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sections", default="conv,pool,models",
                        help="comma list of conv,pool,models,scaling")
    parser.add_argument("--keras", action="store_true", help="also race Keras/TensorFlow on the models")
    parser.add_argument("--no-torch", action="store_true",
                        help="leave PyTorch out (e.g. a Keras-only run: three OpenMP/thread-pool "
                             "runtimes in one process slow each other down)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    if args.no_torch:
        global torch
        torch = None
    fastconv.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    if args.keras:  # the same thread count for TensorFlow (before it runs any op)
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    sections = set(args.sections.split(","))
    peak, bandwidth = ceilings(args.threads)
    command = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/race.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    out = [f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {args.threads} threads",
           "", f"Command: `{command}`", "",
           f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
           f"fastconv {fastconv.__version__} (ISA {fastconv.info.config_dict().get('isa in use')}); "
           f"torch {torch.__version__ if torch is not None else ('left out' if args.no_torch else 'not installed')}.",
           f"Ceilings measured in this run: NumPy sgemm {peak:.0f} GFLOP/s, copy {bandwidth:.1f} GB/s.", ""]
    print("\n".join(out), flush=True)
    if "conv" in sections:
        out += ["### conv2d (batch as in BENCHMARKS.md; ratio = torch / fastconv)", ""]
        out += race_conv(args.threads, args.rounds, peak) + [""]
    if "pool" in sections:
        out += ["### pooling and batch norm", ""] + race_pool_bn(args.threads, args.rounds, bandwidth) + [""]
    if "scaling" in sections:
        out += [f"### thread scaling of fastconv (conv2d fwd+bwd, 1 vs {args.threads} threads)", ""]
        out += race_scaling(args.threads, args.rounds) + [""]
    if "models" in sections:
        out += ["### training step (Adam, batch 64) and inference (batch 64)", ""]
        out += race_models(args.threads, args.rounds, args.keras) + [""]
    after = next(i for i, line in enumerate(out) if line.startswith("Ceilings measured")) + 1
    out[after:after] = ["", l3_state_line()]
    print(out[after + 1], flush=True)
    if not args.no_write:
        previous = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
        head, sep, rest = previous.partition("\n## ")
        RESULTS.write_text(head.rstrip() + "\n\n" + "\n".join(out) + "\n" + (("\n## " + rest) if sep else ""))


if __name__ == "__main__":
    main()
