"""conv2d forward and forward+backward: compiled core vs NumPy reference vs PyTorch (channels_last).

    python -m pytest bench/test_bench_conv.py --benchmark-group-by=param:case

The PyTorch peer is benchmarked only when it is installed. Compare columns within one run.
"""
import numpy as np
import pytest

import fastconv
from fastconv import ops, reference

from conftest import CONV_CASES, conv_inputs, torch, torch_padding

CASES = list(CONV_CASES)
SMALL = ["lenet_c1", "mnist_c1", "mnist_c2"]  # the reference is too slow for the big ones


@pytest.mark.parametrize("case", CASES)
def test_conv_forward_compiled(benchmark, case):
    x, k, b, s, p = conv_inputs(case)
    benchmark(ops.conv2d_forward, x, k, b, s, p)


@pytest.mark.parametrize("case", CASES)
def test_conv_forward_backward_compiled(benchmark, case):
    x, k, b, s, p = conv_inputs(case)

    def step():
        y = ops.conv2d_forward(x, k, b, s, p)
        return ops.conv2d_backward(y, x, k, s, p)

    benchmark(step)


@pytest.mark.parametrize("case", SMALL)
def test_conv_forward_reference(benchmark, case):
    x, k, b, s, p = conv_inputs(case)
    benchmark(reference.conv2d_forward, x, k, b, s, p)


def _torch_conv(case):
    x, k, b, s, p = conv_inputs(case)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    wt = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
    wt = wt.contiguous(memory_format=torch.channels_last)
    bt = torch.from_numpy(b)
    return xt, wt, bt, s, torch_padding(p, k.shape[0])


@pytest.mark.parametrize("case", CASES)
def test_conv_forward_torch(benchmark, require_torch, case):
    xt, wt, bt, s, p = _torch_conv(case)
    torch.set_num_threads(fastconv.get_num_threads())
    with torch.no_grad():
        benchmark(torch.nn.functional.conv2d, xt, wt, bt, s, p)


@pytest.mark.parametrize("case", CASES)
def test_conv_forward_backward_torch(benchmark, require_torch, case):
    xt, wt, bt, s, p = _torch_conv(case)
    xt.requires_grad_(True)
    wt.requires_grad_(True)
    bt.requires_grad_(True)
    torch.set_num_threads(fastconv.get_num_threads())

    def step():
        y = torch.nn.functional.conv2d(xt, wt, bt, s, p)
        y.backward(y.detach())

    benchmark(step)
