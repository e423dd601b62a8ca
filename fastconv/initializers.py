"""Weight initializers, as in `keras.initializers`.

An initializer is called as `init(shape, dtype)` and returns a new array. Look one up with
`get("he_normal")` (Keras names; the class names and `xavier_*` aliases work too).

Seeding: an initializer built with an integer `seed` returns the same values on every call
(as Keras 3 documents); with `seed=None` it draws from fastconv's generator
(`fastconv.utils.set_random_seed`), so successive layers get different weights.
"""
import math
import numbers

import numpy as np

from . import utils
from ._validation import check_float_dtype


def compute_fans(shape):
    """Return (fan_in, fan_out) of a weight shape, as Keras computes them.

    Dense kernels (in, out) give (in, out); convolution kernels (..., in, out) multiply both by
    the receptive field size (the product of the leading spatial axes).
    """
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _check_shape(shape):
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"`shape` must be a tuple of non-negative ints; received {shape!r}.") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"`shape` must be a tuple of non-negative ints; received {shape!r}.")
    return shape


def _check_number(value, name, *, positive=False, non_negative=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number; received {value!r}.")
    if positive and value <= 0:
        raise ValueError(f"`{name}` must be positive; received {value!r}.")
    if non_negative and value < 0:
        raise ValueError(f"`{name}` must be non-negative; received {value!r}.")
    return float(value)


class Initializer:
    """Base class: subclasses implement `__call__(shape, dtype)` and `get_config()`."""

    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _RandomInitializer(Initializer):
    def __init__(self, seed=None):
        self.seed = utils.check_seed(seed)

    def _rng(self):
        if self.seed is None:
            return utils.get_rng()
        if isinstance(self.seed, np.random.Generator):
            return self.seed
        return np.random.default_rng(self.seed)  # same values on every call, as in Keras 3

    def get_config(self):
        seed = self.seed if not isinstance(self.seed, np.random.Generator) else None
        return {"seed": seed}


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype="float32"):
        return np.zeros(_check_shape(shape), dtype=check_float_dtype(dtype))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype="float32"):
        return np.ones(_check_shape(shape), dtype=check_float_dtype(dtype))


class Constant(Initializer):
    """Every element equal to `value`.

    Args:
        value: a number.
    """

    def __init__(self, value=0.0):
        self.value = _check_number(value, "value")

    def __call__(self, shape, dtype="float32"):
        return np.full(_check_shape(shape), self.value, dtype=check_float_dtype(dtype))

    def get_config(self):
        return {"value": self.value}


class RandomNormal(_RandomInitializer):
    """Normal distribution N(mean, stddev**2).

    Args:
        mean: mean of the distribution.
        stddev: standard deviation.
        seed: None, an int (same values each call) or a numpy Generator.
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = _check_number(mean, "mean")
        self.stddev = _check_number(stddev, "stddev", non_negative=True)

    def __call__(self, shape, dtype="float32"):
        dtype = check_float_dtype(dtype)
        return self._rng().normal(self.mean, self.stddev, _check_shape(shape)).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class RandomUniform(_RandomInitializer):
    """Uniform distribution on [minval, maxval).

    Args:
        minval: lower bound.
        maxval: upper bound.
        seed: None, an int (same values each call) or a numpy Generator.
    """

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = _check_number(minval, "minval")
        self.maxval = _check_number(maxval, "maxval")
        if self.maxval < self.minval:
            raise ValueError(f"`maxval` ({maxval}) must not be smaller than `minval` ({minval}).")

    def __call__(self, shape, dtype="float32"):
        dtype = check_float_dtype(dtype)
        return self._rng().uniform(self.minval, self.maxval, _check_shape(shape)).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


def _truncated_normal(rng, mean, stddev, shape):
    """Normal draws restricted to [mean - 2 stddev, mean + 2 stddev] by redrawing (as Keras)."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return mean + stddev * values


class TruncatedNormal(_RandomInitializer):
    """Normal distribution truncated to two standard deviations around the mean.

    Args:
        mean: mean of the (untruncated) distribution.
        stddev: standard deviation of the (untruncated) distribution.
        seed: None, an int (same values each call) or a numpy Generator.
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = _check_number(mean, "mean")
        self.stddev = _check_number(stddev, "stddev", non_negative=True)

    def __call__(self, shape, dtype="float32"):
        dtype = check_float_dtype(dtype)
        return _truncated_normal(self._rng(), self.mean, self.stddev, _check_shape(shape)).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


# Standard deviation of a standard normal truncated to [-2, 2]; dividing by it makes the
# truncated draws have the intended variance (the constant Keras uses).
_TRUNCATED_STD = 0.87962566103423978


class VarianceScaling(_RandomInitializer):
    """Draws with variance `scale / n`, n = fan_in, fan_out or their average.

    Args:
        scale: positive scaling factor.
        mode: "fan_in", "fan_out" or "fan_avg".
        distribution: "truncated_normal", "untruncated_normal" or "uniform"
            (uniform on [-limit, limit], limit = sqrt(3 * scale / n)).
        seed: None, an int (same values each call) or a numpy Generator.
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        self.scale = _check_number(scale, "scale", positive=True)
        if mode not in self._MODES:
            raise ValueError(f"`mode` must be one of {self._MODES}; received {mode!r}.")
        if distribution == "normal":  # Keras accepts the old name
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(
                f"`distribution` must be one of {self._DISTRIBUTIONS}; received {distribution!r}."
            )
        self.mode = mode
        self.distribution = distribution

    def _variance(self, shape):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        return self.scale / max(1.0, n)

    def __call__(self, shape, dtype="float32"):
        dtype = check_float_dtype(dtype)
        shape = _check_shape(shape)
        variance = self._variance(shape)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, shape)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(variance), shape)
        else:
            values = _truncated_normal(rng, 0.0, math.sqrt(variance) / _TRUNCATED_STD, shape)
        return values.astype(dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


class _FixedVarianceScaling(VarianceScaling):
    """A VarianceScaling preset whose config is only the seed."""

    _preset = None  # (scale, mode, distribution)

    def __init__(self, seed=None):
        super().__init__(*self._preset, seed=seed)

    def get_config(self):
        return {"seed": _RandomInitializer.get_config(self)["seed"]}


class GlorotUniform(_FixedVarianceScaling):
    """Uniform on [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)) (Xavier uniform)."""

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out)) (Xavier normal)."""

    _preset = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_FixedVarianceScaling):
    """Uniform on [-limit, limit], limit = sqrt(6 / fan_in)."""

    _preset = (2.0, "fan_in", "uniform")


class HeNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(2 / fan_in)."""

    _preset = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_FixedVarianceScaling):
    """Uniform on [-limit, limit], limit = sqrt(3 / fan_in)."""

    _preset = (1.0, "fan_in", "uniform")


class LecunNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(1 / fan_in)."""

    _preset = (1.0, "fan_in", "truncated_normal")


class Orthogonal(_RandomInitializer):
    """A (semi-)orthogonal matrix, times `gain` (Saxe et al., 2014).

    The shape is viewed as a matrix (prod(shape[:-1]), shape[-1]); its rows (if fewer than the
    columns) or its columns are orthonormal. As in Keras: QR of a standard normal matrix, with
    the signs fixed by the diagonal of R so that the result is uniformly distributed.

    Args:
        gain: multiplicative factor.
        seed: None, an int (same values each call) or a numpy Generator.

    >>> q = Orthogonal(seed=0)((4, 3), dtype="float64")
    >>> bool(np.allclose(q.T @ q, np.eye(3)))
    True
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = _check_number(gain, "gain")

    def __call__(self, shape, dtype="float32"):
        dtype = check_float_dtype(dtype)
        shape = _check_shape(shape)
        if len(shape) < 2:
            raise ValueError(
                f"The Orthogonal initializer needs a shape with at least 2 dimensions; received {shape}."
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # sign(0) counts as +1
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


class Identity(Initializer):
    """`gain` times the identity matrix (2-D shapes only; rectangular allowed, as np.eye).

    Args:
        gain: multiplicative factor.
    """

    def __init__(self, gain=1.0):
        self.gain = _check_number(gain, "gain")

    def __call__(self, shape, dtype="float32"):
        dtype = check_float_dtype(dtype)
        shape = _check_shape(shape)
        if len(shape) != 2:
            raise ValueError(
                f"The Identity initializer only works on 2-D shapes (Dense kernels); received {shape}."
            )
        return (self.gain * np.eye(*shape)).astype(dtype)

    def get_config(self):
        return {"gain": self.gain}


IdentityInitializer = Identity  # the Keras 3 class name

# Keras' snake_case names (and the xavier_* aliases) for `get`.
_ALIASES = {
    "zeros": Zeros, "zero": Zeros,
    "ones": Ones, "one": Ones,
    "constant": Constant,
    "random_normal": RandomNormal, "normal": RandomNormal,
    "random_uniform": RandomUniform, "uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "xavier_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "xavier_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal, "identity": Identity,
}
_CLASSES = {cls.__name__: cls for cls in set(_ALIASES.values())}
_CLASSES["IdentityInitializer"] = Identity


def serialize(initializer):
    """Return a JSON-serialisable description: {"class_name": ..., "config": ...}.

    Names and config dicts are returned unchanged; a plain function (not an `Initializer`) gives None, since
    it cannot be rebuilt from a name.
    """
    if initializer is None or isinstance(initializer, (str, dict)):
        return initializer
    if isinstance(initializer, Initializer) and type(initializer).__name__ in _CLASSES:
        return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
    return None


def deserialize(config):
    """Rebuild an initializer from `serialize`'s output."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"An initializer config must be a dict with 'class_name' and 'config'; received {config!r}."
        )
    name = config["class_name"]
    cls = _CLASSES.get(name) or _ALIASES.get(name)
    if cls is None:
        raise ValueError(f"Unknown initializer class {name!r}; known: {sorted(_CLASSES)}.")
    return cls(**(config.get("config") or {}))


def get(identifier):
    """Return an initializer from a name, a config dict, an `Initializer` or a callable.

    Args:
        identifier: e.g. "glorot_uniform", "HeNormal", {"class_name": ..., "config": ...},
            `RandomNormal(stddev=0.1)`, or any callable `init(shape, dtype)`.
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(
                f"Unknown initializer {identifier!r}; known names: {sorted(_ALIASES)}."
            )
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(
        "An initializer must be a name, a config dict or a callable init(shape, dtype); "
        f"received {identifier!r} of type {type(identifier).__name__}."
    )
