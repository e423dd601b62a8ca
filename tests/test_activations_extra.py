"""The course's activations beyond the basic set: gelu (exact and tanh), mish, hard_silu,
log_sigmoid, log_softmax, erf/erfc, leaky_relu's alpha alias, every Keras name as a string, a
function and a layer, and the PReLU layer (formula, shared axes, gradients, save/load)."""
import math

import numpy as np
import pytest

import fastconv
from fastconv import activations, layers
from test_layers_gradcheck import _backends, _numeric_gradient, gradcheck


def _scalar(f):
    """Vectorise a scalar formula written with the math module (independent of NumPy's)."""
    return lambda x: np.vectorize(f, otypes=[np.float64])(x)


def _phi(v):
    return 0.5 * math.erfc(-v / math.sqrt(2.0))


FORMULAS = {
    "gelu": _scalar(lambda v: v * _phi(v)),
    "mish": _scalar(lambda v: v * math.tanh(math.log1p(math.exp(v)))),
    "hard_silu": _scalar(lambda v: v * min(max(v + 3.0, 0.0), 6.0) / 6.0),
    "log_sigmoid": _scalar(lambda v: -math.log1p(math.exp(-v))),
}


@pytest.fixture
def x():
    values = np.random.default_rng(3).uniform(-7, 7, size=(5, 7))
    for kink in (-3.0, 3.0):  # hard_silu's kinks: keep finite differences valid
        values[np.abs(values - kink) < 1e-3] += 0.01
    return values


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_new_functions_match_formulas(name, x):
    np.testing.assert_allclose(activations.get(name).forward(x), FORMULAS[name](x),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(getattr(activations, name)(x), FORMULAS[name](x),
                               rtol=1e-12, atol=1e-14)


def test_gelu_exact_is_keras_default_and_tail_is_accurate():
    assert activations.get("gelu").params == {}  # approximate=False by default, as Keras
    x = np.array([-12.0, -9.0, -5.5, -1e-8, 0.0, 2.5, 30.0])
    expected = [v * _phi(v) for v in x]
    np.testing.assert_allclose(activations.gelu(x), expected, rtol=1e-12, atol=0)
    # 1 * P(X <= 1) for a standard normal (tabulated value).
    assert activations.gelu(np.array(1.0)) == pytest.approx(0.8413447460685429, rel=1e-13)


def test_gelu_tanh_approximation(x):
    def formula(v):
        return 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)))

    act = activations.get({"name": "gelu", "approximate": True})
    np.testing.assert_allclose(act.forward(x), _scalar(formula)(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(activations.gelu(x, approximate=True), _scalar(formula)(x),
                               rtol=1e-12, atol=1e-14)
    # The approximation is close to, but not equal to, the exact gelu.
    diff = np.abs(activations.gelu(x, approximate=True) - activations.gelu(x))
    assert 0 < diff.max() < 1e-3


def test_log_softmax_matches_formula_and_extremes(x):
    def rows(a):
        out = np.empty_like(a)
        for i, row in enumerate(a):
            m = max(row)
            lse = m + math.log(sum(math.exp(v - m) for v in row))
            out[i] = [v - lse for v in row]
        return out

    np.testing.assert_allclose(activations.log_softmax(x), rows(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(activations.log_softmax(x, axis=0), rows(x.T).T, rtol=1e-12, atol=1e-12)
    big = np.array([[1000.0, 0.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # exp may underflow to 0
        np.testing.assert_allclose(activations.log_softmax(big), [[0.0, -1000.0, -2000.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_erf_and_erfc_match_math(dtype):
    z = np.concatenate([np.linspace(-9, 9, 3601), [0.0, -0.0, 1e-12, -1e-300, 0.999999, 1.0,
                                                   2.999999, 3.0, 26.0, 40.0, -40.0]])
    z = z.astype(dtype)
    got_erf, got_erfc = activations.erf(z), activations.erfc(z)
    assert got_erf.dtype == dtype and got_erfc.dtype == dtype
    ref_erf = _scalar(math.erf)(z.astype(np.float64))
    ref_erfc = _scalar(math.erfc)(z.astype(np.float64))
    if dtype == np.float64:
        np.testing.assert_allclose(got_erf, ref_erf, rtol=1e-13, atol=1e-300)
        tiny = ref_erfc > 1e-300  # below that erfc is subnormal or zero
        np.testing.assert_allclose(got_erfc[tiny], ref_erfc[tiny], rtol=2e-13)
        assert np.all(got_erfc[~tiny] < 1e-290)
    else:
        np.testing.assert_allclose(got_erf, ref_erf, rtol=1e-6, atol=1e-30)
        np.testing.assert_allclose(got_erfc, ref_erfc, rtol=1e-6, atol=1e-37)


NEW_NAMES = ["gelu", "mish", "hard_silu", "log_sigmoid", "log_softmax"]


@pytest.mark.parametrize("spec", NEW_NAMES + [{"name": "gelu", "approximate": True},
                                              {"name": "leaky_relu", "alpha": 0.15}])
def test_backward_matches_finite_differences(spec, x):
    act = activations.get(spec)
    dy = np.random.default_rng(4).standard_normal(x.shape)
    dx = act.backward(x, act.forward(x), dy)
    xv = x.copy()
    numeric = _numeric_gradient(lambda: float((act.forward(xv) * dy).sum()), xv)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NEW_NAMES)
def test_float32_stays_float32(name):
    x = np.linspace(-5, 5, 15, dtype=np.float32).reshape(3, 5)
    act = activations.get(name)
    y = act.forward(x)
    assert y.dtype == np.float32
    assert act.backward(x, y, np.ones_like(x)).dtype == np.float32


def test_leaky_relu_accepts_alpha_and_negative_slope(x):
    expected = np.where(x >= 0, x, 0.15 * x)
    np.testing.assert_allclose(activations.leaky_relu(x, alpha=0.15), expected)
    np.testing.assert_allclose(activations.leaky_relu(x, negative_slope=0.15), expected)
    np.testing.assert_allclose(activations.get({"name": "leaky_relu", "alpha": 0.15}).forward(x),
                               expected)
    np.testing.assert_allclose(activations.leaky_relu(x), np.where(x >= 0, x, 0.2 * x))


def test_aliases_and_bad_parameters():
    assert activations.get("swish").name == "silu"
    assert activations.get("hard_swish").name == "hard_silu"
    assert activations.get(activations.gelu).name == "gelu"
    assert activations.get(activations.log_softmax).name == "log_softmax"
    with pytest.raises(TypeError, match="Invalid parameters .*'gelu'"):
        activations.Activation("gelu", approximated=True)
    with pytest.raises(TypeError, match="activation"):
        activations.get(activations.erf)  # not an activation: no derivative registered


# Every activation the course uses, as a string, as a function and inside layers.
COURSE_NAMES = ["relu", "leaky_relu", "elu", "selu", "gelu", "swish", "silu", "sigmoid",
                "hard_sigmoid", "tanh", "softmax", "log_softmax", "linear"]


@pytest.mark.parametrize("name", COURSE_NAMES)
def test_course_activations_as_string_function_and_layer(name):
    x = np.random.default_rng(5).standard_normal((4, 6))
    function = getattr(activations, name)
    expected = function(x)
    np.testing.assert_allclose(activations.get(name).forward(x), expected, rtol=1e-15)
    np.testing.assert_allclose(layers.Activation(name, dtype="float64")(x), expected, rtol=1e-15)
    np.testing.assert_allclose(layers.Activation(function, dtype="float64")(x), expected, rtol=1e-15)
    dense = layers.Dense(6, activation=name, kernel_initializer="identity", dtype="float64")
    np.testing.assert_allclose(dense(x), expected, rtol=1e-15)
    again = layers.deserialize(layers.serialize(dense))
    assert again.activation == dense.activation


# -- PReLU ---------------------------------------------------------------------------------------
def test_prelu_formula_shapes_and_keras_defaults():
    layer = layers.PReLU(dtype="float64")
    x = np.random.default_rng(6).standard_normal((3, 4, 5, 2))
    np.testing.assert_array_equal(layer(x), np.maximum(x, 0))  # alpha starts at zeros
    assert layer.alpha.shape == (4, 5, 2)
    shared = layers.PReLU(shared_axes=[1, 2], dtype="float64")
    shared.build((4, 5, 2))
    assert shared.alpha.shape == (1, 1, 2)
    alpha = np.array([0.25, -0.5]).reshape(1, 1, 2)
    shared.set_weights([alpha])
    expected = np.where(x >= 0, x, x * np.array([0.25, -0.5]))
    np.testing.assert_allclose(shared(x), expected, rtol=1e-15)
    assert shared.count_params() == 2
    assert layers.PReLU(shared_axes=3).shared_axes == [3]


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("shared_axes, shape", [(None, (3, 4)), ([1, 2], (2, 3, 4, 3)),
                                                 (2, (2, 3, 2, 2))])
def test_prelu_gradients(backend, shared_axes, shape):
    with fastconv.use_backend(backend):
        layer = layers.PReLU(shared_axes=shared_axes, alpha_initializer="random_normal",
                             dtype="float64")
        x = np.random.default_rng(7).standard_normal(shape)
        x[np.abs(x) < 1e-3] += 0.01  # away from the kink
        grads = gradcheck(layer, x)
        assert len(grads) == 1 and grads[0].shape == layer.alpha.shape


def test_prelu_trains_in_sequential_and_round_trips(tmp_path):
    fastconv.utils.set_random_seed(0)
    prelu = layers.PReLU(alpha_initializer=fastconv.initializers.Constant(0.25))
    model = fastconv.Sequential([layers.Dense(8), prelu, layers.Dense(2, activation="softmax")],
                                input_shape=(3,))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(8).standard_normal((32, 3))
    y = (x[:, 0] > 0).astype(int)
    before = model.layers[1].get_weights()[0].copy()
    model.fit(x, y, epochs=2, verbose=0)
    assert not np.array_equal(model.layers[1].get_weights()[0], before)  # alpha is learned
    path = model.save(tmp_path / "prelu.fcz")
    loaded = fastconv.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_prelu_bad_arguments():
    for bad in (0, [1, 1], "a", [True], [1.5]):
        with pytest.raises(ValueError, match="shared_axes"):
            layers.PReLU(shared_axes=bad)
    with pytest.raises(ValueError, match="shared axis 3 does not exist"):
        layers.PReLU(shared_axes=3).build((4,))
    with pytest.raises(ValueError, match="alpha_constraint"):
        layers.PReLU(alpha_constraint="non_neg")
