"""The layer contract every fastconv layer follows (see DESIGN.md).

    layer.build(input_shape)            # without the batch axis
    y  = layer.forward(x, training=False)
    dx = layer.backward(dy)             # after forward(..., training=True); fills gradients
    layer.get_weights() / set_weights() # Keras order and layouts
    layer.get_gradients()               # same order as layer.trainable_weights
    layer.trainable = False             # frozen: gradients are not applied

Subclasses implement `build_weights(input_shape)` (create weights with `add_weight`),
`compute_output_shape(input_shape)`, `call(x, training)` and `call_backward(dy)`; they read
the current kernels from `fastconv.backend.get_ops()`.
"""
import re

import numpy as np

from .. import _validation as V

_name_counters = {}


def _unique_name(prefix):
    n = _name_counters.get(prefix, 0)
    _name_counters[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


def _snake(name):
    """Keras' default layer names: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Weight:
    """One parameter array of a layer, with its name, trainability and regularizer."""

    __slots__ = ("name", "value", "trainable", "regularizer")

    def __init__(self, name, value, trainable=True, regularizer=None):
        self.name = name
        self.value = value
        self.trainable = trainable
        self.regularizer = regularizer


class Layer:
    """Base class of all layers."""

    def __init__(self, name=None, dtype="float32", trainable=True, input_shape=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments: {sorted(kwargs)}")
        self.name = name or _unique_name(_snake(type(self).__name__))
        self.dtype = V.check_float_dtype(dtype)
        self.trainable = bool(trainable)
        self.built = False
        self.input_shape = None if input_shape is None else V.check_input_shape(
            input_shape, len(tuple(input_shape)), "input_shape")
        self.output_shape = None
        self._weights = []
        self._grads = {}
        self._cache = None  # what forward(training=True) kept for backward
        # False on a model's first layer: backward() may skip dL/dx and return None.
        self.compute_input_gradient = True

    # -- weights -------------------------------------------------------------------------
    def add_weight(self, name, shape, initializer, trainable=True, regularizer=None):
        from .. import initializers

        init = initializers.get(initializer)
        value = np.ascontiguousarray(init(tuple(shape), dtype=self.dtype), dtype=self.dtype)
        self._weights.append(Weight(name, value, trainable, regularizer))
        return value

    @property
    def weights(self):
        return [w.value for w in self._weights]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w.value for w in self._weights if w.trainable]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w.value for w in self._weights if not w.trainable]

    def get_weights(self):
        return [w.value.copy() for w in self._weights]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(
                f"Layer {self.name!r} expects {len(self._weights)} weight arrays "
                f"({[w.name for w in self._weights]}); received {len(weights)}."
            )
        for w, new in zip(self._weights, weights):
            new = V.as_float_array(new, f"weights[{w.name!r}]", self.dtype)
            if new.shape != w.value.shape:
                raise ValueError(
                    f"Weight {w.name!r} of layer {self.name!r} has shape {w.value.shape}; "
                    f"received an array of shape {new.shape}."
                )
            np.copyto(w.value, new)  # in place: optimizers keep references to the arrays

    def get_gradients(self):
        """Gradients of the trainable weights, from the last backward()."""
        return [self._grads.get(w.name) for w in self._weights if w.trainable and self.trainable]

    def count_params(self):
        return int(sum(w.value.size for w in self._weights))

    # -- building and running ------------------------------------------------------------
    def build(self, input_shape):
        input_shape = tuple(int(s) for s in input_shape)
        self.input_shape = input_shape
        self.output_shape = tuple(self.compute_output_shape(input_shape))
        if not self._weights:
            self.build_weights(input_shape)
        self.built = True

    def build_weights(self, input_shape):
        """Create this layer's weights (default: none)."""

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _prepare_input(self, x):
        x = V.as_float_array(x, "x", self.dtype)
        if not self.built:
            self.build(x.shape[1:])
        expected = self.input_shape
        if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Layer {self.name!r} expects input of shape (batch,) + {expected}; "
                f"received {x.shape}."
            )
        return x

    def forward(self, x, training=False):
        x = self._prepare_input(x)
        self._cache = None
        y = self.call(x, bool(training))
        self._forward_training = bool(training)
        # What backward() must receive: elementwise layers would otherwise broadcast a dy of
        # another shape silently.
        self._output_shape_seen = np.shape(y)
        return y

    __call__ = forward

    def backward(self, dy):
        if getattr(self, "_forward_training", False) is not True:
            raise RuntimeError(
                f"Layer {self.name!r}: backward() needs a preceding forward(x, training=True)."
            )
        dy = V.as_float_array(dy, "dy", self.dtype)
        if dy.shape != self._output_shape_seen:
            raise ValueError(
                f"Layer {self.name!r}: `dy` must have the shape of the last forward output, "
                f"{self._output_shape_seen}; received {dy.shape}."
            )
        return self.call_backward(dy)

    def call(self, x, training):
        raise NotImplementedError

    def call_backward(self, dy):
        raise NotImplementedError

    # -- serialisation -------------------------------------------------------------------
    def get_config(self):
        """Constructor arguments (JSON-serialisable) that rebuild this layer."""
        return {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"
