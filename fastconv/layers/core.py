"""Dense and Activation layers."""
import numpy as np

from .. import activations
from ..backend import get_ops
from . import _common as C
from .base import Layer


class Dense(Layer):
    """Densely-connected layer: `activation(x @ kernel + bias)`.

    Args:
        units: number of outputs.
        activation: activation applied to the output (None: linear).
        use_bias: whether to add a bias vector.
        kernel_initializer: initializer of the (in_features, units) kernel.
        bias_initializer: initializer of the bias.
        kernel_regularizer: regularizer of the kernel (see `fastconv.regularizers`).
        bias_regularizer: regularizer of the bias.

    Input is 2-D `(batch, features)`; put a `Flatten` layer before it for images.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        C.reject_unsupported("Dense", activity_regularizer=activity_regularizer,
                             kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.units = C.check_positive_int(units, "units")
        self.activation = C.get_activation(activation)
        self.use_bias = C.check_bool(use_bias, "use_bias")
        self.kernel_initializer = C.get_initializer(kernel_initializer, "glorot_uniform",
                                                    "kernel_initializer")
        self.bias_initializer = C.get_initializer(bias_initializer, "zeros", "bias_initializer")
        self._kernel_initializer_arg = kernel_initializer
        self._bias_initializer_arg = bias_initializer
        self.kernel_regularizer = C.get_regularizer(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = C.get_regularizer(bias_regularizer, "bias_regularizer")
        self._kernel_regularizer_arg = kernel_regularizer
        self._bias_regularizer_arg = bias_regularizer

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"Layer {self.name!r} (Dense) expects 2-D input (batch, features); received input "
                f"shape (batch,) + {tuple(input_shape)}. Add a Flatten layer before Dense."
            )
        return (self.units,)

    def build_weights(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[0], self.units),
                                      self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def call(self, x, training):
        fused = self.activation.fused(x.dtype, training)
        if fused is not None:  # applied by the kernel as it writes
            y = get_ops().dense_forward(x, self.kernel, self.bias, activation=fused)
            if training:
                self._cache = (x, None, y)  # the gradient of a fused activation needs only y
            return y
        z = get_ops().dense_forward(x, self.kernel, self.bias)
        y = self.activation.forward(z)
        if training:
            self._cache = (x, z, y)
        return y

    def call_backward(self, dy):
        x, z, y = self._cache
        dz = self.activation.backward(z, y, dy)
        dx, dkernel, dbias = get_ops().dense_backward(
            dz, x, self.kernel, need_input_grad=self.compute_input_gradient,
            need_bias_grad=self.use_bias)
        self._grads["kernel"] = dkernel
        if self.use_bias:
            self._grads["bias"] = dbias
        return dx

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": C.serialize_initializer(self._kernel_initializer_arg),
            "bias_initializer": C.serialize_initializer(self._bias_initializer_arg),
            "kernel_regularizer": C.serialize_regularizer(self._kernel_regularizer_arg),
            "bias_regularizer": C.serialize_regularizer(self._bias_regularizer_arg),
        })
        return config


class Activation(Layer):
    """Applies an activation function.

    Args:
        activation: a name ("relu", "softmax", ...) or a function of `fastconv.activations`.
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = C.get_activation(activation)

    def call(self, x, training):
        y = self.activation.forward(x)
        if training:
            self._cache = (x, y)
        return y

    def call_backward(self, dy):
        x, y = self._cache
        return np.asarray(self.activation.backward(x, y, dy), dtype=self.dtype)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config
