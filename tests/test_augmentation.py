"""Data augmentation and preprocessing layers: identity at inference, seeded draws, each
transform against an independent NumPy computation (a per-pixel loop over np.pad-extended
images for the sampler; np.rot90/np.roll/block means for exact cases), exact backward passes
against finite differences, Normalization.adapt, and use inside Sequential (fit, save, load)."""
import math

import numpy as np
import pytest

import fastconv
from fastconv import layers, utils
from fastconv.layers import _image_ops
from test_layers_gradcheck import _backends, gradcheck

F64 = {"dtype": "float64"}


def images(shape=(3, 7, 6, 2), seed=0, low=0.0, high=255.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


ALL_RANDOM = {
    "flip": lambda **kw: layers.RandomFlip(**kw),
    "flip_horizontal": lambda **kw: layers.RandomFlip("horizontal", **kw),
    "translation": lambda **kw: layers.RandomTranslation(0.3, (-0.2, 0.4), **kw),
    "rotation": lambda **kw: layers.RandomRotation(0.2, **kw),
    "rotation_constant_nearest": lambda **kw: layers.RandomRotation(
        (-0.1, 0.3), fill_mode="constant", interpolation="nearest", fill_value=3.0, **kw),
    "zoom": lambda **kw: layers.RandomZoom(0.3, **kw),
    "zoom_wrap_two_factors": lambda **kw: layers.RandomZoom((-0.3, 0.1), (0.2, 0.5),
                                                            fill_mode="wrap", **kw),
    "translation_nearest_fill": lambda **kw: layers.RandomTranslation(0.5, 0.5, fill_mode="nearest", **kw),
    "crop_padded": lambda **kw: layers.RandomCrop(7, 6, padding=2, **kw),
    "brightness": lambda **kw: layers.RandomBrightness(0.3, **kw),
    "contrast": lambda **kw: layers.RandomContrast((0.5, 0.9), **kw),
}


# -- inference and seeding -------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ALL_RANDOM))
def test_identity_at_inference_random_in_training(name):
    layer = ALL_RANDOM[name](seed=3, **F64)
    x = images()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    changed = layer.forward(x, training=True)
    assert changed.shape == x.shape and not np.array_equal(changed, x)


@pytest.mark.parametrize("name", sorted(ALL_RANDOM))
def test_seeded_draws_are_reproducible(name):
    x = images((8, 7, 6, 2))  # 8 images: two flip draws coincide with probability 1/256
    a, b = ALL_RANDOM[name](seed=11, **F64), ALL_RANDOM[name](seed=11, **F64)
    first = a.forward(x, training=True)
    np.testing.assert_array_equal(first, b.forward(x, training=True))
    second = a.forward(x, training=True)
    assert not np.array_equal(first, second)  # the generator moves on
    # seed=None draws from fastconv's generator: reproducible with set_random_seed.
    unseeded = ALL_RANDOM[name](**F64)
    utils.set_random_seed(5)
    c = unseeded.forward(x, training=True)
    utils.set_random_seed(5)
    np.testing.assert_array_equal(unseeded.forward(x, training=True), c)
    # Each image gets its own draw: identical images come out differently.
    same = np.repeat(x[:1], 6, axis=0)
    out = ALL_RANDOM[name](seed=2, **F64).forward(same, training=True)
    assert any(not np.array_equal(out[0], out[i]) for i in range(1, 6))


# -- RandomFlip ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, allowed", [
    ("horizontal", {"none", "h"}), ("vertical", {"none", "v"}),
    ("horizontal_and_vertical", {"none", "h", "v", "hv"}),
])
def test_flip_modes(mode, allowed):
    x = images((400, 3, 4, 1))
    y = layers.RandomFlip(mode, seed=1, **F64).forward(x, training=True)
    seen = []
    for xi, yi in zip(x, y):
        options = {"none": xi, "h": xi[:, ::-1], "v": xi[::-1], "hv": xi[::-1, ::-1]}
        matches = [k for k, v in options.items() if np.array_equal(v, yi)]
        assert len(matches) == 1
        seen.append(matches[0])
    assert set(seen) == allowed
    for option in allowed:  # each outcome about equally likely (seeded, so deterministic)
        assert abs(seen.count(option) / len(seen) - 1 / len(allowed)) < 0.1


# -- the shared sampler against a per-pixel loop -----------------------------------------------------
_PAD_MODES = {"reflect": "symmetric", "wrap": "wrap", "nearest": "edge", "constant": "constant"}


def loop_sampler(x, matrices, out_hw, interpolation, fill_mode, fill_value):
    """Independent implementation: extend each image with np.pad by the fill mode, then read
    every output pixel with scalar arithmetic."""
    n, h, w, c = x.shape
    pad = 3 * max(h, w)
    kwargs = {"constant_values": fill_value} if fill_mode == "constant" else {}
    big = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=_PAD_MODES[fill_mode], **kwargs)
    out = np.zeros((n, out_hw[0], out_hw[1], c))
    for i in range(n):
        a0, a1, a2, b0, b1, b2 = matrices[i]
        for oy in range(out_hw[0]):
            for ox in range(out_hw[1]):
                sx, sy = a0 * ox + a1 * oy + a2, b0 * ox + b1 * oy + b2
                if interpolation == "nearest":
                    out[i, oy, ox] = big[i, math.floor(sy + 0.5) + pad, math.floor(sx + 0.5) + pad]
                    continue
                y0, x0 = math.floor(sy), math.floor(sx)
                fy, fx = sy - y0, sx - x0
                value = 0.0
                for dy, wy in ((0, 1 - fy), (1, fy)):
                    for dx, wx in ((0, 1 - fx), (1, fx)):
                        value = value + wy * wx * big[i, y0 + dy + pad, x0 + dx + pad]
                out[i, oy, ox] = value
    return out


@pytest.mark.parametrize("fill_mode", _image_ops.FILL_MODES)
@pytest.mark.parametrize("interpolation", _image_ops.INTERPOLATIONS)
def test_sampler_matches_per_pixel_loop(fill_mode, interpolation):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 5, 6, 2))
    angles = rng.uniform(-2, 2, 3)
    scale = rng.uniform(0.5, 1.6, 3)
    matrices = np.stack([scale * np.cos(angles), -np.sin(angles), rng.uniform(-4, 4, 3),
                         np.sin(angles), scale * np.cos(angles), rng.uniform(-4, 4, 3)], axis=1)
    plan = _image_ops.affine_plan(matrices, x.shape, (4, 7), interpolation, fill_mode)
    got = _image_ops.sample(x, plan, fill_value=1.5)
    expected = loop_sampler(x, matrices, (4, 7), interpolation, fill_mode, 1.5)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # The backward is the exact adjoint: <sample(x), r> = <x, sample_transpose(r)> + fill part.
    r = rng.standard_normal(got.shape)
    fill_part = 0.0 if plan.fill_weights is None else 1.5 * float(
        (plan.fill_weights.reshape(3, 4, 7, 1) * r).sum())
    assert float((got * r).sum()) == pytest.approx(
        float((x * _image_ops.sample_transpose(r, plan)).sum()) + fill_part, rel=1e-12)


# -- exact cases of the geometric layers ------------------------------------------------------------
@pytest.mark.parametrize("size", [5, 6])
def test_rotation_by_quarter_turns_is_exact(size):
    x = images((2, size, size, 3))
    quarter = layers.RandomRotation((0.25, 0.25), seed=0, **F64)
    np.testing.assert_allclose(quarter.forward(x, training=True), np.rot90(x, 1, axes=(1, 2)),
                               atol=1e-9)  # counter-clockwise, as Keras documents
    minus = layers.RandomRotation((-0.25, -0.25), seed=0, **F64)
    np.testing.assert_allclose(minus.forward(x, training=True), np.rot90(x, -1, axes=(1, 2)), atol=1e-9)
    half = layers.RandomRotation((0.5, 0.5), seed=0, **F64)
    np.testing.assert_allclose(half.forward(x, training=True), x[:, ::-1, ::-1], atol=1e-9)


def test_translation_by_whole_pixels():
    x = images((2, 8, 10, 1))
    down = layers.RandomTranslation((0.25, 0.25), (0.0, 0.0), fill_mode="constant", fill_value=-1.0,
                                    seed=0, **F64)  # 2 rows down
    expected = np.full_like(x, -1.0)
    expected[:, 2:] = x[:, :-2]
    np.testing.assert_allclose(down.forward(x, training=True), expected, atol=1e-9)
    left = layers.RandomTranslation(0.0, (-0.3, -0.3), fill_mode="wrap", seed=0, **F64)  # 3 columns
    np.testing.assert_allclose(left.forward(x, training=True), np.roll(x, -3, axis=2), atol=1e-9)
    reflect = layers.RandomTranslation((0.25, 0.25), 0.0, seed=0, **F64)  # default fill: reflect
    padded = np.pad(x, ((0, 0), (2, 0), (0, 0), (0, 0)), mode="symmetric")[:, :8]
    np.testing.assert_allclose(reflect.forward(x, training=True), padded, atol=1e-9)


def test_translation_by_half_pixel_is_bilinear():
    x = images((1, 4, 6, 1))
    half = layers.RandomTranslation(0.0, (1 / 12, 1 / 12), fill_mode="nearest", seed=0, **F64)
    y = half.forward(x, training=True)  # 0.5 px to the right: mean of a pixel and its left one
    left = np.concatenate([x[:, :, :1], x[:, :, :-1]], axis=2)
    np.testing.assert_allclose(y, 0.5 * (x + left), atol=1e-9)


def test_zoom():
    x = images((2, 5, 7, 2))
    np.testing.assert_allclose(layers.RandomZoom(0.0, seed=1, **F64).forward(x, training=True), x,
                               atol=1e-12)
    # Zoom by 2 about the centre of a 5x7 image: output pixel (x, y) reads 2 (x - c) + c.
    out = layers.RandomZoom((1.0, 1.0), fill_mode="constant", seed=1, **F64).forward(x, training=True)
    cy, cx = 2, 3
    for oy in range(5):
        for ox in range(7):
            sy, sx = 2 * (oy - cy) + cy, 2 * (ox - cx) + cx
            inside = 0 <= sy < 5 and 0 <= sx < 7
            np.testing.assert_allclose(out[:, oy, ox], x[:, sy, sx] if inside else 0.0, atol=1e-12)
    # width_factor=None keeps the aspect ratio; a separate width factor zooms independently.
    plan_rng = np.random.default_rng(0)
    m = layers.RandomZoom(0.4)._matrices(50, 5, 7, plan_rng)
    np.testing.assert_array_equal(m[:, 0], m[:, 4])
    assert m[:, 0].min() >= 0.6 and m[:, 0].max() <= 1.4
    m = layers.RandomZoom(0.4, (0.1, 0.2))._matrices(50, 5, 7, plan_rng)
    assert m[:, 0].min() >= 1.1 and m[:, 0].max() <= 1.2 and not np.allclose(m[:, 0], m[:, 4])


def test_rotation_angles_within_factor():
    m = layers.RandomRotation((-0.05, 0.1))._matrices(200, 6, 6, np.random.default_rng(1))
    angles = np.arctan2(m[:, 3], m[:, 0]) / (2 * np.pi)
    assert angles.min() >= -0.05 and angles.max() <= 0.1 and angles.max() - angles.min() > 0.1


def test_channels_first_matches_channels_last():
    x = images((3, 6, 5, 2))
    for make in (lambda **kw: layers.RandomRotation(0.2, **kw), lambda **kw: layers.RandomFlip(**kw),
                 lambda **kw: layers.RandomContrast(0.4, **kw),
                 lambda **kw: layers.RandomCrop(4, 3, padding=1, **kw)):
        last = make(seed=4, **F64).forward(x, training=True)
        first = make(seed=4, data_format="channels_first", **F64).forward(
            np.transpose(x, (0, 3, 1, 2)), training=True)
        np.testing.assert_allclose(np.transpose(first, (0, 2, 3, 1)), last, atol=1e-12)


# -- RandomCrop --------------------------------------------------------------------------------------
def _find_window(big, window):
    hits = [(i, j) for i in range(big.shape[0] - window.shape[0] + 1)
            for j in range(big.shape[1] - window.shape[1] + 1)
            if np.array_equal(big[i:i + window.shape[0], j:j + window.shape[1]], window)]
    assert hits, "the output is not a window of the input"
    return hits[0]


def test_random_crop_windows_per_image_and_padding():
    x = images((40, 6, 7, 1), low=1.0)
    y = layers.RandomCrop(4, 3, seed=2, **F64).forward(x, training=True)
    assert y.shape == (40, 4, 3, 1)
    offsets = {_find_window(xi, yi) for xi, yi in zip(x, y)}
    assert len(offsets) > 5  # per-image windows
    padded = layers.RandomCrop(6, 7, padding=2, seed=2, **F64).forward(x, training=True)
    assert padded.shape == x.shape
    border_zeros = 0
    for xi, yi in zip(x, padded):
        big = np.pad(xi, ((2, 2), (2, 2), (0, 0)))
        i, j = _find_window(big, yi)
        border_zeros += (i, j) != (2, 2)
    assert border_zeros > 20  # mostly shifted windows showing zero padding


def test_random_crop_inference_is_keras_centre_view():
    x = images((2, 8, 8, 1))
    np.testing.assert_array_equal(layers.RandomCrop(8, 8, **F64)(x), x)
    np.testing.assert_array_equal(layers.RandomCrop(8, 8, padding=4, **F64)(x), x)
    # 8x8 -> 4x4: half-pixel bilinear resize = mean of 2x2 blocks.
    blocks = x.reshape(2, 4, 2, 4, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(layers.RandomCrop(4, 4, **F64)(x), blocks, rtol=1e-12)
    # 6x8 -> 3x3: the centred 6x6 window (columns 1..6), then 2x2 block means.
    x = images((1, 6, 8, 1))
    window = x[:, :, 1:7]
    expected = window.reshape(1, 3, 2, 3, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(layers.RandomCrop(3, 3, **F64)(x), expected, rtol=1e-12)
    # Training on images smaller than the window falls back to the same view (as Keras).
    small = images((2, 3, 3, 1))
    grown = layers.RandomCrop(6, 6, seed=0, **F64)
    np.testing.assert_array_equal(grown.forward(small, training=True), grown(small))


# -- colour layers --------------------------------------------------------------------------------
def test_brightness_adds_one_clipped_value_per_image():
    x = images((50, 4, 5, 3), low=50, high=150)  # never clipped by shifts in [-25.5, 76.5]
    y = layers.RandomBrightness((-0.1, 0.3), seed=3, **F64).forward(x, training=True)
    delta = (y - x).reshape(50, -1)
    np.testing.assert_allclose(delta, delta[:, :1] * np.ones_like(delta), atol=1e-9)
    assert delta.min() >= -0.1 * 255 - 1e-9 and delta.max() <= 0.3 * 255 + 1e-9
    assert delta.max() - delta.min() > 0.2 * 255
    clipped = layers.RandomBrightness((0.9, 0.9), value_range=(0, 1), seed=0, **F64).forward(
        images((2, 3, 3, 1), low=0.2, high=1.0), training=True)
    np.testing.assert_array_equal(clipped, 1.0)  # x + 0.9 >= 1.1 everywhere


def test_contrast_scales_deviation_from_channel_mean():
    x = images((30, 5, 4, 3), low=100, high=150)
    y = layers.RandomContrast((0.3, 0.5), seed=3, **F64).forward(x, training=True)
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y.mean(axis=(1, 2), keepdims=True), mean, rtol=1e-12)
    ratio = ((y - mean) / (x - mean)).reshape(30, -1)
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-8)
    assert ratio.min() >= 0.7 - 1e-9 and ratio.max() <= 1.5 + 1e-9
    # Values beyond the range are clipped.
    wide = layers.RandomContrast((0.0, 5.0), value_range=(0, 1), seed=0, **F64).forward(
        images((4, 6, 6, 1), high=1.0), training=True)
    assert wide.min() >= 0 and wide.max() <= 1 and (wide == 1).any()


# -- Rescaling and Normalization ----------------------------------------------------------------------
def test_rescaling():
    x = images((2, 3, 3, 3))
    np.testing.assert_allclose(layers.Rescaling(1 / 255.0, **F64)(x), x / 255.0, rtol=1e-15)
    np.testing.assert_allclose(layers.Rescaling(1 / 127.5, offset=-1, **F64)(x), x / 127.5 - 1,
                               rtol=1e-14, atol=1e-15)
    per_channel = layers.Rescaling([1.0, 2.0, 3.0], offset=[0.0, 1.0, -1.0], **F64)
    np.testing.assert_allclose(per_channel(x), x * [1, 2, 3] + [0, 1, -1], rtol=1e-15)
    with pytest.raises(ValueError, match="does not broadcast"):
        layers.Rescaling([1.0, 2.0], **F64)(x)
    with pytest.raises(ValueError, match="`scale`"):
        layers.Rescaling("half")


@pytest.mark.parametrize("axis, kept", [(-1, (3,)), (None, ()), ((1, 2), (1, 2)), (2, (2,)),
                                        ((-1, 1), (1, 3))])
def test_normalization_adapt(axis, kept):
    data = images((20, 4, 3, 2), seed=4) * np.array([1.0, 0.1])
    layer = layers.Normalization(axis=axis, **F64)
    layer.adapt(data)
    reduced = tuple(a for a in range(4) if a not in kept)
    mean = data.mean(axis=reduced, keepdims=True)
    var = data.var(axis=reduced, keepdims=True)
    np.testing.assert_allclose(layer.get_weights()[0], mean.squeeze(axis=reduced), rtol=1e-12)
    np.testing.assert_allclose(layer.get_weights()[1], var.squeeze(axis=reduced), rtol=1e-12)
    out = layer(data)
    np.testing.assert_allclose(out, (data - mean) / np.sqrt(var), rtol=1e-10)
    np.testing.assert_allclose(out.mean(axis=reduced), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=reduced), 1, rtol=1e-10)


def test_normalization_given_statistics_invert_and_floor():
    x = images((3, 2, 2, 2))
    layer = layers.Normalization(mean=[10.0, 20.0], variance=[4.0, 16.0], **F64)
    np.testing.assert_allclose(layer(x), (x - [10, 20]) / [2, 4], rtol=1e-15)
    assert layer.get_weights() == []  # given statistics are constants, not weights
    inverse = layers.Normalization(mean=[10.0, 20.0], variance=[4.0, 16.0], invert=True, **F64)
    np.testing.assert_allclose(inverse(layer(x)), x, rtol=1e-13)
    scalar = layers.Normalization(axis=None, mean=3.0, variance=0.0, **F64)
    np.testing.assert_allclose(scalar(x), (x - 3.0) / 1e-7, rtol=1e-12)  # std floored at 1e-7
    again = layers.deserialize(layers.serialize(layer))
    np.testing.assert_allclose(again(x), layer(x), rtol=1e-15)


def test_normalization_errors():
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="cannot be adapted"):
        layers.Normalization(mean=1.0, variance=1.0).adapt(np.ones((2, 3)))
    with pytest.raises(ValueError, match="batch axis 0 cannot be kept"):
        layers.Normalization(axis=0).build((3,))
    with pytest.raises(ValueError, match="does not broadcast"):
        layers.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0]).build((4, 4, 3))
    layer = layers.Normalization()
    layer.adapt(np.ones((5, 3)))
    with pytest.raises(ValueError, match="samples of shape"):
        layer.adapt(np.ones((5, 4)))
    with pytest.raises(ValueError, match="`axis`"):
        layers.Normalization(axis="last")


# -- gradients -----------------------------------------------------------------------------------
GRAD_CASES = {
    "flip": (lambda: layers.RandomFlip(**F64), (4, 3, 4, 2)),
    "translation": (lambda: layers.RandomTranslation(0.3, 0.4, **F64), (2, 4, 5, 2)),
    "rotation_constant": (lambda: layers.RandomRotation(0.3, fill_mode="constant", fill_value=2.0,
                                                        **F64), (2, 5, 4, 1)),
    "zoom_wrap": (lambda: layers.RandomZoom((-0.4, 0.5), fill_mode="wrap", **F64), (2, 4, 4, 2)),
    "rotation_nearest": (lambda: layers.RandomRotation(0.4, interpolation="nearest", **F64), (2, 4, 5, 1)),
    "crop_padded": (lambda: layers.RandomCrop(4, 3, padding=1, **F64), (3, 4, 4, 2)),
    "crop_resize": (lambda: layers.RandomCrop(3, 2, **F64), (2, 2, 3, 2)),
    "crop_channels_first": (lambda: layers.RandomCrop(2, 3, data_format="channels_first", **F64),
                            (2, 2, 4, 4)),
    "brightness_clipped": (lambda: layers.RandomBrightness(0.5, value_range=(-1, 1), **F64), (3, 3, 3, 2)),
    "contrast_clipped": (lambda: layers.RandomContrast((0.2, 3.0), value_range=(-1, 1), **F64),
                         (3, 3, 4, 2)),
    "rescaling": (lambda: layers.Rescaling([0.5, -2.0], offset=1.0, **F64), (2, 3, 2, 2)),
    "normalization": (lambda: layers.Normalization(mean=[0.2, -0.1], variance=[2.0, 0.5], **F64),
                      (2, 3, 2, 2)),
    "normalization_invert": (lambda: layers.Normalization(axis=(1, 2), mean=0.3, variance=1.7,
                                                          invert=True, **F64), (2, 3, 2, 2)),
}


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_backward_matches_finite_differences(case, backend):
    make, shape = GRAD_CASES[case]
    x = np.random.default_rng(12).uniform(-1.2, 1.2, size=shape)
    with fastconv.use_backend(backend):
        # Re-seeding before each forward keeps the random draw fixed: a fixed linear map
        # (piecewise linear for the clipping layers).
        assert gradcheck(make(), x, before_forward=lambda: utils.set_random_seed(31)) == []


def test_clipping_cases_do_clip():
    utils.set_random_seed(31)
    x = np.random.default_rng(12).uniform(-1.2, 1.2, size=(3, 3, 3, 2))
    y = layers.RandomBrightness(0.5, value_range=(-1, 1), **F64).forward(x, training=True)
    assert (np.abs(y) == 1).any() and (np.abs(y) < 1).any()


# -- inside models -------------------------------------------------------------------------------
def _augmented_model(seed):
    utils.set_random_seed(seed)
    model = fastconv.Sequential([
        layers.Rescaling(1 / 255.0),
        layers.RandomFlip("horizontal"),
        layers.RandomTranslation(0.1, 0.1),
        layers.RandomRotation(0.05),
        layers.RandomZoom(0.1),
        layers.RandomCrop(8, 8, padding=1),
        layers.RandomContrast(0.2, value_range=(0, 1)),
        layers.RandomBrightness(0.1, value_range=(0, 1)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ], input_shape=(8, 8, 1))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_training_with_augmentation_is_reproducible_and_inference_ignores_it(tmp_path):
    data = np.random.default_rng(7)
    x = data.integers(0, 256, (24, 8, 8, 1)).astype(np.uint8)  # ints are converted
    y = data.integers(0, 3, 24)
    runs = []
    for _ in range(2):
        model = _augmented_model(seed=3)
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        runs.append((model.get_weights(), history.history["loss"]))
    assert runs[0][1] == runs[1][1]
    for a, b in zip(runs[0][0], runs[1][0]):
        assert a.tobytes() == b.tobytes()
    # At inference the augmentation layers are skipped: same output as the bare network.
    bare = fastconv.Sequential([layers.Rescaling(1 / 255.0), layers.Conv2D(4, 3, activation="relu"),
                                layers.Flatten(), layers.Dense(3, activation="softmax")],
                               input_shape=(8, 8, 1))
    bare.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x), bare.predict(x))
    # Save / load keeps every layer's configuration.
    loaded = fastconv.models.load_model(model.save(tmp_path / "augmented.fcz"))
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert loaded.layers[5].padding == ((1, 1), (1, 1))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_normalization_adapted_in_a_saved_model(tmp_path):
    data = images((30, 4, 4, 3), seed=9)
    norm = layers.Normalization()
    norm.adapt(data)
    model = fastconv.Sequential([norm, layers.Flatten(), layers.Dense(2, activation="softmax")],
                                input_shape=(4, 4, 3))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(data, np.arange(30) % 2, epochs=1, verbose=0)
    assert model.count_params() == 3 + 3 + 1 + 48 * 2 + 2  # Keras counts mean, variance, count
    assert norm.get_weights()[2] == 30
    assert len(model.trainable_weights) == 2  # the statistics are not trained
    loaded = fastconv.models.load_model(model.save(tmp_path / "norm.fcz"))
    np.testing.assert_array_equal(loaded.layers[0].get_weights()[0], norm.get_weights()[0])
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))


# -- bad arguments --------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: layers.RandomFlip("diagonal"), "unknown `mode`"),
    (lambda: layers.RandomTranslation(1.5, 0.1), r"between \[-1.0, 1.0\]"),
    (lambda: layers.RandomTranslation((0.3, 0.1), 0.1), "lower <= upper"),
    (lambda: layers.RandomTranslation(0.1, 0.1, fill_mode="mirror"), "unknown `fill_mode`"),
    (lambda: layers.RandomRotation(0.1, interpolation="bicubic"), "unknown `interpolation`"),
    (lambda: layers.RandomRotation("big"), "`factor` must be a finite number"),
    (lambda: layers.RandomZoom((-1.0, 0.2)), "larger than -1"),
    (lambda: layers.RandomCrop(0, 4), "`height`"),
    (lambda: layers.RandomCrop(4, 4, padding="same"), "`padding`"),
    (lambda: layers.RandomBrightness(1.5), r"between \[-1.0, 1.0\]"),
    (lambda: layers.RandomBrightness(0.1, value_range=(1, 0)), "min < max"),
    (lambda: layers.RandomContrast(-0.1), "negative"),
    (lambda: layers.RandomContrast((1.5, 0.2)), "greater than 1"),
    (lambda: layers.RandomFlip(seed=-1), "`seed`"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_image_layers_need_images():
    with pytest.raises(ValueError, match="expects 4-D input"):
        layers.RandomFlip().build((5, 3))
