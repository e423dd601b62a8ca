"""Pure-NumPy reference implementation of every kernel: the executable specification.

Same functions and signatures as `fastconv.ops`; the compiled core is tested against it.
"""
from .conv import conv2d_backward, conv2d_forward
from .dense import dense_backward, dense_forward
from .losses import sparse_softmax_crossentropy
from .elementwise import (
    adam_update,
    adam_update_many,
    dropout_backward,
    dropout_drop_below,
    dropout_forward,
    dropout_scale,
    leaky_relu_backward,
    leaky_relu_forward,
    random_bits,
    relu_backward,
    relu_forward,
    sgd_update,
    sigmoid_backward,
    tanh_backward,
)
from .normalization import (
    batch_norm_backward,
    batch_norm_forward_inference,
    batch_norm_forward_training,
    batch_norm_frozen_factor,
    batch_norm_relu_backward,
    batch_norm_relu_backward_inference,
    batch_norm_relu_forward_inference,
    batch_norm_relu_forward_training,
    batch_norm_relu_max_pool_forward_inference,
    batch_norm_relu_max_pool_forward_training,
)
from .pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    global_max_pool2d_backward,
    global_max_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_backward_from_argmax,
    max_pool2d_forward,
    max_pool2d_forward_with_argmax,
)

__all__ = [
    "conv2d_forward", "conv2d_backward",
    "max_pool2d_forward", "max_pool2d_backward",
    "max_pool2d_forward_with_argmax", "max_pool2d_backward_from_argmax",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "global_avg_pool2d_forward", "global_avg_pool2d_backward",
    "global_max_pool2d_forward", "global_max_pool2d_backward",
    "batch_norm_forward_training", "batch_norm_forward_inference", "batch_norm_backward",
    "batch_norm_relu_forward_training", "batch_norm_relu_forward_inference",
    "batch_norm_relu_backward", "batch_norm_relu_backward_inference", "batch_norm_frozen_factor",
    "batch_norm_relu_max_pool_forward_training", "batch_norm_relu_max_pool_forward_inference",
    "dense_forward", "dense_backward",
    "relu_forward", "random_bits",
    "relu_backward", "leaky_relu_forward", "leaky_relu_backward", "tanh_backward", "sigmoid_backward",
    "adam_update", "adam_update_many", "sgd_update",
    "dropout_forward", "dropout_backward", "dropout_drop_below", "dropout_scale",
]
