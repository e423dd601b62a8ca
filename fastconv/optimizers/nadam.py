"""Nadam: Adam with Nesterov momentum, Keras 3's update rule."""
import numpy as np

from .base_optimizer import Optimizer, check_fraction, check_positive

_MOMENTUM_DECAY = 0.96  # Dozat's momentum schedule: mu_t = beta_1 (1 - 0.5 * 0.96^t)


class Nadam(Optimizer):
    """Nadam (Dozat, 2016), with Keras 3's update rule.

    Args:
        learning_rate: default 0.001.
        beta_1: decay of the first-moment estimate, default 0.9.
        beta_2: decay of the second-moment estimate, default 0.999.
        epsilon: added to sqrt(v_hat) in the denominator, default 1e-7.
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`, `name`.

    At step t (1-based), with `mu_t = beta_1 (1 - 0.5 * 0.96^t)` and `prod_t = mu_1 ... mu_t`:
    `m += (g - m)(1 - beta_1)`, `v += (g^2 - v)(1 - beta_2)`,
    `m_hat = mu_{t+1} m / (1 - prod_t mu_{t+1}) + (1 - mu_t) g / (1 - prod_t)`,
    `v_hat = v / (1 - beta_2^t)`, `w -= lr m_hat / (sqrt(v_hat) + epsilon)`.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = check_fraction(beta_1, "beta_1")
        self.beta_2 = check_fraction(beta_2, "beta_2")
        self.epsilon = check_positive(epsilon, "epsilon", allow_zero=True)
        self._momentum_product = 1.0  # prod of mu_1..mu_t, shared by all parameters

    def _mu(self, step):
        return self.beta_1 * (1.0 - 0.5 * _MOMENTUM_DECAY ** step)

    def _slot_names(self):
        return ("m", "v")

    def reset_state(self):
        super().reset_state()
        self._momentum_product = 1.0

    def _begin_step(self):
        self._momentum_product *= self._mu(self.iterations + 1)

    def _update(self, param, grad, slots, lr):
        step = self.iterations + 1
        mu_t, mu_next = self._mu(step), self._mu(step + 1)
        product = self._momentum_product
        m, v = slots["m"], slots["v"]
        m += (grad - m) * (1.0 - self.beta_1)
        v += (np.square(grad) - v) * (1.0 - self.beta_2)
        # Python floats keep float32 parameters in float32 (NumPy's weak scalar promotion).
        m_hat = m * (mu_next / (1.0 - product * mu_next)) + grad * ((1.0 - mu_t) / (1.0 - product))
        v_hat = v * (1.0 / (1.0 - self.beta_2 ** step))
        param -= (m_hat * lr) / (np.sqrt(v_hat) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
