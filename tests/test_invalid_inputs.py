"""Bad input at every public entry gets a clear Python exception, never a crash or a silent answer.

One table per entry point (kernels of both backends, layers, Sequential, model files, data set
loaders, command line); each case asserts the exception type and a fragment of the message
that names the argument (and, where it helps, what was expected and received). The end of the
file checks the inputs that are unusual but valid: non-contiguous, Fortran-ordered and
read-only arrays give the contiguous results, integers are converted, and nothing the user
passes in is written to.
"""
import json
import re
import struct
import zipfile

import numpy as np
import pytest

import fastconv
from fastconv import cli, layers as L
from fastconv.datasets import cifar10, digits, mnist
from fastconv.models import Sequential, load_model

F32 = np.float32

# -- shared small arrays ------------------------------------------------------------------------
X = np.zeros((2, 6, 6, 4), F32)            # conv / pool input
K = np.zeros((3, 3, 4, 8), F32)            # conv kernel for X
DY = np.zeros((2, 4, 4, 8), F32)           # conv output gradient for X, K ("valid")
POOL_DY = np.zeros((2, 3, 3, 4), F32)      # 2x2 pooling output gradient for X
ROWS = np.zeros((5, 3), F32)               # batch-norm / dense input
ONES3 = np.ones(3, F32)
ZEROS3 = np.zeros(3, F32)
DK = np.zeros((3, 2), F32)                 # dense kernel for ROWS


def _not_valid(**overrides):
    args = dict(x=X, kernel=K, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1)
    args.update(overrides)
    return args


# -- kernels: fastconv.ops and fastconv.reference reject the same input the same way -------------
# (id, call on the kernel module, exception, message fragment)
KERNEL_CASES = [
    # conv2d_forward: dtypes
    ("conv-x-bool", lambda k: k.conv2d_forward(**_not_valid(x=X.astype(bool))), TypeError,
     r"`x` must have a real float or integer dtype; received dtype bool"),
    ("conv-x-complex", lambda k: k.conv2d_forward(**_not_valid(x=X.astype(complex))), TypeError,
     r"`x` must have a real float .* complex128"),
    ("conv-x-object", lambda k: k.conv2d_forward(**_not_valid(x=X.astype(object))), TypeError,
     r"`x` must have a real float .* object"),
    ("conv-x-None", lambda k: k.conv2d_forward(**_not_valid(x=None)), TypeError, r"`x` must have a real float"),
    ("conv-x-string", lambda k: k.conv2d_forward(**_not_valid(x="image")), TypeError, r"`x` must have a real float .*<U5"),
    ("conv-x-datetime", lambda k: k.conv2d_forward(**_not_valid(x=np.zeros((2, 6, 6, 4), "M8[s]"))), TypeError,
     r"`x` must have a real float .*datetime64"),
    ("conv-x-ragged", lambda k: k.conv2d_forward(**_not_valid(x=[[1.0], [1.0, 2.0]])), TypeError,
     r"`x` must be an array of numbers; could not convert"),
    ("conv-kernel-bool", lambda k: k.conv2d_forward(**_not_valid(kernel=K.astype(bool))), TypeError,
     r"`kernel` must have a real float .* bool"),
    ("conv-kernel-complex", lambda k: k.conv2d_forward(**_not_valid(kernel=K.astype(complex))), TypeError,
     r"`kernel` must have a real float"),
    ("conv-bias-complex", lambda k: k.conv2d_forward(**_not_valid(bias=np.zeros(8, complex))), TypeError,
     r"`bias` must have a real float"),
    # conv2d_forward: ranks and shapes
    ("conv-x-rank3", lambda k: k.conv2d_forward(**_not_valid(x=X[0])), ValueError,
     r"`x` must be a 4-D array \(batch, height, width, channels\); received shape \(6, 6, 4\)"),
    ("conv-x-scalar", lambda k: k.conv2d_forward(**_not_valid(x=1.0)), ValueError, r"`x` must be a 4-D array"),
    ("conv-x-empty-batch", lambda k: k.conv2d_forward(**_not_valid(x=X[:0])), ValueError,
     r"`x` must not have empty axes; received shape \(0, 6, 6, 4\)"),
    ("conv-x-empty-channels", lambda k: k.conv2d_forward(**_not_valid(x=X[..., :0])), ValueError,
     r"`x` must not have empty axes"),
    ("conv-kernel-rank3", lambda k: k.conv2d_forward(**_not_valid(kernel=K[0])), ValueError,
     r"`kernel` must be a 4-D array"),
    ("conv-kernel-channels", lambda k: k.conv2d_forward(**_not_valid(kernel=np.zeros((3, 3, 3, 8), F32))), ValueError,
     r"`kernel` must have shape \(kh, kw, in_channels // groups = 4, filters\); received \(3, 3, 3, 8\)"),
    ("conv-kernel-empty", lambda k: k.conv2d_forward(**_not_valid(kernel=np.zeros((3, 3, 4, 0), F32))), ValueError,
     r"`kernel` must not have empty axes"),
    ("conv-bias-shape", lambda k: k.conv2d_forward(**_not_valid(bias=np.zeros(7, F32))), ValueError,
     r"`bias` must have shape \(8,\); received \(7,\)"),
    ("conv-bias-2d", lambda k: k.conv2d_forward(**_not_valid(bias=np.zeros((1, 8), F32))), ValueError,
     r"`bias` must have shape \(8,\); received \(1, 8\)"),
    # conv2d_forward: groups
    ("conv-groups-channels", lambda k: k.conv2d_forward(**_not_valid(groups=3)), ValueError,
     r"Input channels \(4\) must be divisible by `groups` \(3\)"),
    ("conv-groups-filters", lambda k: k.conv2d_forward(**_not_valid(kernel=np.zeros((3, 3, 1, 6), F32), groups=4)),
     ValueError, r"number of filters \(6\) must be divisible by `groups` \(4\)"),
    ("conv-groups-zero", lambda k: k.conv2d_forward(**_not_valid(groups=0)), ValueError,
     r"`groups` argument must be a positive integer. Received groups=0"),
    ("conv-groups-float", lambda k: k.conv2d_forward(**_not_valid(groups=1.0)), ValueError,
     r"`groups` argument must be a positive integer. Received groups=1.0"),
    ("conv-groups-bool", lambda k: k.conv2d_forward(**_not_valid(groups=True)), ValueError,
     r"`groups` argument must be a positive integer. Received groups=True"),
    # conv2d_forward: strides, dilation, padding
    ("conv-strides-zero", lambda k: k.conv2d_forward(**_not_valid(strides=0)), ValueError,
     r"`strides` argument must contain only positive integers. Received strides=0"),
    ("conv-strides-negative", lambda k: k.conv2d_forward(**_not_valid(strides=(1, -2))), ValueError,
     r"`strides` argument must contain only positive integers"),
    ("conv-strides-3-tuple", lambda k: k.conv2d_forward(**_not_valid(strides=(1, 2, 3))), ValueError,
     r"`strides` argument must be an integer or a tuple of 2 integers. Received strides=\(1, 2, 3\)"),
    ("conv-strides-float", lambda k: k.conv2d_forward(**_not_valid(strides=1.5)), ValueError,
     r"`strides` argument must be an integer or a tuple of 2 integers"),
    ("conv-strides-string", lambda k: k.conv2d_forward(**_not_valid(strides="2")), ValueError,
     r"`strides` argument must be an integer or a tuple of 2"),
    ("conv-strides-huge", lambda k: k.conv2d_forward(**_not_valid(strides=2**63)), ValueError,
     r"`strides` argument must contain integers <= 2147483647"),
    ("conv-dilation-zero", lambda k: k.conv2d_forward(**_not_valid(dilation_rate=0)), ValueError,
     r"`dilation_rate` argument must contain only positive integers"),
    ("conv-dilation-huge", lambda k: k.conv2d_forward(**_not_valid(dilation_rate=2**70)), ValueError,
     r"`dilation_rate` argument must contain integers <= 2147483647"),
    ("conv-strides-and-dilation", lambda k: k.conv2d_forward(**_not_valid(strides=2, dilation_rate=2)), ValueError,
     r"`strides` > 1 together with `dilation_rate` > 1 is not supported"),
    ("conv-padding-name", lambda k: k.conv2d_forward(**_not_valid(padding="full")), ValueError,
     r"`padding` argument must be 'valid', 'same', an int.*Received padding='full'"),
    ("conv-padding-negative", lambda k: k.conv2d_forward(**_not_valid(padding=-1)), ValueError,
     r"`padding` argument must contain only non-negative integers"),
    ("conv-padding-float", lambda k: k.conv2d_forward(**_not_valid(padding=1.5)), ValueError,
     r"`padding` argument must be .*Received padding=1.5"),
    ("conv-padding-malformed-pairs", lambda k: k.conv2d_forward(**_not_valid(padding=((1, 2), (3,)))), ValueError,
     r"`padding` argument must be .*\(\(top, bottom\), \(left, right\)\)"),
    ("conv-padding-huge", lambda k: k.conv2d_forward(**_not_valid(padding=2**40)), ValueError,
     r"`padding` argument must contain integers <= 2147483647"),
    ("conv-kernel-larger-than-input", lambda k: k.conv2d_forward(**_not_valid(kernel=np.zeros((7, 7, 4, 8), F32))),
     ValueError, r"kernel \(effective height 7 with dilation\) is larger than the padded input height 6"),
    ("conv-dilated-kernel-larger", lambda k: k.conv2d_forward(**_not_valid(dilation_rate=(1, 3))), ValueError,
     r"effective width 7 with dilation\) is larger than the padded input width 6"),
    ("conv-kernel-larger-than-padded", lambda k: k.conv2d_forward(
        **_not_valid(kernel=np.zeros((9, 3, 4, 8), F32), padding=((1, 1), (0, 0)))), ValueError,
     r"larger than the padded input height 8"),
    # conv2d_backward
    ("conv-bwd-dy-shape", lambda k: k.conv2d_backward(np.zeros((2, 4, 4, 7), F32), X, K), ValueError,
     r"`dy` must have shape \(2, 4, 4, 8\); received \(2, 4, 4, 7\)"),
    ("conv-bwd-dy-rank", lambda k: k.conv2d_backward(DY[0], X, K), ValueError,
     r"`dy` must have shape \(2, 4, 4, 8\); received \(4, 4, 8\)"),
    ("conv-bwd-dy-bool", lambda k: k.conv2d_backward(DY.astype(bool), X, K), TypeError,
     r"`dy` must have a real float"),
    ("conv-bwd-groups", lambda k: k.conv2d_backward(DY, X, K, groups=3), ValueError,
     r"must be divisible by `groups` \(3\)"),
    # max / average pooling
    ("maxpool-size-zero", lambda k: k.max_pool2d_forward(X, pool_size=0), ValueError,
     r"`pool_size` argument must contain only positive integers"),
    ("maxpool-size-3-tuple", lambda k: k.max_pool2d_forward(X, pool_size=(2, 2, 2)), ValueError,
     r"`pool_size` argument must be an integer or a tuple of 2"),
    ("maxpool-window-larger", lambda k: k.max_pool2d_forward(X, pool_size=7), ValueError,
     r"pool window \(effective height 7 with dilation\) is larger than the padded input height 6"),
    ("maxpool-strides-zero", lambda k: k.max_pool2d_forward(X, 2, strides=0), ValueError,
     r"`strides` argument must contain only positive integers"),
    ("maxpool-strides-huge", lambda k: k.max_pool2d_forward(X, 2, strides=2**62, padding="same"), ValueError,
     r"`strides` argument must contain integers <= 2147483647"),
    ("maxpool-explicit-padding", lambda k: k.max_pool2d_forward(X, 2, padding=1), ValueError,
     r"`padding` argument must be 'valid' or 'same'. Received padding=1"),
    ("maxpool-x-rank3", lambda k: k.max_pool2d_forward(X[0]), ValueError, r"`x` must be a 4-D array"),
    ("maxpool-x-bool", lambda k: k.max_pool2d_forward(X.astype(bool)), TypeError, r"`x` must have a real float"),
    ("maxpool-x-empty", lambda k: k.max_pool2d_forward(X[:, :0]), ValueError, r"`x` must not have empty axes"),
    ("maxpool-bwd-dy-shape", lambda k: k.max_pool2d_backward(POOL_DY[:1], X), ValueError,
     r"`dy` must have shape \(2, 3, 3, 4\); received \(1, 3, 3, 4\)"),
    ("avgpool-x-complex", lambda k: k.avg_pool2d_forward(X.astype(complex)), TypeError, r"`x` must have a real float"),
    ("avgpool-padding-name", lambda k: k.avg_pool2d_forward(X, 2, padding="full"), ValueError,
     r"`padding` argument must be 'valid' or 'same'"),
    ("avgpool-bwd-shape-rank", lambda k: k.avg_pool2d_backward(POOL_DY, (6, 6, 4)), ValueError,
     r"`input_shape` must be a tuple of 4 positive ints; received \(6, 6, 4\)"),
    ("avgpool-bwd-shape-float", lambda k: k.avg_pool2d_backward(POOL_DY, (2, 6.5, 6, 4)), ValueError,
     r"`input_shape` must be a tuple of 4 ints; received \(2, 6.5, 6, 4\)"),
    ("avgpool-bwd-shape-negative", lambda k: k.avg_pool2d_backward(POOL_DY, (2, -6, 6, 4)), ValueError,
     r"`input_shape` must be a tuple of 4 positive ints"),
    ("avgpool-bwd-shape-string", lambda k: k.avg_pool2d_backward(POOL_DY, "2664"), ValueError,
     r"`input_shape` must be a tuple of 4 ints; received '2664'"),
    ("avgpool-bwd-dtype-int", lambda k: k.avg_pool2d_backward(POOL_DY, X.shape, dtype=np.int32), TypeError,
     r"`dtype` must be 'float32' or 'float64'"),
    ("avgpool-bwd-dtype-name", lambda k: k.avg_pool2d_backward(POOL_DY, X.shape, dtype="float"
                                                               "-ish"), TypeError,
     r"`dtype` must be 'float32' or 'float64'; received 'float-ish'"),
    ("avgpool-bwd-dy-shape", lambda k: k.avg_pool2d_backward(POOL_DY[:, :2], X.shape), ValueError,
     r"`dy` must have shape \(2, 3, 3, 4\); received \(2, 2, 3, 4\)"),
    # global pooling
    ("gap-x-rank2", lambda k: k.global_avg_pool2d_forward(ROWS), ValueError, r"`x` must be a 4-D array"),
    ("gap-x-empty", lambda k: k.global_avg_pool2d_forward(X[:, :0]), ValueError,
     r"`x` must not have empty axes; received shape \(2, 0, 6, 4\)"),
    ("gmp-x-empty", lambda k: k.global_max_pool2d_forward(X[:, :, :0]), ValueError, r"`x` must not have empty axes"),
    ("gmp-x-string", lambda k: k.global_max_pool2d_forward(np.full((1, 2, 2, 1), "a")), TypeError,
     r"`x` must have a real float"),
    ("gap-bwd-dy-shape", lambda k: k.global_avg_pool2d_backward(np.zeros((2, 3), F32), X.shape), ValueError,
     r"`dy` must have shape \(2, 4\); received \(2, 3\)"),
    ("gap-bwd-shape-string", lambda k: k.global_avg_pool2d_backward(np.zeros((2, 4), F32), "shape"), ValueError,
     r"`input_shape` must be a tuple of 4 ints"),
    ("gmp-bwd-dy-shape", lambda k: k.global_max_pool2d_backward(np.zeros((4, 2), F32), X), ValueError,
     r"`dy` must have shape \(2, 4\); received \(4, 2\)"),
    ("gmp-bwd-x-bool", lambda k: k.global_max_pool2d_backward(np.zeros((2, 4), F32), X.astype(bool)), TypeError,
     r"`x` must have a real float"),
    # batch normalization
    ("bn-x-rank1", lambda k: k.batch_norm_forward_training(ONES3, ONES3, ZEROS3), ValueError,
     r"`x` must have at least 2 dimensions \(batch, ..., channels\); received shape \(3,\)"),
    ("bn-x-empty", lambda k: k.batch_norm_forward_training(ROWS[:0], ONES3, ZEROS3), ValueError,
     r"`x` must not have empty axes"),
    ("bn-x-bool", lambda k: k.batch_norm_forward_training(ROWS.astype(bool), ONES3, ZEROS3), TypeError,
     r"`x` must have a real float"),
    ("bn-gamma-shape", lambda k: k.batch_norm_forward_training(ROWS, np.ones(4, F32), ZEROS3), ValueError,
     r"`gamma` must have shape \(3,\) \(one value per channel\); received \(4,\)"),
    ("bn-beta-shape", lambda k: k.batch_norm_forward_training(ROWS, ONES3, np.zeros((1, 3), F32)), ValueError,
     r"`beta` must have shape \(3,\)"),
    ("bn-gamma-complex", lambda k: k.batch_norm_forward_training(ROWS, ONES3.astype(complex), ZEROS3), TypeError,
     r"`gamma` must have a real float"),
    ("bn-epsilon-zero", lambda k: k.batch_norm_forward_training(ROWS, ONES3, ZEROS3, 0.0), ValueError,
     r"`epsilon` must be a positive finite number; received 0.0"),
    ("bn-epsilon-nan", lambda k: k.batch_norm_forward_training(ROWS, ONES3, ZEROS3, float("nan")), ValueError,
     r"`epsilon` must be a positive finite number; received nan"),
    ("bn-epsilon-inf", lambda k: k.batch_norm_forward_inference(ROWS, ONES3, ZEROS3, ZEROS3, ONES3, np.inf),
     ValueError, r"`epsilon` must be a positive finite number"),
    ("bn-epsilon-bool", lambda k: k.batch_norm_forward_training(ROWS, ONES3, ZEROS3, True), ValueError,
     r"`epsilon` must be a positive finite number; received True"),
    ("bn-epsilon-string", lambda k: k.batch_norm_forward_training(ROWS, ONES3, ZEROS3, "1e-3"), ValueError,
     r"`epsilon` must be a positive finite number; received '1e-3'"),
    ("bn-moving-mean-shape", lambda k: k.batch_norm_forward_inference(ROWS, ONES3, ZEROS3, np.zeros(2, F32), ONES3),
     ValueError, r"`moving_mean` must have shape \(3,\); received \(2,\)"),
    ("bn-moving-var-bool", lambda k: k.batch_norm_forward_inference(ROWS, ONES3, ZEROS3, ZEROS3, ONES3.astype(bool)),
     TypeError, r"`moving_var` must have a real float"),
    ("bn-bwd-dy-shape", lambda k: k.batch_norm_backward(ROWS[:4], ROWS, ONES3, ZEROS3, ONES3), ValueError,
     r"`dy` must have shape \(5, 3\); received \(4, 3\)"),
    ("bn-bwd-mean-shape", lambda k: k.batch_norm_backward(ROWS, ROWS, ONES3, np.zeros(5, F32), ONES3), ValueError,
     r"`mean` must have shape \(3,\); received \(5,\)"),
    ("bn-bwd-var-shape", lambda k: k.batch_norm_backward(ROWS, ROWS, ONES3, ZEROS3, np.ones((3, 1), F32)), ValueError,
     r"`var` must have shape \(3,\)"),
    # dense
    ("dense-x-rank3", lambda k: k.dense_forward(X[..., :3], DK), ValueError,
     r"`x` must be a 2-D array \(batch, features\); received shape \(2, 6, 6, 3\)"),
    ("dense-x-string", lambda k: k.dense_forward(ROWS.astype(str), DK), TypeError, r"`x` must have a real float"),
    ("dense-x-empty", lambda k: k.dense_forward(ROWS[:0], DK), ValueError, r"`x` must not have empty axes"),
    ("dense-kernel-features", lambda k: k.dense_forward(ROWS, np.zeros((4, 2), F32)), ValueError,
     r"`kernel` must have shape \(in_features=3, units\); received \(4, 2\)"),
    ("dense-kernel-rank", lambda k: k.dense_forward(ROWS, np.zeros(3, F32)), ValueError, r"`kernel` must be a 2-D array"),
    ("dense-kernel-bool", lambda k: k.dense_forward(ROWS, DK.astype(bool)), TypeError, r"`kernel` must have a real float"),
    ("dense-bias-shape", lambda k: k.dense_forward(ROWS, DK, np.zeros(3, F32)), ValueError,
     r"`bias` must have shape \(2,\); received \(3,\)"),
    ("dense-bwd-dy-shape", lambda k: k.dense_backward(np.zeros((5, 3), F32), ROWS, DK), ValueError,
     r"`dy` must have shape \(5, 2\); received \(5, 3\)"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in KERNEL_CASES], ids=[c[0] for c in KERNEL_CASES])
def test_kernels_reject(kernels, call, exc, match):
    with pytest.raises(exc, match=match):
        call(kernels)


# -- layers: constructor arguments, build, forward, backward, weights ----------------------------------
def _built(layer, input_shape):
    layer.build(input_shape)
    return layer


def _forward_training(layer, x):
    layer.forward(np.asarray(x, F32), training=True)
    return layer


LAYER_CASES = [
    # constructor arguments
    ("conv-filters-zero", lambda: L.Conv2D(0, 3), ValueError, r"`filters` must be a positive integer; received filters=0"),
    ("conv-filters-float", lambda: L.Conv2D(2.5, 3), ValueError, r"`filters` must be a positive integer; received filters=2.5"),
    ("conv-filters-bool", lambda: L.Conv2D(True, 3), ValueError, r"`filters` must be a positive integer"),
    ("conv-kernel-size-string", lambda: L.Conv2D(2, "3"), ValueError,
     r"`kernel_size` argument must be an integer or a tuple of 2 integers. Received kernel_size='3'"),
    ("conv-kernel-size-zero", lambda: L.Conv2D(2, (3, 0)), ValueError, r"`kernel_size` argument must contain only positive"),
    ("conv-padding-name", lambda: L.Conv2D(2, 3, padding="causal"), ValueError,
     r"`padding` argument must be 'valid', 'same'.*Received padding='causal'"),
    ("conv-strides-with-dilation", lambda: L.Conv2D(2, 3, strides=2, dilation_rate=2), ValueError,
     r"`strides` > 1 together with `dilation_rate` > 1 is not supported"),
    ("conv-groups-filters", lambda: L.Conv2D(3, 3, groups=2), ValueError,
     r"number of filters must be evenly divisible by the number of groups. Received: groups=2, filters=3"),
    ("conv-groups-zero", lambda: L.Conv2D(2, 3, groups=0), ValueError, r"`groups` must be a positive integer"),
    ("conv-activation-unknown", lambda: L.Conv2D(2, 3, activation="swishy"), ValueError,
     r"Invalid `activation`: Unknown activation 'swishy'"),
    ("conv-dtype-int", lambda: L.Conv2D(2, 3, dtype="int32"), TypeError,
     r"`dtype` must be 'float32' or 'float64'; received 'int32'"),
    ("conv-dtype-half", lambda: L.Conv2D(2, 3, dtype="float16"), TypeError, r"`dtype` must be 'float32' or 'float64'"),
    ("conv-dtype-nonsense", lambda: L.Conv2D(2, 3, dtype="pixels"), TypeError, r"`dtype` must be 'float32' or 'float64'"),
    ("conv-unknown-kwarg", lambda: L.Conv2D(2, 3, kernel_szie=3), TypeError,
     r"Conv2D got unexpected keyword arguments: \['kernel_szie'\]"),
    ("conv-input-shape-float", lambda: L.Conv2D(2, 3, input_shape=(8, 8.5, 1)), ValueError,
     r"`input_shape` must be a tuple of 3 ints; received \(8, 8.5, 1\)"),
    ("conv-input-shape-negative", lambda: L.Conv2D(2, 3, input_shape=(8, -8, 1)), ValueError,
     r"`input_shape` must be a tuple of 3 positive ints"),
    ("conv-use-bias-string", lambda: L.Conv2D(2, 3, use_bias="yes"), TypeError, r"`use_bias` must be a bool; received use_bias='yes'"),
    ("conv-data-format", lambda: L.Conv2D(2, 3, data_format="NHWC"), ValueError,
     r"`data_format` argument must be one of 'channels_first', 'channels_last' or None. Received data_format='NHWC'"),
    ("conv-constraint", lambda: L.Conv2D(2, 3, kernel_constraint="max_norm"), ValueError,
     r"Conv2D: `kernel_constraint` is not supported by fastconv"),
    ("conv-initializer-unknown", lambda: L.Conv2D(2, 3, kernel_initializer="magic"), ValueError,
     r"Invalid `kernel_initializer`"),
    ("depthwise-multiplier-zero", lambda: L.DepthwiseConv2D(3, depth_multiplier=0), ValueError,
     r"`depth_multiplier` must be a positive integer"),
    ("dense-units-zero", lambda: L.Dense(0), ValueError, r"`units` must be a positive integer; received units=0"),
    ("dense-units-string", lambda: L.Dense("10"), ValueError, r"`units` must be a positive integer; received units='10'"),
    ("dropout-rate-one", lambda: L.Dropout(1.0), ValueError, r"`rate` argument must be a number in \[0, 1\); received rate=1.0"),
    ("dropout-rate-negative", lambda: L.Dropout(-0.1), ValueError, r"`rate` argument must be a number in \[0, 1\)"),
    ("dropout-rate-nan", lambda: L.Dropout(float("nan")), ValueError, r"`rate` argument must be a number in \[0, 1\)"),
    ("dropout-noise-shape", lambda: L.Dropout(0.5, noise_shape="ab"), ValueError, r"`noise_shape` must be None or a tuple"),
    ("dropout-seed-negative", lambda: L.Dropout(0.5, seed=-1), ValueError, r"`seed` must be None, a non-negative integer"),
    ("bn-momentum", lambda: L.BatchNormalization(momentum=1.5), ValueError,
     r"`momentum` must be a number in \[0, 1\]; received momentum=1.5"),
    ("bn-epsilon", lambda: L.BatchNormalization(epsilon=0), ValueError, r"`epsilon` must be a positive number"),
    ("bn-axis-string", lambda: L.BatchNormalization(axis="channels"), ValueError,
     r"`axis` argument must be a single integer; received axis='channels'"),
    ("bn-center-string", lambda: L.BatchNormalization(center="no"), TypeError, r"`center` must be a bool"),
    ("maxpool-size-zero", lambda: L.MaxPooling2D(0), ValueError, r"`pool_size` argument must contain only positive"),
    ("maxpool-padding-int", lambda: L.MaxPooling2D(2, padding=1), ValueError,
     r"`padding` argument must be 'valid' or 'same'. Received padding=1"),
    ("avgpool-strides-3-tuple", lambda: L.AveragePooling2D(2, strides=(1, 2, 3)), ValueError,
     r"`strides` argument must be an integer or a tuple of 2"),
    ("global-pool-keepdims", lambda: L.GlobalAveragePooling2D(keepdims="yes"), TypeError, r"`keepdims` must be a bool"),
    ("zeropad-string", lambda: L.ZeroPadding2D("same"), ValueError,
     r"`padding` argument of ZeroPadding2D must be an int, a pair of ints"),
    ("zeropad-negative", lambda: L.ZeroPadding2D(-1), ValueError, r"`padding` argument must contain only non-negative"),
    ("leaky-relu-nan", lambda: L.LeakyReLU(float("nan")), ValueError, r"LeakyReLU: `negative_slope` must be a non-negative number"),
    ("elu-alpha-string", lambda: L.ELU("a"), ValueError, r"ELU: `alpha` must be a number; received alpha='a'"),
    ("softmax-axis-string", lambda: L.Softmax(axis="last"), ValueError, r"Softmax: `axis` must be an integer"),
    ("activation-unknown", lambda: L.Activation("nope"), ValueError, r"Invalid `activation`: Unknown activation 'nope'"),
    # build: geometry against the input shape
    ("conv-build-kernel-larger", lambda: L.Conv2D(2, 9).build((8, 8, 1)), ValueError,
     r"kernel \(effective height 9 with dilation\) is larger than the padded input height 8"),
    ("conv-build-groups-channels", lambda: L.Conv2D(4, 3, groups=2).build((8, 8, 3)), ValueError,
     r"the number of input channels \(3\) must be divisible by `groups` \(2\)"),
    ("conv-build-rank", lambda: L.Conv2D(2, 3).build((8, 8)), ValueError,
     r"\(Conv2D\) expects 4-D input \(batch, height, width, channels\); received input shape \(batch,\) \+ \(8, 8\)"),
    ("dense-build-image", lambda: L.Dense(3).build((8, 8, 3)), ValueError,
     r"\(Dense\) expects 2-D input \(batch, features\).*Add a Flatten layer before Dense"),
    ("maxpool-build-window-larger", lambda: L.MaxPooling2D(9).build((8, 8, 3)), ValueError,
     r"pool window \(effective height 9 with dilation\) is larger than the padded input height 8"),
    ("bn-build-axis-batch", lambda: L.BatchNormalization(axis=0).build((3,)), ValueError,
     r"`axis`=0 is not a channel axis"),
    # forward
    ("conv-forward-rank", lambda: L.Conv2D(2, 3)(np.zeros((4, 8, 8), F32)), ValueError, r"expects 4-D input"),
    ("conv-forward-shape", lambda: _built(L.Conv2D(2, 3), (8, 8, 1))(np.zeros((4, 9, 8, 1), F32)), ValueError,
     r"expects input of shape \(batch,\) \+ \(8, 8, 1\); received \(4, 9, 8, 1\)"),
    ("conv-forward-bool", lambda: L.Conv2D(2, 3)(np.zeros((4, 8, 8, 1), bool)), TypeError, r"`x` must have a real float"),
    ("dense-forward-complex", lambda: L.Dense(2)(np.zeros((4, 3), complex)), TypeError, r"`x` must have a real float"),
    ("dropout-forward-noise-rank", lambda: L.Dropout(0.5, noise_shape=(None, 1))(np.ones((2, 3, 3), F32), training=True),
     ValueError, r"`noise_shape` \(None, 1\) must have the rank of the input"),
    # backward
    ("backward-before-forward", lambda: L.Conv2D(2, 3, input_shape=(8, 8, 1)).backward(np.zeros((1, 6, 6, 2), F32)),
     RuntimeError, r"backward\(\) needs a preceding forward\(x, training=True\)"),
    ("backward-after-inference-forward", lambda: (lambda d: (d.forward(np.ones((3, 4), F32), training=False),
                                                             d.backward(np.ones((3, 2), F32))))(L.Dense(2)),
     RuntimeError, r"needs a preceding forward\(x, training=True\)"),
    ("relu-backward-broadcast-dy", lambda: _forward_training(L.ReLU(), np.ones((4, 3))).backward(np.ones((1, 3), F32)),
     ValueError, r"`dy` must have the shape of the last forward output, \(4, 3\); received \(1, 3\)"),
    ("dropout-backward-dy", lambda: _forward_training(L.Dropout(0.5), np.ones((4, 3))).backward(np.ones(3, F32)),
     ValueError, r"`dy` must have the shape of the last forward output"),
    ("zeropad-backward-dy", lambda: _forward_training(L.ZeroPadding2D(1), np.ones((2, 3, 3, 1))).backward(
        np.ones((2, 4, 4, 1), F32)), ValueError, r"shape of the last forward output, \(2, 5, 5, 1\); received \(2, 4, 4, 1\)"),
    ("flatten-backward-dy", lambda: _forward_training(L.Flatten(), np.ones((4, 2, 3))).backward(np.ones((4, 5), F32)),
     ValueError, r"shape of the last forward output, \(4, 6\)"),
    ("conv-backward-dy", lambda: _forward_training(L.Conv2D(2, 3), np.ones((2, 5, 5, 1))).backward(
        np.ones((2, 3, 3, 3), F32)), ValueError, r"shape of the last forward output, \(2, 3, 3, 2\)"),
    ("backward-dy-string", lambda: _forward_training(L.ReLU(), np.ones((4, 3))).backward(np.full((4, 3), "x")),
     TypeError, r"`dy` must have a real float"),
    # weights
    ("set-weights-count", lambda: _built(L.Dense(2), (3,)).set_weights([np.zeros((3, 2))]), ValueError,
     r"expects 2 weight arrays \(\['kernel', 'bias'\]\); received 1"),
    ("set-weights-shape", lambda: _built(L.Dense(2), (3,)).set_weights([np.zeros((2, 3)), np.zeros(2)]), ValueError,
     r"Weight 'kernel' of layer .* has shape \(3, 2\); received an array of shape \(2, 3\)"),
    ("set-weights-bool", lambda: _built(L.Dense(2), (3,)).set_weights([np.zeros((3, 2), bool), np.zeros(2)]),
     TypeError, r"`weights\['kernel'\]` must have a real float"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in LAYER_CASES], ids=[c[0] for c in LAYER_CASES])
def test_layers_reject(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# -- Sequential: structure, compile, fit / evaluate / predict / train_on_batch -------------------------
N = 6
XM = np.random.default_rng(0).random((N, 6, 6, 1)).astype(F32)
YM = np.arange(N) % 3


def _model(loss="sparse_categorical_crossentropy"):
    model = Sequential([L.Conv2D(2, 3, activation="relu"), L.Flatten(), L.Dense(3, activation="softmax")],
                       input_shape=(6, 6, 1))
    model.compile(optimizer="sgd", loss=loss)
    return model


def _with_bad_sample(value, index=3):
    x = XM.copy()
    x[index, 2, 1, 0] = value
    return x


def _fit(x=XM, y=YM, **kwargs):
    kwargs.setdefault("verbose", 0)
    return _model().fit(x, y, **kwargs)


MODEL_CASES = [
    # structure
    ("add-non-layer", lambda: Sequential([L.Dense(2), "relu"]), TypeError,
     r"Sequential.add expects a fastconv Layer; received str"),
    ("duplicate-layer-names", lambda: Sequential([L.Dense(2, name="d"), L.Dense(2, name="d")]), ValueError,
     r"unique names; the name 'd' is already used"),
    ("input-shape-negative", lambda: Sequential([L.Dense(2)], input_shape=(-3,)), ValueError,
     r"`input_shape` must be a tuple of 1 positive ints"),
    ("input-shape-string", lambda: Sequential([L.Dense(2)], input_shape="28x28"), ValueError,
     r"`input_shape` must be a tuple of positive ints \(without the batch axis\); received '28x28'"),
    ("input-shape-float", lambda: Sequential([L.Dense(2)], input_shape=(3.5,)), ValueError,
     r"`input_shape` must be a tuple of positive ints"),
    ("build-incompatible-layer", lambda: Sequential([L.Conv2D(2, 3), L.Dense(2)], input_shape=(6, 6, 1)), ValueError,
     r"Cannot build layer 'dense.*' on input shape \(4, 4, 2\).*Add a Flatten layer"),
    ("build-twice-other-shape", lambda: _model().build((7, 7, 1)), ValueError,
     r"already built for input shape \(6, 6, 1\); received \(7, 7, 1\)"),
    ("set-weights-count", lambda: _model().set_weights([np.zeros((3, 3, 1, 2))]), ValueError,
     r"has 4 weight arrays; received a list of 1"),
    ("set-weights-shape", lambda: _model().set_weights([np.zeros((3, 3, 1, 3)), np.zeros(2), np.zeros((32, 3)),
                                                        np.zeros(3)]), ValueError,
     r"weights\[0\] \('kernel'\) must have shape \(3, 3, 1, 2\); received shape \(3, 3, 1, 3\)"),
    # compile
    ("fit-uncompiled", lambda: Sequential([L.Dense(2)], input_shape=(3,)).fit(np.zeros((2, 3)), [0, 1], verbose=0),
     RuntimeError, r"You must compile the model with a loss before calling fit\(\)"),
    ("evaluate-uncompiled", lambda: Sequential([L.Dense(2)], input_shape=(3,)).evaluate(np.zeros((2, 3)), [0, 1]),
     RuntimeError, r"before calling evaluate\(\)"),
    ("compile-optimizer-unknown", lambda: _model().compile(optimizer="adamm", loss="mse"), ValueError,
     r"Unknown optimizer 'adamm'"),
    ("compile-loss-unknown", lambda: _model().compile(optimizer="sgd", loss="hinge_of_doom"), ValueError,
     r"hinge_of_doom"),
    ("compile-metric-unknown", lambda: _model().compile(optimizer="sgd", loss="mse", metrics=["acuracy"]), ValueError,
     r"Unknown metric 'acuracy'"),
    # fit: x
    ("fit-x-bool", lambda: _fit(XM > 0.5), TypeError, r"`x` must have a real float or integer dtype; received dtype bool"),
    ("fit-x-complex", lambda: _fit(XM.astype(complex)), TypeError, r"`x` must have a real float .* complex128"),
    ("fit-x-strings", lambda: _fit(XM.astype(str)), TypeError, r"`x` must have a real float"),
    ("fit-x-object", lambda: _fit(XM.astype(object)), TypeError, r"`x` must have a real float .* object"),
    ("fit-x-none", lambda: _fit(None), TypeError, r"`x` must have a real float"),
    ("fit-x-sample-shape", lambda: _fit(XM[:, :5]), ValueError,
     r"`x` must have shape \(batch,\) \+ \(6, 6, 1\) for model .*; received shape \(6, 5, 6, 1\)"),
    ("fit-x-no-batch-axis", lambda: _fit(XM[0, 0, 0]), ValueError, r"`x` must have a batch axis"),
    ("fit-x-empty", lambda: _fit(XM[:0], YM[:0]), ValueError, r"`x` is empty \(0 samples\)"),
    ("fit-x-nan", lambda: _fit(_with_bad_sample(np.nan)), ValueError,
     r"`x` contains NaN or infinite values \(first in sample 3\)"),
    ("fit-x-inf", lambda: _fit(_with_bad_sample(np.inf, 5)), ValueError,
     r"`x` contains NaN or infinite values \(first in sample 5\)"),
    ("fit-x-minus-inf", lambda: _fit(_with_bad_sample(-np.inf, 0)), ValueError, r"\(first in sample 0\)"),
    # fit: y
    ("fit-y-none", lambda: _fit(y=None), ValueError, r"`y` \(the targets\) is required"),
    ("fit-y-length", lambda: _fit(y=YM[:5]), ValueError,
     r"`x` and `y` must have the same number of samples; received 6 in x and 5 in y"),
    ("fit-y-scalar", lambda: _fit(y=1), ValueError, r"`y` must have a batch axis"),
    ("fit-labels-too-large", lambda: _fit(y=YM + 1), ValueError,
     r"`y` contains the class index 3, outside \[0, 2\] for predictions with 3 classes"),
    ("fit-labels-negative", lambda: _fit(y=YM - 1), ValueError, r"`y` contains the class index -1, outside \[0, 2\]"),
    ("fit-labels-uint64-max", lambda: _fit(y=np.full(N, 2**64 - 1, np.uint64)), ValueError,
     r"class index 18446744073709551615, outside \[0, 2\]"),
    ("fit-labels-float-huge", lambda: _fit(y=np.full(N, 1e30)), ValueError, r"class index 1e\+30, outside \[0, 2\]"),
    ("fit-labels-fraction", lambda: _fit(y=YM + 0.5), ValueError,
     r"`y` must contain integer class indices for a sparse loss; found .*0.5"),
    ("fit-labels-nan", lambda: _fit(y=np.full(N, np.nan)), ValueError, r"`y` contains NaN or infinite values"),
    ("fit-labels-strings", lambda: _fit(y=np.array(["cat"] * N)), TypeError,
     r"`y` must hold integer class indices; received dtype <U3"),
    ("fit-labels-bool", lambda: _fit(y=np.zeros(N, bool)), TypeError, r"`y` must hold integer class indices; received dtype bool"),
    ("fit-labels-one-hot", lambda: _fit(y=np.eye(3)[YM]), ValueError,
     r"one integer class index per sample, shape \(6,\).*For one-hot targets use categorical_crossentropy"),
    ("fit-categorical-width", lambda: _model("categorical_crossentropy").fit(XM, np.eye(4)[YM], verbose=0), ValueError,
     r"`y` must have the shape of the predictions, \(6, 3\); received shape \(6, 4\)"),
    ("fit-categorical-nan", lambda: _model("categorical_crossentropy").fit(XM, np.full((N, 3), np.nan), verbose=0),
     ValueError, r"`y` contains NaN or infinite values"),
    # fit: arguments
    ("fit-batch-size-zero", lambda: _fit(batch_size=0), ValueError, r"`batch_size` must be a positive integer; received batch_size=0"),
    ("fit-batch-size-float", lambda: _fit(batch_size=2.0), ValueError, r"`batch_size` must be a positive integer; received batch_size=2.0"),
    ("fit-epochs-negative", lambda: _fit(epochs=-1), ValueError, r"`epochs` must be an integer >= 0; received epochs=-1"),
    ("fit-initial-epoch", lambda: _fit(initial_epoch=-1), ValueError, r"`initial_epoch` must be an integer >= 0"),
    ("fit-validation-split-one", lambda: _fit(validation_split=1.0), ValueError,
     r"`validation_split` must be a number in \[0, 1\); received 1.0"),
    ("fit-validation-split-too-few", lambda: _fit(validation_split=0.9), ValueError,
     r"too few to split it into training and validation sets"),
    ("fit-validation-data-type", lambda: _fit(validation_data=XM), ValueError, r"`validation_data` must be a tuple \(x_val, y_val\)"),
    ("fit-validation-data-length", lambda: _fit(validation_data=(XM, YM[:2])), ValueError,
     r"`x_val` and `y_val` must have the same number of samples"),
    ("fit-validation-data-nan", lambda: _fit(validation_data=(_with_bad_sample(np.nan, 1), YM)), ValueError,
     r"`x_val` contains NaN or infinite values \(first in sample 1\)"),
    ("fit-validation-labels", lambda: _fit(validation_data=(XM, YM + 3)), ValueError,
     r"`y_val` contains the class index"),
    ("fit-callbacks-type", lambda: _fit(callbacks=[print]), TypeError,
     r"Each callback must be a fastconv.callbacks.Callback"),
    ("fit-verbose", lambda: _fit(verbose=3), ValueError, r"`verbose` must be 'auto', 0, 1 or 2; received verbose=3"),
    ("fit-shuffle", lambda: _fit(shuffle="batch"), TypeError, r"`shuffle` must be True or False; received shuffle='batch'"),
    # evaluate / predict / train_on_batch / test_on_batch
    ("evaluate-labels", lambda: _model().evaluate(XM, YM + 5, verbose=0), ValueError, r"class index 5, outside \[0, 2\]"),
    ("evaluate-x-nan", lambda: _model().evaluate(_with_bad_sample(np.nan), YM, verbose=0), ValueError,
     r"`x` contains NaN or infinite values \(first in sample 3\)"),
    ("evaluate-batch-size", lambda: _model().evaluate(XM, YM, batch_size=-4, verbose=0), ValueError,
     r"`batch_size` must be a positive integer"),
    ("predict-x-shape", lambda: _model().predict(XM[..., :0]), ValueError, r"`x` must have shape \(batch,\) \+ \(6, 6, 1\)"),
    ("predict-x-inf", lambda: _model().predict(_with_bad_sample(np.inf, 2)), ValueError,
     r"`x` contains NaN or infinite values \(first in sample 2\)"),
    ("predict-x-empty", lambda: _model().predict(XM[:0]), ValueError, r"`x` is empty"),
    ("predict-x-complex", lambda: _model().predict(XM.astype(np.complex64)), TypeError, r"`x` must have a real float"),
    ("predict-batch-size", lambda: _model().predict(XM, batch_size=0), ValueError, r"`batch_size` must be a positive integer"),
    ("train-on-batch-labels", lambda: _model().train_on_batch(XM, YM + 3), ValueError, r"class index 3, outside \[0, 2\]"),
    ("train-on-batch-x-rank", lambda: _model().train_on_batch(XM[0, 0, 0, 0], YM), ValueError, r"`x` must have a batch axis"),
    ("train-on-batch-x-nan", lambda: _model().train_on_batch(_with_bad_sample(np.nan), YM), ValueError,
     r"`x` contains NaN or infinite values"),
    ("test-on-batch-length", lambda: _model().test_on_batch(XM, YM[:1]), ValueError, r"same number of samples"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_model_rejects(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# -- model files -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "m.fcz"
    _model().save(path)
    return path.read_bytes()


def _rewrite(data, tmp, edit_config=None, edit_entry=None):
    """Copy of the archive `data` with config.json and/or one weight entry edited."""
    src = tmp / "src.fcz"
    src.write_bytes(data)
    out = tmp / "edited.fcz"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            content = zin.read(info)
            if info.filename == "config.json" and edit_config is not None:
                config = json.loads(content)
                edit_config(config)
                content = json.dumps(config).encode()
            elif info.filename == "weights/0.npy" and edit_entry is not None:
                content = edit_entry(content)
            zout.writestr(info.filename, content)
    return out


def _set(key, value):
    return lambda config: config.__setitem__(key, value)


def _flip_last_byte(content):
    return content[:-1] + bytes([content[-1] ^ 0x01])


FILE_CASES = [
    ("missing", lambda d, t: load_model(t / "absent.fcz"), FileNotFoundError, r"No such fastconv model file"),
    ("directory", lambda d, t: load_model(t), ValueError, r"is a directory, not a fastconv model file"),
    ("path-none", lambda d, t: load_model(None), TypeError, r"`filepath` must be a str or os.PathLike; received NoneType"),
    ("path-int", lambda d, t: load_model(7), TypeError, r"`filepath` must be a str or os.PathLike; received int"),
    ("not-a-zip", lambda d, t: (t.joinpath("x.fcz").write_bytes(b"\x80\x04pickle"), load_model(t / "x.fcz")),
     ValueError, r"not a fastconv model file \(not a zip archive, or truncated\)"),
    ("empty-file", lambda d, t: (t.joinpath("x.fcz").write_bytes(b""), load_model(t / "x.fcz")), ValueError,
     r"not a zip archive, or truncated"),
    ("truncated-half", lambda d, t: (t.joinpath("x.fcz").write_bytes(d[: len(d) // 2]), load_model(t / "x.fcz")),
     ValueError, r"Cannot load .*x.fcz"),
    ("truncated-tail", lambda d, t: (t.joinpath("x.fcz").write_bytes(d[:-3]), load_model(t / "x.fcz")),
     ValueError, r"Cannot load .*x.fcz"),
    ("weights-tampered", lambda d, t: load_model(_rewrite(d, t, edit_entry=_flip_last_byte)), ValueError,
     r"checksum mismatch for 'weights/0.npy' \(the file is corrupted or was modified\)"),
    ("future-version", lambda d, t: load_model(_rewrite(d, t, _set("format_version", 99))), ValueError,
     r"file format version 99 .* Upgrade fastconv to load it"),
    ("foreign-format", lambda d, t: load_model(_rewrite(d, t, _set("format", "keras"))), ValueError,
     r"config.json does not describe a fastconv model file"),
    ("bad-version-type", lambda d, t: load_model(_rewrite(d, t, _set("format_version", "1"))), ValueError,
     r"invalid format_version '1'"),
    ("object-dtype-entry", lambda d, t: load_model(_rewrite(
        d, t, lambda c: c["weights"][0].__setitem__("dtype", "object"))), ValueError,
     r"weight entry 0 of config.json is malformed"),
    ("weights-only-file", lambda d, t: load_model(_rewrite(d, t, _set("kind", "weights"))), ValueError,
     r"holds only weights \(written by save_weights\)"),
    ("unknown-layer", lambda d, t: load_model(_rewrite(
        d, t, lambda c: c["model"]["config"]["layers"][0].__setitem__("class_name", "os.system"))), ValueError,
     r"the architecture in config.json cannot be rebuilt"),
    ("save-overwrite-false", lambda d, t: (_model().save(t / "m.fcz"), _model().save(t / "m.fcz", overwrite=False)),
     FileExistsError, r"File exists"),
    ("save-unbuilt", lambda d, t: Sequential([L.Dense(2)]).save(t / "u.fcz"), ValueError,
     r"The model must be built before it can be saved"),
    ("save-path-none", lambda d, t: _model().save(None), TypeError, r"`filepath` must be a str or os.PathLike"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_model_files_reject(saved_bytes, tmp_path, call, exc, match):
    with pytest.raises(exc, match=match):
        call(saved_bytes, tmp_path)


# -- data set loaders --------------------------------------------------------------------------------------
def _idx(array, magic=None):
    array = np.asarray(array, np.uint8)
    magic = 0x00000800 | array.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _mnist_folder(tmp, train_images=None, train_labels=None, gzipped_train_images=None):
    files = {
        "train-images-idx3-ubyte": train_images if train_images is not None else _idx(np.zeros((3, 4, 4))),
        "train-labels-idx1-ubyte": train_labels if train_labels is not None else _idx([0, 1, 2]),
        "t10k-images-idx3-ubyte": _idx(np.zeros((2, 4, 4))),
        "t10k-labels-idx1-ubyte": _idx([3, 4]),
    }
    if gzipped_train_images is not None:
        files["train-images-idx3-ubyte.gz"] = gzipped_train_images
        del files["train-images-idx3-ubyte"]
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    return tmp


DATASET_CASES = [
    ("mnist-path-none", lambda t: mnist.load_data(None), TypeError,
     r"`path` must be the folder holding the MNIST files; received None"),
    ("mnist-path-int", lambda t: mnist.load_data(5), TypeError, r"`path` must be a str or os.PathLike folder; received int"),
    ("mnist-folder-missing", lambda t: mnist.load_data(t / "nope"), FileNotFoundError, r"MNIST folder not found"),
    ("mnist-path-is-file", lambda t: (t.joinpath("f").write_bytes(b""), mnist.load_data(t / "f")), NotADirectoryError,
     r"MNIST `path` must be a folder"),
    ("mnist-files-missing", lambda t: mnist.load_data(t), FileNotFoundError,
     r"MNIST files missing from .*train-images-idx3-ubyte"),
    ("mnist-truncated-images", lambda t: mnist.load_data(_mnist_folder(t, train_images=_idx(np.zeros((3, 4, 4)))[:-5])),
     ValueError, r"train-images-idx3-ubyte"),
    ("mnist-bad-magic", lambda t: mnist.load_data(_mnist_folder(t, train_images=_idx(np.zeros((3, 4, 4)), magic=0x0D03))),
     ValueError, r"train-images-idx3-ubyte"),
    ("mnist-label-out-of-range", lambda t: mnist.load_data(_mnist_folder(t, train_labels=_idx([0, 1, 12]))), ValueError,
     r"labels must be 0..9; label 2 is 12"),
    ("mnist-count-mismatch", lambda t: mnist.load_data(_mnist_folder(t, train_labels=_idx([0, 1]))), ValueError,
     r"holds 2 labels but .* holds 3 images"),
    ("mnist-header-huge-dims", lambda t: mnist.load_data(_mnist_folder(
        t, train_images=struct.pack(">IIII", 0x0803, 2**31, 2**31, 2**31) + b"\0" * 8)), ValueError,
     r"train-images-idx3-ubyte"),
    ("mnist-bad-gzip", lambda t: mnist.load_data(_mnist_folder(t, gzipped_train_images=b"not gzip")), ValueError,
     r"train-images-idx3-ubyte.gz: not a valid gzip file"),
    ("cifar-path-int", lambda t: cifar10.load_data(3), TypeError, r"`path` must be a str or os.PathLike folder"),
    ("cifar-empty-folder", lambda t: cifar10.load_data(t), FileNotFoundError, r"No CIFAR-10 batches found"),
    ("cifar-truncated-binary", lambda t: (
        [t.joinpath(n).write_bytes(b"\0" * 3073 * 2) for n in
         ("data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin")],
        t.joinpath("test_batch.bin").write_bytes(b"\0" * 100), cifar10.load_data(t)), ValueError, r"test_batch.bin"),
    ("digits-split-one", lambda t: digits.load_data(test_split=1.0), ValueError,
     r"`test_split` must be a number strictly between 0 and 1; received 1.0"),
    ("digits-split-bool", lambda t: digits.load_data(test_split=True), ValueError, r"`test_split` must be a number"),
    ("digits-seed-negative", lambda t: digits.load_data(seed=-1), ValueError, r"`seed` must be a non-negative integer"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in DATASET_CASES], ids=[c[0] for c in DATASET_CASES])
def test_dataset_loaders_reject(tmp_path, call, exc, match):
    with pytest.raises(exc, match=match):
        call(tmp_path)


# -- command line: exit code 2 for usage errors, 1 with one line for data/model errors -------------------------
CLI_CASES = [
    ("no-command", [], 2, r"usage: fastconv"),
    ("unknown-command", ["fly"], 2, r"invalid choice: 'fly'"),
    ("epochs-zero", ["train", "--epochs", "0"], 2, r"--epochs: expected a positive integer, got '0'"),
    ("batch-size-text", ["train", "--batch-size", "many"], 2, r"--batch-size: expected a positive integer, got 'many'"),
    ("learning-rate-nan", ["train", "--learning-rate", "nan"], 2, r"--learning-rate: expected a positive number"),
    ("validation-split-one", ["train", "--validation-split", "1"], 2, r"expected a number in \[0, 1\)"),
    ("seed-negative", ["train", "--seed", "-1"], 2, r"expected a non-negative integer"),
    ("threads-zero", ["train", "--threads", "0"], 2, r"--threads: expected a positive integer"),
    ("unknown-data", ["train", "--data", "imagenet"], 2, r"invalid choice: 'imagenet'"),
    ("mnist-without-dir", ["train", "--data", "mnist"], 2, r"--data mnist needs --data-dir DIR"),
    ("digits-with-dir", ["train", "--data-dir", "."], 2, r"--data-dir is only used with --data mnist or --data cifar10"),
    ("output-folder-missing", ["train", "--output", "/nonexistent-folder/m.fcz"], 1,
     r"fastconv train: error: --output '/nonexistent-folder/m.fcz': the folder '/nonexistent-folder' does not exist"),
    ("mnist-empty-dir", ["train", "--data", "mnist", "--data-dir", "{tmp}"], 1, r"fastconv train: error: MNIST files missing"),
    ("evaluate-missing-model", ["evaluate", "{tmp}/absent.fcz"], 1, r"fastconv evaluate: error: model file not found"),
    ("evaluate-not-a-model", ["evaluate", "{tmp}/junk.fcz"], 1, r"fastconv evaluate: error: cannot load the model"),
]


@pytest.mark.parametrize("argv,code,match", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_rejects(tmp_path, capsys, argv, code, match):
    (tmp_path / "junk.fcz").write_bytes(b"junk")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        result = cli.main(argv)
    except SystemExit as exc:  # argparse's usage errors
        result = exc.code
    assert result == code
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert "Traceback" not in err


def test_case_counts():
    """The tables above hold the documented number of distinct cases (docs/robustness.md)."""
    total = len(KERNEL_CASES) + len(LAYER_CASES) + len(MODEL_CASES) + len(FILE_CASES) + len(DATASET_CASES) + len(CLI_CASES)
    ids = [c[0] for table in (KERNEL_CASES, LAYER_CASES, MODEL_CASES, FILE_CASES, DATASET_CASES, CLI_CASES)
           for c in table]
    assert len(ids) == total
    assert total >= 100


# -- NaN/Inf reach the kernels unchanged: they propagate as in the reference, never crash -----------------------
def test_kernels_propagate_nan_and_inf_like_the_reference():
    """The kernels do not scan for NaN/Inf (fit/predict/evaluate do, see MODEL_CASES): a NaN or
    an Inf in x reaches the same outputs, as NaN/Inf, on both backends."""
    from fastconv import ops, reference

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 7, 4))
    x[0, 1, 2, 3] = np.nan
    x[1, 5, 5, 0] = np.inf
    kernel = rng.standard_normal((3, 3, 4, 5))
    calls = [("conv2d_forward", (x, kernel)), ("max_pool2d_forward", (x, 3, 2, "same")),
             ("avg_pool2d_forward", (x, 2)), ("global_max_pool2d_forward", (x,)),
             ("global_avg_pool2d_forward", (x,)),
             ("batch_norm_forward_training", (x, np.ones(4), np.zeros(4))),
             ("batch_norm_forward_inference", (x, np.ones(4), np.zeros(4), np.zeros(4), np.ones(4)))]
    with np.errstate(invalid="ignore"):
        for fn, args in calls:
            for got, want in zip(_flatten(getattr(ops, fn)(*args)), _flatten(getattr(reference, fn)(*args))):
                # Non-finite exactly where the reference is (a mean over +inf and finite values may
                # come out as inf or, from a shifted sum, NaN: both say "not a number you can use").
                finite = np.isfinite(want)
                np.testing.assert_array_equal(np.isfinite(got), finite, err_msg=fn)
                assert not finite.all(), fn  # the case is not vacuous
                np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10, err_msg=fn)


# -- unusual but valid layouts: same answers as contiguous input, inputs never written ----------------------
def _layouts(a):
    """(name, view) of `a` as C-contiguous copy, Fortran-ordered, strided (non-contiguous), read-only."""
    strided = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)[..., ::2]
    strided[...] = a
    read_only = a.copy()
    read_only.flags.writeable = False
    return [("fortran", np.asfortranarray(a)), ("strided", strided), ("read-only", read_only),
            ("reversed", a[::-1].copy()[::-1])]


def _op_calls(rng, dtype):
    x = rng.standard_normal((3, 7, 6, 4)).astype(dtype)
    k = rng.standard_normal((3, 2, 2, 6)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    dy_conv = rng.standard_normal((3, 4, 3, 6)).astype(dtype)
    dy_pool = rng.standard_normal((3, 4, 3, 4)).astype(dtype)
    dy_glob = rng.standard_normal((3, 4)).astype(dtype)
    g, beta = rng.random(4).astype(dtype) + 0.5, rng.standard_normal(4).astype(dtype)
    mean, var = rng.standard_normal(4).astype(dtype), rng.random(4).astype(dtype) + 0.1
    rows = rng.standard_normal((9, 4)).astype(dtype)
    dk = rng.standard_normal((4, 3)).astype(dtype)
    conv = dict(strides=2, padding="same", groups=2)
    return [
        ("conv2d_forward", (x, k, b), conv),
        ("conv2d_backward", (dy_conv, x, k), conv),
        ("max_pool2d_forward", (x, 3, 2, "same"), {}),
        ("max_pool2d_backward", (dy_pool, x, 3, 2, "same"), {}),
        ("avg_pool2d_forward", (x, 3, 2, "same"), {}),
        ("avg_pool2d_backward", (dy_pool, x.shape, 3, 2, "same"), {}),
        ("global_avg_pool2d_forward", (x,), {}),
        ("global_avg_pool2d_backward", (dy_glob, x.shape), {}),
        ("global_max_pool2d_forward", (x,), {}),
        ("global_max_pool2d_backward", (dy_glob, x), {}),
        ("batch_norm_forward_training", (x, g, beta), {}),
        ("batch_norm_forward_inference", (x, g, beta, mean, var), {}),
        ("batch_norm_backward", (x[..., ::-1], x, g, mean, var), {}),
        ("dense_forward", (rows, dk, b[:3]), {}),
        ("dense_backward", (rows[:, :3], rows, dk), {}),
    ]


def _flatten(result):
    if isinstance(result, tuple):
        return [r for r in result if r is not None]
    return [result]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_give_the_same_answer_for_any_layout(kernels, dtype):
    rng = np.random.default_rng(5)
    for fn, args, kwargs in _op_calls(rng, dtype):
        want = _flatten(getattr(kernels, fn)(*args, **kwargs))
        arrays = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]
        for layout in range(4):
            changed = list(args)
            originals = {}
            for i in arrays:
                changed[i] = _layouts(args[i])[layout][1]
                originals[i] = changed[i].copy()
            got = _flatten(getattr(kernels, fn)(*changed, **kwargs))
            for g, w in zip(got, want):
                message = f"{fn} {_layouts(args[0])[layout][0]}"
                if kernels.__name__ == "fastconv.ops":  # bit-identical: the kernels copy to C order
                    np.testing.assert_array_equal(g, w, err_msg=message)
                else:  # the NumPy spec's einsum/BLAS paths may round differently per layout
                    np.testing.assert_allclose(g, w, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                               atol=1e-5 if dtype == np.float32 else 1e-12, err_msg=message)
            for i in arrays:  # the kernels never write into their inputs
                np.testing.assert_array_equal(changed[i], originals[i], err_msg=f"{fn} wrote into argument {i}")


def test_integer_inputs_are_converted_not_truncated(kernels):
    x = np.arange(2 * 5 * 5 * 3).reshape(2, 5, 5, 3) % 7 - 3
    k = (np.arange(2 * 2 * 3 * 4).reshape(2, 2, 3, 4) % 5 - 2).astype(np.int16)
    got = kernels.conv2d_forward(x, k)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, kernels.conv2d_forward(x.astype(np.float64), k.astype(np.float64)))
    pooled = kernels.avg_pool2d_forward(np.array([[[[1], [2]], [[2], [2]]]], np.uint8), 2)
    assert pooled.dtype == np.float64 and pooled[0, 0, 0, 0] == 1.75


def _small_model(seed):
    fastconv.utils.set_random_seed(seed)
    model = Sequential([L.Conv2D(3, 3, padding="same", activation="relu"), L.BatchNormalization(),
                        L.MaxPooling2D(), L.Flatten(), L.Dense(3, activation="softmax")], input_shape=(6, 6, 2))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("layout", ["fortran", "strided", "read-only", "reversed"])
def test_model_fit_and_predict_accept_any_layout_and_never_write_user_arrays(layout):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 6, 6, 2)).astype(F32)
    y = rng.integers(0, 3, 20)
    reference_model = _small_model(3)
    reference_model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    want = reference_model.predict(x)

    x_view = dict(_layouts(x))[layout]
    y_view = dict(_layouts(y[:, None]))[layout][:, 0]
    x_before, y_before = x_view.copy(), y_view.copy()
    model = _small_model(3)
    model.fit(x_view, y_view, batch_size=8, epochs=2, verbose=0, validation_data=(x_view, y_view))
    got = model.predict(x_view)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(x_view, x_before)
    np.testing.assert_array_equal(y_view, y_before)
    for a, b in zip(model.get_weights(), reference_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_fit_converts_integer_images():
    rng = np.random.default_rng(4)
    x_int = rng.integers(0, 256, (12, 6, 6, 2)).astype(np.uint8)
    y = rng.integers(0, 3, 12)
    a, b = _small_model(0), _small_model(0)
    a.fit(x_int, y, epochs=1, verbose=0, shuffle=False)
    b.fit(x_int.astype(F32), y, epochs=1, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
