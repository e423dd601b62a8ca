"""RMSprop."""
import numpy as np

from .base_optimizer import Optimizer, check_fraction, check_positive


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
        self.rho = check_fraction(rho, "rho")
        self.momentum = check_fraction(momentum, "momentum")
        self.epsilon = check_positive(epsilon, "epsilon", allow_zero=True)
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
