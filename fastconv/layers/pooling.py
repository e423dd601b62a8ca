"""Max/average pooling and global pooling layers (TensorFlow 'same' semantics)."""
from .. import _validation as V
from ..backend import get_ops
from ..reference.pooling import MAX_ARGMAX_TAPS
from . import _common as C
from .base import Layer


class _Pooling2D(C.ChannelsLayout, Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = V.normalize_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool_size if strides is None else V.normalize_tuple(strides, 2, "strides")
        if not (isinstance(padding, str) and padding.lower() in ("valid", "same")):
            raise ValueError(
                f"The `padding` argument must be 'valid' or 'same'. Received padding={padding!r}"
            )
        self.padding = padding.lower()
        self.data_format = C.normalize_data_format(data_format)

    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        geo = V.pool_geometry((1, h, w, c), self.pool_size, self.strides, self.padding)
        if self.data_format == "channels_first":
            return (c, geo.out_h, geo.out_w)
        return (geo.out_h, geo.out_w, c)

    def _args(self):
        return dict(pool_size=self.pool_size, strides=self.strides, padding=self.padding)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "strides": self.strides,
                       "padding": self.padding, "data_format": self.data_format})
        return config


class MaxPooling2D(_Pooling2D):
    """Max pooling over (pool_h, pool_w) windows.

    Args:
        pool_size: int or (ph, pw).
        strides: int or (sh, sw); None means pool_size.
        padding: "valid" or "same".
        data_format: None/"channels_last" or "channels_first".
    """

    def call(self, x, training):
        x = self._to_nhwc(x)
        ops = get_ops()
        if not training:
            return self._from_nhwc(ops.max_pool2d_forward(x, **self._args()))
        if self._use_argmax():
            # Record each window's argmax (one byte per output) so that the backward pass
            # reads it instead of x and searching every window again.
            y, argmax = ops.max_pool2d_forward_with_argmax(x, **self._args())
            self._cache = ("argmax", argmax, x.shape)
        else:
            y = ops.max_pool2d_forward(x, **self._args())
            self._cache = ("input", x)
        return self._from_nhwc(y)

    def _use_argmax(self):
        """Whether training records the argmax: for any window of at most 255 taps (the
        argmax byte). Its backward then reads one byte per output instead of x and searching
        every window again: 64x28x28x32 float32, 3x3 / 2 windows, forward + backward, 2 threads,
        min of calls: 0.62 vs 0.66 ms re-reading x (64x32x32x64: 1.81 vs 2.38 ms); with 2x2 / 2
        windows it is assigned, not added, so every dx element is written once."""
        ph, pw = self.pool_size
        return ph * pw <= MAX_ARGMAX_TAPS

    def call_backward(self, dy):
        ops = get_ops()
        dy = self._to_nhwc(dy)
        if self._cache[0] == "argmax":
            _, argmax, input_shape = self._cache
            dx = ops.max_pool2d_backward_from_argmax(dy, argmax, input_shape, **self._args(),
                                                     dtype=self.dtype)
        else:
            dx = ops.max_pool2d_backward(dy, self._cache[1], **self._args())
        return self._from_nhwc(dx)


class AveragePooling2D(_Pooling2D):
    """Average pooling over (pool_h, pool_w) windows ('same' windows average the real pixels).

    Args:
        pool_size: int or (ph, pw).
        strides: int or (sh, sw); None means pool_size.
        padding: "valid" or "same".
        data_format: None/"channels_last" or "channels_first".
    """

    def call(self, x, training):
        x = self._to_nhwc(x)
        y = get_ops().avg_pool2d_forward(x, **self._args())
        if training:
            self._cache = x.shape
        return self._from_nhwc(y)

    def call_backward(self, dy):
        dx = get_ops().avg_pool2d_backward(self._to_nhwc(dy), self._cache, **self._args(),
                                           dtype=self.dtype)
        return self._from_nhwc(dx)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class _GlobalPooling2D(C.ChannelsLayout, Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = C.normalize_data_format(data_format)
        self.keepdims = C.check_bool(keepdims, "keepdims")

    def compute_output_shape(self, input_shape):
        c = self._hwc(input_shape)[2]
        if not self.keepdims:
            return (c,)
        return (c, 1, 1) if self.data_format == "channels_first" else (1, 1, c)

    def _expand(self, y):
        """(N, C) -> the layer's output layout."""
        if not self.keepdims:
            return y
        return y.reshape((y.shape[0],) + self.output_shape)

    def _squeeze(self, dy):
        return dy.reshape(dy.shape[0], -1)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Average over height and width: (N, H, W, C) -> (N, C) (or (N, 1, 1, C) with keepdims).

    Args:
        data_format: None/"channels_last" or "channels_first".
        keepdims: keep the spatial axes with size 1.
    """

    def call(self, x, training):
        x = self._to_nhwc(x)
        if training:
            self._cache = x.shape
        return self._expand(get_ops().global_avg_pool2d_forward(x))

    def call_backward(self, dy):
        dx = get_ops().global_avg_pool2d_backward(self._squeeze(dy), self._cache, dtype=self.dtype)
        return self._from_nhwc(dx)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Maximum over height and width: (N, H, W, C) -> (N, C) (or (N, 1, 1, C) with keepdims).

    Args:
        data_format: None/"channels_last" or "channels_first".
        keepdims: keep the spatial axes with size 1.
    """

    def call(self, x, training):
        x = self._to_nhwc(x)
        if training:
            self._cache = x
        return self._expand(get_ops().global_max_pool2d_forward(x))

    def call_backward(self, dy):
        dx = get_ops().global_max_pool2d_backward(self._squeeze(dy), self._cache)
        return self._from_nhwc(dx)
