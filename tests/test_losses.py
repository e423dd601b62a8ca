"""Losses: values against their formulas and Keras' documented examples, gradients against
centred finite differences (float64), target checking."""
import numpy as np
import pytest

from fastconv import losses

EPS = 1e-7


# -- formulas written independently of fastconv.losses ---------------------------------------------
def scce_formula(labels, probs, from_logits=False):
    probs = np.asarray(probs, dtype=np.float64)
    if from_logits:
        e = np.exp(probs - probs.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    else:
        p = np.clip(probs / probs.sum(-1, keepdims=True), EPS, 1 - EPS)
    picked = np.take_along_axis(p, np.asarray(labels)[..., None], -1)[..., 0]
    return np.mean(-np.log(picked))


def cce_formula(onehot, probs, from_logits=False, smoothing=0.0):
    onehot = np.asarray(onehot, dtype=np.float64)
    onehot = onehot * (1 - smoothing) + smoothing / onehot.shape[-1]
    probs = np.asarray(probs, dtype=np.float64)
    if from_logits:
        e = np.exp(probs - probs.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    else:
        p = np.clip(probs / probs.sum(-1, keepdims=True), EPS, 1 - EPS)
    return np.mean(-(onehot * np.log(p)).sum(-1))


def bce_formula(t, o, from_logits=False, smoothing=0.0):
    t = np.asarray(t, dtype=np.float64) * (1 - smoothing) + 0.5 * smoothing
    o = np.asarray(o, dtype=np.float64)
    if from_logits:
        o = 1 / (1 + np.exp(-o))
    o = np.clip(o, EPS, 1 - EPS)
    return np.mean(-(t * np.log(o) + (1 - t) * np.log(1 - o)))


def numeric_gradient(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f(x)
        x[i] = old - h
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


# -- Keras' documented examples -------------------------------------------------------------------
def test_keras_documented_values():
    preds = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
    assert losses.SparseCategoricalCrossentropy()([1, 2], preds) == pytest.approx(1.177, abs=1e-3)
    assert losses.CategoricalCrossentropy()([[0, 1, 0], [0, 0, 1]], preds) == pytest.approx(1.177, abs=1e-3)
    assert losses.BinaryCrossentropy(from_logits=True)(
        [0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]) == pytest.approx(0.865, abs=1e-3)
    assert losses.BinaryCrossentropy()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]) == pytest.approx(0.815, abs=1e-3)
    assert losses.MeanSquaredError()([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]) == pytest.approx(0.5)
    assert losses.MeanAbsoluteError()([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]) == pytest.approx(0.5)


# -- values against the formulas ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("shape", [(1, 2), (7, 5), (3, 4, 2, 3)])
def test_crossentropy_values(dtype, from_logits, shape):
    rng = np.random.default_rng(0)
    pred = (rng.normal(size=shape) if from_logits else rng.uniform(0.05, 1, size=shape)).astype(dtype)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    onehot = np.eye(shape[-1])[labels]
    tol = dict(rel=1e-5) if dtype == np.float32 else dict(rel=1e-12)
    assert losses.SparseCategoricalCrossentropy(from_logits)(labels, pred) == pytest.approx(
        scce_formula(labels, pred, from_logits), **tol)
    assert losses.CategoricalCrossentropy(from_logits, label_smoothing=0.1)(onehot, pred) == pytest.approx(
        cce_formula(onehot, pred, from_logits, 0.1), **tol)
    t = rng.integers(0, 2, size=shape).astype(dtype)
    bce_pred = pred if from_logits else rng.uniform(0.01, 0.99, size=shape).astype(dtype)
    assert losses.BinaryCrossentropy(from_logits, label_smoothing=0.2)(t, bce_pred) == pytest.approx(
        bce_formula(t, bce_pred, from_logits, 0.2), **tol)
    target = rng.normal(size=shape)
    assert losses.MeanSquaredError()(target, pred) == pytest.approx(
        np.mean((target - pred.astype(np.float64)) ** 2), **tol)


def test_probabilities_are_clipped_like_keras():
    # A zero probability for the true class costs -log(1e-7), not infinity.
    value = losses.SparseCategoricalCrossentropy()([0], [[0.0, 1.0]])
    assert value == pytest.approx(-np.log(EPS), rel=1e-6)
    grad = losses.SparseCategoricalCrossentropy().gradient([0], np.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(grad, np.zeros((1, 2)))  # clip is flat there
    assert losses.BinaryCrossentropy()([1.0], [[0.0]]) == pytest.approx(-np.log(EPS), rel=1e-6)


def test_from_logits_is_stable_for_large_logits():
    big = np.array([[1000.0, -1000.0, 0.0]])
    assert losses.SparseCategoricalCrossentropy(from_logits=True)([1], big) == pytest.approx(2000.0)
    assert losses.BinaryCrossentropy(from_logits=True)([[0.0]], [[800.0]]) == pytest.approx(800.0)
    assert np.isfinite(losses.BinaryCrossentropy(from_logits=True).gradient([[0.0]], [[800.0]])).all()


def test_sparse_labels_with_trailing_axis_and_float_values():
    pred = np.array([[0.2, 0.8], [0.6, 0.4]])
    loss = losses.SparseCategoricalCrossentropy()
    expected = scce_formula([1, 0], pred)
    assert loss(np.array([[1], [0]]), pred) == pytest.approx(expected)
    assert loss(np.array([1.0, 0.0]), pred) == pytest.approx(expected)


def test_per_sample_functions():
    pred = np.array([[0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy([1, 1], pred),
                               [-np.log(0.8), -np.log(0.4)])
    np.testing.assert_allclose(losses.mean_squared_error([[0, 0], [1, 1]], pred),
                               [(0.04 + 0.64) / 2, (0.16 + 0.36) / 2])


# -- gradients against finite differences ---------------------------------------------------------
GRADIENT_CASES = [
    ("scce probs", lambda: losses.SparseCategoricalCrossentropy(), "sparse", False),
    ("scce logits", lambda: losses.SparseCategoricalCrossentropy(from_logits=True), "sparse", True),
    ("cce probs", lambda: losses.CategoricalCrossentropy(), "onehot", False),
    ("cce probs smoothed", lambda: losses.CategoricalCrossentropy(label_smoothing=0.2), "onehot", False),
    ("cce logits smoothed", lambda: losses.CategoricalCrossentropy(True, 0.1), "onehot", True),
    ("bce probs", lambda: losses.BinaryCrossentropy(label_smoothing=0.1), "binary", False),
    ("bce logits", lambda: losses.BinaryCrossentropy(from_logits=True), "binary", True),
    ("mse", lambda: losses.MeanSquaredError(), "real", True),
    ("mae", lambda: losses.MeanAbsoluteError(), "real", True),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
@pytest.mark.parametrize("shape", [(1, 3), (6, 4), (2, 3, 3, 5)])
def test_gradient_matches_finite_differences(case, shape):
    _, make, target_kind, real_pred = case
    rng = np.random.default_rng(1)
    loss = make()
    # Unnormalised positive "probabilities" exercise Keras' rescaling to sum 1, too.
    pred = rng.normal(size=shape) if real_pred else rng.uniform(0.05, 0.95, size=shape)
    if target_kind == "sparse":
        target = rng.integers(0, shape[-1], size=shape[:-1])
    elif target_kind == "onehot":
        target = np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    elif target_kind == "binary":
        target = rng.integers(0, 2, size=shape).astype(float)
    else:
        target = rng.normal(size=shape)
    analytic = loss.gradient(target, pred)
    assert analytic.shape == pred.shape and analytic.dtype == np.float64
    numeric = numeric_gradient(lambda p: loss(target, p), pred.copy())
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
    value, grad = loss.value_and_gradient(target, pred)
    assert value == loss(target, pred)
    np.testing.assert_array_equal(grad, analytic)


def test_gradient_keeps_float32():
    pred = np.full((2, 3), 1 / 3, dtype=np.float32)
    assert losses.SparseCategoricalCrossentropy().gradient([0, 2], pred).dtype == np.float32
    assert losses.MeanSquaredError().gradient(np.zeros((2, 3)), pred).dtype == np.float32


def test_binary_targets_may_omit_the_unit_axis():
    pred = np.array([[0.9], [0.2]])
    loss = losses.BinaryCrossentropy()
    assert loss([1, 0], pred) == pytest.approx(loss([[1], [0]], pred))
    assert loss.gradient([1, 0], pred).shape == (2, 1)


# -- bad targets -------------------------------------------------------------------------------------
def test_sparse_label_out_of_range():
    with pytest.raises(ValueError, match=r"class index 3, outside \[0, 2\]"):
        losses.SparseCategoricalCrossentropy()([0, 3], np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"class index -1"):
        losses.SparseCategoricalCrossentropy()([-1, 0], np.full((2, 3), 1 / 3))


def test_sparse_label_not_integer():
    with pytest.raises(ValueError, match="integer class indices.*0.5"):
        losses.SparseCategoricalCrossentropy()([0.5, 1.0], np.full((2, 3), 1 / 3))
    with pytest.raises(TypeError, match="integer class indices"):
        losses.SparseCategoricalCrossentropy()(["a", "b"], np.full((2, 3), 1 / 3))


def test_sparse_labels_given_one_hot():
    with pytest.raises(ValueError, match="one integer class index per sample.*categorical_crossentropy"):
        losses.SparseCategoricalCrossentropy()(np.eye(3), np.full((3, 3), 1 / 3))


def test_categorical_given_integer_labels():
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        losses.CategoricalCrossentropy()(np.array([0, 1, 2]), np.full((3, 3), 1 / 3))


def test_shape_mismatch_and_nan_targets():
    with pytest.raises(ValueError, match=r"shape of the predictions, \(2, 3\); received shape \(2, 2\)"):
        losses.MeanSquaredError()(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        losses.MeanSquaredError()(np.array([[np.nan]]), np.zeros((1, 1)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(TypeError, match="from_logits"):
        losses.SparseCategoricalCrossentropy(from_logits="yes")


# -- lookup and serialization ----------------------------------------------------------------------
@pytest.mark.parametrize("name, cls", [
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("binary_crossentropy", losses.BinaryCrossentropy),
    ("mse", losses.MeanSquaredError),
    ("mean_squared_error", losses.MeanSquaredError),
    ("mae", losses.MeanAbsoluteError),
    ("BinaryCrossentropy", losses.BinaryCrossentropy),
])
def test_get_by_name(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls
    assert losses.get(loss) is loss


def test_get_rejects_unknown():
    with pytest.raises(ValueError, match="Unknown loss 'hinge'"):
        losses.get("hinge")
    with pytest.raises(TypeError, match="loss name"):
        losses.get(3)


def test_serialize_round_trip():
    loss = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    again = losses.deserialize(losses.serialize(loss))
    assert type(again) is losses.CategoricalCrossentropy
    assert again.get_config() == loss.get_config()
    with pytest.raises(ValueError, match="Unknown loss configuration"):
        losses.deserialize({"class_name": "Nope", "config": {}})


# -- the compiled softmax crossentropy of integer labels (ops.sparse_softmax_crossentropy) ----
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,scale", [((64, 10), 3.0), ((1, 1), 1.0), ((1, 3), 1.0), ((3, 1), 5.0),
                                         ((7, 1000), 2.0), ((33, 17), 80.0)])
def test_sparse_softmax_kernel_matches_reference(shape, scale, dtype):
    from fastconv import ops
    from fastconv import reference as ref

    rng = np.random.default_rng(shape[1] + 7)
    logits = (rng.standard_normal(shape) * scale).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0])
    value, grad = ops.sparse_softmax_crossentropy(logits, labels)
    want_value, want_grad = ref.sparse_softmax_crossentropy(logits, labels)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    assert grad.dtype == dtype and grad.shape == shape and grad.flags.c_contiguous
    np.testing.assert_allclose(value, want_value, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol / shape[0])
    # in float64, exactly: the mean of log(sum exp) - z[label], the gradient softmax - onehot
    z = logits.astype(np.float64)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    np.testing.assert_allclose(value, np.mean(lse - z[np.arange(shape[0]), labels]), rtol=tol)
    # the loss object takes the kernel for this layout: its value and gradient, and its call
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    got_value, got_grad = loss.value_and_gradient(labels.astype(np.uint8 if shape[1] < 256 else np.int32), logits)
    assert got_value == value and got_grad.tobytes() == grad.tobytes()
    assert loss(labels[:, None], logits) == value


def test_sparse_softmax_kernel_labels_out_of_range_and_odd_inputs():
    from fastconv import ops
    from fastconv import reference as ref
    from fastconv._core import elementwise as core

    logits = np.zeros((4, 3), np.float32)
    for bad in (3, -1):
        labels = np.array([0, 1, bad, 2])
        assert ops.sparse_softmax_crossentropy(logits, labels) is None
        assert ref.sparse_softmax_crossentropy(logits, labels) is None
        with pytest.raises(ValueError, match=f"class index {bad}, outside"):
            losses.SparseCategoricalCrossentropy(from_logits=True).value_and_gradient(labels, logits)
    # uint64 labels past int64: wrapped negative by the cast, still refused and named
    big = np.array([0, 2**64 - 1, 0, 0], np.uint64)
    with pytest.raises(ValueError, match="outside"):
        losses.SparseCategoricalCrossentropy(from_logits=True)(big, logits)
    # a NaN logit: that row's loss and gradient are NaN, the others are not
    nan = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]])
    value, grad = ops.sparse_softmax_crossentropy(nan, np.array([0, 1]))
    assert np.isnan(value) and np.isnan(grad[0]).all() and np.isfinite(grad[1]).all()
    # Fortran-ordered logits (the reference computes them) and a strided label vector
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((9, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 18)[::2]
    want = ref.sparse_softmax_crossentropy(logits, labels)
    for z, lab in ((np.asfortranarray(logits), labels), (logits, labels)):
        value, grad = ops.sparse_softmax_crossentropy(z, lab)
        np.testing.assert_allclose(value, want[0], rtol=2e-6)
        np.testing.assert_allclose(grad, want[1], atol=1e-7)
    # the kernel's own checks
    grad = np.empty((9, 5), np.float32)
    with pytest.raises(ValueError, match="labels"):
        core.sparse_softmax_crossentropy(logits, labels.astype(np.int32), grad)
    with pytest.raises(ValueError, match="labels"):
        core.sparse_softmax_crossentropy(logits, np.ascontiguousarray(labels[:4]), grad)
    with pytest.raises(ValueError, match="grad"):
        core.sparse_softmax_crossentropy(logits, np.ascontiguousarray(labels), np.empty((9, 5)))
    with pytest.raises(ValueError, match="logits"):
        core.sparse_softmax_crossentropy(logits[0], np.ascontiguousarray(labels), grad)
    with pytest.raises(ValueError, match="overlap"):
        core.sparse_softmax_crossentropy(logits, np.ascontiguousarray(labels), logits)
