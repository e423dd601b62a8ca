"""Bad arguments get a clear ValueError/TypeError from every backend, naming the argument."""
import numpy as np
import pytest

from fastconv import _validation as V

X = np.zeros((2, 6, 6, 4), dtype=np.float32)
K = np.zeros((3, 3, 4, 8), dtype=np.float32)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(x=np.zeros((6, 6, 4))), ValueError, r"`x` must be a 4-D array"),
        (dict(kernel=np.zeros((3, 3, 8))), ValueError, r"`kernel` must be a 4-D array"),
        (dict(kernel=np.zeros((3, 3, 3, 8))), ValueError, r"in_channels // groups = 4"),
        (dict(groups=3), ValueError, r"divisible by `groups`"),
        (dict(groups=0), ValueError, r"`groups` argument must be a positive integer"),
        (dict(kernel=np.zeros((3, 3, 2, 6)), groups=2, strides=(1, 1)), None, None),
        (dict(strides=0), ValueError, r"`strides` argument must contain only positive"),
        (dict(strides=(1, 2, 3)), ValueError, r"`strides` argument must be an integer or a tuple of 2"),
        (dict(padding="full"), ValueError, r"`padding` argument must be 'valid', 'same'"),
        (dict(padding=-1), ValueError, r"`padding`"),
        (dict(kernel=np.zeros((7, 7, 4, 8))), ValueError, r"larger than the padded input"),
        (dict(dilation_rate=(4, 4)), ValueError, r"larger than the padded input"),
        (dict(strides=2, dilation_rate=2), ValueError, r"not supported"),
        (dict(x=np.zeros((2, 6, 6, 4), dtype=bool)), TypeError, r"`x` must have a real float"),
        (dict(x=np.zeros((2, 6, 6, 4), dtype=complex)), TypeError, r"`x` must have a real float"),
        (dict(x=np.array([["a"]])), TypeError, r"`x` must have a real float"),
        (dict(bias=np.zeros(7)), ValueError, r"`bias` must have shape \(8,\)"),
        (dict(x=np.zeros((0, 6, 6, 4))), ValueError, r"empty axes"),
    ],
)
def test_conv2d_rejects_bad_arguments(kernels, kwargs, exc, match):
    args = dict(x=X, kernel=K, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1)
    args.update(kwargs)
    if exc is None:
        kernels.conv2d_forward(**args)
        return
    with pytest.raises(exc, match=match):
        kernels.conv2d_forward(**args)


def test_conv2d_backward_checks_dy_shape(kernels):
    with pytest.raises(ValueError, match=r"`dy` must have shape \(2, 4, 4, 8\)"):
        kernels.conv2d_backward(np.zeros((2, 4, 4, 7)), X, K)


def test_integer_input_is_converted_not_truncated(kernels):
    xi = np.arange(2 * 6 * 6 * 4).reshape(2, 6, 6, 4) % 5
    y = kernels.conv2d_forward(xi, K.astype(np.float64) + 0.5)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, kernels.conv2d_forward(xi.astype(np.float64), K.astype(np.float64) + 0.5))


@pytest.mark.parametrize(
    "args,exc,match",
    [
        (dict(pool_size=0), ValueError, r"`pool_size`"),
        (dict(pool_size=7), ValueError, r"pool window .* larger than the padded input"),
        (dict(padding=1), ValueError, r"`padding` argument must be 'valid' or 'same'"),
        (dict(strides=(1, 0)), ValueError, r"`strides`"),
    ],
)
def test_pooling_rejects_bad_arguments(kernels, args, exc, match):
    for fwd in (kernels.max_pool2d_forward, kernels.avg_pool2d_forward):
        with pytest.raises(exc, match=match):
            fwd(X, **args)


def test_batch_norm_rejects_bad_arguments(kernels):
    with pytest.raises(ValueError, match=r"`gamma` must have shape \(4,\)"):
        kernels.batch_norm_forward_training(X, np.ones(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"`epsilon` must be a positive"):
        kernels.batch_norm_forward_training(X, np.ones(4), np.zeros(4), epsilon=0)
    with pytest.raises(ValueError, match=r"`moving_var` must have shape"):
        kernels.batch_norm_forward_inference(X, np.ones(4), np.zeros(4), np.zeros(4), np.ones(5))


def test_dense_rejects_bad_arguments(kernels):
    with pytest.raises(ValueError, match=r"`kernel` must have shape \(in_features=3"):
        kernels.dense_forward(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"`x` must be a 2-D array"):
        kernels.dense_forward(np.zeros((2, 3, 1)), np.zeros((3, 5)))


@pytest.mark.parametrize(
    "padding,expected",
    [
        ("valid", ((0, 0), (0, 0))),
        (2, ((2, 2), (2, 2))),
        ((1, 3), ((1, 1), (3, 3))),
        (((1, 0), (2, 1)), ((1, 0), (2, 1))),
        # TensorFlow 'same': in 7, kernel 4, stride 2 -> out 4, total pad 3 -> (1, 2)
        ("same", ((1, 2), (1, 2))),
    ],
)
def test_resolve_padding(padding, expected):
    assert V.resolve_padding(padding, (7, 7), (4, 4), (2, 2), (1, 1)) == expected


def test_backend_switch_and_threads():
    import fastconv

    fastconv.set_backend("compiled")
    with fastconv.use_backend("reference"):
        assert fastconv.get_backend() == "reference"
        assert fastconv.backend.get_ops().__name__ == "fastconv.reference"
    assert fastconv.get_backend() == "compiled"
    with pytest.raises(ValueError, match="`backend` must be one of"):
        fastconv.set_backend("gpu")
    with pytest.raises(ValueError, match="positive integer"):
        fastconv.set_num_threads(0)


def test_small_work_runs_on_fewer_threads(monkeypatch):
    import fastconv
    from fastconv import ops

    monkeypatch.setattr(ops, "MIN_FLOPS_PER_THREAD", 1000)
    fastconv.set_num_threads(2)
    assert ops._threads(10, 1000) == 1
    assert ops._threads(1999, 1000) == 1
    assert ops._threads(2000, 1000) == 2
    assert ops._threads(10**9, 1000) == 2
    assert ops._threads(10, 0) == 2


def test_conv2d_check_cache_keeps_argument_types_apart():
    """check_conv2d remembers valid calls by shapes, dtype and typed arguments: a cached valid
    call never lets a differently typed or invalid one through."""
    x = np.ones((1, 5, 5, 2), np.float32)
    k = np.ones((3, 3, 2, 4), np.float32)
    for _ in range(2):  # the second round runs from the cache
        geo = V.check_conv2d(x, k, None, 1, "valid", 1, 1)[3]
        assert (geo.out_h, geo.out_w) == (3, 3)
    for strides in (1.0, True, 0):
        with pytest.raises((TypeError, ValueError)):
            V.check_conv2d(x, k, None, strides, "valid", 1, 1)
    with pytest.raises(ValueError):
        V.check_conv2d(x, k, None, 1, "full", 1, 1)
    with pytest.raises(ValueError):
        V.check_conv2d(x, k, np.ones(3, np.float32), 1, "valid", 1, 1)  # bias of 3 for 4 filters
    # another dtype with the same shapes is converted as before, not served from the cache
    x64, k64, _, _, _ = V.check_conv2d(x.astype(np.float64), k, None, 1, "valid", 1, 1)
    assert x64.dtype == k64.dtype == np.float64
