"""Argument handling shared by the layers: initializers, regularizers, activations, formats."""
import numbers

import numpy as np

from .. import activations, initializers


def get_initializer(value, default, name):
    """Resolve an initializer argument; None means the layer's default (as Keras' add_weight)."""
    if value is None:
        value = default
    try:
        return initializers.get(value)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"Invalid `{name}`: {exc}") from None


def serialize_initializer(value):
    """JSON form of an initializer argument (None for a custom function: rebuilt as the default)."""
    return initializers.serialize(value)


def get_regularizer(value, name):
    """Resolve a regularizer argument through `fastconv.regularizers` (imported only when needed)."""
    if value is None:
        return None
    try:
        from .. import regularizers
    except ImportError as exc:
        raise ImportError(
            f"`{name}={value!r}` needs the module fastconv.regularizers, which failed to import: {exc}"
        ) from exc
    return regularizers.get(value)


def serialize_regularizer(value):
    """JSON form of a regularizer argument (a name, or {"class_name", "config"})."""
    if value is None or isinstance(value, (str, dict)):
        return value
    try:
        from .. import regularizers
    except ImportError:
        regularizers = None
    if regularizers is not None and hasattr(regularizers, "serialize"):
        return regularizers.serialize(value)
    if hasattr(value, "get_config"):
        return {"class_name": type(value).__name__, "config": value.get_config()}
    raise ValueError(f"Cannot serialize the regularizer {value!r}.")


def get_activation(value):
    try:
        return activations.get(value)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"Invalid `activation`: {exc}") from None


def reject_unsupported(layer_name, **arguments):
    """Keras arguments fastconv accepts only at their default (None)."""
    for arg, value in arguments.items():
        if value is not None:
            raise ValueError(
                f"{layer_name}: `{arg}` is not supported by fastconv; it must be None, "
                f"received {value!r}."
            )


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}.")
    return int(value)


def check_bool(value, name):
    if not isinstance(value, (bool,)) and not (isinstance(value, numbers.Integral) and value in (0, 1)):
        raise TypeError(f"`{name}` must be a bool; received {name}={value!r}.")
    return bool(value)


def normalize_data_format(value):
    """None (Keras' default image data format) or "channels_last"/"channels_first"."""
    if value is None:
        return "channels_last"
    if isinstance(value, str) and value.lower() in ("channels_last", "channels_first"):
        return value.lower()
    raise ValueError(
        "The `data_format` argument must be one of 'channels_first', 'channels_last' or None. "
        f"Received data_format={value!r}"
    )


def check_rank(layer, input_shape, rank, layout):
    """Raise a ValueError naming the layer when the input (without batch) has the wrong rank."""
    if len(input_shape) != rank:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) expects {rank + 1}-D input "
            f"(batch, {layout}); received input shape (batch,) + {tuple(input_shape)}."
        )


class ChannelsLayout:
    """Mixin: NHWC kernels under a channels_last or channels_first layer."""

    def _hwc(self, input_shape):
        check_rank(self, input_shape, 3,
                   "channels, height, width" if self.data_format == "channels_first"
                   else "height, width, channels")
        if self.data_format == "channels_first":
            c, h, w = input_shape
            return h, w, c
        return tuple(input_shape)

    def _to_nhwc(self, x):
        return np.transpose(x, (0, 2, 3, 1)) if self.data_format == "channels_first" else x

    def _from_nhwc(self, y):
        if self.data_format == "channels_first":
            return np.ascontiguousarray(np.transpose(y, (0, 3, 1, 2)))
        return y
