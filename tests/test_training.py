"""Training: whole-model gradients against finite differences, fit's batching, shuffling and
validation, frozen layers, regularization, progress output, and end-to-end learning."""
import re

import numpy as np
import pytest
from conftest import compiled_core_available

import fastconv
from fastconv import losses, optimizers, regularizers
from fastconv.callbacks import LambdaCallback
from fastconv.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
    Softmax,
)


@pytest.fixture(autouse=True)
def backend():
    with fastconv.use_backend("compiled" if compiled_core_available() else "reference"):
        yield


class CapturingOptimizer(optimizers.Optimizer):
    """Records the gradients it is given and changes nothing."""

    def __init__(self):
        super().__init__(learning_rate=1.0)
        self.captured = None

    def apply_gradients(self, grads_and_vars):
        self.captured = [(np.array(g), p) for g, p in grads_and_vars]
        self.iterations += 1


# -- whole-model gradient ----------------------------------------------------------------------------
def training_objective(model, loss, x, y, l2_terms):
    """Loss of the training-mode forward pass plus the L2 penalties, computed from scratch."""
    out = x
    for layer in model.layers:
        out = layer.forward(out, training=True)
    return loss(y, out) + sum(factor * np.sum(w ** 2) for factor, w in l2_terms)


def test_parameter_gradient_of_a_conv_model_matches_finite_differences():
    rng = np.random.default_rng(0)
    f64 = "float64"
    model = fastconv.Sequential([
        Conv2D(2, 3, padding="same", activation="tanh", kernel_regularizer=regularizers.L2(0.03),
               dtype=f64, name="c1"),
        BatchNormalization(dtype=f64, name="bn"),
        AveragePooling2D(dtype=f64, name="pool"),
        Conv2D(2, 2, strides=2, dtype=f64, name="c2"),
        Flatten(dtype=f64, name="flat"),
        Dense(3, dtype=f64, name="d", bias_regularizer="l2"),
        Softmax(dtype=f64, name="sm"),
    ], input_shape=(5, 5, 1))
    bn_gamma, bn_beta = model.layers[1].get_weights()[:2]
    model.layers[1].set_weights([bn_gamma + rng.normal(size=2) * 0.3, bn_beta + rng.normal(size=2) * 0.3]
                                + model.layers[1].get_weights()[2:])
    x = rng.normal(size=(5, 5, 5, 1))
    y = np.array([0, 2, 1, 1, 0])
    loss = losses.SparseCategoricalCrossentropy()  # from probabilities, through the softmax
    capture = CapturingOptimizer()
    model.compile(capture, loss)
    reported = model.train_on_batch(x, y)

    c1, d = model.layers[0], model.layers[5]
    l2_terms = [(0.03, c1.kernel), (0.01, d.bias)]
    assert reported == pytest.approx(training_objective(model, loss, x, y, l2_terms), rel=1e-12)
    params = [p for _, p in capture.captured]
    assert len(params) == 2 + 2 + 2 + 2  # BN moving statistics are not trained
    for grad, param in capture.captured:
        numeric = np.zeros_like(param)
        for i in np.ndindex(param.shape):
            old = param[i]
            param[i] = old + 1e-6
            up = training_objective(model, loss, x, y, l2_terms)
            param[i] = old - 1e-6
            down = training_objective(model, loss, x, y, l2_terms)
            param[i] = old
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_train_on_batch_returns_loss_and_takes_one_sgd_step():
    rng = np.random.default_rng(1)
    model = fastconv.Sequential([Dense(2, dtype="float64")], input_shape=(3,))
    model.compile(optimizers.SGD(0.1), "mse")
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    kernel, bias = model.get_weights()
    expected_loss = np.mean((x @ kernel + bias - y) ** 2)
    dz = 2 * (x @ kernel + bias - y) / y.size
    loss = model.train_on_batch(x, y)
    assert isinstance(loss, float) and loss == pytest.approx(expected_loss, rel=1e-12)
    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel, kernel - 0.1 * x.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(new_bias, bias - 0.1 * dz.sum(0), rtol=1e-12)
    model.compile(optimizers.SGD(0.1), "mse", metrics=["mae"])
    result = model.train_on_batch(x, y)
    assert isinstance(result, list) and len(result) == 2
    assert model.test_on_batch(x, y)[1] == pytest.approx(np.mean(np.abs(model.predict(x) - y)))


# -- fit: batching, averages, shuffling, validation ----------------------------------------------------
def dense_classifier(seed=0):
    fastconv.utils.set_random_seed(seed)
    model = fastconv.Sequential([Dense(5, activation="tanh", dtype="float64"),
                                 Dense(3, activation="softmax", dtype="float64")], input_shape=(4,))
    return model


def data(n=30, seed=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)), rng.integers(0, 3, size=n)


def test_fit_without_shuffle_equals_train_on_batch_loop():
    x, y = data(30)
    a, b = dense_classifier(), dense_classifier()
    for model in (a, b):
        model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for _ in range(2):
        for lo in range(0, 30, 8):
            b.train_on_batch(x[lo:lo + 8], y[lo:lo + 8])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_shuffle_uses_the_seeded_generator():
    x, y = data(30)
    a, b = dense_classifier(), dense_classifier()
    for model in (a, b):
        model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    fastconv.utils.set_random_seed(7)
    a.fit(x, y, batch_size=8, epochs=2, verbose=0)
    orders = np.random.default_rng(7)
    for _ in range(2):
        perm = orders.permutation(30)
        for lo in range(0, 30, 8):
            b.train_on_batch(x[perm[lo:lo + 8]], y[perm[lo:lo + 8]])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    c = dense_classifier()
    c.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    c.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert not np.array_equal(c.get_weights()[0], a.get_weights()[0])


class FrozenOptimizer(optimizers.Optimizer):
    def __init__(self):
        super().__init__(learning_rate=1.0)

    def apply_gradients(self, grads_and_vars):
        self.iterations += 1


def test_epoch_loss_and_metrics_are_weighted_by_batch_size():
    x, y = data(10)
    model = dense_classifier()
    model.compile(FrozenOptimizer(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)  # batches 4, 4, 2
    pred = model.predict(x)
    overall = losses.SparseCategoricalCrossentropy()(y, pred)
    assert history.history["loss"][0] == pytest.approx(overall, rel=1e-12)
    assert history.history["accuracy"][0] == pytest.approx(np.mean(pred.argmax(1) == y))
    assert model.evaluate(x, y, batch_size=4, verbose=0)[0] == pytest.approx(overall, rel=1e-12)


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = data(40)
    model = dense_classifier()
    model.compile(optimizers.SGD(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    checks = []

    def on_epoch_end(epoch, logs):
        loss, acc = model.evaluate(x[30:], y[30:], verbose=0)
        checks.append((logs["val_loss"], loss, logs["val_accuracy"], acc))

    history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0,
                        callbacks=[LambdaCallback(on_epoch_end=on_epoch_end)])
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())
    for val_loss, loss, val_acc, acc in checks:
        assert val_loss == loss and val_acc == acc


def test_validation_split_excludes_validation_samples_from_training():
    x, y = data(40)
    a, b = dense_classifier(), dense_classifier()
    for model in (a, b):
        model.compile(optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    a.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, shuffle=False, verbose=0)
    b.fit(x[:30], y[:30], batch_size=8, epochs=2, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_validation_data_and_freq():
    x, y = data(24)
    xv, yv = data(9, seed=3)
    model = dense_classifier()
    model.compile(optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    seen = []
    history = model.fit(x, y, epochs=4, validation_data=(xv, yv), validation_freq=2, verbose=0,
                        callbacks=[LambdaCallback(on_epoch_end=lambda e, logs: seen.append(
                            (e, logs.get("val_loss"), model.evaluate(xv, yv, verbose=0))))])
    assert [e for e, v, _ in seen if v is not None] == [1, 3]
    for _, val_loss, loss in seen:
        if val_loss is not None:
            assert val_loss == loss
    assert len(history.history["val_loss"]) == 2 and len(history.history["loss"]) == 4


def test_initial_epoch_and_zero_epochs():
    x, y = data(10)
    model = dense_classifier()
    model.compile("sgd", "sparse_categorical_crossentropy")
    epochs = []
    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0,
                        callbacks=[LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))])
    assert epochs == [3, 4] and history.epoch == [3, 4]
    before = model.get_weights()
    assert model.fit(x, y, epochs=0, verbose=0).history == {}
    np.testing.assert_array_equal(before[0], model.get_weights()[0])


# -- frozen layers and regularization ----------------------------------------------------------------
def test_frozen_layers_stay_bit_identical():
    rng = np.random.default_rng(4)
    model = fastconv.Sequential([
        Conv2D(3, 3, name="conv"), BatchNormalization(name="bn"), Activation("relu"),
        Flatten(), Dense(4, activation="relu", name="hidden"), Dense(2, activation="softmax", name="head"),
    ], input_shape=(6, 6, 1))
    model.layers[0].trainable = False
    model.layers[1].trainable = False
    model.layers[4].trainable = False
    frozen_before = {i: model.layers[i].get_weights() for i in (0, 1, 4)}
    head_before = model.layers[5].get_weights()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(rng.normal(size=(20, 6, 6, 1)), rng.integers(0, 2, 20), batch_size=5, epochs=2, verbose=0)
    for i, weights in frozen_before.items():
        for before, after in zip(weights, model.layers[i].get_weights()):
            assert before.tobytes() == after.tobytes()
    assert not np.array_equal(head_before[0], model.layers[5].get_weights()[0])
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 10" in "\n".join(lines)  # only the head: 4 * 2 + 2


def test_first_trained_layer_skips_its_input_gradient():
    model = fastconv.Sequential([Flatten(), Dense(3, name="d1"), Dense(2, name="d2")], input_shape=(2, 2))
    model.compile("sgd", "mse")
    model.train_on_batch(np.ones((3, 2, 2)), np.zeros((3, 2)))
    assert model.layers[1].compute_input_gradient is False
    assert model.layers[2].compute_input_gradient is True


def test_regularization_penalty_is_in_the_reported_loss():
    x, y = data(12)
    model = fastconv.Sequential([Dense(3, activation="softmax", dtype="float64",
                                       kernel_regularizer=regularizers.L1L2(l1=0.01, l2=0.1))],
                                input_shape=(4,))
    model.compile(FrozenOptimizer(), "sparse_categorical_crossentropy")
    kernel = model.layers[0].kernel
    penalty = 0.01 * np.abs(kernel).sum() + 0.1 * (kernel ** 2).sum()
    data_loss = losses.SparseCategoricalCrossentropy()(y, model.predict(x))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(data_loss + penalty, rel=1e-12)
    history = model.fit(x, y, batch_size=12, verbose=0)
    assert history.history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-12)


def test_regularizer_formulas_and_gradients():
    w = np.array([[0.5, -2.0], [0.0, 3.0]])
    assert regularizers.L2(0.1)(w) == pytest.approx(0.1 * (0.25 + 4 + 9))
    assert regularizers.L1(0.2)(w) == pytest.approx(0.2 * 5.5)
    reg = regularizers.l1_l2(l1=0.3, l2=0.05)
    assert reg(w) == pytest.approx(0.3 * 5.5 + 0.05 * 13.25)
    np.testing.assert_allclose(reg.gradient(w), 0.3 * np.sign(w) + 0.1 * w)
    assert regularizers.get(None) is None
    assert type(regularizers.get("l2")) is regularizers.L2 and regularizers.get("l2").l2 == 0.01
    again = regularizers.deserialize(regularizers.serialize(reg))
    assert again.get_config() == {"l1": 0.3, "l2": 0.05}
    with pytest.raises(ValueError, match="`l2` must be a non-negative"):
        regularizers.L2(-1)
    with pytest.raises(ValueError, match="Unknown regularizer"):
        regularizers.get("l3")


# -- output -----------------------------------------------------------------------------------------------
def test_verbose_output(capsys):
    x, y = data(20)
    model = dense_classifier()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.2)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, verbose=2, validation_split=0.2)
    lines = capsys.readouterr().out.strip().splitlines()
    pattern = (r"Epoch {}/2 - \d+(\.\d)?m?s - loss: \d\.\d{{4}} - accuracy: \d\.\d{{4}} - "
               r"val_loss: \d\.\d{{4}} - val_accuracy: \d\.\d{{4}}$")
    assert len(lines) == 2
    for i, line in enumerate(lines):
        assert re.match(pattern.format(i + 1), line), line
    model.fit(x, y, epochs=1)  # verbose="auto": not a terminal here, so one line per epoch
    assert re.match(r"Epoch 1/1 - .* - loss: ", capsys.readouterr().out)


# -- end to end -------------------------------------------------------------------------------------------
def bars_dataset(n, rng):
    """8x8 images with a horizontal, vertical or diagonal bar at a random place, plus noise."""
    x = rng.normal(scale=0.3, size=(n, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    for i, label in enumerate(y):
        k = rng.integers(1, 7)
        if label == 0:
            x[i, k, 1:7, 0] += 1.0
        elif label == 1:
            x[i, 1:7, k, 0] += 1.0
        else:
            idx = np.arange(1, 7)
            x[i, idx, idx, 0] += 1.0
    return x, y


def test_small_cnn_learns_the_bars_task():
    rng = np.random.default_rng(0)
    fastconv.utils.set_random_seed(0)
    x, y = bars_dataset(300, rng)
    x_test, y_test = bars_dataset(200, rng)
    model = fastconv.Sequential([
        Conv2D(6, 3, activation="relu", padding="same"),
        MaxPooling2D(),
        Conv2D(8, 3, activation="relu"),
        Flatten(),
        Dropout(0.1),
        Dense(3, activation="softmax"),
    ], input_shape=(8, 8, 1))
    model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=8, validation_split=0.1, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.95


def test_binary_and_categorical_accuracy_are_picked_from_the_loss():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    binary = fastconv.Sequential([Dense(1, activation="sigmoid")], input_shape=(2,))
    binary.compile(optimizers.SGD(0.5), "binary_crossentropy", metrics=["accuracy"])
    history = binary.fit(x, y, epochs=15, batch_size=20, verbose=0)
    assert history.history["accuracy"][-1] >= 0.95
    pred = binary.predict(x)[:, 0]
    assert binary.evaluate(x, y, verbose=0)[1] == pytest.approx(np.mean((pred > 0.5) == y))
    onehot = np.eye(2)[y]
    cat = fastconv.Sequential([Dense(2, activation="softmax")], input_shape=(2,))
    cat.compile(optimizers.SGD(0.5), "categorical_crossentropy", metrics=["accuracy"])
    cat.fit(x, onehot, epochs=15, batch_size=20, verbose=0)
    pred = cat.predict(x)
    assert cat.evaluate(x, onehot, verbose=0)[1] == pytest.approx(np.mean(pred.argmax(1) == y))
    assert np.mean(pred.argmax(1) == y) >= 0.95
