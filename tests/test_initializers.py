"""fastconv.initializers: fans, distribution statistics against the Keras formulas, seeding,
lookup and serialisation."""
import json
import math

import numpy as np
import pytest

from fastconv import initializers, utils

# Large enough that sample statistics are within ~1% (std error of a std estimate is
# about 1 / sqrt(2 N) = 0.2% here); all draws are seeded, so the test is deterministic.
N_SAMPLES = 120_000


@pytest.mark.parametrize("shape, fans", [
    ((), (1, 1)),
    ((7,), (7, 7)),
    ((5, 3), (5, 3)),
    ((3, 3, 4, 8), (3 * 3 * 4, 3 * 3 * 8)),  # conv HWIO: receptive field * channels
    ((5, 2, 6, 1), (5 * 2 * 6, 5 * 2 * 1)),
])
def test_compute_fans_as_keras(shape, fans):
    assert initializers.compute_fans(shape) == fans


def _std_of_truncated(stddev):
    # Std of N(0, s^2) truncated to [-2s, 2s]: s * sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)).
    phi2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    mass = math.erf(2 / math.sqrt(2))
    return stddev * math.sqrt(1 - 4 * phi2 / mass)


# name, shape, expected kind and parameter, computed here from the Keras definitions.
CONV_SHAPE = (3, 5, 40, 200)  # fan_in = 600, fan_out = 3000
FAN_IN, FAN_OUT = 3 * 5 * 40, 3 * 5 * 200
VS_CASES = [
    ("glorot_uniform", "uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("xavier_uniform", "uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("he_uniform", "uniform", math.sqrt(6 / FAN_IN)),
    ("lecun_uniform", "uniform", math.sqrt(3 / FAN_IN)),
    ("glorot_normal", "truncated", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("xavier_normal", "truncated", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("he_normal", "truncated", math.sqrt(2 / FAN_IN)),
    ("lecun_normal", "truncated", math.sqrt(1 / FAN_IN)),
]


@pytest.mark.parametrize("name, kind, param", VS_CASES)
def test_variance_scaling_presets(name, kind, param):
    init = initializers.get(name)
    assert init.seed is None
    values = type(init)(seed=11)(CONV_SHAPE, dtype="float64")
    assert values.shape == CONV_SHAPE and values.dtype == np.float64
    assert abs(values.mean()) < 0.02 * values.std()  # 7 standard errors
    if kind == "uniform":
        limit = param
        assert values.min() >= -limit and values.max() <= limit
        assert values.max() > 0.999 * limit and values.min() < -0.999 * limit
        np.testing.assert_allclose(values.std(), limit / math.sqrt(3), rtol=0.01)
    else:
        # Keras divides the stddev by 0.8796... so that the truncated draws have variance
        # scale / n; every value lies within 2 of the pre-truncation stddevs.
        target_std = param
        raw_std = target_std / 0.87962566103423978
        assert np.abs(values).max() <= 2 * raw_std * (1 + 1e-12)
        np.testing.assert_allclose(values.std(), target_std, rtol=0.01)
        np.testing.assert_allclose(_std_of_truncated(raw_std), target_std, rtol=1e-6)


def test_dense_kernel_fans():
    values = initializers.HeUniform(seed=0)((30, 4000), dtype="float64")
    assert values.max() <= math.sqrt(6 / 30) and values.max() > 0.99 * math.sqrt(6 / 30)


def test_random_normal_uniform_truncated():
    n = initializers.RandomNormal(mean=1.5, stddev=0.3, seed=2)((N_SAMPLES,), dtype="float64")
    np.testing.assert_allclose([n.mean(), n.std()], [1.5, 0.3], rtol=0.01)
    assert initializers.get("random_normal").stddev == 0.05  # Keras default

    u = initializers.RandomUniform(minval=-1.0, maxval=3.0, seed=3)((N_SAMPLES,), dtype="float64")
    assert u.min() >= -1.0 and u.max() < 3.0
    np.testing.assert_allclose([u.mean(), u.std()], [1.0, 4 / math.sqrt(12)], rtol=0.01)
    default = initializers.get("random_uniform")
    assert (default.minval, default.maxval) == (-0.05, 0.05)

    t = initializers.TruncatedNormal(mean=-2.0, stddev=0.5, seed=4)((N_SAMPLES,), dtype="float64")
    assert t.min() >= -3.0 and t.max() <= -1.0
    np.testing.assert_allclose(t.mean(), -2.0, atol=0.01)
    np.testing.assert_allclose(t.std(), _std_of_truncated(0.5), rtol=0.01)


def test_variance_scaling_untruncated_and_modes():
    vs = initializers.VarianceScaling(scale=3.0, mode="fan_out", distribution="untruncated_normal",
                                      seed=5)
    values = vs((40, 3000), dtype="float64")
    np.testing.assert_allclose(values.std(), math.sqrt(3.0 / 3000), rtol=0.01)
    avg = initializers.VarianceScaling(scale=1.0, mode="fan_avg", distribution="uniform", seed=6)
    values = avg((100, 300), dtype="float64")
    assert np.abs(values).max() <= math.sqrt(3.0 / 200)


def test_constant_zeros_ones():
    np.testing.assert_array_equal(initializers.get("zeros")((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.get("ones")((4,), dtype="float64"), np.ones(4))
    c = initializers.Constant(2.5)((3, 1), dtype="float32")
    assert c.dtype == np.float32 and np.all(c == 2.5)
    assert initializers.get("constant")((2,)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype(dtype):
    for name in ("glorot_uniform", "he_normal", "random_normal", "truncated_normal", "zeros"):
        assert initializers.get(name)((3, 4), dtype=dtype).dtype == np.dtype(dtype)


def test_seeding():
    # An int seed gives the same values on every call (Keras 3 semantics).
    init = initializers.GlorotUniform(seed=42)
    np.testing.assert_array_equal(init((5, 6)), init((5, 6)))
    assert not np.array_equal(init((5, 6)), initializers.GlorotUniform(seed=43)((5, 6)))
    # Unseeded initializers draw from fastconv's generator: reproducible after set_random_seed,
    # different from one call to the next.
    utils.set_random_seed(7)
    first = initializers.get("he_normal")((4, 4))
    second = initializers.get("he_normal")((4, 4))
    utils.set_random_seed(7)
    np.testing.assert_array_equal(initializers.get("he_normal")((4, 4)), first)
    assert not np.array_equal(first, second)
    gen = np.random.default_rng(0)
    a = initializers.RandomNormal(seed=gen)((3,))
    b = initializers.RandomNormal(seed=gen)((3,))
    assert not np.array_equal(a, b)


def test_get_names_classes_and_callables():
    assert isinstance(initializers.get("GlorotUniform"), initializers.GlorotUniform)
    assert isinstance(initializers.get("HE_NORMAL"), initializers.HeNormal)
    inst = initializers.RandomNormal(stddev=0.2)
    assert initializers.get(inst) is inst

    def custom(shape, dtype="float32"):
        return np.full(shape, 3.0, dtype=dtype)

    assert initializers.get(custom) is custom
    assert initializers.get(None) is None


@pytest.mark.parametrize("init", [
    initializers.GlorotUniform(seed=1), initializers.Constant(0.5),
    initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=3),
    initializers.TruncatedNormal(0.1, 0.2), initializers.Zeros(),
])
def test_serialize_round_trip(init):
    config = json.loads(json.dumps(initializers.serialize(init)))
    rebuilt = initializers.deserialize(config)
    assert type(rebuilt) is type(init)
    assert rebuilt.get_config() == init.get_config()
    if init.get_config().get("seed") is not None or isinstance(init, (initializers.Constant,
                                                                      initializers.Zeros)):
        np.testing.assert_array_equal(rebuilt((3, 4)), init((3, 4)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown initializer 'glorot_uniformm'"):
        initializers.get("glorot_uniformm")
    with pytest.raises(TypeError, match="initializer"):
        initializers.get(3.0)
    with pytest.raises(ValueError, match="`mode`"):
        initializers.VarianceScaling(mode="fan_sum")
    with pytest.raises(ValueError, match="`distribution`"):
        initializers.VarianceScaling(distribution="cauchy")
    with pytest.raises(ValueError, match="`scale`"):
        initializers.VarianceScaling(scale=0)
    with pytest.raises(ValueError, match="`stddev`"):
        initializers.RandomNormal(stddev=-1)
    with pytest.raises(ValueError, match="`maxval`"):
        initializers.RandomUniform(minval=1, maxval=0)
    with pytest.raises(ValueError, match="`seed`"):
        initializers.HeNormal(seed=-3)
    with pytest.raises(TypeError, match="dtype"):
        initializers.Zeros()((2,), dtype="int32")
    with pytest.raises(ValueError, match="shape"):
        initializers.Ones()((2, -1))


def test_set_random_seed_validates():
    with pytest.raises(ValueError, match="`seed`"):
        utils.set_random_seed(-1)
    with pytest.raises(ValueError, match="`seed`"):
        utils.set_random_seed(1.5)
    utils.set_random_seed(3)
    a = utils.get_rng().random(3)
    utils.set_random_seed(3)
    np.testing.assert_array_equal(utils.get_rng().random(3), a)
