"""Data augmentation layers (Keras 3 names and defaults), active only in training.

At inference (`training=False`: `predict`, `evaluate`, validation) each layer returns its input
unchanged, except `RandomCrop`, which returns its fixed centre view as Keras does. In training
each image of the batch gets its own random transform, drawn from the layer's generator
(`seed=int`) or from fastconv's (`fastconv.utils.set_random_seed`) when `seed=None`.

The work is vectorised over the batch: the geometric layers (translation, rotation, zoom) share
one bilinear sampler (`fastconv.layers._image_ops`), a single gather per neighbour pixel for the
whole batch. Every layer also has an exact backward pass (for a fixed random draw), so it may
sit anywhere in a model, not only first.

>>> import numpy as np
>>> from fastconv.layers import RandomFlip
>>> layer = RandomFlip("horizontal", seed=0)
>>> x = np.arange(6.0).reshape(1, 1, 6, 1)
>>> bool((layer(x) == x).all())               # inference: identity
True
"""
import numbers

import numpy as np

from .. import _validation as V
from .. import utils
from . import _common as C
from . import _image_ops
from .base import Layer


def _number(value, name, layer):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{layer}: `{name}` must be a finite number; received {name}={value!r}.")
    return float(value)


def factor_range(factor, name, layer, *, bound=None):
    """(lower, upper) from a number f, meaning (-|f|, |f|), or a pair."""
    if isinstance(factor, (list, tuple)):
        if len(factor) != 2:
            raise ValueError(f"{layer}: `{name}` must be a number or a pair (lower, upper); "
                             f"received {name}={factor!r}.")
        lower, upper = (_number(v, name, layer) for v in factor)
    else:
        value = _number(factor, name, layer)
        lower, upper = -abs(value), abs(value)
    if lower > upper:
        raise ValueError(f"{layer}: `{name}` must have lower <= upper; received {name}={factor!r}.")
    if bound is not None and (lower < -bound or upper > bound):
        raise ValueError(f"{layer}: `{name}` must have values between [-{bound}, {bound}]; "
                         f"received {name}={factor!r}.")
    return lower, upper


def _check_choice(value, choices, name, layer):
    if value not in choices:
        raise ValueError(f"{layer}: unknown `{name}` {value!r}; expected one of {choices}.")
    return value


def _check_value_range(value_range, layer):
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"{layer}: `value_range` must be a pair (min, max); received "
                         f"{value_range!r}.") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"{layer}: `value_range` must be (min, max) with min < max; received "
                         f"{value_range!r}.")
    return (low, high)


class BaseRandomLayer(C.ChannelsLayout, Layer):
    """Shared plumbing: seed, images layout, identity at inference, cached draw for backward.

    Subclasses implement `_augment(x, rng) -> (y, cache)` and `_augment_backward(dy, cache)`
    on NHWC arrays.
    """

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = C.normalize_data_format(data_format)
        self.seed = utils.check_seed(seed)
        if isinstance(self.seed, np.random.Generator):
            self._generator = self.seed
        elif self.seed is not None:
            self._generator = np.random.default_rng(self.seed)
        else:
            self._generator = None  # draw from utils.get_rng() at call time

    def _rng(self):
        return self._generator or utils.get_rng()

    def compute_output_shape(self, input_shape):
        self._hwc(input_shape)  # checks the rank
        return tuple(input_shape)

    def call(self, x, training):
        if not training:
            return x
        y, cache = self._augment(self._to_nhwc(x), self._rng())
        self._cache = cache
        return self._from_nhwc(np.asarray(y, dtype=self.dtype))

    def call_backward(self, dy):
        if not self.compute_input_gradient:
            return None
        dx = self._augment_backward(self._to_nhwc(dy), self._cache)
        return self._from_nhwc(np.asarray(dx, dtype=self.dtype))

    def get_config(self):
        config = super().get_config()
        seed = self.seed if not isinstance(self.seed, np.random.Generator) else None
        config.update({"seed": seed, "data_format": self.data_format})
        return config


# -- flips ------------------------------------------------------------------------------------
HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL = "horizontal", "vertical", "horizontal_and_vertical"


class RandomFlip(BaseRandomLayer):
    """Flips each image left-right and/or up-down with probability 1/2 (per image, per axis).

    Args:
        mode: "horizontal_and_vertical" (default), "horizontal" (left-right) or "vertical".
        seed: int for a reproducible sequence of draws; None uses fastconv's generator.
        data_format: None/"channels_last" or "channels_first".
    """

    def __init__(self, mode=HORIZONTAL_AND_VERTICAL, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.mode = _check_choice(mode, (HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL), "mode",
                                  "RandomFlip")

    def _augment(self, x, rng):
        n = x.shape[0]
        flip_h = rng.random(n) < 0.5 if self.mode != VERTICAL else np.zeros(n, bool)
        flip_v = rng.random(n) < 0.5 if self.mode != HORIZONTAL else np.zeros(n, bool)
        return self._flip(x, flip_h, flip_v), (flip_h, flip_v)

    @staticmethod
    def _flip(x, flip_h, flip_v):
        y = np.where(flip_h[:, None, None, None], x[:, :, ::-1], x)
        return np.where(flip_v[:, None, None, None], y[:, ::-1], y)

    def _augment_backward(self, dy, cache):
        return self._flip(dy, *cache)  # a flip is its own inverse (and transpose)

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


# -- geometric transforms through the shared sampler --------------------------------------------
class _AffineLayer(BaseRandomLayer):
    """Resamples each image through a random affine map (subclasses give the matrices)."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        layer = type(self).__name__
        self.fill_mode = _check_choice(fill_mode, _image_ops.FILL_MODES, "fill_mode", layer)
        self.interpolation = _check_choice(interpolation, _image_ops.INTERPOLATIONS,
                                           "interpolation", layer)
        self.fill_value = _number(fill_value, "fill_value", layer)

    def _matrices(self, n, height, width, rng):
        raise NotImplementedError

    def _augment(self, x, rng):
        n, h, w, _ = x.shape
        plan = _image_ops.affine_plan(self._matrices(n, h, w, rng), x.shape, (h, w),
                                      self.interpolation, self.fill_mode, x.dtype)
        return _image_ops.sample(x, plan, self.fill_value), plan

    def _augment_backward(self, dy, plan):
        return _image_ops.sample_transpose(dy, plan)

    def get_config(self):
        config = super().get_config()
        config.update({"fill_mode": self.fill_mode, "interpolation": self.interpolation,
                       "fill_value": self.fill_value})
        return config


class RandomTranslation(_AffineLayer):
    """Shifts each image by a random fraction of its height and width.

    Args:
        height_factor: a fraction of the height, or a pair (lower, upper); a float f means
            (-f, f). Positive shifts move the content down. Values in [-1, 1].
        width_factor: the same for the width; positive shifts move the content right.
        fill_mode: "reflect" (default), "wrap", "constant" or "nearest" (see
            `fastconv.layers._image_ops`).
        interpolation: "bilinear" (default) or "nearest".
        seed: int for a reproducible sequence of draws; None uses fastconv's generator.
        fill_value: the value outside the image with fill_mode="constant".
        data_format: None/"channels_last" or "channels_first".
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = height_factor
        self.width_factor = width_factor
        self._height_range = factor_range(height_factor, "height_factor", "RandomTranslation", bound=1.0)
        self._width_range = factor_range(width_factor, "width_factor", "RandomTranslation", bound=1.0)

    def _matrices(self, n, height, width, rng):
        dy = rng.uniform(*self._height_range, size=n) * height
        dx = rng.uniform(*self._width_range, size=n) * width
        ones, zeros = np.ones(n), np.zeros(n)
        # Output (x, y) reads the input at (x - dx, y - dy).
        return np.stack([ones, zeros, -dx, zeros, ones, -dy], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return config


class RandomRotation(_AffineLayer):
    """Rotates each image about its centre by a random angle.

    Args:
        factor: a fraction of a full turn (2 pi), or a pair (lower, upper); a float f means
            (-f, f). Positive angles rotate counter-clockwise (as displayed, rows downwards).
        fill_mode: "reflect" (default), "wrap", "constant" or "nearest".
        interpolation: "bilinear" (default) or "nearest".
        seed: int for a reproducible sequence of draws; None uses fastconv's generator.
        fill_value: the value outside the image with fill_mode="constant".
        data_format: None/"channels_last" or "channels_first".
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = factor
        self._range = factor_range(factor, "factor", "RandomRotation")

    def _matrices(self, n, height, width, rng):
        angle = rng.uniform(*self._range, size=n) * 2.0 * np.pi
        cos, sin = np.cos(angle), np.sin(angle)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        # Output (x, y) reads the input at R (x - c) + c, R = [[cos, -sin], [sin, cos]].
        return np.stack([cos, -sin, cx - cos * cx + sin * cy,
                         sin, cos, cy - sin * cx - cos * cy], axis=1)

    def get_config(self):
        config = super().get_config()
        config["factor"] = self.factor
        return config


class RandomZoom(_AffineLayer):
    """Zooms each image about its centre by a random factor.

    Args:
        height_factor: a fraction, or a pair (lower, upper); a float f means (-f, f). The
            vertical zoom is 1 + the drawn value: positive values zoom out (the image shrinks),
            negative values zoom in. Values must be > -1.
        width_factor: the same for the width; None (default) keeps the aspect ratio (the
            vertical zoom is used for both axes).
        fill_mode: "reflect" (default), "wrap", "constant" or "nearest".
        interpolation: "bilinear" (default) or "nearest".
        seed: int for a reproducible sequence of draws; None uses fastconv's generator.
        fill_value: the value outside the image with fill_mode="constant".
        data_format: None/"channels_last" or "channels_first".
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = height_factor
        self.width_factor = width_factor
        self._height_range = factor_range(height_factor, "height_factor", "RandomZoom")
        self._width_range = (None if width_factor is None
                             else factor_range(width_factor, "width_factor", "RandomZoom"))
        for name, bounds in (("height_factor", self._height_range), ("width_factor", self._width_range)):
            if bounds is not None and bounds[0] <= -1:
                raise ValueError(f"RandomZoom: `{name}` must have values larger than -1; "
                                 f"received {name}={getattr(self, name)!r}.")

    def _matrices(self, n, height, width, rng):
        zoom_y = 1.0 + rng.uniform(*self._height_range, size=n)
        zoom_x = zoom_y if self._width_range is None else 1.0 + rng.uniform(*self._width_range, size=n)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        zeros = np.zeros(n)
        # Output (x, y) reads the input at z (x - c) + c.
        return np.stack([zoom_x, zeros, cx * (1.0 - zoom_x), zeros, zoom_y, cy * (1.0 - zoom_y)], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return config


# -- crops ---------------------------------------------------------------------------------------
class RandomCrop(BaseRandomLayer):
    """Crops a random (height, width) window of each image in training.

    In training each image gets its own window (Keras draws one window per batch). With
    `padding`, the image is first padded with zeros (the classic CIFAR-10 augmentation is
    `RandomCrop(32, 32, padding=4)`: pad to 40x40, crop back to 32x32).

    At inference (and in training when an image is smaller than the window, as Keras does),
    the output is the largest centred window with the target aspect ratio, resized
    (bilinearly) to (height, width); for an input already of that size this is the identity.
    The padding is not applied at inference.

    Args:
        height, width: size of the output.
        seed: int for a reproducible sequence of draws; None uses fastconv's generator.
        data_format: None/"channels_last" or "channels_first".
        padding: fastconv extension: int, (ph, pw) or ((top, bottom), (left, right)) zeros
            added around each image before cropping in training. Default None (no padding).
    """

    def __init__(self, height, width, seed=None, data_format=None, padding=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height = C.check_positive_int(height, "height")
        self.width = C.check_positive_int(width, "width")
        if isinstance(padding, str):
            raise ValueError("RandomCrop: `padding` must be None, an int, (ph, pw) or "
                             f"((top, bottom), (left, right)); received padding={padding!r}.")
        self.padding = ((0, 0), (0, 0)) if padding is None else V.resolve_padding(
            padding, (1, 1), (1, 1), (1, 1), (1, 1))

    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        return (c, self.height, self.width) if self.data_format == "channels_first" else (
            self.height, self.width, c)

    def call(self, x, training):
        if training:
            return super().call(x, training)
        y, _ = self._center_view(self._to_nhwc(x))
        return self._from_nhwc(np.asarray(y, dtype=self.dtype))

    def _center_view(self, x):
        """Keras' inference output: centred window of the target aspect ratio, resized."""
        n, h, w, c = x.shape
        if (h, w) == (self.height, self.width):
            return x, None
        crop_h = max(min(h, int(w * self.height / self.width)), 1)
        crop_w = max(min(w, int(h * self.width / self.height)), 1)
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        window = x[:, top:top + crop_h, left:left + crop_w]
        plan = _image_ops.resize_plan(window.shape, (self.height, self.width), dtype=x.dtype)
        return _image_ops.sample(window, plan), ("resize", x.shape, (top, left), plan)

    def _augment(self, x, rng):
        (top, bottom), (left, right) = self.padding
        n, h, w, c = x.shape
        ph, pw = h + top + bottom, w + left + right
        if ph < self.height or pw < self.width:
            return self._center_view(x)
        if top or bottom or left or right:
            x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
        rows = rng.integers(0, ph - self.height + 1, size=n)[:, None] + np.arange(self.height)
        cols = rng.integers(0, pw - self.width + 1, size=n)[:, None] + np.arange(self.width)
        batch = np.arange(n)[:, None, None]
        y = x[batch, rows[:, :, None], cols[:, None, :]]
        return y, ("crop", (n, ph, pw, c), (rows, cols))

    def _augment_backward(self, dy, cache):
        if cache is None:  # the input already had the output's size
            return dy
        if cache[0] == "resize":
            _, shape, (top, left), plan = cache
            window_grad = _image_ops.sample_transpose(dy, plan)
            dx = np.zeros(shape, dtype=dy.dtype)
            dx[:, top:top + window_grad.shape[1], left:left + window_grad.shape[2]] = window_grad
            return dx
        _, padded_shape, (rows, cols) = cache
        padded = np.zeros(padded_shape, dtype=dy.dtype)
        padded[np.arange(padded_shape[0])[:, None, None], rows[:, :, None], cols[:, None, :]] = dy
        (top, bottom), (left, right) = self.padding
        return padded[:, top:padded_shape[1] - bottom, left:padded_shape[2] - right]

    def get_config(self):
        config = super().get_config()
        config.update({"height": self.height, "width": self.width,
                       "padding": None if self.padding == ((0, 0), (0, 0)) else self.padding})
        return config


# -- colour transforms -------------------------------------------------------------------------
class RandomBrightness(BaseRandomLayer):
    """Adds a random value to every pixel of each image, then clips to `value_range`.

    The added value is `u * (max - min)` of `value_range`, u drawn per image in the factor's
    range (Keras 3).

    Args:
        factor: a float f in [0, 1] meaning (-f, f), or a pair (lower, upper) in [-1, 1].
        value_range: (min, max) of the pixel values, default (0, 255).
        seed: int for a reproducible sequence of draws; None uses fastconv's generator.
        data_format: None/"channels_last" or "channels_first".
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = factor
        self._range = factor_range(factor, "factor", "RandomBrightness", bound=1.0)
        self.value_range = _check_value_range(value_range, "RandomBrightness")

    def _augment(self, x, rng):
        low, high = self.value_range
        delta = rng.uniform(*self._range, size=(x.shape[0], 1, 1, 1)) * (high - low)
        shifted = x + delta.astype(x.dtype)
        inside = (shifted >= low) & (shifted <= high)
        return np.clip(shifted, low, high), inside

    def _augment_backward(self, dy, inside):
        return dy * inside

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range})
        return config


class RandomContrast(BaseRandomLayer):
    """Scales each image's deviation from its per-channel mean by a random factor, then clips.

    `y = clip((x - mean) * c + mean, *value_range)`, mean over height and width per image and
    channel, c drawn per image in [1 - lower, 1 + upper] (Keras 3).

    Args:
        factor: a float f (lower = upper = f) or a pair (lower, upper); lower in [0, 1],
            upper >= 0.
        value_range: (min, max) of the pixel values, default (0, 255).
        seed: int for a reproducible sequence of draws; None uses fastconv's generator.
        data_format: None/"channels_last" or "channels_first".
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = factor
        values = factor if isinstance(factor, (list, tuple)) else (factor, factor)
        if len(values) != 2:
            raise ValueError("RandomContrast: `factor` must be a number or a pair (lower, upper); "
                             f"received factor={factor!r}.")
        lower, upper = (_number(v, "factor", "RandomContrast") for v in values)
        if lower < 0 or upper < 0 or lower > 1:
            raise ValueError("RandomContrast: `factor` cannot have negative values or a lower "
                             f"bound greater than 1; received factor={factor!r}.")
        self._lower, self._upper = lower, upper
        self.value_range = _check_value_range(value_range, "RandomContrast")

    def _augment(self, x, rng):
        contrast = rng.uniform(1.0 - self._lower, 1.0 + self._upper, size=(x.shape[0], 1, 1, 1))
        contrast = contrast.astype(x.dtype)
        mean = x.mean(axis=(1, 2), keepdims=True)
        adjusted = (x - mean) * contrast + mean
        low, high = self.value_range
        inside = (adjusted >= low) & (adjusted <= high)
        return np.clip(adjusted, low, high), (contrast, inside)

    def _augment_backward(self, dy, cache):
        contrast, inside = cache
        dz = dy * inside
        # z = c x + (1 - c) mean(x): the mean spreads its share evenly over the pixels.
        return contrast * dz + (1.0 - contrast) * dz.mean(axis=(1, 2), keepdims=True)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range})
        return config
