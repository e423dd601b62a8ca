"""fastconv.wrappers.SKLearnClassifier: parameters, label encoding, fit/predict/score, errors,
use without scikit-learn, and scikit-learn's clone, GridSearchCV and cross_val_score."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv
from fastconv import losses, optimizers
from fastconv.datasets import digits
from fastconv.layers import Conv2D, Dense, Flatten
from fastconv.wrappers import FIT_PARAMS, NotFittedError, SKLearnClassifier

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_cnn(filters=4, learning_rate=3e-3, classes=10):
    """A tiny CNN for 8x8 digits (module level, so that scikit-learn can clone and copy it)."""
    model = fastconv.Sequential([Conv2D(filters, 3, activation="relu"), Flatten(),
                                 Dense(classes, activation="softmax")], input_shape=(8, 8, 1))
    model.compile(optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    return model


def build_dense(units=8, loss="sparse_categorical_crossentropy", outputs=3, activation="softmax"):
    model = fastconv.Sequential([Dense(units, activation="relu"), Dense(outputs, activation=activation)],
                                input_shape=(4,))
    model.compile(optimizers.Adam(1e-2), loss)
    return model


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests train many tiny models, for which thread start-up costs more than it gains
    (conftest restores the thread count afterwards)."""
    fastconv.set_num_threads(1)


@pytest.fixture(scope="module")
def digit_data():
    (x, y), (x_test, y_test) = digits.load_data(seed=0)
    return x[:450], y[:450], x_test[:150], y_test[:150]


def blobs(n=60, seed=0, labels=("cat", "dog", "emu")):
    """Three well separated clusters in 4-D, labelled with arbitrary (string) labels."""
    rng = np.random.default_rng(seed)
    codes = np.arange(n) % len(labels)
    centres = 3.0 * np.eye(4)[: len(labels)]
    x = centres[codes] + 0.3 * rng.normal(size=(n, 4))
    return x, np.asarray(labels, dtype=object)[codes]


# -- parameters ------------------------------------------------------------------------------------
def test_params_are_stored_verbatim_and_round_trip():
    callbacks = [fastconv.callbacks.TerminateOnNaN()]
    clf = SKLearnClassifier(build_cnn, filters=6, epochs=3, callbacks=callbacks)
    params = clf.get_params()
    assert params == {"build_fn": build_cnn, "filters": 6, "epochs": 3, "callbacks": callbacks}
    assert params["callbacks"] is callbacks and clf.filters == 6
    copy = type(clf)(**clf.get_params(deep=False))  # what sklearn.base.clone does
    assert copy.get_params() == params
    assert clf.set_params(learning_rate=0.1, epochs=5) is clf
    assert clf.get_params(deep=False) == {"build_fn": build_cnn, "filters": 6, "epochs": 5,
                                          "callbacks": callbacks, "learning_rate": 0.1}
    assert "epochs" in FIT_PARAMS and "batch_size" in FIT_PARAMS
    assert repr(SKLearnClassifier(build_cnn, filters=2)) == "SKLearnClassifier(build_fn=build_cnn, filters=2)"


@pytest.mark.parametrize("make, match", [
    (lambda: SKLearnClassifier(build_cnn, units=3), "'units' is not a legal parameter.*build_cnn"),
    (lambda: SKLearnClassifier(build_cnn).set_params(nope=1), "'nope' is not a legal parameter"),
    (lambda: SKLearnClassifier(build_cnn, fit=1), "'fit' cannot be an estimator parameter"),
    (lambda: SKLearnClassifier(build_cnn, model_=1), "'model_' cannot be"),
    (lambda: SKLearnClassifier(build_cnn).set_params(other__x=1), "Invalid parameter 'other'"),
])
def test_illegal_parameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_build_fn_with_var_keyword_takes_any_parameter_and_nested_params():
    class Schedule:  # an estimator-like parameter: its parameters show up as "schedule__..."
        def __init__(self, rate=0.1):
            self.rate = rate

        def get_params(self, deep=True):
            return {"rate": self.rate}

        def set_params(self, **params):
            self.__dict__.update(params)
            return self

    received = {}

    def build(**kwargs):
        received.update(kwargs)
        return build_dense()

    schedule = Schedule()
    clf = SKLearnClassifier(build, anything=1, schedule=schedule, epochs=1)
    assert clf.get_params()["schedule__rate"] == 0.1
    clf.set_params(schedule__rate=0.5)
    assert schedule.rate == 0.5
    x, y = blobs(12)
    clf.fit(x, y)
    assert received == {"anything": 1, "schedule": schedule}  # fit parameters are not passed


# -- fit, predict, score -----------------------------------------------------------------------------
def test_string_labels_fit_predict_proba_score():
    fastconv.utils.set_random_seed(0)
    x, y = blobs(90)
    clf = SKLearnClassifier(build_dense, units=16, epochs=30, batch_size=16)
    assert clf.fit(x, y) is clf
    assert list(clf.classes_) == ["cat", "dog", "emu"] and clf.n_classes_ == 3
    proba = clf.predict_proba(x)
    assert proba.shape == (90, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(proba, clf.model_.predict(x), rtol=1e-6)  # column i = classes_[i]
    predicted = clf.predict(x)
    assert set(predicted) <= {"cat", "dog", "emu"}
    np.testing.assert_array_equal(predicted, clf.classes_[np.argmax(proba, axis=1)])
    assert clf.score(x, y) == np.mean(predicted == y)
    assert clf.score(x, y) > 0.9  # the clusters are separable
    weights = np.where(y == "cat", 1.0, 0.0)
    assert clf.score(x, y, sample_weight=weights) == np.mean(predicted[y == "cat"] == "cat")
    assert len(clf.history_.history["loss"]) == 30


def test_integer_labels_that_are_not_0_to_n(digit_data):
    x, y, _, _ = digit_data
    keep = y < 3
    labels = np.array([10, 20, 30])[y[keep]]
    fastconv.utils.set_random_seed(1)
    clf = SKLearnClassifier(build_cnn, classes=3, learning_rate=1e-2, epochs=5).fit(x[keep], labels)
    assert list(clf.classes_) == [10, 20, 30]
    assert set(np.unique(clf.predict(x[keep]))) <= {10, 20, 30}
    assert clf.score(x[keep], labels) > 0.8


def test_fit_parameters_reach_model_fit_and_call_kwargs_override(capsys):
    x, y = blobs(30)
    clf = SKLearnClassifier(build_dense, epochs=2, batch_size=7, shuffle=False)
    clf.fit(x, y)
    assert clf.history_.epoch == [0, 1] and capsys.readouterr().out == ""  # verbose=0 by default
    clf.fit(x, y, epochs=3, verbose=2)
    assert clf.history_.epoch == [0, 1, 2] and "Epoch 3/3" in capsys.readouterr().out
    x_val, y_val = blobs(9, seed=1)
    clf.fit(x, y, validation_data=(x_val, y_val))
    assert "val_loss" in clf.history_.history
    with pytest.raises(ValueError, match=r"`validation_data\[1\]` holds labels not seen in `y`: \['yak'\]"):
        clf.fit(x, y, validation_data=(x_val[:1], np.array(["yak"], dtype=object)))


def test_each_fit_builds_a_fresh_model():
    x, y = blobs(12)
    clf = SKLearnClassifier(build_dense, epochs=1)
    first = clf.fit(x, y).model_
    assert clf.fit(x, y).model_ is not first


@pytest.mark.parametrize("loss, outputs, activation", [
    ("categorical_crossentropy", 3, "softmax"),   # one-hot targets
    ("mse", 3, "softmax"),                         # one-hot targets
    (losses.SparseCategoricalCrossentropy(from_logits=True), 3, None),  # logits
])
def test_losses_get_their_target_format_and_probabilities(loss, outputs, activation):
    fastconv.utils.set_random_seed(2)
    x, y = blobs(60)
    clf = SKLearnClassifier(build_dense, loss=loss, outputs=outputs, activation=activation,
                            units=16, epochs=40, batch_size=12)
    clf.fit(x, y)
    proba = clf.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (proba >= 0).all()
    if activation is None:
        logits = clf.model_.predict(x).astype(np.float64)
        expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(proba, expected, rtol=1e-6)
    assert clf.score(x, y) > 0.9


def test_binary_with_one_sigmoid_unit():
    fastconv.utils.set_random_seed(3)
    x, y = blobs(40, labels=("no", "yes"))
    clf = SKLearnClassifier(build_dense, loss="binary_crossentropy", outputs=1, activation="sigmoid",
                            epochs=40, batch_size=8)
    clf.fit(x, y)
    p_yes = clf.model_.predict(x)[:, 0].astype(np.float64)
    np.testing.assert_allclose(clf.predict_proba(x), np.column_stack([1 - p_yes, p_yes]), rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(x), np.where(p_yes > 0.5, "yes", "no"))
    assert clf.score(x, y) > 0.9


def test_subclass_defining_call_instead_of_build_fn():
    class Blobs(SKLearnClassifier):
        def __call__(self, units=4):
            return build_dense(units=units)

    x, y = blobs(12)
    clf = Blobs(units=5, epochs=1).fit(x, y)
    assert clf.model_.layers[0].units == 5
    with pytest.raises(ValueError, match="'size' is not a legal parameter"):
        Blobs(size=3)


# -- errors ------------------------------------------------------------------------------------------
def test_usage_errors():
    x, y = blobs(12)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        SKLearnClassifier(build_dense).predict(x)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    with pytest.raises(ValueError, match="needs a `build_fn`"):
        SKLearnClassifier(epochs=1).fit(x, y)
    with pytest.raises(TypeError, match="`build_fn` must be callable"):
        SKLearnClassifier("model").fit(x, y)
    with pytest.raises(ValueError, match="must return a compiled model"):
        SKLearnClassifier(lambda: fastconv.Sequential([Dense(3)], input_shape=(4,))).fit(x, y)
    with pytest.raises(TypeError, match="must return a fastconv Sequential model; it returned dict"):
        SKLearnClassifier(lambda: {}).fit(x, y)
    with pytest.raises(ValueError, match=r"output shape \(None, 5\); it needs one unit per class, "
                                         r"\(None, 3\) for the 3 classes"):
        SKLearnClassifier(build_dense, outputs=5).fit(x, y)
    with pytest.raises(ValueError, match="at least 2 classes.*'cat'"):
        SKLearnClassifier(build_dense).fit(x[:1], y[:1])
    with pytest.raises(ValueError, match=r"one label per sample \(shape \(n,\)\); received shape \(12, 3\)"):
        SKLearnClassifier(build_dense).fit(x, np.eye(3)[np.arange(12) % 3])
    with pytest.raises(ValueError, match="same number of samples; received 12 and 11"):
        SKLearnClassifier(build_dense).fit(x, y[:11])


def test_works_without_scikit_learn_installed():
    # The wrapper must not import scikit-learn: run it in a process where the import fails.
    script = textwrap.dedent("""
        import sys
        sys.modules["sklearn"] = None  # any "import sklearn" now raises ImportError
        import numpy as np
        import fastconv
        from fastconv.layers import Dense
        from fastconv.wrappers import SKLearnClassifier

        def build(units=4):
            model = fastconv.Sequential([Dense(units, activation="relu"),
                                         Dense(2, activation="softmax")], input_shape=(3,))
            model.compile("adam", "sparse_categorical_crossentropy")
            return model

        clf = SKLearnClassifier(build, units=3, epochs=2)
        clf.set_params(units=5)
        x = np.random.default_rng(0).normal(size=(20, 3))
        y = np.where(x[:, 0] > 0, "pos", "neg")
        clf.fit(x, y)
        print(sorted(clf.get_params()), clf.predict(x[:2]).tolist() != [], clf.score(x, y) >= 0)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['build_fn', 'epochs', 'units'] True True"


# -- with scikit-learn -------------------------------------------------------------------------------
def test_sklearn_clone_and_classifier_detection():
    from sklearn.base import clone, is_classifier

    clf = SKLearnClassifier(build_cnn, filters=3, epochs=1)
    assert is_classifier(clf)
    copy = clone(clf)
    assert copy is not clf and copy.get_params() == clf.get_params()
    x, y = blobs(12)
    fitted = SKLearnClassifier(build_dense, epochs=1).fit(x, y)
    assert not hasattr(clone(fitted), "model_")  # a clone is unfitted


def test_cross_val_score_matches_a_manual_stratified_loop(digit_data):
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, y, _, _ = digit_data
    x, y = x[:300], y[:300]
    clf = SKLearnClassifier(build_cnn, filters=4, learning_rate=1e-2, epochs=3, batch_size=32)
    fastconv.utils.set_random_seed(7)
    scores = cross_val_score(clf, x, y, cv=3)
    fastconv.utils.set_random_seed(7)  # same draws: the same models train the same way
    manual = []
    for train, test in StratifiedKFold(3).split(x, y):
        fitted = SKLearnClassifier(build_cnn, filters=4, learning_rate=1e-2, epochs=3,
                                   batch_size=32).fit(x[train], y[train])
        manual.append(np.mean(fitted.predict(x[test]) == y[test]))
    np.testing.assert_array_equal(scores, manual)
    assert scores.mean() > 0.6  # well above the 10 % of chance after three epochs


def test_grid_search_picks_the_learning_rate_that_learns(digit_data):
    from sklearn.model_selection import GridSearchCV

    x, y, x_test, y_test = digit_data
    fastconv.utils.set_random_seed(8)
    clf = SKLearnClassifier(build_cnn, epochs=3, batch_size=32)
    # 1e-7 leaves the random initial network (about 10 % accuracy); 1e-2 learns the digits.
    search = GridSearchCV(clf, {"learning_rate": [1e-7, 1e-2], "filters": [2, 4]}, cv=3)
    search.fit(x, y)
    assert search.best_params_["learning_rate"] == 1e-2
    results = search.cv_results_
    slow = np.array(results["param_learning_rate"]) == 1e-7
    assert results["mean_test_score"][slow].max() < 0.35 < results["mean_test_score"][~slow].min()
    assert search.best_estimator_.model_.layers[0].filters == search.best_params_["filters"]
    assert search.score(x_test, y_test) > 0.7
