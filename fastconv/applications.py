"""Classic CNN architectures as ready-to-train `Sequential` models (`fastconv.applications`).

    model = fastconv.applications.LeNet5()                      # 32x32x1, 61,706 parameters
    model = fastconv.applications.AlexNet()                     # 224x224x3, 62,378,344 parameters
    model = fastconv.applications.AlexNet((32, 32, 3), 10, width=0.25)   # CIFAR-10 sized
    model = fastconv.applications.VGGSmall((32, 32, 3), 10)

The models are returned uncompiled, with freshly initialised weights (no pre-trained weights
are shipped or downloaded); `fastconv.utils.set_random_seed` makes the initialisation
reproducible. Layer names are fixed ("c1", "conv1", "block1_conv1", "predictions", ...) so
that `model.get_layer(name)` finds them, e.g. to freeze a base for transfer learning.
"""
import numbers

from .layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
)
from .models import Sequential


def _check_input_shape(input_shape, model_name, min_size, hint=""):
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != 3 or isinstance(input_shape, str)
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
                       for s in shape)):
        raise ValueError(f"{model_name}: `input_shape` must be (height, width, channels) with "
                         f"positive ints; received input_shape={input_shape!r}.")
    height, width, _ = (int(s) for s in shape)
    if min(height, width) < min_size:
        raise ValueError(f"{model_name}: input images must be at least {min_size}x{min_size} "
                         f"pixels; received input_shape={tuple(shape)}.{hint}")
    return tuple(int(s) for s in shape)


def _check_num_classes(num_classes, model_name):
    if (isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral)
            or num_classes < 1):
        raise ValueError(f"{model_name}: `num_classes` must be a positive integer; received "
                         f"num_classes={num_classes!r}.")
    return int(num_classes)


def _check_positive_number(value, name, model_name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
        raise ValueError(f"{model_name}: `{name}` must be a positive number; received "
                         f"{name}={value!r}.")
    return float(value)


# -- LeNet-5 ---------------------------------------------------------------------------------------
def LeNet5(input_shape=(32, 32, 1), num_classes=10, dtype="float32"):
    """LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998), layer by layer as in the paper's table.

    | layer       | fastconv layer                          | output   | parameters |
    |-------------|-----------------------------------------|----------|-----------:|
    | C1          | Conv2D(6, 5x5, tanh)                    | 28x28x6  |        156 |
    | S2          | AveragePooling2D(2)                     | 14x14x6  |          0 |
    | C3          | Conv2D(16, 5x5, tanh)                   | 10x10x16 |      2,416 |
    | S4          | AveragePooling2D(2)                     | 5x5x16   |          0 |
    | C5          | Conv2D(120, 5x5, tanh) + Flatten        | 120      |     48,120 |
    | F6          | Dense(84, tanh)                         | 84       |     10,164 |
    | predictions | Dense(num_classes, softmax)             | 10       |        850 |

    Total for 32x32x1 input and 10 classes: **61,706** parameters.

    Differences from the 1998 network, all the usual modern simplifications: C3 connects to
    all 6 maps of S2 (the paper's sparse connection table gives 1,516 parameters instead of
    2,416); S2/S4 are plain averages (the paper multiplies each map by a trainable coefficient
    and adds a bias: 12 and 32 more parameters) followed by no squashing; the activation is
    tanh (not 1.7159 tanh(2a/3)); the output is a softmax Dense layer instead of the
    Euclidean RBF units. C5 is a 5x5 convolution as in the paper: on 32x32 input its output is
    1x1x120, equivalent to a dense layer on S4.

    MNIST's 28x28 digits are padded to 32x32 (2 pixels of zeros per side) as LeCun et al. did.

    Args:
        input_shape: (height, width, channels), at least 32x32 (C5's 5x5 window must fit on
            S4; larger inputs give C5 more than one output position, which are flattened).
        num_classes: number of output classes.
        dtype: dtype of the weights and computations ("float32" or "float64").

    Returns:
        An uncompiled, built `Sequential` named "lenet5".
    """
    input_shape = _check_input_shape(input_shape, "LeNet5", 32,
                                     " Pad 28x28 MNIST images to 32x32, e.g. with "
                                     "np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))).")
    num_classes = _check_num_classes(num_classes, "LeNet5")
    common = {"dtype": dtype}
    return Sequential([
        Conv2D(6, 5, activation="tanh", name="c1", **common),
        AveragePooling2D(2, name="s2", **common),
        Conv2D(16, 5, activation="tanh", name="c3", **common),
        AveragePooling2D(2, name="s4", **common),
        Conv2D(120, 5, activation="tanh", name="c5", **common),
        Flatten(name="flatten", **common),
        Dense(84, activation="tanh", name="f6", **common),
        Dense(num_classes, activation="softmax", name="predictions", **common),
    ], input_shape=input_shape, name="lenet5")


# -- AlexNet ---------------------------------------------------------------------------------------
_ALEXNET_STEMS = ("auto", "imagenet", "small")
_IMAGENET_STEM_MIN_SIZE = 63  # smallest input for which conv1 (11x11/4) + 3 poolings fit
_SMALL_STEM_MIN_SIZE = 15


def _scaled(channels, width, multiple=1):
    """`channels * width`, rounded to a positive multiple of `multiple`."""
    return max(multiple, int(round(channels * width / multiple)) * multiple)


def AlexNet(input_shape=(224, 224, 3), num_classes=1000, width=1.0, stem="auto",
            batch_norm=False, grouped=False, dropout=0.5, dtype="float32"):
    """AlexNet (Krizhevsky, Sutskever & Hinton, 2012): 5 convolutions and 3 dense layers.

    | layer       | fastconv layer                                  | output (224x224x3 input) |
    |-------------|-------------------------------------------------|--------------------------|
    | conv1       | Conv2D(96, 11x11, strides 4, padding 2, ReLU)   | 55x55x96                 |
    | pool1       | MaxPooling2D(3, strides 2)                      | 27x27x96                 |
    | conv2       | Conv2D(256, 5x5, "same", ReLU)                  | 27x27x256                |
    | pool2       | MaxPooling2D(3, strides 2)                      | 13x13x256                |
    | conv3       | Conv2D(384, 3x3, "same", ReLU)                  | 13x13x384                |
    | conv4       | Conv2D(384, 3x3, "same", ReLU)                  | 13x13x384                |
    | conv5       | Conv2D(256, 3x3, "same", ReLU)                  | 13x13x256                |
    | pool5       | MaxPooling2D(3, strides 2) + Flatten            | 9216                     |
    | fc6         | Dense(4096, ReLU) + Dropout(0.5)                | 4096                     |
    | fc7         | Dense(4096, ReLU) + Dropout(0.5)                | 4096                     |
    | predictions | Dense(num_classes, softmax)                     | 1000                     |

    Parameters with the defaults: **62,378,344** (one tower). With `grouped=True`, conv2, conv4
    and conv5 are split in two groups as on the paper's two GPUs: **60,965,224**.

    Padding 2 on conv1 makes 224x224 input give the paper's 55x55 maps (the paper's own figure
    says 224 but the arithmetic needs 227 without padding). Local response normalisation is not
    provided; `batch_norm=True` inserts BatchNormalization after each convolution instead (the
    convolutions then have no bias).

    Small inputs (`stem="small"`, chosen by `stem="auto"` when the input is smaller than 63x63,
    e.g. CIFAR-10's 32x32): exactly one thing changes, conv1 becomes a 5x5 convolution with
    stride 1 and "same" padding (instead of 11x11, stride 4, padding 2); the pooling layers,
    conv2-conv5 and the dense layers are unchanged. On 32x32 input the maps are 32 -> pool1
    15 -> pool2 7 -> pool5 3, so the flattened features are 3x3x(256 * width).
    `AlexNet((32, 32, 3), 10, width=0.25)` has 24-64-96-96-64 filters, 1024-unit dense layers
    and 1,884,778 parameters.

    Args:
        input_shape: (height, width, channels).
        num_classes: number of output classes.
        width: multiplier of every layer's size: convolution filters (96, 256, 384, 384, 256)
            and dense units (4096, 4096) are multiplied by it and rounded (to even numbers with
            `grouped=True`); the output layer keeps `num_classes`.
        stem: "imagenet" (11x11/4 conv1, needs at least 63x63 input), "small" (5x5/1 conv1,
            at least 15x15) or "auto" (imagenet when the input is at least 63x63, else small).
        batch_norm: BatchNormalization after each convolution, before ReLU.
        grouped: two groups in conv2, conv4 and conv5, as in the 2012 two-GPU network.
        dropout: dropout rate after fc6 and fc7 (0 disables it).
        dtype: dtype of the weights and computations.

    Returns:
        An uncompiled, built `Sequential` named "alexnet".
    """
    if stem not in _ALEXNET_STEMS:
        raise ValueError(f"AlexNet: `stem` must be one of {_ALEXNET_STEMS}; received stem={stem!r}.")
    input_shape = _check_input_shape(input_shape, "AlexNet", 1)
    num_classes = _check_num_classes(num_classes, "AlexNet")
    width = _check_positive_number(width, "width", "AlexNet")
    if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
            or not 0 <= dropout < 1):
        raise ValueError(f"AlexNet: `dropout` must be a number in [0, 1); received dropout={dropout!r}.")
    for flag, value in (("batch_norm", batch_norm), ("grouped", grouped)):
        if not isinstance(value, bool):
            raise TypeError(f"AlexNet: `{flag}` must be True or False; received {flag}={value!r}.")
    if stem == "auto":
        stem = "imagenet" if min(input_shape[:2]) >= _IMAGENET_STEM_MIN_SIZE else "small"
    min_size = _IMAGENET_STEM_MIN_SIZE if stem == "imagenet" else _SMALL_STEM_MIN_SIZE
    _check_input_shape(input_shape, f"AlexNet(stem={stem!r})", min_size,
                       " Use stem='small' for small images." if stem == "imagenet" else "")

    groups = 2 if grouped else 1
    multiple = groups
    filters = [_scaled(c, width, multiple) for c in (96, 256, 384, 384, 256)]
    units = _scaled(4096, width)
    common = {"dtype": dtype}

    def conv(index, kernel_size, strides=1, padding="same", conv_groups=1):
        block = [Conv2D(filters[index - 1], kernel_size, strides=strides, padding=padding,
                        groups=conv_groups, use_bias=not batch_norm,
                        activation=None if batch_norm else "relu", name=f"conv{index}", **common)]
        if batch_norm:
            block += [BatchNormalization(name=f"conv{index}_bn", **common),
                      Activation("relu", name=f"conv{index}_relu", **common)]
        return block

    def pool(name):
        return [MaxPooling2D(3, strides=2, name=name, **common)]

    if stem == "imagenet":
        layers = conv(1, 11, strides=4, padding=2)
    else:
        layers = conv(1, 5, strides=1, padding="same")
    layers += pool("pool1") + conv(2, 5, conv_groups=groups) + pool("pool2")
    layers += conv(3, 3) + conv(4, 3, conv_groups=groups) + conv(5, 3, conv_groups=groups)
    layers += pool("pool5") + [Flatten(name="flatten", **common)]
    for name in ("fc6", "fc7"):
        layers.append(Dense(units, activation="relu", name=name, **common))
        if dropout:
            layers.append(Dropout(dropout, name=f"{name}_dropout", **common))
    layers.append(Dense(num_classes, activation="softmax", name="predictions", **common))
    return Sequential(layers, input_shape=input_shape, name="alexnet")


# -- VGG-style -------------------------------------------------------------------------------------
def VGGSmall(input_shape=(32, 32, 3), num_classes=10, filters=(32, 64, 128), batch_norm=True,
             dense_units=128, dropout=0.5, dtype="float32"):
    """A small VGG-style network (Simonyan & Zisserman, 2014) for 32x32 images or smaller.

    One block per entry of `filters`: two 3x3 "same" convolutions with ReLU (each followed
    by BatchNormalization when `batch_norm`, the convolutions then having no bias), then 2x2
    max pooling. Then Flatten, Dense(dense_units, ReLU), Dropout(dropout) and a softmax
    Dense(num_classes).

    With the defaults on 32x32x3 input (maps 32 -> 16 -> 8 -> 4, 2,048 flattened features):
    **551,914** parameters, of which 896 are BatchNormalization moving statistics.

    Args:
        input_shape: (height, width, channels); each side at least 2**len(filters).
        num_classes: number of output classes.
        filters: filters of the convolutions of each block (one block per entry).
        batch_norm: BatchNormalization after each convolution (before ReLU).
        dense_units: units of the hidden dense layer.
        dropout: dropout rate before the output layer (0 disables it).
        dtype: dtype of the weights and computations.

    Returns:
        An uncompiled, built `Sequential` named "vgg_small".
    """
    try:
        filters = tuple(filters)
    except TypeError:
        raise ValueError(f"VGGSmall: `filters` must be a sequence of positive ints; received "
                         f"filters={filters!r}.") from None
    if not filters or not all(isinstance(f, numbers.Integral) and not isinstance(f, bool) and f > 0
                              for f in filters):
        raise ValueError(f"VGGSmall: `filters` must be a non-empty sequence of positive ints; "
                         f"received filters={filters!r}.")
    input_shape = _check_input_shape(input_shape, "VGGSmall", 2 ** len(filters),
                                     f" ({len(filters)} blocks halve the size {len(filters)} times)")
    num_classes = _check_num_classes(num_classes, "VGGSmall")
    if isinstance(dense_units, bool) or not isinstance(dense_units, numbers.Integral) or dense_units < 1:
        raise ValueError(f"VGGSmall: `dense_units` must be a positive integer; received "
                         f"dense_units={dense_units!r}.")
    if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
            or not 0 <= dropout < 1):
        raise ValueError(f"VGGSmall: `dropout` must be a number in [0, 1); received dropout={dropout!r}.")
    if not isinstance(batch_norm, bool):
        raise TypeError(f"VGGSmall: `batch_norm` must be True or False; received {batch_norm!r}.")

    common = {"dtype": dtype}
    layers = []
    for block, block_filters in enumerate(filters, start=1):
        for conv in (1, 2):
            name = f"block{block}_conv{conv}"
            if batch_norm:
                layers += [Conv2D(int(block_filters), 3, padding="same", use_bias=False,
                                  name=name, **common),
                           BatchNormalization(name=f"{name}_bn", **common),
                           Activation("relu", name=f"{name}_relu", **common)]
            else:
                layers.append(Conv2D(int(block_filters), 3, padding="same", activation="relu",
                                     name=name, **common))
        layers.append(MaxPooling2D(2, name=f"block{block}_pool", **common))
    layers += [Flatten(name="flatten", **common),
               Dense(int(dense_units), activation="relu", name="fc", **common)]
    if dropout:
        layers.append(Dropout(dropout, name="fc_dropout", **common))
    layers.append(Dense(num_classes, activation="softmax", name="predictions", **common))
    return Sequential(layers, input_shape=input_shape, name="vgg_small")


__all__ = ["AlexNet", "LeNet5", "VGGSmall"]
