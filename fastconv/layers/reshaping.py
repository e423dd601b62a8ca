"""Flatten and ZeroPadding2D."""
import math

import numpy as np

from .. import _validation as V
from . import _common as C
from .base import Layer


class Flatten(Layer):
    """Flattens each sample to a vector: (batch, ...) -> (batch, prod(...)).

    Args:
        data_format: "channels_last" (default) or "channels_first"; channels_first input is
            moved to channels_last first, so the order matches Keras.
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = C.normalize_data_format(data_format)

    def compute_output_shape(self, input_shape):
        return (int(math.prod(input_shape)),)

    def _channels_first(self, ndim):
        return self.data_format == "channels_first" and ndim > 2

    def call(self, x, training):
        if self._channels_first(x.ndim):
            x = np.moveaxis(x, 1, -1)
        return x.reshape(x.shape[0], -1)

    def call_backward(self, dy):
        shape = (dy.shape[0],) + self.input_shape
        if self._channels_first(len(shape)):
            channels_last = (shape[0],) + shape[2:] + (shape[1],)
            return np.moveaxis(dy.reshape(channels_last), -1, 1)
        return dy.reshape(shape)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class ZeroPadding2D(C.ChannelsLayout, Layer):
    """Pads images with zero rows and columns.

    Args:
        padding: int (same on all sides), (ph, pw) (symmetric), or ((top, bottom), (left, right)).
        data_format: None/"channels_last" or "channels_first".
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, str):
            raise ValueError(
                "The `padding` argument of ZeroPadding2D must be an int, a pair of ints or "
                f"((top, bottom), (left, right)). Received padding={padding!r}"
            )
        self.padding = V.resolve_padding(padding, (1, 1), (1, 1), (1, 1), (1, 1))
        self.data_format = C.normalize_data_format(data_format)

    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        (top, bottom), (left, right) = self.padding
        h, w = h + top + bottom, w + left + right
        return (c, h, w) if self.data_format == "channels_first" else (h, w, c)

    def call(self, x, training):
        (top, bottom), (left, right) = self.padding
        x = self._to_nhwc(x)
        return self._from_nhwc(np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))))

    def call_backward(self, dy):
        (top, bottom), (left, right) = self.padding
        dy = self._to_nhwc(dy)
        dx = dy[:, top:dy.shape[1] - bottom, left:dy.shape[2] - right, :]
        return self._from_nhwc(np.ascontiguousarray(dx))

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "data_format": self.data_format})
        return config
