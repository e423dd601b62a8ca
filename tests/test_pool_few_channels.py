"""Pooling kernels with few channels (C not a multiple of the vector width, e.g. LeNet's 6).

The compiled kernels take such channels as partial (masked) vectors, and on AVX-512 average
pooling with C < 16 (float32) / 8 (float64) does several windows per vector through lane
permutations. Every path must give the reference's results: max pooling and the argmax
exactly; average pooling exactly the sum of the window's real pixels in row-major order
divided by their count (the order the kernels define), and the reference within rounding;
backward passes exactly where each dx element receives one share (windows that do not
overlap) or the sums are exact (integer values). Checked for C = 1..17, odd sizes, 'valid'
and 'same', strides below, equal to and above the pool size, batch 1, float32 and float64,
non-contiguous input, 1 vs 2 threads bit for bit, on every ISA path (FASTCONV_ISA
subprocesses: the permutation path exists only under AVX-512).
"""
import os
import subprocess
import sys
import textwrap

import pytest

from fastconv._core import cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECKS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import fastconv
    from fastconv import _validation as V, ops, reference as ref
    from fastconv._core import cpu

    assert cpu.isa_name() == sys.argv[1], (cpu.isa_name(), sys.argv[1])

    def avg_in_row_major_order(x, pool, strides, padding):
        # Sum of each window's real pixels, first tap as is, then one tap at a time in
        # row-major order, divided by their count: all in x's dtype.
        geo = V.pool_geometry(x.shape, pool, strides, padding)
        (pt, _), (pl, _) = geo.padding
        out = np.empty((geo.n, geo.out_h, geo.out_w, geo.c), dtype=x.dtype)
        for oh in range(geo.out_h):
            r0, r1 = max(oh * geo.strides[0] - pt, 0), min(oh * geo.strides[0] - pt + geo.kh, geo.h)
            for ow in range(geo.out_w):
                c0 = max(ow * geo.strides[1] - pl, 0)
                c1 = min(ow * geo.strides[1] - pl + geo.kw, geo.w)
                taps = [(r, c) for r in range(r0, r1) for c in range(c0, c1)]
                acc = x[:, taps[0][0], taps[0][1], :].copy()
                for r, c in taps[1:]:
                    acc = acc + x[:, r, c, :]
                out[:, oh, ow, :] = acc / x.dtype.type(len(taps))
        return out

    def check(x, pool, strides, padding, rng):
        dtype = x.dtype
        tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        geo = V.pool_geometry(x.shape, pool, strides, padding)
        disjoint = geo.kh <= geo.strides[0] and geo.kw <= geo.strides[1]
        case = (x.shape, pool, strides, padding, dtype.name)
        # Average pooling: the definition order exactly, the reference within rounding.
        y = ops.avg_pool2d_forward(x, pool, strides, padding)
        assert y.tobytes() == avg_in_row_major_order(x, pool, strides, padding).tobytes(), case
        np.testing.assert_allclose(y, ref.avg_pool2d_forward(x, pool, strides, padding), **tol)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = ops.avg_pool2d_backward(dy, x.shape, pool, strides, padding)
        want = ref.avg_pool2d_backward(dy, x.shape, pool, strides, padding)
        if disjoint:  # one share per dx element, computed as the reference does
            assert dx.tobytes() == want.tobytes(), case
        else:
            np.testing.assert_allclose(dx, want, **tol)
        # Max pooling on values with ties and a NaN: first maxima, exact.
        xi = rng.integers(0, 3, size=x.shape).astype(dtype)
        xi.flat[rng.integers(0, xi.size)] = np.nan
        y_ref, argmax_ref = ref.max_pool2d_forward_with_argmax(xi, pool, strides, padding)
        assert ops.max_pool2d_forward(xi, pool, strides, padding).tobytes() == y_ref.tobytes(), case
        y, argmax = ops.max_pool2d_forward_with_argmax(xi, pool, strides, padding)
        assert y.tobytes() == y_ref.tobytes() and np.array_equal(argmax, argmax_ref), case
        dyi = rng.integers(-4, 5, size=y.shape).astype(dtype)  # integer sums: exact in any order
        want = ref.max_pool2d_backward(dyi, xi, pool, strides, padding)
        assert np.array_equal(ops.max_pool2d_backward(dyi, xi, pool, strides, padding), want), case
        assert np.array_equal(ops.max_pool2d_backward_from_argmax(dyi, argmax, x.shape, pool, strides,
                                                                  padding), want), case

    rng = np.random.default_rng(int(sys.argv[2]))
    configs = [(2, None, "valid"), (2, None, "same"), (3, 2, "same"), ((2, 3), (2, 3), "valid"),
               (3, 3, "valid"), (2, 3, "same"), ((3, 2), 1, "valid")]
    channels = [int(c) for c in sys.argv[3].split(",")]
    for c in channels:
        for dtype in (np.float32, np.float64):
            for pool, strides, padding in configs:
                # Wide rows: enough windows per row for several windows per vector (C = 1:
                # 16 float32 windows), odd sizes so that the last row/column is left over.
                check(rng.standard_normal((2, 5, 37, c)).astype(dtype), pool, strides, padding, rng)
            check(rng.standard_normal((1, 7, 9, c)).astype(dtype), 2, None, "same", rng)  # batch 1
            # Non-contiguous input (every other channel of a wider array).
            wide = rng.standard_normal((2, 6, 21, 2 * c)).astype(dtype)
            check(wide[..., ::2], 2, None, "valid", rng)

    # LeNet's pooling layers, and results independent of the thread count: these shapes are
    # large enough (> 2 x 32768 elements) for the kernels to use both threads.
    for shape in ((64, 28, 28, 6), (64, 10, 10, 16), (9, 33, 35, 5)) if sys.argv[4] == "1" else ():
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(shape).astype(dtype)
            results = []
            for threads in (1, 2):
                fastconv.set_num_threads(threads)
                y = ops.avg_pool2d_forward(x, 2)
                dy = np.cos(np.arange(y.size, dtype=dtype)).reshape(y.shape)
                ym, argmax = ops.max_pool2d_forward_with_argmax(x, 2)
                y3 = ops.max_pool2d_forward(x, 3, 2, "same")  # overlapping windows
                dy3 = np.sin(np.arange(y3.size, dtype=dtype)).reshape(y3.shape)
                results.append([y, ops.avg_pool2d_backward(dy, x.shape, 2), ym, argmax,
                                 ops.max_pool2d_backward_from_argmax(dy, argmax, x.shape, 2),
                                 ops.max_pool2d_backward(dy3, x, 3, 2, "same")])
            for one, two in zip(*results):
                assert one.tobytes() == two.tobytes(), (shape, dtype)
            assert results[0][0].tobytes() == avg_in_row_major_order(x, 2, None, "valid").tobytes()
            np.testing.assert_allclose(results[0][1], ref.avg_pool2d_backward(dy, x.shape, 2), rtol=0)
    print("ok", cpu.isa_name())
    """
)


@pytest.mark.parametrize("channels", ["1,2,3,4,5,6", "7,8,9,10,11", "12,13,14,15,16,17"])
@pytest.mark.parametrize("isa", cpu.isa_available())
def test_few_channel_pooling_on_every_isa_path(isa, channels):
    env = dict(os.environ, FASTCONV_ISA=isa, PYTHONPATH=ROOT)
    threads_too = "1" if channels.startswith("1,") else "0"  # once per ISA
    proc = subprocess.run([sys.executable, "-c", CHECKS, isa, "7", channels, threads_too], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"ok {isa}"
