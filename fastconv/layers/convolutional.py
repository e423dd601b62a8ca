"""Conv2D, DepthwiseConv2D, SeparableConv2D and Conv2DTranspose on NHWC input (channels_first
is transposed around the kernels). The last two are compositions of the conv2d kernels: no
kernel of their own."""
import numpy as np

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
        fused = self.activation.fused(x.dtype, training)
        if fused is not None:  # applied by the kernel as it writes
            y = get_ops().conv2d_forward(x, self._conv_kernel(), self.bias,
                                         **self._conv_args(x.shape[3]), activation=fused)
            if training:
                self._cache = (x, None, y)  # the gradient of a fused activation needs only y
            return self._from_nhwc(y)
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


class SeparableConv2D(_Conv2DBase):
    """Depthwise separable 2-D convolution: a depthwise convolution (each input channel with
    its own `depth_multiplier` filters) followed by a 1x1 (pointwise) convolution mixing the
    channels, then the bias and the activation.

    Weights, in Keras' order and layouts: `depthwise_kernel` (kh, kw, in_channels,
    depth_multiplier), `pointwise_kernel` (1, 1, in_channels * depth_multiplier, filters),
    `bias` (filters,).

    Args:
        filters: number of output channels.
        kernel_size: int or (kh, kw) of the depthwise step.
        strides: int or (sh, sw) of the depthwise step.
        padding: "valid", "same", an int, (ph, pw) or ((top, bottom), (left, right)).
        data_format: None/"channels_last" (NHWC) or "channels_first" (NCHW).
        dilation_rate: int or (dh, dw) of the depthwise step.
        depth_multiplier: depthwise output channels per input channel.
        activation: activation applied to the output (None: linear).
        use_bias: whether to add a bias vector.
        depthwise_initializer, pointwise_initializer, bias_initializer: initializers.
        depthwise_regularizer, pointwise_regularizer, bias_regularizer: regularizers.

    >>> layer = SeparableConv2D(8, 3, padding="same")
    >>> layer.build((16, 16, 4))
    >>> [w.shape for w in layer.get_weights()]
    [(3, 3, 4, 1), (1, 1, 4, 8), (8,)]
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, **kwargs)
        C.reject_unsupported("SeparableConv2D", activity_regularizer=activity_regularizer,
                             depthwise_constraint=depthwise_constraint,
                             pointwise_constraint=pointwise_constraint,
                             bias_constraint=bias_constraint)
        self.filters = C.check_positive_int(filters, "filters")
        self.depth_multiplier = C.check_positive_int(depth_multiplier, "depth_multiplier")
        self._args = {"depthwise_initializer": depthwise_initializer,
                      "pointwise_initializer": pointwise_initializer,
                      "bias_initializer": bias_initializer,
                      "depthwise_regularizer": depthwise_regularizer,
                      "pointwise_regularizer": pointwise_regularizer,
                      "bias_regularizer": bias_regularizer}
        self.depthwise_initializer = C.get_initializer(depthwise_initializer, "glorot_uniform",
                                                       "depthwise_initializer")
        self.pointwise_initializer = C.get_initializer(pointwise_initializer, "glorot_uniform",
                                                       "pointwise_initializer")
        self.bias_initializer = C.get_initializer(bias_initializer, "zeros", "bias_initializer")
        self.depthwise_regularizer = C.get_regularizer(depthwise_regularizer, "depthwise_regularizer")
        self.pointwise_regularizer = C.get_regularizer(pointwise_regularizer, "pointwise_regularizer")
        self.bias_regularizer = C.get_regularizer(bias_regularizer, "bias_regularizer")

    def _groups(self, in_channels):
        return in_channels

    def _filters(self, in_channels):
        return self.filters

    def build_weights(self, input_shape):
        c = self._hwc(input_shape)[2]
        kh, kw = self.kernel_size
        m = self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", (kh, kw, c, m),
                                                self.depthwise_initializer,
                                                regularizer=self.depthwise_regularizer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, c * m, self.filters),
                                                self.pointwise_initializer,
                                                regularizer=self.pointwise_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def _depthwise_as_conv(self):
        kh, kw, c, m = self.depthwise_kernel.shape  # output channel c * m + j, as DepthwiseConv2D
        return self.depthwise_kernel.reshape(kh, kw, 1, c * m)

    def _pointwise_matrix(self):
        return self.pointwise_kernel.reshape(self.pointwise_kernel.shape[2], self.filters)

    def call(self, x, training):
        ops = get_ops()
        x = self._to_nhwc(x)
        depthwise = ops.conv2d_forward(x, self._depthwise_as_conv(), None, **self._conv_args(x.shape[3]))
        n, h, w, cm = depthwise.shape
        # The 1x1 pointwise convolution is a matrix product over all pixels.
        z = ops.dense_forward(depthwise.reshape(-1, cm), self._pointwise_matrix(), self.bias)
        z = z.reshape(n, h, w, self.filters)
        y = self.activation.forward(z)
        if training:
            self._cache = (x, depthwise, z, y)
        return self._from_nhwc(y)

    def call_backward(self, dy):
        ops = get_ops()
        x, depthwise, z, y = self._cache
        dz = self.activation.backward(z, y, self._to_nhwc(dy))
        n, h, w, cm = depthwise.shape
        d_depthwise, d_pointwise, dbias = ops.dense_backward(
            dz.reshape(-1, self.filters), depthwise.reshape(-1, cm), self._pointwise_matrix(),
            need_input_grad=True, need_bias_grad=self.use_bias)
        dx, d_kernel, _ = ops.conv2d_backward(
            d_depthwise.reshape(n, h, w, cm), x, self._depthwise_as_conv(),
            **self._conv_args(x.shape[3]), need_input_grad=self.compute_input_gradient,
            need_bias_grad=False)
        self._grads["depthwise_kernel"] = d_kernel.reshape(self.depthwise_kernel.shape)
        self._grads["pointwise_kernel"] = d_pointwise.reshape(self.pointwise_kernel.shape)
        if self.use_bias:
            self._grads["bias"] = dbias
        return None if dx is None else self._from_nhwc(dx)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "depth_multiplier": self.depth_multiplier})
        config.update({k: (C.serialize_initializer(v) if k.endswith("initializer")
                           else C.serialize_regularizer(v)) for k, v in self._args.items()})
        return config


def deconv_output_length(size, kernel_size, padding, output_padding, stride, dilation):
    """Output length of a transposed convolution along one axis (Keras' formula)."""
    kernel_size = (kernel_size - 1) * dilation + 1
    if output_padding is None:
        if padding == "valid":
            return size * stride + max(kernel_size - stride, 0)
        return size * stride
    pad = 0 if padding == "valid" else kernel_size // 2
    return (size - 1) * stride + kernel_size - 2 * pad + output_padding


class Conv2DTranspose(C.ChannelsLayout, Layer):
    """Transposed 2-D convolution ("deconvolution"): the gradient of a Conv2D with respect to
    its input, used to up-sample feature maps.

    It is computed with the conv2d kernels: forward = the input gradient of the matching
    convolution, backward = that convolution (input gradient) and its weight gradient. The
    output size follows Keras: with `padding="same"` and no `output_padding`,
    `out = in * stride`; with `"valid"`, `out = in * stride + max(k - stride, 0)`
    (k the dilated kernel size); with `output_padding=p`, `out = (in - 1) * stride + k -
    2 * pad + p` (pad = k // 2 for "same", 0 for "valid"). Padding and placement match
    TensorFlow's `conv2d_transpose` (and Keras' JAX backend).

    Args:
        filters: number of output channels.
        kernel_size: int or (kh, kw).
        strides: int or (sh, sw): the up-sampling factors.
        padding: "valid" or "same".
        output_padding: None, or int / (ph, pw) extra rows/columns at the bottom/right, each
            smaller than the stride.
        data_format: None/"channels_last" (NHWC) or "channels_first" (NCHW).
        dilation_rate: int or (dh, dw); cannot be combined with strides > 1.
        activation: activation applied to the output (None: linear).
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: initializers; the kernel has Keras' layout
            (kh, kw, filters, in_channels).
        kernel_regularizer, bias_regularizer: regularizers.

    >>> layer = Conv2DTranspose(4, 3, strides=2, padding="same")
    >>> layer.build((5, 7, 2))
    >>> layer.output_shape, layer.kernel.shape
    ((10, 14, 4), (3, 3, 4, 2))
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        C.reject_unsupported("Conv2DTranspose", activity_regularizer=activity_regularizer,
                             kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.filters = C.check_positive_int(filters, "filters")
        self.kernel_size = V.normalize_tuple(kernel_size, 2, "kernel_size")
        self.strides = V.normalize_tuple(strides, 2, "strides")
        if not (isinstance(padding, str) and padding.lower() in ("valid", "same")):
            raise ValueError("Conv2DTranspose: the `padding` argument must be 'valid' or 'same'. "
                             f"Received padding={padding!r}")
        self.padding = padding.lower()
        self.output_padding = (None if output_padding is None
                               else V.normalize_tuple(output_padding, 2, "output_padding", allow_zero=True))
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(
                f"Conv2DTranspose: strides {self.strides} must be greater than output padding "
                f"{self.output_padding}."
            )
        self.data_format = C.normalize_data_format(data_format)
        self.dilation_rate = V.normalize_tuple(dilation_rate, 2, "dilation_rate")
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            raise ValueError(
                "`strides` > 1 together with `dilation_rate` > 1 is not supported (as in Keras). "
                f"Received strides={self.strides}, dilation_rate={self.dilation_rate}."
            )
        self.activation = C.get_activation(activation)
        self.use_bias = C.check_bool(use_bias, "use_bias")
        self._args = {"kernel_initializer": kernel_initializer, "bias_initializer": bias_initializer,
                      "kernel_regularizer": kernel_regularizer, "bias_regularizer": bias_regularizer}
        self.kernel_initializer = C.get_initializer(kernel_initializer, "glorot_uniform",
                                                    "kernel_initializer")
        self.bias_initializer = C.get_initializer(bias_initializer, "zeros", "bias_initializer")
        self.kernel_regularizer = C.get_regularizer(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = C.get_regularizer(bias_regularizer, "bias_regularizer")

    def _geometry(self, h, w):
        """Output size and the matching convolution's padding, per axis.

        Returns ((out_h, out_w), conv padding ((top, bottom), (left, right)), (extra_h, extra_w)):
        the convolution maps an (out - extra)-sized map back to (h, w); the `extra` last
        rows/columns of the output are reached by no kernel tap (zero before the bias).
        """
        out, pads, extra = [], [], []
        op = self.output_padding or (None, None)
        for size, k, s, d, p in zip((h, w), self.kernel_size, self.strides, self.dilation_rate, op):
            length = deconv_output_length(size, k, self.padding, p, s, d)
            if length < 1:
                raise ValueError(f"Layer {self.name!r}: the output would be empty for input size {size}.")
            k_eff = (k - 1) * d + 1
            total = (size - 1) * s + k_eff - length  # padding of the matching convolution
            before = max(total, 0) // 2 if self.padding == "same" else 0
            after = total - before  # negative: rows no tap reaches
            out.append(length)
            pads.append((before, max(after, 0)))
            extra.append(max(-after, 0))
        return tuple(out), tuple(pads), tuple(extra)

    def compute_output_shape(self, input_shape):
        h, w, _ = self._hwc(input_shape)
        (oh, ow), _, _ = self._geometry(h, w)
        return (self.filters, oh, ow) if self.data_format == "channels_first" else (oh, ow, self.filters)

    def build_weights(self, input_shape):
        c = self._hwc(input_shape)[2]
        kh, kw = self.kernel_size
        self.kernel = self.add_weight("kernel", (kh, kw, self.filters, c), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def _conv_args(self, pads):
        return dict(strides=self.strides, padding=pads, dilation_rate=self.dilation_rate)

    def call(self, x, training):
        ops = get_ops()
        x = self._to_nhwc(x)
        n, h, w, _ = x.shape
        (oh, ow), pads, (eh, ew) = self._geometry(h, w)
        # The kernel (kh, kw, filters, in) is the HWIO kernel of a convolution from `filters`
        # to `in` channels; our output is that convolution's input gradient for dy = x (its
        # input values do not matter, only their shape).
        core_shape = (n, oh - eh, ow - ew, self.filters)
        core, _, _ = ops.conv2d_backward(x, np.zeros(core_shape, dtype=x.dtype), self.kernel,
                                         **self._conv_args(pads), need_input_grad=True,
                                         need_bias_grad=False, need_kernel_grad=False)
        z = core if not (eh or ew) else np.pad(core, ((0, 0), (0, eh), (0, ew), (0, 0)))
        if self.use_bias:
            z = z + self.bias
        y = self.activation.forward(z)
        if training:
            self._cache = (x, z, y, pads, (eh, ew))
        return self._from_nhwc(y)

    def call_backward(self, dy):
        ops = get_ops()
        x, z, y, pads, (eh, ew) = self._cache
        dz = self.activation.backward(z, y, self._to_nhwc(dy))
        if self.use_bias:
            self._grads["bias"] = dz.sum(axis=(0, 1, 2))
        dz_core = dz[:, :dz.shape[1] - eh, :dz.shape[2] - ew]
        # y = A^T x for the convolution A: dL/dx = A dz, dL/dkernel = that of <x, A dz>.
        _, dkernel, _ = ops.conv2d_backward(x, dz_core, self.kernel, **self._conv_args(pads),
                                            need_input_grad=False, need_bias_grad=False)
        self._grads["kernel"] = dkernel
        if not self.compute_input_gradient:
            return None
        return self._from_nhwc(ops.conv2d_forward(dz_core, self.kernel, None, **self._conv_args(pads)))

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "output_padding": self.output_padding,
            "data_format": self.data_format, "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
        })
        config.update({k: (C.serialize_initializer(v) if k.endswith("initializer")
                           else C.serialize_regularizer(v)) for k, v in self._args.items()})
        return config
