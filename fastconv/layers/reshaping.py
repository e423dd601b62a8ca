"""Flatten, Reshape, ZeroPadding2D, Cropping2D and UpSampling2D."""
import math
import numbers

import numpy as np

from .. import _validation as V
from . import _common as C
from . import _image_ops
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


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (the batch axis is kept).

    Args:
        target_shape: tuple of ints, without the batch axis; one entry may be -1 (inferred).

    >>> Reshape((-1, 4)).compute_output_shape((2, 3, 4))
    (6, 4)
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            shape = tuple(target_shape)
        except TypeError:
            shape = None
        if (shape is None or not shape or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and (s > 0 or s == -1)
                for s in shape) or shape.count(-1) > 1):
            raise ValueError("Reshape: `target_shape` must be a tuple of positive ints with at most "
                             f"one -1; received target_shape={target_shape!r}.")
        self.target_shape = tuple(int(s) for s in shape)

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape)
        known = math.prod(s for s in self.target_shape if s != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"Layer {self.name!r}: cannot reshape samples of shape "
                                 f"{tuple(input_shape)} ({size} values) to {self.target_shape}.")
            return tuple(size // known if s == -1 else s for s in self.target_shape)
        if known != size:
            raise ValueError(f"Layer {self.name!r}: cannot reshape samples of shape "
                             f"{tuple(input_shape)} ({size} values) to {self.target_shape} ({known}).")
        return self.target_shape

    def call(self, x, training):
        return x.reshape((x.shape[0],) + self.output_shape)

    def call_backward(self, dy):
        return dy.reshape((dy.shape[0],) + self.input_shape)

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config


class Cropping2D(C.ChannelsLayout, Layer):
    """Removes rows and columns at the image borders.

    Args:
        cropping: int (same on all sides), (ch, cw) (symmetric) or
            ((top, bottom), (left, right)).
        data_format: None/"channels_last" or "channels_first".
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cropping, str):
            raise ValueError("The `cropping` argument of Cropping2D must be an int, a pair of ints or "
                             f"((top, bottom), (left, right)). Received cropping={cropping!r}")
        self.cropping = V.resolve_padding(cropping, (1, 1), (1, 1), (1, 1), (1, 1), name="cropping")
        self.data_format = C.normalize_data_format(data_format)

    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        (top, bottom), (left, right) = self.cropping
        oh, ow = h - top - bottom, w - left - right
        if oh < 1 or ow < 1:
            raise ValueError(f"Layer {self.name!r}: cropping {self.cropping} leaves nothing of "
                             f"images of size {(h, w)}.")
        return (c, oh, ow) if self.data_format == "channels_first" else (oh, ow, c)

    def call(self, x, training):
        (top, bottom), (left, right) = self.cropping
        x = self._to_nhwc(x)
        return self._from_nhwc(np.ascontiguousarray(
            x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]))

    def call_backward(self, dy):
        (top, bottom), (left, right) = self.cropping
        return self._from_nhwc(np.pad(self._to_nhwc(dy), ((0, 0), (top, bottom), (left, right), (0, 0))))

    def get_config(self):
        config = super().get_config()
        config.update({"cropping": self.cropping, "data_format": self.data_format})
        return config


class UpSampling2D(C.ChannelsLayout, Layer):
    """Enlarges images by integer factors.

    Args:
        size: int or (sh, sw) factors for the rows and columns.
        data_format: None/"channels_last" or "channels_first".
        interpolation: "nearest" (default: each pixel repeated sh x sw times) or "bilinear"
            (half-pixel centres, as Keras' `resize`).
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = V.normalize_tuple(size, 2, "size")
        self.data_format = C.normalize_data_format(data_format)
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError("UpSampling2D: `interpolation` must be 'nearest' or 'bilinear'; "
                             f"received interpolation={interpolation!r}.")
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        oh, ow = h * self.size[0], w * self.size[1]
        return (c, oh, ow) if self.data_format == "channels_first" else (oh, ow, c)

    def call(self, x, training):
        x = self._to_nhwc(x)
        sh, sw = self.size
        if self.interpolation == "nearest":
            return self._from_nhwc(np.repeat(np.repeat(x, sh, axis=1), sw, axis=2))
        plan = _image_ops.resize_plan(x.shape, (x.shape[1] * sh, x.shape[2] * sw), dtype=x.dtype)
        if training:
            self._cache = plan
        return self._from_nhwc(_image_ops.sample(x, plan))

    def call_backward(self, dy):
        dy = self._to_nhwc(dy)
        sh, sw = self.size
        if self.interpolation == "nearest":  # each input pixel fed an sh x sw block
            n, oh, ow, c = dy.shape
            return self._from_nhwc(dy.reshape(n, oh // sh, sh, ow // sw, sw, c).sum(axis=(2, 4)))
        return self._from_nhwc(_image_ops.sample_transpose(dy, self._cache))

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format,
                       "interpolation": self.interpolation})
        return config
