"""Weight regularizers (Keras names and formulas): penalties added to the training loss.

A regularizer is called on a weight array and returns the penalty as a float; `gradient(w)`
returns d(penalty)/dw. The model adds every trainable weight's penalty to the loss it
reports and its gradient to the weight's gradient.

>>> import numpy as np
>>> L2(0.01)(np.array([1.0, 2.0]))   # 0.01 * (1 + 4)
0.05
"""
import numbers

import numpy as np


def _check_factor(value, name):
    if (not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value)
            or value < 0):
        raise ValueError(f"`{name}` must be a non-negative finite number; received {value!r}.")
    return float(value)


class Regularizer:
    """Base class: `__call__(w) -> float` and `gradient(w) -> array` shaped like `w`."""

    def __call__(self, w):
        raise NotImplementedError

    def gradient(self, w):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """Penalty `l1 * sum(|w|) + l2 * sum(w ** 2)`.

    Args:
        l1: L1 factor, default 0.
        l2: L2 factor, default 0.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check_factor(l1, "l1")
        self.l2 = _check_factor(l2, "l2")

    def __call__(self, w):
        w = np.asarray(w)
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.sum(np.abs(w), dtype=np.float64))
        if self.l2:
            penalty += self.l2 * float(np.sum(np.square(w), dtype=np.float64))
        return penalty

    def gradient(self, w):
        w = np.asarray(w)
        grad = np.zeros_like(w)
        if self.l1:
            grad += self.l1 * np.sign(w)  # subgradient 0 at w == 0
        if self.l2:
            grad += (2.0 * self.l2) * w
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """Penalty `l1 * sum(|w|)`.

    Args:
        l1: factor, default 0.01.
    """

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """Penalty `l2 * sum(w ** 2)`.

    Args:
        l2: factor, default 0.01.
    """

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


# Keras 3 exposes the classes under lower-case names too.
l1 = L1
l2 = L2
l1_l2 = L1L2

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def serialize(regularizer):
    """Return {"class_name", "config"} for a built-in regularizer, or None for None."""
    if regularizer is None:
        return None
    cls = type(regularizer)
    if _CLASSES.get(cls.__name__) is not cls:
        raise ValueError(f"Cannot serialize the regularizer {regularizer!r}: only L1, L2 and L1L2 can be saved.")
    return {"class_name": cls.__name__, "config": regularizer.get_config()}


def deserialize(config):
    if config is None:
        return None
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"Unknown regularizer configuration {config!r}; expected one of {sorted(_CLASSES)}.")
    return _CLASSES[config["class_name"]].from_config(dict(config.get("config") or {}))


def get(identifier):
    """Return None, or a regularizer for a name ("l1", "l2", "l1_l2"), a config dict or an
    object with `__call__(w)` and `gradient(w)` (returned as is)."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown regularizer {identifier!r}; expected one of {sorted(_ALIASES)}.")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier) and callable(getattr(identifier, "gradient", None)):
        return identifier
    raise TypeError(
        "A regularizer must be None, a name ('l1', 'l2', 'l1_l2'), a config dict or an object "
        f"with __call__(w) and gradient(w); received {identifier!r}."
    )
