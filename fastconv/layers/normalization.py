"""BatchNormalization."""
import numbers

import numpy as np

from ..backend import get_ops
from . import _common as C
from .base import Layer


class BatchNormalization(Layer):
    """Normalises each channel with batch statistics in training, moving statistics at inference.

    Training: y = gamma * (x - mean) / sqrt(var + epsilon) + beta with the batch mean and the
    biased batch variance over every axis but `axis`; then
    `moving = moving * momentum + batch_stat * (1 - momentum)`.
    Inference (and training with `trainable=False`, as in Keras): the moving statistics are used
    and not updated.

    Args:
        axis: the channel axis (int; -1 for channels_last images or (batch, features) input).
        momentum: momentum of the moving averages.
        epsilon: added to the variance before the square root.
        center: learn the offset beta.
        scale: learn the factor gamma.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers of the four weights.
        beta_regularizer, gamma_regularizer: regularizers of beta and gamma.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        C.reject_unsupported("BatchNormalization", beta_constraint=beta_constraint,
                             gamma_constraint=gamma_constraint)
        if synchronized:
            raise ValueError("BatchNormalization: `synchronized=True` is not supported by fastconv.")
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(
                f"The `axis` argument must be a single integer; received axis={axis!r}."
            )
        self.axis = int(axis)
        if (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                or not 0 <= momentum <= 1):
            raise ValueError(f"`momentum` must be a number in [0, 1]; received momentum={momentum!r}.")
        self.momentum = float(momentum)
        if (isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real)
                or not (epsilon > 0 and np.isfinite(epsilon))):
            raise ValueError(f"`epsilon` must be a positive number; received epsilon={epsilon!r}.")
        self.epsilon = float(epsilon)
        self.center = C.check_bool(center, "center")
        self.scale = C.check_bool(scale, "scale")
        self._args = {"beta_initializer": beta_initializer, "gamma_initializer": gamma_initializer,
                      "moving_mean_initializer": moving_mean_initializer,
                      "moving_variance_initializer": moving_variance_initializer,
                      "beta_regularizer": beta_regularizer, "gamma_regularizer": gamma_regularizer}
        self.beta_initializer = C.get_initializer(beta_initializer, "zeros", "beta_initializer")
        self.gamma_initializer = C.get_initializer(gamma_initializer, "ones", "gamma_initializer")
        self.moving_mean_initializer = C.get_initializer(
            moving_mean_initializer, "zeros", "moving_mean_initializer")
        self.moving_variance_initializer = C.get_initializer(
            moving_variance_initializer, "ones", "moving_variance_initializer")
        self.beta_regularizer = C.get_regularizer(beta_regularizer, "beta_regularizer")
        self.gamma_regularizer = C.get_regularizer(gamma_regularizer, "gamma_regularizer")

    def _channel_axis(self, input_shape):
        """The channel axis of the batched input (1 .. rank-1)."""
        rank = len(input_shape) + 1
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(
                f"Layer {self.name!r}: `axis`={self.axis} is not a channel axis of input of shape "
                f"(batch,) + {tuple(input_shape)} (the batch axis 0 cannot be normalised over)."
            )
        return axis

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(
                f"Layer {self.name!r} (BatchNormalization) expects input with at least 2 "
                f"dimensions (batch, ..., channels); received (batch,) + {tuple(input_shape)}."
            )
        self._channel_axis(input_shape)
        return tuple(input_shape)

    def build_weights(self, input_shape):
        channels = input_shape[self._channel_axis(input_shape) - 1]
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight("gamma", (channels,), self.gamma_initializer,
                                         regularizer=self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight("beta", (channels,), self.beta_initializer,
                                        regularizer=self.beta_regularizer)
        self.moving_mean = self.add_weight("moving_mean", (channels,), self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (channels,),
                                               self.moving_variance_initializer, trainable=False)
        # Fixed gamma = 1 / beta = 0 stand in for the weights that center/scale leave out.
        self._unit_scale = np.ones((channels,), dtype=self.dtype)
        self._zero_offset = np.zeros((channels,), dtype=self.dtype)

    def _to_channels_last(self, x):
        axis = self._channel_axis(self.input_shape)
        return x if axis == x.ndim - 1 else np.moveaxis(x, axis, -1)

    def _from_channels_last(self, y):
        axis = self._channel_axis(self.input_shape)
        return y if axis == y.ndim - 1 else np.ascontiguousarray(np.moveaxis(y, -1, axis))

    def call(self, x, training):
        ops = get_ops()
        x = self._to_channels_last(x)
        gamma = self.gamma if self.scale else self._unit_scale
        beta = self.beta if self.center else self._zero_offset
        if training and self.trainable:
            y, mean, var = ops.batch_norm_forward_training(x, gamma, beta, self.epsilon)
            # In place: optimizers and callers may hold references to the weight arrays.
            self.moving_mean *= self.momentum
            self.moving_mean += (1.0 - self.momentum) * mean
            self.moving_variance *= self.momentum
            self.moving_variance += (1.0 - self.momentum) * var
            self._cache = ("batch", x, gamma, mean, var)
        else:
            y = ops.batch_norm_forward_inference(x, gamma, beta, self.moving_mean,
                                                 self.moving_variance, self.epsilon)
            if training:  # frozen layer: y is an affine function of x
                factor = gamma / np.sqrt(self.moving_variance + self.epsilon)
                self._cache = ("moving", factor.astype(self.dtype))
        return self._from_channels_last(y)

    def call_backward(self, dy):
        dy = self._to_channels_last(dy)
        if self._cache[0] == "moving":
            return self._from_channels_last(dy * self._cache[1])
        _, x, gamma, mean, var = self._cache
        dx, dgamma, dbeta = get_ops().batch_norm_backward(dy, x, gamma, mean, var, self.epsilon)
        if self.scale:
            self._grads["gamma"] = dgamma
        if self.center:
            self._grads["beta"] = dbeta
        return self._from_channels_last(dx)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
            "center": self.center, "scale": self.scale,
            **{k: C.serialize_initializer(v) for k, v in self._args.items() if k.endswith("initializer")},
            **{k: C.serialize_regularizer(v) for k, v in self._args.items() if k.endswith("regularizer")},
        })
        return config
