"""Stochastic gradient descent with optional (Nesterov) momentum."""
from ..backend import get_ops
from .base_optimizer import Optimizer, check_fraction


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
        self.momentum = check_fraction(momentum, "momentum")
        self.nesterov = bool(nesterov)

    def _slot_names(self):
        return ("momentum",) if self.momentum else ()

    def _update(self, param, grad, slots, lr):
        # One fused pass on the compiled backend, the NumPy reference's operations and order.
        get_ops().sgd_update(param, grad, lr, self.momentum, slots.get("momentum"), self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
