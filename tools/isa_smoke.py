"""Run every compiled kernel once on small random problems and compare with the reference.

Meant for an installed fastconv on a CPU that may lack AVX2/AVX-512 (tools/build_wheel.sh runs
it under `qemu-x86_64 -cpu Nehalem` and `-cpu Haswell`): an instruction the CPU lacks would
kill the process with SIGILL, a wrong kernel table would fail the comparison.

Usage: python isa_smoke.py [EXPECTED_ISA]   (prints "ok <isa in use>")
"""
import sys

import numpy as np

import fastconv
from fastconv import ops, reference
from fastconv._core import cpu

TOLERANCE = {np.float32: 2e-4, np.float64: 1e-10}

# (x shape NHWC, kernel HWIO, strides, padding, dilation, groups): sizes with tails that are
# not multiples of any vector width, strided, dilated, grouped and depthwise.
CONV_CASES = [
    ((2, 9, 11, 3), (3, 3, 3, 37), 1, "same", 1, 1),
    ((1, 12, 10, 4), (3, 2, 4, 5), (2, 1), ((1, 0), (2, 1)), 1, 1),
    ((1, 10, 9, 4), (2, 3, 4, 7), 1, "same", (2, 3), 1),
    ((2, 7, 7, 6), (3, 3, 2, 9), 1, "valid", 1, 3),
    ((1, 8, 9, 5), (3, 3, 1, 10), 2, "same", 1, 5),
]


def _close(name, got, want, dtype):
    tol = TOLERANCE[dtype] * max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(np.asarray(got, np.float64) - want)))
    if not err <= tol:
        raise AssertionError(f"{name} ({np.dtype(dtype).name}): max error {err:.3g} > {tol:.3g}")


def _pairs(name, got, want, dtype):
    for i, (g, w) in enumerate(zip(got, want)):
        if w is not None:
            _close(f"{name}[{i}]", g, w, dtype)


def check_all(rng):
    for dtype in (np.float32, np.float64):
        for xs, ks, strides, padding, dilation, groups in CONV_CASES:
            x = rng.standard_normal(xs).astype(dtype)
            k = rng.standard_normal(ks).astype(dtype)
            b = rng.standard_normal(ks[3]).astype(dtype)
            args = dict(strides=strides, padding=padding, dilation_rate=dilation, groups=groups)
            y = reference.conv2d_forward(x, k, b, **args)
            _close("conv2d_forward", ops.conv2d_forward(x, k, b, **args), y, dtype)
            dy = rng.standard_normal(y.shape).astype(dtype)
            _pairs("conv2d_backward", ops.conv2d_backward(dy, x, k, **args),
                   reference.conv2d_backward(dy, x, k, **args), dtype)

        x = rng.standard_normal((2, 9, 7, 5)).astype(dtype)
        for fwd, bwd in (("max_pool2d_forward", "max_pool2d_backward"),
                         ("avg_pool2d_forward", "avg_pool2d_backward")):
            args = dict(pool_size=3, strides=2, padding="same")
            y = getattr(reference, fwd)(x, **args)
            _close(fwd, getattr(ops, fwd)(x, **args), y, dtype)
            dy = rng.standard_normal(y.shape).astype(dtype)
            first = x if bwd.startswith("max") else x.shape
            extra = {} if bwd.startswith("max") else {"dtype": dtype}
            _close(bwd, getattr(ops, bwd)(dy, first, **args, **extra),
                   getattr(reference, bwd)(dy, first, **args, **extra), dtype)

        gamma = rng.uniform(0.5, 1.5, 5).astype(dtype)
        beta = rng.standard_normal(5).astype(dtype)
        got = ops.batch_norm_forward_training(x, gamma, beta)
        want = reference.batch_norm_forward_training(x, gamma, beta)
        _pairs("batch_norm_forward_training", got, want, dtype)
        dy = rng.standard_normal(x.shape).astype(dtype)
        _pairs("batch_norm_backward", ops.batch_norm_backward(dy, x, gamma, want[1], want[2]),
               reference.batch_norm_backward(dy, x, gamma, want[1], want[2]), dtype)


def main(argv):
    expected = argv[1] if len(argv) > 1 else None
    if expected is not None and cpu.isa_name() != expected:
        raise SystemExit(f"ISA path in use is {cpu.isa_name()!r}, expected {expected!r}")
    fastconv.set_num_threads(2)
    check_all(np.random.default_rng(0))
    print("ok", cpu.isa_name())


if __name__ == "__main__":
    main(sys.argv)
