"""Optimizers with Keras 3's names, defaults and update rules, on NumPy arrays in place.

`SGD`, `RMSprop`, `Adagrad`, `Adam`, `AdamW`, `Nadam`; learning-rate schedules live in
`fastconv.optimizers.schedules` (`ExponentialDecay`, `PiecewiseConstantDecay`, `CosineDecay`,
...) and are accepted as `learning_rate=`. Optimizers work on their own, without a model:

>>> import numpy as np
>>> w = np.array([1.0, -2.0])
>>> opt = SGD(learning_rate=0.1)
>>> opt.apply_gradients(zip([2 * w], [w]))   # one step on sum(w ** 2)
>>> w
array([ 0.8, -1.6])
"""
from . import schedules
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .base_optimizer import Optimizer
from .nadam import Nadam
from .rmsprop import RMSprop
from .sgd import SGD

_CLASSES = {cls.__name__: cls for cls in (SGD, Adam, AdamW, Nadam, RMSprop, Adagrad)}
_ALIASES = {name.lower(): cls for name, cls in _CLASSES.items()}


def serialize(optimizer):
    """Return {"class_name", "config"} for a built-in optimizer (its state is not included)."""
    cls = type(optimizer)
    if _CLASSES.get(cls.__name__) is not cls:
        raise ValueError(f"Cannot serialize the optimizer {optimizer!r}: only built-in optimizers can be saved.")
    return {"class_name": cls.__name__, "config": optimizer.get_config()}


def deserialize(config):
    """Rebuild an optimizer (fresh state) from `serialize`'s output."""
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"Unknown optimizer configuration {config!r}; expected one of {sorted(_CLASSES)}.")
    return _CLASSES[config["class_name"]].from_config(dict(config.get("config") or {}))


def get(identifier):
    """Return an optimizer for a name ("sgd", "adam", "adamw", "nadam", "rmsprop", "adagrad"),
    a config dict or an optimizer object (returned as is). Names give the Keras defaults."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {sorted(_ALIASES)}.")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(
        f"`optimizer` must be an optimizer name or a fastconv.optimizers.Optimizer; received {identifier!r}."
    )


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Nadam", "RMSprop", "Adagrad", "schedules",
           "serialize", "deserialize", "get"]
