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
