"""Keras-style layers: `from fastconv.layers import Conv2D, Dense, ...`.

`serialize(layer)` gives {"class_name": ..., "config": ...} and `deserialize(config)` rebuilds
the (unbuilt) layer; models use them to save and load their architecture.
"""
from .advanced_activations import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .augmentation import (
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from .base import Layer
from .convolutional import Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from .core import Activation, Dense
from .normalization import BatchNormalization, LayerNormalization
from .pooling import (
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)
from .preprocessing import Normalization, Rescaling
from .regularization import Dropout, SpatialDropout2D
from .reshaping import Cropping2D, Flatten, Reshape, UpSampling2D, ZeroPadding2D

_LAYER_CLASSES = [
    Conv2D, DepthwiseConv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
    GlobalMaxPooling2D, BatchNormalization, Dense, Flatten, Dropout, Activation, ReLU, LeakyReLU,
    ELU, Softmax, ZeroPadding2D, PReLU,
    RandomFlip, RandomTranslation, RandomRotation, RandomZoom, RandomCrop, RandomBrightness,
    RandomContrast, Rescaling, Normalization, SeparableConv2D, Conv2DTranspose, UpSampling2D,
    Cropping2D, Reshape, SpatialDropout2D, LayerNormalization,
]
# Names deserialize() accepts; aliases (e.g. MaxPool2D) point at the same class.
_REGISTRY = {cls.__name__: cls for cls in _LAYER_CLASSES}
_REGISTRY.update({"MaxPool2D": MaxPool2D, "AvgPool2D": AvgPool2D,
                  "SeparableConvolution2D": SeparableConv2D,
                  "Convolution2DTranspose": Conv2DTranspose})


def serialize(layer):
    """Return {"class_name": ..., "config": ...} describing `layer` (JSON-serialisable)."""
    if not isinstance(layer, Layer):
        raise TypeError(f"`layer` must be a fastconv Layer; received {type(layer).__name__}.")
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config, custom_objects=None):
    """Rebuild a layer from `serialize`'s output.

    Args:
        config: dict with "class_name" and "config".
        custom_objects: optional dict name -> Layer subclass for user-defined layers.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"A layer config must be a dict with 'class_name' and 'config'; received {config!r}."
        )
    name = config["class_name"]
    registry = dict(_REGISTRY)
    registry.update(custom_objects or {})
    cls = registry.get(name)
    if cls is None:
        raise ValueError(f"Unknown layer class {name!r}; known: {sorted(registry)}.")
    return cls(**dict(config.get("config") or {}))


def get(identifier):
    """Return a Layer from a Layer instance or a serialized config."""
    if isinstance(identifier, Layer):
        return identifier
    return deserialize(identifier)


SeparableConvolution2D = SeparableConv2D  # Keras' aliases
Convolution2DTranspose = Conv2DTranspose

__all__ = ["Layer", "serialize", "deserialize", "get", "MaxPool2D", "AvgPool2D",
           "SeparableConvolution2D", "Convolution2DTranspose"] + [
    c.__name__ for c in _LAYER_CLASSES]
