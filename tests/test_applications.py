"""The model zoo: LeNet-5, AlexNet (full, grouped, BN, CIFAR-sized) and VGGSmall.

Parameter counts are worked out here from the published layer tables (kernel area x input
channels x filters + biases), not read from the models, and every model trains."""
import numpy as np
import pytest

import fastconv
from fastconv.applications import AlexNet, LeNet5, VGGSmall


def conv_params(kernel, in_channels, filters, bias=True, groups=1):
    return kernel * kernel * (in_channels // groups) * filters + (filters if bias else 0)


def dense_params(inputs, units):
    return inputs * units + units


def valid_size(size, kernel, stride=1, padding=0):
    return (size + 2 * padding - kernel) // stride + 1


def _shapes(model):
    return {layer.name: tuple(layer.output_shape) for layer in model.layers}


def _trains(model, x, y, steps=1, optimizer="sgd"):
    """Run optimizer steps on one batch; return (first loss, last loss) and check weights moved."""
    model.compile(optimizer, "sparse_categorical_crossentropy")
    before = [w.copy() for w in model.trainable_weights]
    losses = [float(np.atleast_1d(model.train_on_batch(x, y))[0]) for _ in range(steps)]
    assert all(np.isfinite(losses))
    changed = [not np.array_equal(b, a) for b, a in zip(before, model.trainable_weights)]
    assert all(changed), "every trainable weight gets a gradient step"
    return losses[0], losses[-1]


# -- LeNet-5 ---------------------------------------------------------------------------------------
def test_lenet5_layer_table_and_parameter_count():
    model = LeNet5()
    expected = (conv_params(5, 1, 6)          # C1: 156
                + conv_params(5, 6, 16)       # C3 with full connectivity: 2,416
                + conv_params(5, 16, 120)     # C5: 48,120
                + dense_params(120, 84)       # F6: 10,164
                + dense_params(84, 10))       # output: 850
    assert expected == 61_706
    assert model.count_params() == 61_706
    assert _shapes(model) == {"c1": (28, 28, 6), "s2": (14, 14, 6), "c3": (10, 10, 16),
                              "s4": (5, 5, 16), "c5": (1, 1, 120), "flatten": (120,),
                              "f6": (84,), "predictions": (10,)}
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "AveragePooling2D", "Conv2D", "AveragePooling2D", "Conv2D", "Flatten", "Dense", "Dense"]
    assert model.layers[0].get_config()["activation"] == "tanh"
    assert model.layers[-1].get_config()["activation"] == "softmax"


def test_lenet5_learns_a_batch():
    fastconv.utils.set_random_seed(0)
    model = LeNet5(num_classes=4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32, 32, 1)).astype(np.float32)
    y = np.arange(8) % 4
    first, last = _trains(model, x, y, steps=8, optimizer="adam")
    assert last < first
    assert model.predict(x).shape == (8, 4)


def test_lenet5_options_and_errors():
    model = LeNet5(input_shape=(36, 36, 3), num_classes=5, dtype="float64")
    assert model.layers[0].kernel.dtype == np.float64
    assert _shapes(model)["c5"] == (2, 2, 120)  # 36 -> C1 32 -> S2 16 -> C3 12 -> S4 6 -> C5 2
    assert model.get_layer("f6").kernel.shape == (2 * 2 * 120, 84)
    assert model.output_shape == (None, 5)
    with pytest.raises(ValueError, match=r"at least 32x32 .*\(28, 28, 1\).*Pad 28x28"):
        LeNet5(input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match="`input_shape` must be \\(height, width, channels\\)"):
        LeNet5(input_shape=(32, 32))
    with pytest.raises(ValueError, match="`num_classes` must be a positive integer; received num_classes=0"):
        LeNet5(num_classes=0)


# -- AlexNet ---------------------------------------------------------------------------------------
def _alexnet_count(filters, units, classes, flat_side, first_kernel, channels=3, groups=1, bn=False):
    c1, c2, c3, c4, c5 = filters
    total = (conv_params(first_kernel, channels, c1, bias=not bn)
             + conv_params(5, c1, c2, bias=not bn, groups=groups)
             + conv_params(3, c2, c3, bias=not bn)
             + conv_params(3, c3, c4, bias=not bn, groups=groups)
             + conv_params(3, c4, c5, bias=not bn, groups=groups)
             + dense_params(flat_side * flat_side * c5, units)
             + dense_params(units, units)
             + dense_params(units, classes))
    if bn:
        total += 4 * sum(filters)  # gamma, beta, moving mean, moving variance
    return total


def test_alexnet_2012_structure_parameter_count_and_one_step():
    # 224 + 2*2 padding: conv1 (11x11/4) -> 55, pools (3x3/2) -> 27 -> 13 -> 6.
    side = valid_size(224, 11, 4, padding=2)
    assert side == 55
    pooled = valid_size(valid_size(valid_size(side, 3, 2), 3, 2), 3, 2)
    assert pooled == 6
    expected = _alexnet_count((96, 256, 384, 384, 256), 4096, 1000, pooled, first_kernel=11)
    assert expected == 62_378_344
    model = AlexNet()
    assert model.count_params() == expected
    shapes = _shapes(model)
    assert shapes["conv1"] == (55, 55, 96) and shapes["pool1"] == (27, 27, 96)
    assert shapes["conv2"] == (27, 27, 256) and shapes["pool2"] == (13, 13, 256)
    assert shapes["conv5"] == (13, 13, 256) and shapes["flatten"] == (9216,)
    assert [layer.rate for layer in model.layers if type(layer).__name__ == "Dropout"] == [0.5, 0.5]
    assert model.layers[0].strides == (4, 4)
    rng = np.random.default_rng(1)
    _trains(model, rng.random((2, 224, 224, 3), dtype=np.float32), np.array([3, 999]))


def test_alexnet_two_gpu_grouping():
    expected = _alexnet_count((96, 256, 384, 384, 256), 4096, 1000, 6, first_kernel=11, groups=2)
    assert expected == 60_965_224  # the paper's "60 million parameters"
    model = AlexNet(grouped=True, width=0.125, num_classes=10)
    assert [layer.groups for layer in model.layers if type(layer).__name__ == "Conv2D"] == [1, 2, 1, 2, 2]
    assert model.count_params() == _alexnet_count((12, 32, 48, 48, 32), 512, 10, 6,
                                                  first_kernel=11, groups=2)


def test_alexnet_small_for_cifar10():
    model = AlexNet(input_shape=(32, 32, 3), num_classes=10, width=0.25)
    # Small stem: conv1 5x5 stride 1 "same" -> 32; pools 3x3/2: 32 -> 15 -> 7 -> 3.
    conv1 = model.get_layer("conv1")
    assert conv1.kernel_size == (5, 5) and conv1.strides == (1, 1)
    shapes = _shapes(model)
    assert shapes["conv1"] == (32, 32, 24) and shapes["pool1"] == (15, 15, 24)
    assert shapes["pool2"] == (7, 7, 64) and shapes["pool5"] == (3, 3, 64)
    expected = _alexnet_count((24, 64, 96, 96, 64), 1024, 10, 3, first_kernel=5)
    assert expected == 1_884_778
    assert model.count_params() == expected
    rng = np.random.default_rng(2)
    x = rng.random((6, 32, 32, 3), dtype=np.float32)
    _trains(model, x, np.arange(6) % 10)


def test_alexnet_batch_norm_variant():
    model = AlexNet(input_shape=(32, 32, 3), num_classes=10, width=0.125, batch_norm=True, dropout=0)
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["conv1", "conv1_bn", "conv1_relu"] and "fc6_dropout" not in names
    assert model.get_layer("conv1").use_bias is False
    assert model.count_params() == _alexnet_count((12, 32, 48, 48, 32), 512, 10, 3, first_kernel=5, bn=True)
    rng = np.random.default_rng(3)
    _trains(model, rng.random((4, 32, 32, 3), dtype=np.float32), np.array([0, 1, 2, 3]))


def test_alexnet_stem_choice_and_errors():
    assert AlexNet((63, 63, 3), 10, width=0.0625).get_layer("conv1").kernel_size == (11, 11)
    assert AlexNet((62, 62, 3), 10, width=0.0625).get_layer("conv1").kernel_size == (5, 5)
    assert AlexNet((63, 63, 3), 10, width=0.0625, stem="small").get_layer("conv1").kernel_size == (5, 5)
    with pytest.raises(ValueError, match=r"AlexNet\(stem='imagenet'\): input images must be at "
                                         r"least 63x63.*stem='small'"):
        AlexNet((32, 32, 3), 10, stem="imagenet")
    with pytest.raises(ValueError, match="at least 15x15"):
        AlexNet((14, 14, 3), 10)
    with pytest.raises(ValueError, match="`stem` must be one of"):
        AlexNet(stem="tiny")
    with pytest.raises(ValueError, match="`width` must be a positive number; received width=0"):
        AlexNet(width=0)
    with pytest.raises(ValueError, match="`dropout` must be a number in \\[0, 1\\)"):
        AlexNet((32, 32, 3), 10, dropout=1.0)
    with pytest.raises(TypeError, match="`grouped` must be True or False"):
        AlexNet((32, 32, 3), 10, grouped=1)


# -- VGGSmall --------------------------------------------------------------------------------------
def test_vgg_small_parameter_count_and_training():
    # Blocks of two 3x3 convs (no bias, BN: 4 weights per channel) and 2x2 pooling: 32->16->8->4.
    chans, expected = 3, 0
    for filters in (32, 64, 128):
        expected += conv_params(3, chans, filters, bias=False) + 4 * filters
        expected += conv_params(3, filters, filters, bias=False) + 4 * filters
        chans = filters
    expected += dense_params(4 * 4 * 128, 128) + dense_params(128, 10)
    assert expected == 551_914
    model = VGGSmall()
    assert model.count_params() == expected
    assert _shapes(model)["block3_pool"] == (4, 4, 128)
    rng = np.random.default_rng(4)
    _trains(model, rng.random((4, 32, 32, 3), dtype=np.float32), np.array([1, 3, 5, 7]))


def test_vgg_small_without_batch_norm_on_digits_sized_input():
    model = VGGSmall(input_shape=(8, 8, 1), num_classes=10, filters=(8, 16), batch_norm=False,
                     dense_units=32, dropout=0)
    expected = (conv_params(3, 1, 8) + conv_params(3, 8, 8) + conv_params(3, 8, 16)
                + conv_params(3, 16, 16) + dense_params(2 * 2 * 16, 32) + dense_params(32, 10))
    assert model.count_params() == expected
    fastconv.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    first, last = _trains(model, rng.random((10, 8, 8, 1), dtype=np.float32), np.arange(10),
                          steps=10, optimizer="adam")
    assert last < first


def test_vgg_small_errors():
    with pytest.raises(ValueError, match="at least 8x8"):
        VGGSmall(input_shape=(4, 4, 1))
    with pytest.raises(ValueError, match="`filters` must be a non-empty sequence"):
        VGGSmall(filters=())
    with pytest.raises(ValueError, match="`dense_units` must be a positive integer"):
        VGGSmall(dense_units=0)
