"""Adagrad."""
import numpy as np

from .base_optimizer import Optimizer, check_positive


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
        self.initial_accumulator_value = check_positive(
            initial_accumulator_value, "initial_accumulator_value", allow_zero=True)
        self.epsilon = check_positive(epsilon, "epsilon", allow_zero=True)

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
