"""Learning-rate schedules, as in `keras.optimizers.schedules`.

A schedule is called with the optimizer's step count (`optimizer.iterations`: 0 for the first
update) and returns the learning rate for that step. Pass one as `learning_rate=`:

>>> from fastconv.optimizers import SGD
>>> from fastconv.optimizers.schedules import ExponentialDecay
>>> schedule = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)
>>> schedule(0), schedule(100), schedule(50) == 0.1 * 0.5 ** 0.5
(0.1, 0.05, True)
>>> optimizer = SGD(learning_rate=schedule)
"""
import bisect
import math
import numbers


def _number(value, name, *, positive=False, non_negative=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number; received {name}={value!r}.")
    if positive and value <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
    if non_negative and value < 0:
        raise ValueError(f"Argument `{name}` must be >= 0. Received: {name}={value!r}")
    return value


def _step(step):
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not step >= 0:
        raise ValueError(f"A schedule's `step` must be a non-negative number; received {step!r}.")
    return float(step)


def _bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False; received {name}={value!r}.")
    return value


class LearningRateSchedule:
    """Base class: subclasses implement `__call__(step) -> float` and `get_config()`."""

    def __call__(self, step):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` to be "
            "serializable."
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps per factor of `decay_rate`.
        decay_rate: the factor.
        staircase: if True, `step / decay_steps` is floored (the rate drops in steps).
        name: name of the schedule.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate",
                                             non_negative=True)
        self.decay_steps = _number(decay_steps, "decay_steps", positive=True)
        self.decay_rate = _number(decay_rate, "decay_rate", non_negative=True)
        self.staircase = _bool(staircase, "staircase")
        self.name = name

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """Step-wise constant rates: `values[0]` while `step <= boundaries[0]`, `values[i]` while
    `boundaries[i-1] < step <= boundaries[i]`, and `values[-1]` after the last boundary.

    Args:
        boundaries: strictly increasing step counts.
        values: one more rate than boundaries.
        name: name of the schedule.

    >>> PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])(15)
    0.5
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        try:
            boundaries, values = list(boundaries), list(values)
        except TypeError:
            raise TypeError("`boundaries` and `values` must be lists of numbers.") from None
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of "
                f"length {len(values)}."
            )
        for i, b in enumerate(boundaries):
            _number(b, f"boundaries[{i}]")
        for i, v in enumerate(values):
            _number(v, f"values[{i}]", non_negative=True)
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"`boundaries` must be strictly increasing; received {boundaries}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        # bisect_left finds the first boundary >= step, which is the interval's index.
        return self.values[bisect.bisect_left(self.boundaries, _step(step))]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """From `initial_learning_rate` to `end_learning_rate` in `decay_steps` along
    `(1 - step / decay_steps) ** power`, then constant (or restarting with `cycle=True`).

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps of the decay.
        end_learning_rate: the final rate, default 0.0001.
        power: the polynomial's power, default 1 (linear).
        cycle: if True, decay_steps is stretched to the first multiple above `step`.
        name: name of the schedule.
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate",
                                             non_negative=True)
        self.decay_steps = _number(decay_steps, "decay_steps", positive=True)
        self.end_learning_rate = _number(end_learning_rate, "end_learning_rate", non_negative=True)
        self.power = _number(power, "power", non_negative=True)
        self.cycle = _bool(cycle, "cycle")
        self.name = name

    def __call__(self, step):
        step = _step(step)
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / decay_steps)
        else:
            step = min(step, decay_steps)
        fraction = 1.0 - step / decay_steps
        return ((self.initial_learning_rate - self.end_learning_rate) * fraction ** self.power
                + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)`.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps per unit of decay.
        decay_rate: the decay rate.
        staircase: if True, `step / decay_steps` is floored.
        name: name of the schedule.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate",
                                             non_negative=True)
        self.decay_steps = _number(decay_steps, "decay_steps", positive=True)
        self.decay_rate = _number(decay_rate, "decay_rate", non_negative=True)
        self.staircase = _bool(staircase, "staircase")
        self.name = name

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warm-up (Keras 3).

    Without `warmup_target`: `lr(step) = initial_learning_rate * ((1 - alpha) * c + alpha)`,
    `c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))`.
    With `warmup_target`: the rate rises linearly from `initial_learning_rate` to
    `warmup_target` over `warmup_steps`, then decays from `warmup_target` as above (the step
    counted from the end of the warm-up) down to `alpha * warmup_target`.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps of the decay.
        alpha: the final rate as a fraction of the decay's starting rate.
        name: name of the schedule.
        warmup_target: None (no warm-up) or the rate reached at the end of the warm-up.
        warmup_steps: number of warm-up steps.

    >>> schedule = CosineDecay(0.0, decay_steps=10, warmup_target=0.1, warmup_steps=5)
    >>> [round(schedule(s), 4) for s in (0, 5, 10, 15)]
    [0.0, 0.1, 0.05, 0.0]
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate",
                                             non_negative=True)
        self.decay_steps = _number(decay_steps, "decay_steps", positive=True)
        self.alpha = _number(alpha, "alpha", non_negative=True)
        self.name = name
        self.warmup_target = (None if warmup_target is None
                              else _number(warmup_target, "warmup_target", non_negative=True))
        self.warmup_steps = _number(warmup_steps, "warmup_steps", non_negative=True)
        if self.warmup_target is not None and self.warmup_steps == 0:
            raise ValueError("`warmup_steps` must be > 0 when `warmup_target` is set.")

    def _decay(self, step, start_rate):
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(step, self.decay_steps) / self.decay_steps))
        return start_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        step = _step(step)
        if self.warmup_target is None:
            return self._decay(step, self.initial_learning_rate)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate) * fraction
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter).

    The rate decays from `initial_learning_rate` to `alpha` times it over `first_decay_steps`,
    then restarts; period i lasts `first_decay_steps * t_mul**i` steps, and in it
    `lr = initial_learning_rate * ((1 - alpha) * m_mul**i * 0.5 * (1 + cos(pi * f)) + alpha)`,
    f the fraction of the period done (as Keras: the floor `alpha` is not scaled by m_mul).

    Args:
        initial_learning_rate: the rate at step 0.
        first_decay_steps: positive length of the first period.
        t_mul: growth factor of the period lengths.
        m_mul: factor of the restart rates.
        alpha: the rate at the end of each period, as a fraction of its starting rate.
        name: name of the schedule.
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate",
                                             non_negative=True)
        self.first_decay_steps = _number(first_decay_steps, "first_decay_steps", positive=True)
        self.t_mul = _number(t_mul, "t_mul", positive=True)
        self.m_mul = _number(m_mul, "m_mul", non_negative=True)
        self.alpha = _number(alpha, "alpha", non_negative=True)
        self.name = name

    def __call__(self, step):
        fraction = _step(step) / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            # Periods 1, t, t^2, ... : restart i begins at (1 - t^i) / (1 - t) periods.
            restart = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul))
            start = (1.0 - self.t_mul ** restart) / (1.0 - self.t_mul)
            fraction = (fraction - start) / self.t_mul ** restart
        cosine = 0.5 * self.m_mul ** restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_CLASSES = {cls.__name__: cls for cls in (
    ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecay,
    CosineDecayRestarts)}


def serialize(schedule):
    """Return {"class_name", "config"} for a built-in schedule."""
    cls = type(schedule)
    if _CLASSES.get(cls.__name__) is not cls:
        raise ValueError(f"Cannot serialize the learning-rate schedule {schedule!r}: only built-in "
                         f"schedules ({sorted(_CLASSES)}) can be saved.")
    return {"class_name": cls.__name__, "config": schedule.get_config()}


def deserialize(config):
    """Rebuild a schedule from `serialize`'s output."""
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(
            f"Unknown learning-rate schedule configuration {config!r}; expected one of {sorted(_CLASSES)}."
        )
    return _CLASSES[config["class_name"]].from_config(dict(config.get("config") or {}))


def get(identifier):
    """Return a schedule from a schedule object or a serialized config."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    return deserialize(identifier)
