"""Conv2D and DepthwiseConv2D on NHWC input (channels_first is transposed around the kernels)."""
from .. import _validation as V
from .. import activations
from ..backend import get_ops
from . import _common as C
from .base import Layer


def normalize_padding(padding):
    """Validate a padding argument; return "valid"/"same" or ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in ("valid", "same"):
            raise ValueError(
                "The `padding` argument must be 'valid', 'same', an int, a pair of ints or "
                f"((top, bottom), (left, right)). Received padding={padding!r}"
            )
        return mode
    return V.resolve_padding(padding, (1, 1), (1, 1), (1, 1), (1, 1))


class _Conv2DBase(C.ChannelsLayout, Layer):
    """What Conv2D and DepthwiseConv2D share: geometry, fused activation, layout handling."""

    def __init__(self, kernel_size, strides, padding, data_format, dilation_rate, activation,
                 use_bias, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = V.normalize_tuple(kernel_size, 2, "kernel_size")
        self.strides = V.normalize_tuple(strides, 2, "strides")
        self.padding = normalize_padding(padding)
        self.data_format = C.normalize_data_format(data_format)
        self.dilation_rate = V.normalize_tuple(dilation_rate, 2, "dilation_rate")
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            raise ValueError(
                "`strides` > 1 together with `dilation_rate` > 1 is not supported (as in Keras). "
                f"Received strides={self.strides}, dilation_rate={self.dilation_rate}."
            )
        self.activation = C.get_activation(activation)
        self.use_bias = C.check_bool(use_bias, "use_bias")

    # -- subclass hooks ---------------------------------------------------------------------
    def _groups(self, in_channels):
        raise NotImplementedError

    def _filters(self, in_channels):
        raise NotImplementedError

    def _conv_kernel(self):
        """The kernel in conv2d's (kh, kw, in // groups, filters) layout."""
        raise NotImplementedError

    def _store_kernel_grad(self, dkernel):
        raise NotImplementedError

    # -- contract ---------------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        groups = self._groups(c)
        if c % groups:
            raise ValueError(
                f"Layer {self.name!r}: the number of input channels ({c}) must be divisible by "
                f"`groups` ({groups}); input shape (batch,) + {tuple(input_shape)}."
            )
        geo = V.window_geometry((1, h, w, c), self.kernel_size, self.strides, self.padding,
                                self.dilation_rate)
        filters = self._filters(c)
        if self.data_format == "channels_first":
            return (filters, geo.out_h, geo.out_w)
        return (geo.out_h, geo.out_w, filters)

    def _conv_args(self, in_channels):
        return dict(strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate,
                    groups=self._groups(in_channels))

    def call(self, x, training):
        x = self._to_nhwc(x)
        z = get_ops().conv2d_forward(x, self._conv_kernel(), self.bias, **self._conv_args(x.shape[3]))
        y = self.activation.forward(z)
        if training:
            self._cache = (x, z, y)
        return self._from_nhwc(y)

    def call_backward(self, dy):
        x, z, y = self._cache
        dz = self.activation.backward(z, y, self._to_nhwc(dy))
        dx, dkernel, dbias = get_ops().conv2d_backward(
            dz, x, self._conv_kernel(), **self._conv_args(x.shape[3]),
            need_input_grad=self.compute_input_gradient, need_bias_grad=self.use_bias)
        self._store_kernel_grad(dkernel)
        if self.use_bias:
            self._grads["bias"] = dbias
        return None if dx is None else self._from_nhwc(dx)

    def get_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
        })
        return config


class Conv2D(_Conv2DBase):
    """2-D convolution layer: `activation(conv2d(x, kernel) + bias)`.

    Args:
        filters: number of output channels.
        kernel_size: int or (kh, kw).
        strides: int or (sh, sw).
        padding: "valid", "same" (TensorFlow semantics), an int, (ph, pw) or
            ((top, bottom), (left, right)).
        data_format: None/"channels_last" (NHWC) or "channels_first" (NCHW).
        dilation_rate: int or (dh, dw); cannot be combined with strides > 1.
        groups: number of channel groups; input channels and filters must be divisible by it.
        activation: activation applied to the output (None: linear).
        use_bias: whether to add a bias vector.
        kernel_initializer: initializer of the (kh, kw, in // groups, filters) kernel.
        bias_initializer: initializer of the bias.
        kernel_regularizer: regularizer of the kernel.
        bias_regularizer: regularizer of the bias.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, **kwargs)
        C.reject_unsupported("Conv2D", activity_regularizer=activity_regularizer,
                             kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.filters = C.check_positive_int(filters, "filters")
        self.groups = C.check_positive_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(
                f"The number of filters must be evenly divisible by the number of groups. "
                f"Received: groups={self.groups}, filters={self.filters}."
            )
        self.kernel_initializer = C.get_initializer(kernel_initializer, "glorot_uniform",
                                                    "kernel_initializer")
        self.bias_initializer = C.get_initializer(bias_initializer, "zeros", "bias_initializer")
        self.kernel_regularizer = C.get_regularizer(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = C.get_regularizer(bias_regularizer, "bias_regularizer")
        self._args = {"kernel_initializer": kernel_initializer, "bias_initializer": bias_initializer,
                      "kernel_regularizer": kernel_regularizer, "bias_regularizer": bias_regularizer}

    def _groups(self, in_channels):
        return self.groups

    def _filters(self, in_channels):
        return self.filters

    def build_weights(self, input_shape):
        c = self._hwc(input_shape)[2]
        kh, kw = self.kernel_size
        self.kernel = self.add_weight("kernel", (kh, kw, c // self.groups, self.filters),
                                      self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def _conv_kernel(self):
        return self.kernel

    def _store_kernel_grad(self, dkernel):
        self._grads["kernel"] = dkernel

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "groups": self.groups,
            "kernel_initializer": C.serialize_initializer(self._args["kernel_initializer"]),
            "bias_initializer": C.serialize_initializer(self._args["bias_initializer"]),
            "kernel_regularizer": C.serialize_regularizer(self._args["kernel_regularizer"]),
            "bias_regularizer": C.serialize_regularizer(self._args["bias_regularizer"]),
        })
        return config


class DepthwiseConv2D(_Conv2DBase):
    """Depthwise 2-D convolution: each input channel is convolved with its own
    `depth_multiplier` filters.

    The kernel keeps Keras' layout (kh, kw, in_channels, depth_multiplier); output channel
    c * depth_multiplier + m comes from input channel c and multiplier m, as in Keras.

    Args:
        kernel_size: int or (kh, kw).
        strides: int or (sh, sw).
        padding: "valid", "same", an int, (ph, pw) or ((top, bottom), (left, right)).
        depth_multiplier: output channels per input channel.
        data_format: None/"channels_last" (NHWC) or "channels_first" (NCHW).
        dilation_rate: int or (dh, dw).
        activation: activation applied to the output (None: linear).
        use_bias: whether to add a bias vector (in_channels * depth_multiplier values).
        depthwise_initializer: initializer of the depthwise kernel.
        bias_initializer: initializer of the bias.
        depthwise_regularizer: regularizer of the depthwise kernel.
        bias_regularizer: regularizer of the bias.
    """

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, **kwargs)
        C.reject_unsupported("DepthwiseConv2D", activity_regularizer=activity_regularizer,
                             depthwise_constraint=depthwise_constraint,
                             bias_constraint=bias_constraint)
        self.depth_multiplier = C.check_positive_int(depth_multiplier, "depth_multiplier")
        self.depthwise_initializer = C.get_initializer(depthwise_initializer, "glorot_uniform",
                                                       "depthwise_initializer")
        self.bias_initializer = C.get_initializer(bias_initializer, "zeros", "bias_initializer")
        self.depthwise_regularizer = C.get_regularizer(depthwise_regularizer, "depthwise_regularizer")
        self.bias_regularizer = C.get_regularizer(bias_regularizer, "bias_regularizer")
        self._args = {"depthwise_initializer": depthwise_initializer,
                      "bias_initializer": bias_initializer,
                      "depthwise_regularizer": depthwise_regularizer,
                      "bias_regularizer": bias_regularizer}

    def _groups(self, in_channels):
        return in_channels

    def _filters(self, in_channels):
        return in_channels * self.depth_multiplier

    def build_weights(self, input_shape):
        c = self._hwc(input_shape)[2]
        kh, kw = self.kernel_size
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", (kh, kw, c, self.depth_multiplier), self.depthwise_initializer,
            regularizer=self.depthwise_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (c * self.depth_multiplier,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def _conv_kernel(self):
        # (kh, kw, C, M) -> (kh, kw, 1, C*M): C-order puts channel c, multiplier m at c*M + m,
        # which is filter m of group c in conv2d(groups=C).
        kh, kw, c, m = self.depthwise_kernel.shape
        return self.depthwise_kernel.reshape(kh, kw, 1, c * m)

    def _store_kernel_grad(self, dkernel):
        self._grads["depthwise_kernel"] = dkernel.reshape(self.depthwise_kernel.shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": C.serialize_initializer(self._args["depthwise_initializer"]),
            "bias_initializer": C.serialize_initializer(self._args["bias_initializer"]),
            "depthwise_regularizer": C.serialize_regularizer(self._args["depthwise_regularizer"]),
            "bias_regularizer": C.serialize_regularizer(self._args["bias_regularizer"]),
        })
        return config
