"""fastconv against PyTorch in one process: conv2d forward/backward agreement and both
libraries' OpenMP kernels running at the same time (where PyTorch is installed).

PyTorch is not a dependency of fastconv nor a test extra, so these cross-checks live with the
benchmarks: `pip install torch==2.13.0 && python -m pytest bench/test_torch_crosscheck.py`.
"""
import pathlib
import sys

import numpy as np
import pytest

import fastconv
from fastconv import ops

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from test_interop import run_child  # noqa: E402  (child interpreter under a timeout)

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0)")


CONV_CASES = [  # (x shape NHWC, kernel HWIO, strides, padding, dilation, groups)
    ((2, 11, 9, 4), (3, 3, 4, 6), 1, (1, 1), 1, 1),
    ((1, 13, 12, 6), (3, 2, 3, 8), 2, (2, 0), 1, 2),
    ((3, 10, 10, 5), (3, 3, 1, 5), 1, (2, 2), 2, 5),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES, ids=["plain", "strided-grouped", "dilated-depthwise"])
def test_torch_and_fastconv_conv2d_agree(case, dtype):
    """Forward and backward against torch.nn.functional.conv2d, both in this process."""
    xs, ks, strides, (ph, pw), dilation, groups = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xs).astype(dtype)
    kernel = rng.standard_normal(ks).astype(dtype)
    bias = rng.standard_normal(ks[3]).astype(dtype)
    fastconv.set_num_threads(2)
    args = dict(strides=strides, padding=((ph, ph), (pw, pw)), dilation_rate=dilation,
                groups=groups)
    y = ops.conv2d_forward(x, kernel, bias, **args)

    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)       # NCHW
    tk = torch.tensor(kernel.transpose(3, 2, 0, 1), requires_grad=True)  # OIHW
    tb = torch.tensor(bias, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tk, tb, stride=strides, padding=(ph, pw),
                                    dilation=dilation, groups=groups)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=tol, atol=tol)

    dy = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    dx, dkernel, dbias = ops.conv2d_backward(dy, x, kernel, **args)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=tol, atol=tol)
    np.testing.assert_allclose(dkernel, tk.grad.numpy().transpose(2, 3, 1, 0), rtol=tol, atol=tol)
    np.testing.assert_allclose(dbias, tb.grad.numpy(), rtol=tol, atol=tol)


def test_torch_and_fastconv_at_the_same_time():
    """torch's OpenMP convolutions in one thread, fastconv's in another, then under one limit."""
    out = run_child("""
        import torch
        from threadpoolctl import threadpool_limits
        torch.manual_seed(0)
        a = torch.randn(8, 16, 32, 32)
        w = torch.randn(32, 16, 3, 3)
        ref = torch.nn.functional.conv2d(a, w, padding=1)
        results = {}
        def torch_work():
            results["torch"] = all(
                torch.allclose(torch.nn.functional.conv2d(a, w, padding=1), ref, atol=1e-4)
                for _ in range(20))
        worker = threading.Thread(target=torch_work)
        worker.start()
        results["fastconv"] = fastconv_ok(rounds=40)
        worker.join()
        assert results == {"torch": True, "fastconv": True}, results
        fastconv.set_num_threads(None)
        with threadpool_limits(limits=1, user_api="openmp"):
            assert fastconv.get_num_threads() == 1 and torch.get_num_threads() == 1
            assert fastconv_ok() and torch.allclose(
                torch.nn.functional.conv2d(a, w, padding=1), ref, atol=1e-4)
        print("ok")
    """)
    assert out.strip() == "ok"
