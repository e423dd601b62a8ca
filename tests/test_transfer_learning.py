"""Transfer learning: frozen layers (BatchNormalization in inference mode), layers reused in new
models (new input and output heads), pop/add, get_layer, and load_weights(skip_mismatch=...)."""
import warnings

import numpy as np
import pytest

import fastconv
from fastconv.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Flatten,
    MaxPooling2D,
    ZeroPadding2D,
)
from fastconv.models import load_model


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: thread start-up would cost more than it gains (conftest restores it)."""
    fastconv.set_num_threads(1)


def _images(n, shape=(8, 8, 1), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + shape).astype(np.float32)
    y = rng.integers(0, 3, n)
    return x, y


def _base_layers():
    """A small convolutional base for 8x8x1 images (output: 3x3x4 feature maps)."""
    return [Conv2D(4, 3, padding="same", name="conv"), BatchNormalization(name="bn"),
            Activation("relu", name="relu"), MaxPooling2D(2, name="pool"),
            Conv2D(4, 2, name="conv_b"), Flatten(name="flatten")]


def _classifier(classes=3, head_name="head"):
    return fastconv.Sequential(_base_layers() + [Dense(classes, activation="softmax", name=head_name)],
                               input_shape=(8, 8, 1))


def _trained_classifier():
    fastconv.utils.set_random_seed(1)
    model = _classifier()
    x, y = _images(40)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model


def _bytes(layer):
    return [w.tobytes() for w in layer.get_weights()]


# -- freezing ------------------------------------------------------------------------------------
def test_frozen_base_is_bit_identical_after_fit_and_the_head_learns():
    model = _trained_classifier()
    base = model.layers[:-1]
    for layer in base:
        layer.trainable = False
    before = [_bytes(layer) for layer in base]
    head_before = model.layers[-1].get_weights()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _images(32, seed=5)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert [_bytes(layer) for layer in base] == before  # BN moving statistics included
    assert not np.array_equal(head_before[0], model.layers[-1].get_weights()[0])
    assert model.count_params() - sum(int(w.size) for w in model.trainable_weights) == \
        sum(layer.count_params() for layer in base)


def test_frozen_batch_norm_runs_in_inference_mode_inside_fit():
    # A frozen BN normalises with its moving statistics even in training, as in Keras: the
    # training-mode forward pass of the model equals the inference one and the formula.
    rng = np.random.default_rng(3)
    bn = BatchNormalization(dtype="float64", trainable=False, name="bn")
    model = fastconv.Sequential([bn, Dense(2, dtype="float64", name="d")], input_shape=(5,))
    gamma, beta = rng.uniform(0.5, 2, 5), rng.normal(size=5)
    mean, var = rng.normal(size=5), rng.uniform(0.5, 3, 5)
    bn.set_weights([gamma, beta, mean, var])
    x = rng.normal(loc=4.0, scale=3.0, size=(16, 5))  # batch statistics far from the moving ones
    expected = gamma * (x - mean) / np.sqrt(var + bn.epsilon) + beta
    np.testing.assert_allclose(bn.forward(x, training=True), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(model(x, training=True), model(x, training=False))
    model.compile("sgd", "mse")
    model.fit(x, rng.normal(size=(16, 2)), batch_size=4, epochs=2, verbose=0)
    for value, saved in zip(bn.get_weights(), [gamma, beta, mean, var]):
        assert value.tobytes() == saved.tobytes()


def test_trainable_bn_in_training_uses_batch_statistics():
    # The counterpart of the test above, so that it can fail: an unfrozen BN normalises with the
    # batch statistics in training and moves its moving mean.
    rng = np.random.default_rng(4)
    bn = BatchNormalization(dtype="float64", name="bn")
    bn.build((5,))
    x = rng.normal(loc=4.0, scale=3.0, size=(16, 5))
    out = bn.forward(x, training=True)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(bn.moving_mean, 0.01 * x.mean(axis=0), rtol=1e-12)


def test_model_trainable_setter_freezes_every_layer():
    model = _classifier()
    model.trainable = False
    assert model.trainable_weights == [] and not model.trainable
    model.layers[-1].trainable = True
    assert len(model.trainable_weights) == 2 and not model.trainable


# -- layers, pop, add, get_layer ---------------------------------------------------------------------
def test_layers_are_the_model_objects_and_the_list_is_a_copy():
    model = _classifier()
    conv = model.layers[0]
    assert conv is model.get_layer("conv") and conv is model.get_layer(index=0)
    assert model.get_layer(index=-1).name == "head"
    listing = model.layers
    listing.pop()
    assert len(model.layers) == 7
    conv.trainable = False  # attribute changes on the objects act on the model
    assert model.get_layer("conv").trainable is False


@pytest.mark.parametrize("kwargs, error, match", [
    ({}, ValueError, "exactly one of `name` and `index`"),
    ({"name": "conv", "index": 0}, ValueError, "exactly one"),
    ({"name": "nope"}, ValueError, "No layer named 'nope'.*'conv'"),
    ({"index": 6}, ValueError, "out of range: model .* has 6 layers"),
    ({"index": -7}, ValueError, "out of range"),
    ({"index": "0"}, TypeError, "`index` must be an integer"),
])
def test_get_layer_errors(kwargs, error, match):
    model = _classifier()
    model.pop()
    with pytest.raises(error, match=match):
        model.get_layer(**kwargs)


def test_pop_then_add_a_new_head():
    model = _trained_classifier()
    conv_before = model.layers[0].get_weights()
    old_head = model.pop()
    assert old_head.name == "head" and model.output_shape == (None, 36)
    model.add(Dense(5, activation="softmax", name="new_head"))
    assert model.output_shape == (None, 5)
    assert model.layers[-1].kernel.shape == (36, 5)  # built on add, on the base's output
    for layer in model.layers[:-1]:
        layer.trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    x, _ = _images(20, seed=2)
    model.fit(x, np.arange(20) % 5, batch_size=5, epochs=1, verbose=0)
    assert model.predict(x).shape == (20, 5)
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], conv_before[0])


# -- reusing the layers of a loaded model ---------------------------------------------------------------
def test_new_model_from_the_layers_of_a_loaded_model(tmp_path):
    trained = _trained_classifier()
    path = trained.save(tmp_path / "base.fcz")
    loaded = load_model(path)
    base = loaded.layers[:-1]
    for layer in base:
        layer.trainable = False
    transfer = fastconv.Sequential(base + [Dense(2, activation="softmax", name="head2")])
    assert transfer.built and transfer.input_shape == (None, 8, 8, 1)
    x, _ = _images(24, seed=7)
    # The reused base computes exactly what the trained model's base computes.
    features = fastconv.Sequential(base)
    reference = fastconv.Sequential(trained.layers[:-1])
    np.testing.assert_array_equal(features.predict(x), reference.predict(x))
    before = [_bytes(layer) for layer in base]
    transfer.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    transfer.fit(x, np.arange(24) % 2, batch_size=6, epochs=2, verbose=0)
    assert [_bytes(layer) for layer in base] == before
    np.testing.assert_array_equal(features.predict(x), reference.predict(x))


def test_new_input_head_in_front_of_a_reused_base():
    # RGB 6x6 images feed a base trained on grey 8x8 ones through a new trainable input head
    # (zero padding to 8x8 and a 1x1 convolution from 3 channels to 1).
    trained = _trained_classifier()
    base = trained.layers[:-1]
    for layer in base:
        layer.trainable = False
    frozen_before = [_bytes(layer) for layer in base]
    adapter = Conv2D(1, 1, name="rgb_to_grey")
    model = fastconv.Sequential([ZeroPadding2D(1, name="pad"), adapter] + base
                                + [Dense(3, activation="softmax", name="new_head")],
                                input_shape=(6, 6, 3))
    assert model.output_shape == (None, 3)
    adapter_before = adapter.get_weights()[0].copy()
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(8)
    model.fit(rng.normal(size=(20, 6, 6, 3)), rng.integers(0, 3, 20), batch_size=5, epochs=2,
              verbose=0)
    assert [_bytes(layer) for layer in base] == frozen_before
    assert not np.array_equal(adapter_before, adapter.get_weights()[0])  # gradients pass the base


def test_reused_layer_built_for_another_shape_is_refused():
    trained = _trained_classifier()
    with pytest.raises(ValueError, match="'conv' was built for input shape \\(8, 8, 1\\) but "
                                         "receives \\(10, 10, 1\\)"):
        fastconv.Sequential(trained.layers, input_shape=(10, 10, 1))


def test_layers_from_two_models_with_the_same_names_are_refused():
    first, second = _classifier(), _classifier()
    with pytest.raises(ValueError, match="unique names.*'conv'"):
        fastconv.Sequential(first.layers[:1] + second.layers[:1])


# -- load_weights(skip_mismatch) -------------------------------------------------------------------
def test_load_weights_skip_mismatch_loads_the_base_and_skips_a_new_head(tmp_path):
    trained = _trained_classifier()
    path = trained.save_weights(tmp_path / "w.fcz")
    target = _classifier(classes=5, head_name="head5")
    head_before = target.layers[-1].get_weights()
    with pytest.raises(ValueError):
        target.load_weights(path)
    assert [w.tobytes() for w in target.layers[-1].get_weights()] == [w.tobytes() for w in head_before]
    with pytest.warns(UserWarning, match=r"skipped layer 'head5': its weights have shapes "
                                         r"\[\(36, 5\), \(5,\)\] and the file's layer 'head' has "
                                         r"\[\(36, 3\), \(3,\)\]"):
        target.load_weights(path, skip_mismatch=True)
    for mine, theirs in zip(target.layers[:-1], trained.layers[:-1]):
        assert _bytes(mine) == _bytes(theirs)
    for now, before in zip(target.layers[-1].get_weights(), head_before):
        assert now.tobytes() == before.tobytes()


def test_load_weights_matches_layers_by_order_not_by_name(tmp_path):
    trained = _trained_classifier()
    path = trained.save_weights(tmp_path / "w.fcz")
    renamed = fastconv.Sequential(
        [Conv2D(4, 3, padding="same", name="a"), BatchNormalization(name="b"), Activation("relu"),
         MaxPooling2D(2), Conv2D(4, 2, name="c"), Flatten(), Dense(3, activation="softmax", name="d")],
        input_shape=(8, 8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything fits: no warning
        renamed.load_weights(path, skip_mismatch=True)
    x, _ = _images(10, seed=9)
    np.testing.assert_array_equal(renamed.predict(x), trained.predict(x))


def test_load_weights_skip_mismatch_with_fewer_or_more_layers_than_the_file(tmp_path):
    trained = _trained_classifier()
    path = trained.save_weights(tmp_path / "w.fcz")
    base_only = fastconv.Sequential(_base_layers(), input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="holds 10 weight arrays and the model has 8"):
        base_only.load_weights(path)
    with pytest.warns(UserWarning, match="skipped saved layer 'head': the model has no layer"):
        base_only.load_weights(path, skip_mismatch=True)
    for mine, theirs in zip(base_only.layers, trained.layers):
        assert _bytes(mine) == _bytes(theirs)

    longer = fastconv.Sequential(_base_layers() + [Dense(3, name="head"), Dense(2, name="extra")],
                                 input_shape=(8, 8, 1))
    extra_before = longer.layers[-1].get_weights()
    with pytest.warns(UserWarning, match="skipped layer 'extra': the file has no weights for it"):
        longer.load_weights(path, skip_mismatch=True)
    np.testing.assert_array_equal(longer.layers[-2].get_weights()[0], trained.layers[-1].get_weights()[0])
    np.testing.assert_array_equal(longer.layers[-1].get_weights()[0], extra_before[0])


def test_load_weights_builds_an_unbuilt_model_and_checks_skip_mismatch(tmp_path):
    trained = _trained_classifier()
    path = trained.save_weights(tmp_path / "w.fcz")
    unbuilt = fastconv.Sequential(_base_layers() + [Dense(3, activation="softmax")])
    assert not unbuilt.built
    unbuilt.load_weights(path, skip_mismatch=True)
    x, _ = _images(6, seed=10)
    np.testing.assert_array_equal(unbuilt.predict(x), trained.predict(x))
    with pytest.raises(TypeError, match="`skip_mismatch` must be True or False; received 'yes'"):
        unbuilt.load_weights(path, skip_mismatch="yes")
    with pytest.raises(FileNotFoundError):
        unbuilt.load_weights(tmp_path / "missing.fcz", skip_mismatch=True)
