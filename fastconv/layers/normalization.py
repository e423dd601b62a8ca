"""BatchNormalization and LayerNormalization."""
import numbers

import numpy as np

from .. import _validation as V
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

    def _gamma_beta(self):
        return (self.gamma if self.scale else self._unit_scale,
                self.beta if self.center else self._zero_offset)

    def _update_moving(self, mean, var):
        # In place: optimizers and callers may hold references to the weight arrays.
        self.moving_mean *= self.momentum
        self.moving_mean += (1.0 - self.momentum) * mean
        self.moving_variance *= self.momentum
        self.moving_variance += (1.0 - self.momentum) * var

    def call(self, x, training):
        ops = get_ops()
        x = self._to_channels_last(x)
        gamma, beta = self._gamma_beta()
        if training and self.trainable:
            y, mean, var = ops.batch_norm_forward_training(x, gamma, beta, self.epsilon)
            self._update_moving(mean, var)
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
        kind = self._cache[0]
        if kind == "moving":
            return self._from_channels_last(dy * self._cache[1])
        if kind == "moving_relu":  # after _forward_relu: this layer's own gradient
            _, x, gamma, _ = self._cache
            factor = gamma / np.sqrt(self.moving_variance + self.epsilon)
            return self._from_channels_last(dy * factor.astype(self.dtype))
        x, gamma, mean, var = self._cache[1], self._cache[2], self._cache[-2], self._cache[-1]
        dx, dgamma, dbeta = get_ops().batch_norm_backward(dy, x, gamma, mean, var, self.epsilon)
        self._set_grads(dgamma, dbeta)
        return self._from_channels_last(dx)

    def _set_grads(self, dgamma, dbeta):
        if self.scale:
            self._grads["gamma"] = dgamma
        if self.center:
            self._grads["beta"] = dbeta

    # -- fused with a following ReLU (fastconv._fusion plans it; channels-last input only) ------
    def _forward_relu(self, x, relu, training, pool=None):
        """`relu.forward(self.forward(x, training), training)` in one pass over the activations;
        with `pool`, also `pool.forward(that, training)`.

        `relu` is a plain ReLU layer of this layer's dtype (fastconv._fusion checks that) and
        this layer is channels-last. Outputs, moving statistics and gradients (through
        `_backward_relu`) are those of the two layers run in turn, bit for bit. In training the
        ReLU keeps no cache of its own: the pair's backward is `_backward_relu`, and
        `relu.backward` on its own raises as after an inference pass.

        Args:
            x: this layer's input.
            relu: the ReLU layer that follows.
            training: training mode (batch statistics unless this layer is frozen).
            pool: None, or the MaxPooling2D layer after the ReLU (channels-last, of this
                dtype, recording argmaxes: fastconv._fusion checks it). Its output is then
                returned, and the ReLU's output is never written: the pooling kernel
                normalises each value as it reads it. The pool is left as after its own
                forward (its backward reads the argmax), with the same bits.
        """
        x = self._prepare_input(x)
        self._cache = None
        ops = get_ops()
        gamma, beta = self._gamma_beta()
        pooled = {} if pool is None else pool._args()
        if training and self.trainable:
            if pool is None:
                y, mean, var = ops.batch_norm_relu_forward_training(x, gamma, beta, self.epsilon)
            else:
                y, argmax, mean, var = ops.batch_norm_relu_max_pool_forward_training(
                    x, gamma, beta, self.epsilon, **pooled)
            self._update_moving(mean, var)
            self._cache = ("batch_relu", x, gamma, beta, mean, var)
        else:
            stats = (x, gamma, beta, self.moving_mean, self.moving_variance, self.epsilon)
            if pool is None:
                y = ops.batch_norm_relu_forward_inference(*stats)
            else:
                y, argmax = ops.batch_norm_relu_max_pool_forward_inference(*stats, **pooled)
            if training:
                self._cache = ("moving_relu", x, gamma, beta)
        self._forward_training = bool(training)
        self._output_shape_seen = x.shape  # the ReLU's output, channels-last as x
        relu._cache = None
        relu._forward_training = False
        relu._output_shape_seen = x.shape
        if pool is not None:
            pool._cache = ("argmax", argmax, x.shape) if training else None
            pool._forward_training = bool(training)
            pool._output_shape_seen = y.shape
        return y

    def _backward_relu(self, dy):
        """Gradient with respect to this layer's input of relu(this layer) after `_forward_relu`
        in training; fills this layer's gradients as `backward` does.

        Args:
            dy: gradient of the ReLU's output.
        """
        if (not getattr(self, "_forward_training", False) or self._cache is None
                or self._cache[0] not in ("batch_relu", "moving_relu")):
            raise RuntimeError(
                f"Layer {self.name!r}: _backward_relu() needs a preceding "
                "_forward_relu(x, relu, training=True)."
            )
        dy = V.as_float_array(dy, "dy", self.dtype)
        if dy.shape != self._output_shape_seen:
            raise ValueError(
                f"Layer {self.name!r}: `dy` must have the shape of the last forward output, "
                f"{self._output_shape_seen}; received {dy.shape}."
            )
        ops = get_ops()
        if self._cache[0] == "moving_relu":
            _, x, gamma, beta = self._cache
            return ops.batch_norm_relu_backward_inference(dy, x, gamma, beta, self.moving_mean,
                                                          self.moving_variance, self.epsilon)
        _, x, gamma, beta, mean, var = self._cache
        dx, dgamma, dbeta = ops.batch_norm_relu_backward(dy, x, gamma, beta, mean, var,
                                                         self.epsilon)
        self._set_grads(dgamma, dbeta)
        return dx

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
            "center": self.center, "scale": self.scale,
            **{k: C.serialize_initializer(v) for k, v in self._args.items() if k.endswith("initializer")},
            **{k: C.serialize_regularizer(v) for k, v in self._args.items() if k.endswith("regularizer")},
        })
        return config


class LayerNormalization(Layer):
    """Normalises each sample over `axis` (by default its features/channels), independently of
    the batch: `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`, mean and (biased)
    variance taken per sample over the axes in `axis`. Same in training and at inference.

    Args:
        axis: int or list of ints: the axes (of the batched input, not 0) to normalise over;
            gamma and beta have their sizes. Default -1.
        epsilon: added to the variance, default 1e-3 (Keras).
        center: learn the offset beta.
        scale: learn the factor gamma.
        beta_initializer, gamma_initializer: initializers ("zeros", "ones").
        beta_regularizer, gamma_regularizer: regularizers.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        C.reject_unsupported("LayerNormalization", beta_constraint=beta_constraint,
                             gamma_constraint=gamma_constraint)
        if rms_scaling:
            raise ValueError("LayerNormalization: `rms_scaling=True` is not supported by fastconv.")
        axes = [axis] if isinstance(axis, numbers.Integral) else axis
        try:
            axes = list(axes)
        except TypeError:
            axes = None
        if not axes or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes):
            raise ValueError("LayerNormalization: `axis` must be an int or a non-empty list of ints; "
                             f"received axis={axis!r}.")
        self.axis = [int(a) for a in axes]
        if (isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real)
                or not (epsilon > 0 and np.isfinite(epsilon))):
            raise ValueError(f"`epsilon` must be a positive number; received epsilon={epsilon!r}.")
        self.epsilon = float(epsilon)
        self.center = C.check_bool(center, "center")
        self.scale = C.check_bool(scale, "scale")
        self._args = {"beta_initializer": beta_initializer, "gamma_initializer": gamma_initializer,
                      "beta_regularizer": beta_regularizer, "gamma_regularizer": gamma_regularizer}
        self.beta_initializer = C.get_initializer(beta_initializer, "zeros", "beta_initializer")
        self.gamma_initializer = C.get_initializer(gamma_initializer, "ones", "gamma_initializer")
        self.beta_regularizer = C.get_regularizer(beta_regularizer, "beta_regularizer")
        self.gamma_regularizer = C.get_regularizer(gamma_regularizer, "gamma_regularizer")

    def _axes(self, input_shape):
        """The normalised axes as sorted indices of the batched input (1 .. rank-1)."""
        rank = len(input_shape) + 1
        axes = sorted(a + rank if a < 0 else a for a in self.axis)
        if any(not 1 <= a < rank for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(
                f"Layer {self.name!r}: `axis` {self.axis} is not a list of distinct axes of input "
                f"of shape (batch,) + {tuple(input_shape)} (the batch axis 0 is not allowed)."
            )
        return tuple(axes)

    def compute_output_shape(self, input_shape):
        self._axes(input_shape)
        return tuple(input_shape)

    def build_weights(self, input_shape):
        shape = tuple(input_shape[a - 1] for a in self._axes(input_shape))
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer,
                                         regularizer=self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight("beta", shape, self.beta_initializer,
                                        regularizer=self.beta_regularizer)

    def _broadcast(self, weight):
        """gamma/beta reshaped to broadcast against the batched input."""
        axes = self._axes(self.input_shape)
        shape = [1] * (len(self.input_shape) + 1)
        for a in axes:
            shape[a] = self.input_shape[a - 1]
        return weight.reshape(shape)

    def call(self, x, training):
        axes = self._axes(self.input_shape)
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        inv_std = 1.0 / np.sqrt(np.square(centred).mean(axis=axes, keepdims=True) + self.epsilon)
        xhat = centred * inv_std
        y = xhat * self._broadcast(self.gamma) if self.scale else xhat
        if self.center:
            y = y + self._broadcast(self.beta)
        if training:
            self._cache = (xhat, inv_std)
        return y.astype(self.dtype, copy=False)

    def call_backward(self, dy):
        xhat, inv_std = self._cache
        axes = self._axes(self.input_shape)
        others = tuple(a for a in range(dy.ndim) if a not in axes)  # batch and unnormalised axes
        if self.scale:
            self._grads["gamma"] = (dy * xhat).sum(axis=others).reshape(self.gamma.shape)
        if self.center:
            self._grads["beta"] = dy.sum(axis=others).reshape(self.beta.shape)
        if not self.compute_input_gradient:
            return None
        dxhat = dy * self._broadcast(self.gamma) if self.scale else dy
        # d/dx of (x - mean) / std over the normalised group (the batch-norm formula per sample).
        dx = inv_std * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
        return dx.astype(self.dtype, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
            **{k: C.serialize_initializer(v) for k, v in self._args.items() if k.endswith("initializer")},
            **{k: C.serialize_regularizer(v) for k, v in self._args.items() if k.endswith("regularizer")},
        })
        return config
