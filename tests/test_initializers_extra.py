"""Initializers beyond the variance-scaling family: Orthogonal (gain, tall/wide/conv shapes),
Identity; every course name through `get` and layer arguments; and whole-run reproducibility:
`fastconv.utils.set_random_seed` makes building and fitting a model bit-identical."""
import json

import numpy as np
import pytest

import fastconv
from fastconv import initializers, layers, utils


@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (5, 5), (3, 3, 4, 8), (2, 2, 6, 5), (1, 4)])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_orthogonal_rows_or_columns_are_orthonormal(shape, gain):
    q = initializers.Orthogonal(gain=gain, seed=3)(shape, dtype="float64")
    assert q.shape == shape and q.dtype == np.float64
    matrix = q.reshape(-1, shape[-1])
    rows, cols = matrix.shape
    gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_follows_keras_definition():
    # Keras: QR of a (max, min) standard normal matrix, columns of Q times sign(diag(R)),
    # transposed for wide shapes.
    for shape in [(6, 4), (4, 6)]:
        rows, cols = shape
        a = np.random.default_rng(11).standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        expected = q * np.sign(np.diag(r))
        if rows < cols:
            expected = expected.T
        got = initializers.Orthogonal(gain=2.0, seed=11)(shape, dtype="float64")
        np.testing.assert_allclose(got, 2.0 * expected, rtol=1e-12, atol=1e-14)


def test_orthogonal_is_not_a_fixed_matrix():
    # Different seeds: different matrices; the signs fix makes entries symmetric around 0.
    a = initializers.Orthogonal(seed=1)((50, 50), dtype="float64")
    b = initializers.Orthogonal(seed=2)((50, 50), dtype="float64")
    assert not np.allclose(a, b)
    draws = np.stack([initializers.Orthogonal(seed=s)((8, 8), dtype="float64")[0, 0]
                      for s in range(400)])
    assert abs(draws.mean()) < 0.05 and 0.25 < draws.std() < 0.45  # std of one entry: 1/sqrt(8)


def test_identity():
    np.testing.assert_array_equal(initializers.get("identity")((3, 3)), np.eye(3))
    np.testing.assert_array_equal(initializers.Identity(gain=2.0)((2, 4), dtype="float64"),
                                  2.0 * np.eye(2, 4))
    with pytest.raises(ValueError, match="2-D"):
        initializers.Identity()((3, 3, 1, 1))


def test_orthogonal_errors_and_serialization():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        initializers.Orthogonal()((5,))
    with pytest.raises(ValueError, match="`gain`"):
        initializers.Orthogonal(gain=float("nan"))
    for init in (initializers.Orthogonal(gain=1.5, seed=4), initializers.Identity(gain=3.0)):
        rebuilt = initializers.deserialize(json.loads(json.dumps(initializers.serialize(init))))
        assert type(rebuilt) is type(init) and rebuilt.get_config() == init.get_config()
        np.testing.assert_array_equal(rebuilt((4, 4)), init((4, 4)))
    assert isinstance(initializers.get("IdentityInitializer"), initializers.Identity)


COURSE_NAMES = ["glorot_uniform", "glorot_normal", "xavier_uniform", "xavier_normal",
                "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "orthogonal",
                "zeros", "ones", "constant", "random_normal", "random_uniform",
                "truncated_normal"]


@pytest.mark.parametrize("name", COURSE_NAMES)
def test_course_names_work_as_layer_arguments(name):
    bias_name = "zeros" if name == "orthogonal" else name  # orthogonal needs a matrix shape
    utils.set_random_seed(5)
    conv = layers.Conv2D(4, 3, kernel_initializer=name, bias_initializer=bias_name)
    conv.build((6, 6, 2))
    dense = layers.Dense(3, kernel_initializer=name)
    dense.build((5,))
    utils.set_random_seed(5)
    again = layers.Conv2D(4, 3, kernel_initializer=name, bias_initializer=bias_name)
    again.build((6, 6, 2))
    for a, b in zip(conv.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    rebuilt = layers.deserialize(layers.serialize(conv))
    rebuilt.build((6, 6, 2))
    assert rebuilt.kernel.shape == (3, 3, 2, 4)


# -- whole-run reproducibility -------------------------------------------------------------------
def _train_once(seed):
    """Build a small CNN with unseeded random layers and fit it; return weights and losses."""
    utils.set_random_seed(seed)
    model = fastconv.Sequential([
        layers.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer="he_normal"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Dropout(0.3),
        layers.Flatten(),
        layers.Dense(8, activation="relu", kernel_initializer="orthogonal"),
        layers.Dense(3, activation="softmax"),
    ], input_shape=(8, 8, 1))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = np.random.default_rng(99)  # the data itself is fixed, independent of the seed
    x = data.random((40, 8, 8, 1)).astype(np.float32)
    y = data.integers(0, 3, 40)
    history = model.fit(x, y, batch_size=8, epochs=2, validation_split=0.2, verbose=0)
    return model.get_weights(), history.history["loss"]


def test_same_seed_gives_bit_identical_model_and_training_run():
    weights_a, losses_a = _train_once(2024)
    weights_b, losses_b = _train_once(2024)
    assert losses_a == losses_b
    assert len(weights_a) == len(weights_b)
    for a, b in zip(weights_a, weights_b):
        assert a.tobytes() == b.tobytes()
    weights_c, _ = _train_once(2025)
    assert not np.array_equal(weights_a[0], weights_c[0])
