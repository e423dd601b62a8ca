"""Sequential: construction, building, weights, summary, predict/evaluate, config, backends and
clear errors for bad input."""
import numpy as np
import pytest
from conftest import compiled_core_available

import fastconv
from fastconv import losses
from fastconv.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
)


@pytest.fixture(autouse=True)
def backend():
    """Run on the compiled core where it is built (always in CI), else on the reference."""
    with fastconv.use_backend("compiled" if compiled_core_available() else "reference"):
        yield


def small_cnn(dtype="float32", **kwargs):
    return fastconv.Sequential([
        Conv2D(4, 3, activation="relu", dtype=dtype, name="conv"),
        BatchNormalization(dtype=dtype, name="bn"),
        MaxPooling2D(dtype=dtype, name="pool"),
        Flatten(dtype=dtype, name="flat"),
        Dense(3, activation="softmax", dtype=dtype, name="out"),
    ], **kwargs)


# -- construction and building ----------------------------------------------------------------------
def test_input_shape_from_constructor_first_layer_or_build():
    a = small_cnn(input_shape=(8, 8, 1))
    assert a.built and a.input_shape == (None, 8, 8, 1) and a.output_shape == (None, 3)
    b = fastconv.Sequential([Dense(2, input_shape=(5,)), Dense(1)])
    assert b.built and b.layers[1].input_shape == (2,)
    c = fastconv.Sequential([Dense(2), Dense(1)])
    assert not c.built
    c.build((None, 5))  # Keras-style shape with the batch axis is accepted
    assert c.built and c.layers[0].kernel.shape == (5, 2)


def test_built_lazily_from_first_data():
    model = fastconv.Sequential([Dense(2), Dense(1)])
    out = model.predict(np.ones((3, 4)))
    assert out.shape == (3, 1) and model.input_shape == (None, 4)


def test_add_and_pop():
    model = fastconv.Sequential(input_shape=(6,))
    model.add(Dense(4, name="d1"))
    model.add(Dense(2, name="d2"))
    assert [layer.name for layer in model.layers] == ["d1", "d2"]
    assert model.layers[1].kernel.shape == (4, 2)  # built on add
    popped = model.pop()
    assert popped.name == "d2" and len(model.layers) == 1
    model.pop()
    with pytest.raises(TypeError, match="no layers"):
        model.pop()


def test_add_rejects_non_layers_and_duplicate_names():
    model = fastconv.Sequential([Dense(2, name="same")], input_shape=(3,))
    with pytest.raises(TypeError, match="expects a fastconv Layer; received str"):
        model.add("dense")
    with pytest.raises(ValueError, match="unique names.*'same'"):
        model.add(Dense(2, name="same"))


def test_build_errors():
    with pytest.raises(ValueError, match="input shape is unknown"):
        fastconv.Sequential([Dense(2)]).build()
    with pytest.raises(ValueError, match="input_shape"):
        fastconv.Sequential([Dense(2)], input_shape="abc")
    with pytest.raises(ValueError, match="Cannot build layer 'dense_in'.*Flatten"):
        fastconv.Sequential([Dense(2, name="dense_in")], input_shape=(4, 4, 1))
    model = fastconv.Sequential([Dense(2)], input_shape=(3,))
    with pytest.raises(ValueError, match=r"already built for input shape \(3,\)"):
        model.build((4,))


# -- weights ------------------------------------------------------------------------------------------
def test_weights_order_count_and_round_trip():
    model = small_cnn(input_shape=(8, 8, 1))
    shapes = [w.shape for w in model.get_weights()]
    # Conv kernel/bias, BN gamma/beta/moving_mean/moving_variance, Dense kernel/bias (Keras order).
    assert shapes == [(3, 3, 1, 4), (4,), (4,), (4,), (4,), (4,), (36, 3), (3,)]
    assert model.count_params() == (9 * 4 + 4) + 4 * 4 + (36 * 3 + 3)
    assert len(model.trainable_weights) == 6 and len(model.non_trainable_weights) == 2
    rng = np.random.default_rng(0)
    new = [rng.normal(size=s).astype(np.float32) for s in shapes]
    new[5] = np.abs(new[5]) + 0.5  # a valid moving variance
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)


def test_set_weights_errors_leave_weights_unchanged():
    model = small_cnn(input_shape=(8, 8, 1))
    before = model.get_weights()
    with pytest.raises(ValueError, match="has 8 weight arrays; received a list of 2"):
        model.set_weights(before[:2])
    bad = list(before)
    bad[7] = np.zeros(4)
    with pytest.raises(ValueError, match=r"weights\[7\] \('bias'\) must have shape \(3,\); received shape \(4,\)"):
        model.set_weights(bad)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


# -- summary ---------------------------------------------------------------------------------------------
def test_summary_lists_layers_shapes_and_counts():
    model = small_cnn(input_shape=(8, 8, 1), name="tiny")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert 'Model: "tiny"' in text
    for needle in ["conv (Conv2D)", "(None, 6, 6, 4)", "bn (BatchNormalization)", "pool (MaxPooling2D)",
                   "(None, 3, 3, 4)", "flat (Flatten)", "(None, 36)", "out (Dense)", "(None, 3)"]:
        assert needle in text
    conv_line = next(line for line in lines if line.startswith("conv (Conv2D)"))
    assert conv_line.split()[-1] == "40"
    out_line = next(line for line in lines if line.startswith("out (Dense)"))
    assert out_line.split()[-1] == "111"
    assert "Total params: 167" in text
    assert "Trainable params: 159" in text  # BN moving mean/variance (8) are not trainable
    assert "Non-trainable params: 8" in text


def test_summary_prints_and_returns_none(capsys):
    model = fastconv.Sequential([Dense(2, name="only")], input_shape=(3,))
    assert model.summary() is None
    assert "only (Dense)" in capsys.readouterr().out


def test_summary_of_unbuilt_model():
    with pytest.raises(ValueError, match="not been built"):
        fastconv.Sequential([Dense(2)]).summary()


# -- predict / evaluate ----------------------------------------------------------------------------------
def test_predict_in_batches_equals_one_forward():
    model = small_cnn(input_shape=(8, 8, 1))
    x = np.random.default_rng(1).normal(size=(23, 8, 8, 1)).astype(np.float32)
    whole = model.predict_on_batch(x)
    batched = model.predict(x, batch_size=5)
    assert batched.shape == (23, 3) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model(x), whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, rtol=1e-5)


def test_predict_converts_integers_and_float64():
    model = fastconv.Sequential([Dense(2)], input_shape=(3,))
    x = np.arange(6).reshape(2, 3)
    np.testing.assert_allclose(model.predict(x), model.predict(x.astype(np.float64)), rtol=1e-6)


def test_evaluate_return_forms():
    model = fastconv.Sequential([Dense(3, activation="softmax")], input_shape=(4,))
    x = np.random.default_rng(2).normal(size=(10, 4))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    model.compile("sgd", "sparse_categorical_crossentropy")
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    expected = losses.SparseCategoricalCrossentropy()(y, model.predict(x))
    assert loss == pytest.approx(expected, rel=1e-6)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    loss2, acc = model.evaluate(x, y, verbose=0)
    assert loss2 == pytest.approx(loss)
    assert acc == pytest.approx(np.mean(model.predict(x).argmax(1) == y))
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    assert model.metrics_names == ["loss", "accuracy"]


def test_evaluate_prints_one_line(capsys):
    model = fastconv.Sequential([Dense(1)], input_shape=(2,))
    model.compile("sgd", "mse")
    model.evaluate(np.ones((4, 2)), np.ones((4, 1)), verbose=1)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("1/1 - ") and "loss: " in out[0]


# -- compile --------------------------------------------------------------------------------------------
def test_compile_accepts_names_and_objects():
    model = fastconv.Sequential([Dense(2, activation="softmax")], input_shape=(3,))
    model.compile(optimizer=fastconv.optimizers.SGD(0.5), loss=losses.CategoricalCrossentropy(),
                  metrics="acc")
    assert model.optimizer.learning_rate == 0.5 and model.metrics_names == ["loss", "acc"]
    model.compile()
    assert isinstance(model.optimizer, fastconv.optimizers.RMSprop)  # Keras' default


def test_compile_errors():
    model = fastconv.Sequential([Dense(2)], input_shape=(3,))
    with pytest.raises(ValueError, match="Unknown optimizer"):
        model.compile("nadam2", "mse")
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compile("sgd", "focal")
    with pytest.raises(ValueError, match="Unknown metric 'f1'"):
        model.compile("sgd", "mse", metrics=["f1"])
    with pytest.raises(RuntimeError, match="compile the model with a loss before calling fit"):
        model.fit(np.ones((2, 3)), np.ones((2, 2)), verbose=0)


# -- bad data ----------------------------------------------------------------------------------------------
@pytest.fixture
def classifier():
    model = fastconv.Sequential([Flatten(), Dense(3, activation="softmax")], input_shape=(4, 4, 1))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_bad_x(classifier):
    y = np.zeros(5, dtype=int)
    with pytest.raises(ValueError, match=r"`x` must have shape \(batch,\) \+ \(4, 4, 1\).*received shape \(5, 4, 4\)"):
        classifier.fit(np.zeros((5, 4, 4)), y, verbose=0)
    bad = np.zeros((5, 4, 4, 1))
    bad[3, 1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"`x` contains NaN or infinite values \(first in sample 3\)"):
        classifier.fit(bad, y, verbose=0)
    bad[3, 1, 2, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        classifier.predict(bad)
    with pytest.raises(TypeError, match="`x` must have a real float or integer dtype"):
        classifier.predict(np.zeros((2, 4, 4, 1), dtype=complex))
    with pytest.raises(ValueError, match="empty"):
        classifier.predict(np.zeros((0, 4, 4, 1)))


def test_bad_y(classifier):
    x = np.zeros((5, 4, 4, 1))
    with pytest.raises(ValueError, match="same number of samples; received 5 in x and 4 in y"):
        classifier.fit(x, np.zeros(4, dtype=int), verbose=0)
    with pytest.raises(ValueError, match=r"`y` contains the class index 3, outside \[0, 2\]"):
        classifier.fit(x, np.array([0, 1, 2, 3, 0]), verbose=0)
    with pytest.raises(ValueError, match="`y` must contain integer class indices"):
        classifier.fit(x, np.array([0, 1, 2, 1.5, 0]), verbose=0)
    with pytest.raises(ValueError, match="`y` must hold one integer class index per sample"):
        classifier.fit(x, np.eye(3)[[0, 1, 2, 0, 1]], verbose=0)
    classifier.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match="`y` has shape \\(5,\\): integer class indices"):
        classifier.fit(x, np.array([0, 1, 2, 0, 1]), verbose=0)
    with pytest.raises(ValueError, match=r"`y` must have the shape of the predictions, \(5, 3\); received shape \(5, 4\)"):
        classifier.fit(x, np.zeros((5, 4)), verbose=0)


def test_bad_fit_arguments(classifier):
    x, y = np.zeros((5, 4, 4, 1)), np.zeros(5, dtype=int)
    for kwargs, pattern in [
        ({"batch_size": 0}, "`batch_size` must be a positive integer"),
        ({"batch_size": 2.5}, "`batch_size` must be a positive integer"),
        ({"epochs": -1}, "`epochs` must be an integer >= 0"),
        ({"verbose": 3}, "`verbose` must be 'auto', 0, 1 or 2"),
        ({"validation_split": 1.0}, r"`validation_split` must be a number in \[0, 1\)"),
        ({"validation_split": 0.9}, "5 samples, too few to split"),
        ({"validation_data": np.zeros(3)}, "`validation_data` must be a tuple"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            classifier.fit(x, y, **{"verbose": 0, **kwargs})
    with pytest.raises(ValueError, match="`x_val` and `y_val` must have the same number"):
        classifier.fit(x, y, verbose=0, validation_data=(x, y[:3]))
    with pytest.raises(TypeError, match="Callback"):
        classifier.fit(x, y, verbose=0, callbacks=[print])


# -- config -------------------------------------------------------------------------------------------
def test_get_config_from_config():
    model = small_cnn(input_shape=(8, 8, 1), name="cfg")
    config = model.get_config()
    assert config["name"] == "cfg" and config["input_shape"] == [8, 8, 1]
    assert [c["class_name"] for c in config["layers"]] == [
        "Conv2D", "BatchNormalization", "MaxPooling2D", "Flatten", "Dense"]
    clone = fastconv.Sequential.from_config(config)
    assert clone.built and clone.get_config() == config
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(3).normal(size=(4, 8, 8, 1))
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))


# -- backends -----------------------------------------------------------------------------------------------
@pytest.mark.skipif(not compiled_core_available(), reason="compiled core not built (CI always builds it)")
def test_same_predictions_and_training_on_both_backends():
    fastconv.utils.set_random_seed(5)
    x = np.random.default_rng(4).normal(size=(12, 9, 9, 2))
    y = np.arange(12) % 3

    def run(backend):
        with fastconv.use_backend(backend):
            model = small_cnn(dtype="float64", input_shape=(9, 9, 2))
            model.set_weights(initial)
            model.compile(fastconv.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
            before = model.predict(x)
            model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
            return before, model.predict(x)

    initial = small_cnn(dtype="float64", input_shape=(9, 9, 2)).get_weights()
    ref_before, ref_after = run("reference")
    cmp_before, cmp_after = run("compiled")
    np.testing.assert_allclose(cmp_before, ref_before, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cmp_after, ref_after, rtol=1e-8, atol=1e-10)


def test_dropout_only_in_training():
    model = fastconv.Sequential([Dropout(0.5), Dense(2)], input_shape=(6,))
    x = np.ones((4, 6))
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
