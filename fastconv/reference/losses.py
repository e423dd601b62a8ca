"""The softmax crossentropy of integer labels in NumPy: the specification of the compiled
loss kernel (`fastconv._core.elementwise.sparse_softmax_crossentropy`, through
`fastconv.ops`). The kernel computes each row in double precision, so the two agree to
rounding (float32: a few ulp), not bit for bit.
"""
import numpy as np


def sparse_softmax_crossentropy(logits, labels):
    """(mean loss, gradient of the mean loss with respect to `logits`) of integer `labels`
    (batch,) for `logits` (batch, classes): loss_r = -log softmax(logits_r)[label_r]. None if
    a label lies outside [0, classes) (the caller names it; see `losses.sparse_labels`)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    rows, classes = logits.shape
    if ((labels < 0) | (labels >= classes)).any():
        return None
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    # Each row's entry at its label, by flat index into the C-ordered arrays: the same
    # elements as take/put_along_axis, at a fraction of their per-call cost.
    at_label = np.arange(rows) * classes + labels.reshape(-1)
    per_sample = -log_p.reshape(-1)[at_label]
    grad = np.exp(log_p, out=np.empty(log_p.shape, log_p.dtype))  # C-contiguous
    grad.reshape(-1)[at_label] -= 1.0  # a view, as grad is C-contiguous
    grad /= rows
    return float(per_sample.mean()), grad.astype(logits.dtype, copy=False)
