"""Adam."""
import math

from ..backend import get_ops
from .base_optimizer import Optimizer, check_fraction, check_positive


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
        self.beta_1 = check_fraction(beta_1, "beta_1")
        self.beta_2 = check_fraction(beta_2, "beta_2")
        self.epsilon = check_positive(epsilon, "epsilon", allow_zero=True)
        self.amsgrad = bool(amsgrad)

    def _slot_names(self):
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def _alpha(self, lr):
        step = self.iterations + 1
        # A Python float keeps float32 parameters in float32 (NumPy's weak scalar promotion).
        return lr * math.sqrt(1.0 - self.beta_2 ** step) / (1.0 - self.beta_1 ** step)

    def _update(self, param, grad, slots, lr):
        self._update_all([param], [grad], [slots], lr)

    def _update_all(self, params, grads, slots, lr):
        if type(self)._update is not Adam._update:  # a subclass's own per-parameter rule
            return super()._update_all(params, grads, slots, lr)
        # m += (grad - m) * (1 - beta_1); v += (grad^2 - v) * (1 - beta_2);
        # param -= (m * alpha) / (sqrt(v) + epsilon): one fused pass over all the parameters
        # on the compiled backend, the same operations in the same order as the NumPy reference.
        get_ops().adam_update_many(params, grads, [s["m"] for s in slots], [s["v"] for s in slots],
                                   self._alpha(lr), self.beta_1, self.beta_2, self.epsilon,
                                   v_hats=[s["v_hat"] for s in slots] if self.amsgrad else None)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), Keras 3's AdamW.

    Each step first shrinks every parameter, `w -= w * weight_decay * lr`, then applies the
    Adam update; the decay does not go through the moment estimates (unlike an L2 penalty).

    Args:
        learning_rate: default 0.001.
        weight_decay: default 0.004 (Keras' default).
        beta_1, beta_2, epsilon, amsgrad: as for `Adam`.
        **kwargs: `clipnorm`, `clipvalue`, `global_clipnorm`, `name`.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, **kwargs)
