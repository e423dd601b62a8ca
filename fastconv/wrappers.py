"""scikit-learn compatible wrappers, for hyper-parameter search and cross-validation.

    from sklearn.model_selection import GridSearchCV
    from fastconv.wrappers import SKLearnClassifier

    def build_model(filters=8, learning_rate=1e-3):
        model = fastconv.Sequential([...], input_shape=(8, 8, 1))
        model.compile(optimizer=fastconv.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy")
        return model

    clf = SKLearnClassifier(build_model, filters=8, epochs=5, batch_size=32)
    search = GridSearchCV(clf, {"filters": [4, 8], "learning_rate": [1e-3, 3e-3]}, cv=3)
    search.fit(x_train, y_train)

scikit-learn is optional (`pip install fastconv[sklearn]`): this module never imports it,
so the wrapper works (fit, predict, get_params, ...) without it; scikit-learn's own tools
(GridSearchCV, cross_val_score, clone) need it installed, of course.
"""
import inspect

import numpy as np

from . import losses as losses_module
from .models import Sequential

# Estimator parameters passed on to `Sequential.fit` (with the wrapper's defaults when unset).
FIT_PARAMS = ("epochs", "batch_size", "verbose", "callbacks", "validation_split", "shuffle",
              "validation_batch_size", "validation_freq")
_FIT_DEFAULTS = {"verbose": 0}  # quiet by default: a search trains many models


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before `fit` (same bases as scikit-learn's NotFittedError)."""


class SKLearnClassifier:
    """A scikit-learn classifier that builds, trains and queries a fastconv model.

    As in Keras' former `KerasClassifier`, the estimator's parameters are the keyword
    arguments of `build_fn` plus the training arguments `epochs`, `batch_size`, `verbose`,
    `callbacks`, `validation_split`, `shuffle`, `validation_batch_size` and `validation_freq`
    (passed to `Sequential.fit`; `batch_size` is also used by `predict`). Parameters that are
    not given keep `build_fn`'s and `fit`'s defaults, except `verbose`, 0 here. Each `fit`
    builds a fresh model with `build_fn(**build_params)`.

    `build_fn` must return a compiled `Sequential` whose output has one unit per class (the
    classes found in `y` by `fit`, in sorted order) holding probabilities (softmax), or logits
    with a `from_logits=True` loss; a single sigmoid unit also works for two classes. Labels
    may be of any sortable type (ints, strings, ...): they are encoded as 0..n_classes-1
    (`classes_` maps back) and given to the model as integers for the sparse crossentropy,
    one-hot for other losses, or a (n, 1) column for a single output unit.

    Args:
        build_fn: function (or callable object) returning a compiled model. If None, a
            subclass's `__call__` method is used, as in Keras.
        **params: estimator parameters, stored as given (scikit-learn's `clone` relies on it).

    Attributes (after `fit`):
        model_: the trained `Sequential`.
        history_: the `History` its `fit` returned.
        classes_: the sorted distinct labels seen by `fit`.
        n_classes_: their number.
    """

    _estimator_type = "classifier"  # scikit-learn < 1.6 reads this

    def __init__(self, build_fn=None, **params):
        self.build_fn = build_fn
        for name in params:
            self._check_param_name(name)
        for name, value in params.items():
            setattr(self, name, value)
        self._param_names = list(params)

    # -- parameters ---------------------------------------------------------------------------
    def _builder(self):
        """The callable that builds a model: build_fn, or the subclass's __call__."""
        if self.build_fn is not None:
            if not callable(self.build_fn):
                raise TypeError(f"`build_fn` must be callable (a function returning a compiled "
                                f"model); received {self.build_fn!r}.")
            return self.build_fn
        if type(self).__call__ is not SKLearnClassifier.__call__:
            return self.__call__
        raise ValueError("SKLearnClassifier needs a `build_fn` returning a compiled model (or a "
                         "subclass defining `__call__(self, **build_params)`).")

    def _build_signature(self):
        """(names of build_fn's keyword arguments, whether it takes **kwargs)."""
        builder = self._builder()
        try:
            parameters = inspect.signature(builder).parameters.values()
        except (TypeError, ValueError):  # no introspectable signature: pass everything
            return set(), True
        names = {p.name for p in parameters
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        return names, any(p.kind == p.VAR_KEYWORD for p in parameters)

    def _check_param_name(self, name):
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_") \
                or name.endswith("_") or name == "build_fn" or hasattr(SKLearnClassifier, name):
            raise ValueError(
                f"{name!r} cannot be an estimator parameter of SKLearnClassifier: names must be "
                "identifiers that neither start nor end with '_' nor name one of its methods.")
        if name in FIT_PARAMS or self.build_fn is None and type(self) is SKLearnClassifier:
            return  # without build_fn the error about it comes at fit time
        names, takes_kwargs = self._build_signature()
        if name not in names and not takes_kwargs:
            raise ValueError(
                f"{name!r} is not a legal parameter: it is neither an argument of build_fn "
                f"{getattr(self._builder(), '__name__', self._builder())!r} ({sorted(names)}) "
                f"nor a training argument ({list(FIT_PARAMS)}).")

    def get_params(self, deep=True):
        """The estimator's parameters: `build_fn` and every parameter given or set.

        Args:
            deep: also return the parameters of parameters that are estimators themselves,
                as "name__subname" (scikit-learn's convention).
        """
        params = {"build_fn": self.build_fn}
        params.update((name, getattr(self, name)) for name in self._param_names)
        if deep:
            for name, value in list(params.items()):
                if hasattr(value, "get_params") and not isinstance(value, type):
                    params.update((f"{name}__{key}", sub) for key, sub in value.get_params().items())
        return params

    def set_params(self, **params):
        """Set parameters (those of `build_fn`, the training ones, or "name__subname"); return self."""
        nested = {}
        for name, value in params.items():
            if "__" in name:
                outer, inner = name.split("__", 1)
                if outer not in self.get_params(deep=False):
                    raise ValueError(f"Invalid parameter {outer!r} for estimator {self!r}.")
                nested.setdefault(outer, {})[inner] = value
                continue
            if name == "build_fn":
                self.build_fn = value
                continue
            self._check_param_name(name)
            setattr(self, name, value)
            if name not in self._param_names:
                self._param_names.append(name)
        for outer, inner_params in nested.items():
            getattr(self, outer).set_params(**inner_params)
        return self

    def __sklearn_tags__(self):
        # scikit-learn >= 1.6 reads the estimator type from here; only scikit-learn calls it.
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), non_deterministic=True)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    def __repr__(self):
        args = ", ".join(f"{k}={v.__name__ if callable(v) and hasattr(v, '__name__') else repr(v)}"
                         for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    # -- fitting ------------------------------------------------------------------------------
    def _build_model(self):
        names, takes_kwargs = self._build_signature()
        params = self.get_params(deep=False)
        del params["build_fn"]
        build_params = {k: v for k, v in params.items()
                        if k in names or (takes_kwargs and k not in FIT_PARAMS)}
        model = self._builder()(**build_params)
        if not isinstance(model, Sequential):
            raise TypeError(f"build_fn must return a fastconv Sequential model; it returned "
                            f"{type(model).__name__}.")
        if not model.compiled or model.loss is None:
            raise ValueError("build_fn must return a compiled model: call model.compile(optimizer=..., "
                             "loss=...) in it.")
        return model

    def _encode_labels(self, y, name="y"):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"`{name}` must hold one label per sample (shape (n,)); received "
                             f"shape {y.shape}.")
        return y

    def _targets(self, codes):
        """The encoded labels in the form the model's loss expects."""
        if isinstance(self.model_.loss, losses_module.SparseCategoricalCrossentropy):
            return codes
        if self._output_units == 1:
            return codes.reshape(-1, 1).astype(np.float64)
        return np.eye(self.n_classes_, dtype=np.float64)[codes]

    def fit(self, x, y, **kwargs):
        """Build a fresh model with `build_fn` and train it on (x, y).

        Args:
            x: inputs, shape (samples,) + the model's input shape.
            y: labels, shape (samples,), of any sortable type.
            **kwargs: extra arguments of `Sequential.fit` for this call (they override the
                estimator's parameters); labels in `validation_data` are encoded like `y`.

        Returns:
            self.
        """
        y = self._encode_labels(y)
        x = np.asarray(x)
        if len(x) != len(y):
            raise ValueError(f"`x` and `y` must have the same number of samples; received "
                             f"{len(x)} and {len(y)}.")
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"`y` must hold at least 2 classes to train a classifier; received "
                             f"only {classes.tolist()!r}.")
        for attribute in ("model_", "history_"):
            self.__dict__.pop(attribute, None)
        model = self._build_model()
        if not model.built:
            model.build(x.shape[1:])
        output_shape = tuple(model.output_shape)
        units = output_shape[-1]
        if len(output_shape) != 2 or not (units == len(classes) or units == 1 and len(classes) == 2):
            raise ValueError(
                f"The model from build_fn has output shape {output_shape}; it needs one unit "
                f"per class, (None, {len(classes)}) for the {len(classes)} classes in `y` "
                f"{classes.tolist()[:10]!r}{'...' if len(classes) > 10 else ''}"
                + (", or (None, 1) with a sigmoid" if len(classes) == 2 else "") + ".")
        self.classes_ = classes
        self.n_classes_ = len(classes)
        self._output_units = units
        self.model_ = model

        fit_args = {name: getattr(self, name) for name in FIT_PARAMS if name in self._param_names}
        for name, default in _FIT_DEFAULTS.items():
            fit_args.setdefault(name, default)
        fit_args.update(kwargs)
        validation = fit_args.get("validation_data")
        if validation is not None and isinstance(validation, (tuple, list)) and len(validation) >= 2:
            fit_args["validation_data"] = (validation[0],
                                           self._targets(self._codes_of(validation[1],
                                                                        "validation_data[1]")))
        self.history_ = model.fit(x, self._targets(codes), **fit_args)
        return self

    def _codes_of(self, y, name):
        y = self._encode_labels(y, name)
        codes = np.searchsorted(self.classes_, y)
        codes = np.clip(codes, 0, len(self.classes_) - 1)
        unknown = self.classes_[codes] != y
        if unknown.any():
            raise ValueError(f"`{name}` holds labels not seen in `y`: "
                             f"{np.unique(y[unknown]).tolist()[:10]!r}.")
        return codes

    # -- prediction ---------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call "
                                 "fit(x, y) before using it.")

    def predict_proba(self, x):
        """Class probabilities, shape (samples, n_classes), columns in the order of `classes_`."""
        self._check_fitted()
        output = np.asarray(self.model_.predict(x, batch_size=getattr(self, "batch_size", None),
                                                verbose=0), dtype=np.float64)
        if getattr(self.model_.loss, "from_logits", False):  # the model outputs logits
            if self._output_units == 1:
                output = 1.0 / (1.0 + np.exp(-output))
            else:
                shifted = np.exp(output - output.max(axis=1, keepdims=True))
                output = shifted / shifted.sum(axis=1, keepdims=True)
        if self._output_units == 1:
            return np.column_stack([1.0 - output[:, 0], output[:, 0]])
        return output

    def predict(self, x):
        """The most probable class of each sample (labels from `classes_`)."""
        self._check_fitted()
        return self.classes_[np.argmax(self.predict_proba(x), axis=1)]

    def score(self, x, y, sample_weight=None):
        """Accuracy of `predict(x)` against `y` (weighted by `sample_weight` if given)."""
        y = self._encode_labels(y)
        predicted = self.predict(x)
        if len(predicted) != len(y):
            raise ValueError(f"`x` and `y` must have the same number of samples; received "
                             f"{len(predicted)} and {len(y)}.")
        return float(np.average(predicted == y, weights=sample_weight))

    def __call__(self, **build_params):
        """Subclasses may define this instead of passing `build_fn` (Keras' convention)."""
        raise NotImplementedError


__all__ = ["SKLearnClassifier", "NotFittedError", "FIT_PARAMS"]
