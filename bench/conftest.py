"""Benchmark configuration: shapes from ../shared/BENCHMARKS.md and optional peers."""
import numpy as np
import pytest

try:
    import torch
except ImportError:  # PyTorch is optional: only the peer columns are missing then
    torch = None

# name: (N, H, W, Cin, Cout, kernel, stride, padding)
CONV_CASES = {
    "lenet_c1": (64, 32, 32, 1, 6, 5, 1, "valid"),
    "mnist_c1": (64, 28, 28, 1, 32, 3, 1, "same"),
    "mnist_c2": (64, 14, 14, 32, 64, 3, 1, "same"),
    "cifar": (64, 32, 32, 64, 64, 3, 1, "same"),
    "res": (32, 14, 14, 256, 256, 3, 1, "same"),
    "alex_c1": (8, 224, 224, 3, 64, 11, 4, 2),
    "pw_1x1": (64, 28, 28, 64, 128, 1, 1, "valid"),
}


def conv_inputs(case, dtype=np.float32, seed=0):
    n, h, w, cin, cout, k, s, p = CONV_CASES[case]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    kern = (rng.standard_normal((k, k, cin, cout)) / np.sqrt(k * k * cin)).astype(dtype)
    bias = rng.standard_normal(cout).astype(dtype)
    return x, kern, bias, s, p


def conv_flops(case):
    """Multiply-adds x 2 of the forward pass."""
    from fastconv._validation import window_geometry

    n, h, w, cin, cout, k, s, p = CONV_CASES[case]
    geo = window_geometry((n, h, w, cin), (k, k), (s, s), p, (1, 1))
    return 2.0 * n * geo.out_h * geo.out_w * cout * k * k * cin


def torch_padding(p, k):
    return p if isinstance(p, int) else (0 if p == "valid" else k // 2)


@pytest.fixture
def require_torch():
    if torch is None:
        pytest.skip("PyTorch is not installed (pip install torch==2.13.0)")
    return torch
