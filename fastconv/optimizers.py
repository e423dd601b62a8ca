"""Optimizers with Keras 3's names, defaults and update rules, on NumPy arrays in place.

An optimizer keeps per-parameter state (momentum, moment estimates, ...) keyed by the
identity of the parameter array, so it must be given the same arrays every step; layers keep
their weights in place (`set_weights` copies into them), which makes this hold.

>>> import numpy as np
>>> w = np.array([1.0, -2.0])
>>> opt = SGD(learning_rate=0.1)
>>> opt.apply_gradients([(2 * w, w)])   # one step on sum(w ** 2)
>>> w
array([ 0.8, -1.6])
"""
import math
import numbers

import numpy as np


def _check_positive(value, name, allow_zero=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"`{name}` must be a {kind} finite number; received {value!r}.")
    return float(value)


def _check_fraction(value, name):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1); received {value!r}.")
    return float(value)


class Optimizer:
    """Base class of optimizers.

    Args:
        learning_rate: a positive float (settable later: `opt.learning_rate = 1e-4`), or a
            callable `schedule(iterations) -> float`.
        weight_decay: if set, decoupled weight decay as in Keras 3 (AdamW-style):
            `w -= w * weight_decay * learning_rate` before each update.
        clipnorm: if set, each gradient is rescaled so its L2 norm is at most this.
        clipvalue: if set, each gradient is clipped to [-clipvalue, clipvalue].
        global_clipnorm: if set, all gradients are rescaled so that their joint L2 norm is at
            most this.
        name: name of the optimizer.

    Subclasses implement `_slot_names()` (state arrays per parameter, created as zeros) and
    `_update(param, grad, slots, lr)`, which must modify `param` in place.
    """

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        self.learning_rate = learning_rate
        self.weight_decay = None if weight_decay is None else _check_positive(weight_decay, "weight_decay", True)
        self.clipnorm = None if clipnorm is None else _check_positive(clipnorm, "clipnorm")
        self.clipvalue = None if clipvalue is None else _check_positive(clipvalue, "clipvalue")
        self.global_clipnorm = (None if global_clipnorm is None
                                else _check_positive(global_clipnorm, "global_clipnorm"))
        if self.clipnorm is not None and self.global_clipnorm is not None:
            raise ValueError("Only one of `clipnorm` and `global_clipnorm` can be set.")
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._state = {}  # id(param) -> (param, {slot name: array}); the param keeps the id valid

    # -- learning rate ---------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The current learning rate (a float; a schedule is evaluated at `iterations`)."""
        if callable(self._learning_rate):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if callable(value) and not isinstance(value, numbers.Real):
            self._learning_rate = value
        else:
            self._learning_rate = _check_positive(value, "learning_rate")

    # -- state -------------------------------------------------------------------------------
    def _slot_names(self):
        return ()

    def _initial_slot(self, name, param):
        return np.zeros_like(param)

    def _slots_for(self, param):
        entry = self._state.get(id(param))
        if entry is None or entry[0] is not param:
            slots = {name: self._initial_slot(name, param) for name in self._slot_names()}
            entry = (param, slots)
            self._state[id(param)] = entry
        return entry[1]

    def reset_state(self):
        """Forget all per-parameter state and set `iterations` back to 0."""
        self._state.clear()
        self.iterations = 0

    # -- updates -----------------------------------------------------------------------------
    def _clip(self, grads):
        if self.clipvalue is not None:
            grads = [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            clipped = []
            for g in grads:
                norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
                clipped.append(g * (self.clipnorm / norm) if norm > self.clipnorm else g)
            grads = clipped
        if self.global_clipnorm is not None:
            norm = float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads)))
            if norm > self.global_clipnorm:
                grads = [g * (self.global_clipnorm / norm) for g in grads]
        return grads

    def apply_gradients(self, grads_and_vars):
        """Apply one update to every parameter, in place.

        Args:
            grads_and_vars: iterable of (gradient, parameter) pairs of NumPy arrays; pairs
                whose gradient is None are skipped.
        """
        pairs = [(g, p) for g, p in grads_and_vars if g is not None]
        grads, params = [], []
        for g, p in pairs:
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"Parameters must be float NumPy arrays; received {type(p).__name__}.")
            g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(
                    f"A gradient of shape {g.shape} was given for a parameter of shape {p.shape}."
                )
            grads.append(g.astype(p.dtype, copy=False))
            params.append(p)
        grads = self._clip(grads)
        lr = self.learning_rate
        for g, p in zip(grads, params):
            if self.weight_decay:
                p -= p * (self.weight_decay * lr)
            self._update(p, g, self._slots_for(p), lr)
        self.iterations += 1

    def _update(self, param, grad, slots, lr):
        raise NotImplementedError

    # -- configuration -------------------------------------------------------------------------
    def get_config(self):
        if callable(self._learning_rate):
            raise ValueError("An optimizer with a learning-rate schedule callable cannot be serialized.")
        return {
            "name": self.name, "learning_rate": self._learning_rate,
            "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r})"


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum.

    Args:
        learning_rate: step size, default 0.01.
        momentum: in [0, 1); velocity `v = momentum * v - lr * g`, then `w += v`.
        nesterov: whether to apply Nesterov momentum: `w += momentum * v - lr * g`.
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`, `name`.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _check_fraction(momentum, "momentum")
        self.nesterov = bool(nesterov)

    def _slot_names(self):
        return ("momentum",) if self.momentum else ()

    def _update(self, param, grad, slots, lr):
        if not self.momentum:
            param -= lr * grad
            return
        velocity = slots["momentum"]
        velocity *= self.momentum
        velocity -= lr * grad
        if self.nesterov:
            param += self.momentum * velocity - lr * grad
        else:
            param += velocity

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba), with Keras 3's bias correction folded into the step size.

    Args:
        learning_rate: default 0.001.
        beta_1: decay of the first-moment estimate, default 0.9.
        beta_2: decay of the second-moment estimate, default 0.999.
        epsilon: added to sqrt(v) in the denominator, default 1e-7.
        amsgrad: whether to use the running maximum of the second moment (AMSGrad).
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`, `name`.

    Update at step t (1-based): `m += (g - m) * (1 - beta_1)`, `v += (g^2 - v) * (1 - beta_2)`,
    `w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)`.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _check_fraction(beta_1, "beta_1")
        self.beta_2 = _check_fraction(beta_2, "beta_2")
        self.epsilon = _check_positive(epsilon, "epsilon", allow_zero=True)
        self.amsgrad = bool(amsgrad)

    def _slot_names(self):
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def _update(self, param, grad, slots, lr):
        step = self.iterations + 1
        # A Python float keeps float32 parameters in float32 (NumPy's weak scalar promotion).
        alpha = lr * math.sqrt(1.0 - self.beta_2 ** step) / (1.0 - self.beta_1 ** step)
        m, v = slots["m"], slots["v"]
        m += (grad - m) * (1.0 - self.beta_1)
        v += (np.square(grad) - v) * (1.0 - self.beta_2)
        if self.amsgrad:
            np.maximum(slots["v_hat"], v, out=slots["v_hat"])
            v = slots["v_hat"]
        param -= (m * alpha) / (np.sqrt(v) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class RMSprop(Optimizer):
    """RMSprop, as in Keras 3.

    Args:
        learning_rate: default 0.001.
        rho: decay of the moving average of squared gradients, default 0.9.
        momentum: in [0, 1), default 0.
        epsilon: added to the average before the square root, default 1e-7.
        centered: whether to divide by the estimated variance instead of the second moment.
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`, `name`.

    Update: `v = rho v + (1 - rho) g^2`; `inc = lr g / sqrt(v + epsilon)` (centered:
    `sqrt(v - a^2 + epsilon)` with `a = rho a + (1 - rho) g`); with momentum
    `mom = momentum mom + inc; w -= mom`, else `w -= inc`.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _check_fraction(rho, "rho")
        self.momentum = _check_fraction(momentum, "momentum")
        self.epsilon = _check_positive(epsilon, "epsilon", allow_zero=True)
        self.centered = bool(centered)

    def _slot_names(self):
        names = ["velocity"]
        if self.momentum:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return tuple(names)

    def _update(self, param, grad, slots, lr):
        velocity = slots["velocity"]
        velocity *= self.rho
        velocity += (1.0 - self.rho) * np.square(grad)
        if self.centered:
            average = slots["average_gradient"]
            average *= self.rho
            average += (1.0 - self.rho) * grad
            denominator = velocity - np.square(average) + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = lr * grad / np.sqrt(denominator)
        if self.momentum:
            momentum = slots["momentum"]
            momentum *= self.momentum
            momentum += increment
            param -= momentum
        else:
            param -= increment

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad, as in Keras 3.

    Args:
        learning_rate: default 0.001.
        initial_accumulator_value: starting value of the sum of squared gradients, default 0.1.
        epsilon: added to the accumulator before the square root, default 1e-7.
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`, `name`.

    Update: `acc += g^2; w -= lr g / sqrt(acc + epsilon)`.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _check_positive(
            initial_accumulator_value, "initial_accumulator_value", allow_zero=True)
        self.epsilon = _check_positive(epsilon, "epsilon", allow_zero=True)

    def _slot_names(self):
        return ("accumulator",)

    def _initial_slot(self, name, param):
        return np.full_like(param, self.initial_accumulator_value)

    def _update(self, param, grad, slots, lr):
        accumulator = slots["accumulator"]
        accumulator += np.square(grad)
        param -= lr * grad / np.sqrt(accumulator + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


_CLASSES = {cls.__name__: cls for cls in (SGD, Adam, RMSprop, Adagrad)}
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
    """Return an optimizer for a name ("sgd", "adam", "rmsprop", "adagrad"), a config dict or an
    optimizer object (returned as is). Names give the Keras defaults."""
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
