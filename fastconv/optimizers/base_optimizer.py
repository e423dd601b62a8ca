"""The Optimizer base class: learning rate (or schedule), clipping, weight decay, per-parameter
state, and `apply_gradients` updating NumPy arrays in place.

An optimizer keeps per-parameter state (momentum, moment estimates, ...) keyed by the
identity of the parameter array, so it must be given the same arrays every step; layers keep
their weights in place (`set_weights` copies into them), which makes this hold.
"""
import numbers

import numpy as np

from . import schedules


def check_positive(value, name, allow_zero=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"`{name}` must be a {kind} finite number; received {value!r}.")
    return float(value)


def check_fraction(value, name):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1); received {value!r}.")
    return float(value)


class Optimizer:
    """Base class of optimizers.

    Args:
        learning_rate: a positive float (settable later: `opt.learning_rate = 1e-4`), a
            `fastconv.optimizers.schedules.LearningRateSchedule` (evaluated at `iterations`,
            the number of steps taken so far, as in Keras), or any callable
            `f(iterations) -> float`.
        weight_decay: if set, decoupled weight decay as in Keras 3 (AdamW-style):
            `w -= w * weight_decay * learning_rate` before each update.
        clipnorm: if set, each gradient is rescaled so its L2 norm is at most this.
        clipvalue: if set, each gradient is clipped to [-clipvalue, clipvalue].
        global_clipnorm: if set, all gradients are rescaled so that their joint L2 norm is at
            most this. At most one of the three clipping options can be set (as in Keras 3).
        name: name of the optimizer.

    Subclasses implement `_slot_names()` (state arrays per parameter, created as zeros) and
    `_update(param, grad, slots, lr)`, which must modify `param` in place; `_begin_step()`
    runs once per step before the updates (for state shared by all parameters). One whose
    kernel updates many parameters in one call also overrides `_update_all`.
    """

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        self._learning_rate = None
        self.learning_rate = learning_rate
        self.weight_decay = None if weight_decay is None else check_positive(weight_decay, "weight_decay", True)
        self.clipnorm = None if clipnorm is None else check_positive(clipnorm, "clipnorm")
        self.clipvalue = None if clipvalue is None else check_positive(clipvalue, "clipvalue")
        self.global_clipnorm = (None if global_clipnorm is None
                                else check_positive(global_clipnorm, "global_clipnorm"))
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}."
            )
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._state = {}  # id(param) -> (param, {slot name: array}); the param keeps the id valid

    # -- learning rate ---------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The current learning rate (a float; a schedule is evaluated at `iterations`)."""
        if callable(self._learning_rate):
            value = float(self._learning_rate(self.iterations))
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(
                    f"The learning-rate schedule {self._learning_rate!r} returned {value!r} at "
                    f"step {self.iterations}; it must return a non-negative finite number."
                )
            return value
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if callable(value) and not isinstance(value, numbers.Real):
            self._learning_rate = value
            return
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a LearningRateSchedule as its `learning_rate`, "
                "so its learning rate cannot be set to a number (a callback such as "
                "ReduceLROnPlateau or LearningRateScheduler needs an optimizer created with a "
                f"float learning rate). Received learning_rate={value!r}."
            )
        self._learning_rate = check_positive(value, "learning_rate")

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
        if self.clipnorm is not None:
            clipped = []
            for g in grads:
                norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
                clipped.append(g * (self.clipnorm / norm) if norm > self.clipnorm else g)
            return clipped
        if self.global_clipnorm is not None:
            norm = float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads)))
            if norm > self.global_clipnorm:
                return [g * (self.global_clipnorm / norm) for g in grads]
            return grads
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def apply_gradients(self, grads_and_vars):
        """Apply one update to every parameter, in place.

        Args:
            grads_and_vars: iterable of (gradient, parameter) pairs of NumPy arrays, e.g.
                `zip(grads, params)`; pairs whose gradient is None are skipped.
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
        self._begin_step()
        if self.weight_decay:
            for p in params:
                p -= p * (self.weight_decay * lr)
        self._update_all(params, grads, [self._slots_for(p) for p in params], lr)
        self.iterations += 1

    def apply(self, grads, trainable_variables):
        """Keras 3's `apply(grads, variables)`: same as `apply_gradients(zip(grads, variables))`."""
        grads, trainable_variables = list(grads), list(trainable_variables)
        if len(grads) != len(trainable_variables):
            raise ValueError(
                f"`grads` ({len(grads)} arrays) and `trainable_variables` "
                f"({len(trainable_variables)} arrays) must have the same length."
            )
        self.apply_gradients(zip(grads, trainable_variables))

    def _begin_step(self):
        """Hook run once per step, before the per-parameter updates."""

    def _update(self, param, grad, slots, lr):
        raise NotImplementedError

    def _update_all(self, params, grads, slots, lr):
        """Update every parameter (an optimizer whose kernel takes them all at once overrides
        this: one call per step instead of one per parameter)."""
        for p, g, s in zip(params, grads, slots):
            self._update(p, g, s, lr)

    # -- configuration -------------------------------------------------------------------------
    def get_config(self):
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(self._learning_rate)
        elif callable(self._learning_rate):
            raise ValueError(
                "An optimizer whose learning rate is a plain callable cannot be serialized; use a "
                "fastconv.optimizers.schedules.LearningRateSchedule instead."
            )
        else:
            learning_rate = self._learning_rate
        return {
            "name": self.name, "learning_rate": learning_rate,
            "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r})"
