"""Sparse categorical crossentropy from logits on any memory layout of the predictions.

The loss picks each row's entry at its label by flat index into C-ordered arrays; predictions
that are Fortran-ordered, strided, reversed or N-D must still match the log-softmax formula
(value and gradient), as C-contiguous ones do.
"""
import numpy as np
import pytest

from fastconv import losses


def _expected(labels, logits):
    z = logits.astype(np.float64)
    log_p = z - z.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    onehot = np.eye(z.shape[-1])[labels]
    per_sample = -(onehot * log_p).sum(-1)
    return per_sample.mean(), (np.exp(log_p) - onehot) / labels.size


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 10), (1, 3), (5, 7, 4), (3, 1), (2, 3, 4, 5)])
def test_sparse_crossentropy_from_logits_on_any_layout(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    logits = (rng.standard_normal(shape) * 4).astype(dtype)
    labels = rng.integers(0, shape[-1], shape[:-1])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    value, grad = loss.value_and_gradient(labels, logits)
    want_value, want_grad = _expected(labels, logits)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert grad.dtype == dtype and grad.shape == shape
    np.testing.assert_allclose(value, want_value, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol)
    np.testing.assert_allclose(loss.call(labels, logits), -np.log(np.take_along_axis(
        np.exp(logits.astype(np.float64)) / np.exp(logits.astype(np.float64)).sum(-1, keepdims=True),
        labels[..., None], -1)[..., 0]), rtol=tol, atol=tol)
    # Labels of shape (..., 1): the same computation.
    other_value, other_grad = loss.value_and_gradient(labels[..., None], logits)
    assert other_value == value and other_grad.tobytes() == grad.tobytes()
    # Other layouts of the same logits (NumPy may reduce them in another order: within
    # rounding); the gradient comes back C-ordered with the entries at the labels shifted.
    wide = np.repeat(logits, 2, axis=-1)[..., ::2]  # every other column: the same values
    for layout in (np.asfortranarray(logits), wide, logits[..., ::-1].copy()[..., ::-1]):
        other_value, other_grad = loss.value_and_gradient(labels, layout)
        assert other_grad.shape == shape and other_grad.dtype == dtype
        np.testing.assert_allclose(other_value, want_value, rtol=tol, atol=tol)
        np.testing.assert_allclose(other_grad, want_grad, rtol=tol, atol=tol)
