"""fastconv.activations: each function against its formula, each derivative against finite
differences, numerical stability, and the `get` lookup."""
import math
import warnings

import numpy as np
import pytest

from fastconv import activations

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _scalar(f):
    """Vectorise a scalar formula written with the math module (independent of NumPy's)."""
    return lambda x: np.vectorize(f, otypes=[np.float64])(x)


# name -> the formula, written element by element with `math`.
FORMULAS = {
    "linear": _scalar(lambda v: v),
    "relu": _scalar(lambda v: v if v > 0 else 0.0),
    "relu6": _scalar(lambda v: min(max(v, 0.0), 6.0)),
    "leaky_relu": _scalar(lambda v: v if v >= 0 else 0.2 * v),
    "elu": _scalar(lambda v: v if v > 0 else math.exp(v) - 1.0),
    "selu": _scalar(lambda v: SELU_SCALE * (v if v > 0 else SELU_ALPHA * (math.exp(v) - 1.0))),
    "sigmoid": _scalar(lambda v: 1.0 / (1.0 + math.exp(-v))),
    "hard_sigmoid": _scalar(lambda v: min(max(v / 6.0 + 0.5, 0.0), 1.0)),
    "tanh": _scalar(math.tanh),
    "softplus": _scalar(lambda v: math.log1p(math.exp(v))),
    "softsign": _scalar(lambda v: v / (1.0 + abs(v))),
    "silu": _scalar(lambda v: v / (1.0 + math.exp(-v))),
    "exponential": _scalar(math.exp),
}


def _softmax_rows(x):
    out = np.empty_like(x)
    for i, row in enumerate(x):
        e = [math.exp(v) for v in row]
        s = sum(e)
        out[i] = [v / s for v in e]
    return out


@pytest.fixture
def x():
    # Odd size; values away from the kinks at 0, +-3 and 6 so finite differences are valid.
    rng = np.random.default_rng(0)
    values = rng.uniform(-8, 8, size=(7, 9))
    for kink in (0.0, -3.0, 3.0, 6.0):
        values[np.abs(values - kink) < 1e-3] += 0.01
    return values


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_forward_matches_formula(name, x):
    got = activations.get(name).forward(x)
    np.testing.assert_allclose(got, FORMULAS[name](x), rtol=1e-12, atol=1e-12)
    # The module's function gives the same result.
    np.testing.assert_allclose(getattr(activations, name)(x), got, rtol=0, atol=0)


def test_softmax_matches_formula(x):
    np.testing.assert_allclose(activations.softmax(x), _softmax_rows(x), rtol=1e-12)
    np.testing.assert_allclose(activations.softmax(x, axis=0), _softmax_rows(x.T).T, rtol=1e-12)
    np.testing.assert_allclose(activations.softmax(x).sum(axis=-1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(FORMULAS) + ["softmax"])
def test_backward_matches_finite_differences(name, x):
    act = activations.get(name)
    rng = np.random.default_rng(1)
    dy = rng.standard_normal(x.shape)
    y = act.forward(x)
    dx = act.backward(x, y, dy)

    def loss(v):
        return float((act.forward(v) * dy).sum())

    h = 1e-6
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        numeric[idx] = (loss(x + e) - loss(x - e)) / (2 * h)
    scale = max(1.0, float(np.abs(numeric).max()))
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("params", [
    dict(negative_slope=0.1), dict(max_value=2.5), dict(threshold=1.0),
    dict(negative_slope=0.2, max_value=4.0, threshold=0.5),
])
def test_relu_options_match_keras_definition(params, x):
    slope = params.get("negative_slope", 0.0)
    cap = params.get("max_value")
    thr = params.get("threshold", 0.0)

    def keras_relu(v):
        if cap is not None and v >= cap:
            return cap
        if v >= thr:
            return v
        return slope * (v - thr)

    np.testing.assert_allclose(activations.relu(x, **params), _scalar(keras_relu)(x), rtol=1e-12)
    act = activations.Activation("relu", **params)
    dy = np.ones_like(x)
    expected_slope = np.where(x >= thr, 1.0, slope)
    if cap is not None:
        expected_slope = np.where(x >= cap, 0.0, expected_slope)
    np.testing.assert_allclose(act.backward(x, act.forward(x), dy), expected_slope)


def test_parametrised_leaky_relu_and_elu(x):
    np.testing.assert_allclose(activations.leaky_relu(x, negative_slope=0.05),
                               np.where(x >= 0, x, 0.05 * x))
    np.testing.assert_allclose(activations.elu(x, alpha=0.5),
                               _scalar(lambda v: v if v > 0 else 0.5 * (math.exp(v) - 1))(x),
                               rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_softmax_softplus_are_stable_for_extreme_inputs(dtype):
    x = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow / invalid warning fails the test
        s = activations.sigmoid(x)
        sm = activations.softmax(x)
        sp = activations.softplus(x)
        e = activations.elu(x)
    for arr in (s, sm, sp, e):
        assert arr.dtype == dtype
        assert np.all(np.isfinite(arr))
    np.testing.assert_allclose(s[0, [0, 2, 4]], [0.0, 0.5, 1.0], atol=1e-30)
    np.testing.assert_allclose(sm[0], [0, 0, 0, 0, 1.0], atol=1e-30)
    np.testing.assert_allclose(sp[0, [0, 4]], [0.0, 1e4], rtol=1e-6)
    # Softmax is shift invariant: huge equal logits give a uniform distribution.
    np.testing.assert_allclose(activations.softmax(np.full((2, 4), 1e30, dtype=dtype)), 0.25)


@pytest.mark.parametrize("name", sorted(FORMULAS) + ["softmax"])
def test_float32_stays_float32(name):
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    act = activations.get(name)
    y = act.forward(x)
    assert y.dtype == np.float32
    assert act.backward(x, y, np.ones_like(x)).dtype == np.float32


def test_get_resolves_names_functions_and_objects():
    assert activations.get(None).name == "linear"
    assert activations.get("ReLU").name == "relu"
    assert activations.get("swish").name == "silu"
    assert activations.get(activations.sigmoid).name == "sigmoid"
    relu = activations.get("relu")
    assert activations.get(relu) is relu

    class Square:
        name = "square"

        def forward(self, x):
            return x * x

        def backward(self, x, y, dy):
            return 2 * x * dy

    custom = Square()
    assert activations.get(custom) is custom
    assert activations.serialize(custom) == "square"
    assert activations.get({"name": "leaky_relu", "negative_slope": 0.1}).params == {
        "negative_slope": 0.1}


def test_serialize_round_trip():
    for identifier in ("relu", activations.tanh, activations.Activation("softmax", axis=1)):
        act = activations.get(identifier)
        assert activations.get(activations.serialize(act)) == act


def test_get_rejects_unknown_and_underivable():
    with pytest.raises(ValueError, match="Unknown activation 'gelu_fancy'"):
        activations.get("gelu_fancy")
    with pytest.raises(TypeError, match="derivative"):
        activations.get(lambda x: x * 2)  # no backward: cannot train through it
    with pytest.raises(TypeError, match="activation"):
        activations.get(3)
