"""Dropout and SpatialDropout2D."""
import math
import numbers

import numpy as np

from .. import utils
from ..backend import get_ops
from . import _common as C
from .base import Layer


def _random_bits(rng, shape):
    """Uniform random uint32 values of the given shape, from one 64-bit seed drawn from the
    Generator `rng` (so runs are reproducible from the layer's seed and calls differ) and the
    backend's counter-based generator (`fastconv.reference.random_bits`; the compiled one
    fills the array in parallel with the same bits, ~50x faster than the Generator itself).
    """
    seed = int(rng.integers(0, 1 << 64, dtype=np.uint64, endpoint=False))
    return get_ops().random_bits(seed, tuple(shape))


class Dropout(Layer):
    """Randomly sets a fraction `rate` of the inputs to 0 during training (inverted dropout).

    The kept inputs are scaled by 1 / (1 - rate), so nothing changes at inference, where the
    layer is the identity. Each mask element comes from 32 random bits (kept when they are
    >= rate * 2^32), so the keep probability is 1 - rate to within 2^-32; the bits of one call
    come from a counter-based generator (SplitMix64) seeded by one draw from the layer's
    generator.

    Args:
        rate: fraction of the inputs to drop, in [0, 1).
        noise_shape: shape of the binary mask, broadcast against the input (None entries take
            the input's size), e.g. (None, 1, 1, None) drops whole feature maps.
        seed: int for a reproducible sequence of masks; None draws from fastconv's generator
            (`fastconv.utils.set_random_seed`).
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if (isinstance(rate, bool) or not isinstance(rate, numbers.Real)
                or not 0 <= rate < 1):
            raise ValueError(
                f"The `rate` argument must be a number in [0, 1); received rate={rate!r}."
            )
        self.rate = float(rate)
        if noise_shape is not None:
            try:
                noise_shape = tuple(None if s is None else int(s) for s in noise_shape)
            except (TypeError, ValueError):
                raise ValueError(
                    f"`noise_shape` must be None or a tuple of ints/None; received {noise_shape!r}."
                ) from None
        self.noise_shape = noise_shape
        self.seed = utils.check_seed(seed)
        if isinstance(self.seed, np.random.Generator):
            self._generator = self.seed
        elif self.seed is not None:
            self._generator = np.random.default_rng(self.seed)
        else:
            self._generator = None  # draw from utils.get_rng() at call time

    def _mask_shape(self, shape):
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                f"Layer {self.name!r}: `noise_shape` {self.noise_shape} must have the rank of the "
                f"input, whose shape is {shape}."
            )
        mask_shape = tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))
        if any(m not in (1, s) for m, s in zip(mask_shape, shape)):
            raise ValueError(
                f"Layer {self.name!r}: `noise_shape` {self.noise_shape} does not broadcast to the "
                f"input shape {shape} (each entry must be 1, None or the input's size)."
            )
        return mask_shape

    def call(self, x, training):
        if not training or self.rate == 0:
            if training:
                self._cache = None
            return x
        rng = self._generator or utils.get_rng()
        bits = _random_bits(rng, self._mask_shape(x.shape))
        # keep = bits >= rate * 2^32; y = x * (keep ? 1 / (1 - rate) : 0): one compiled pass.
        y, keep = get_ops().dropout_forward(x, bits, self.rate)
        self._cache = keep
        return y

    def call_backward(self, dy):
        keep = self._cache
        return dy if keep is None else get_ops().dropout_backward(dy, keep, self.rate)

    def get_config(self):
        config = super().get_config()
        seed = self.seed if not isinstance(self.seed, np.random.Generator) else None
        config.update({"rate": self.rate, "noise_shape": self.noise_shape, "seed": seed})
        return config


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: each channel of each image is kept or zeroed as a whole
    (with 1 / (1 - rate) scaling), which suits correlated neighbouring pixels.

    Args:
        rate: fraction of the channels to drop, in [0, 1).
        data_format: None/"channels_last" or "channels_first".
        seed: int for a reproducible sequence of masks; None draws from fastconv's generator.
    """

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        data_format = C.normalize_data_format(data_format)
        noise_shape = (None, None, 1, 1) if data_format == "channels_first" else (None, 1, 1, None)
        super().__init__(rate, noise_shape=noise_shape, seed=seed, **kwargs)
        self.data_format = data_format

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Layer {self.name!r} (SpatialDropout2D) expects 4-D input (batch, "
                             f"height, width, channels); received (batch,) + {tuple(input_shape)}.")
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]
        config["data_format"] = self.data_format
        return config
