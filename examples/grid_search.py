"""Hyper-parameter search with scikit-learn's GridSearchCV over a fastconv CNN.

`fastconv.wrappers.SKLearnClassifier` makes a model-building function look like a
scikit-learn classifier: the function's keyword arguments (here the number of filters and
the learning rate) and the training arguments (epochs, batch_size) are the estimator's
parameters, so GridSearchCV can try every combination with k-fold cross-validation, refit
the best one on all the training data, and score it on the test set.

Needs scikit-learn (`pip install fastconv[sklearn]`).

    python examples/grid_search.py --quick
    python examples/grid_search.py --folds 5
"""
import argparse
import sys
import time

import fastconv
from fastconv.datasets import digits
from fastconv.layers import Conv2D, Dense, Flatten, MaxPooling2D
from fastconv.wrappers import SKLearnClassifier

# examples/_common.py: Python puts the script's own folder on sys.path.
from _common import positive_int


def build_cnn(filters=8, learning_rate=1e-3):
    """Conv(filters, 3x3) -> max pool -> dense softmax over the 10 digits, compiled."""
    model = fastconv.Sequential([
        Conv2D(filters, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Flatten(),
        Dense(10, activation="softmax"),
    ], input_shape=(8, 8, 1))
    model.compile(optimizer=fastconv.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds: 2x2 grid, 3 folds, 600 training digits")
    parser.add_argument("--folds", type=int, default=3, help="cross-validation folds")
    parser.add_argument("--epochs", type=positive_int, help="epochs per fit (default 10, --quick 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    try:
        from sklearn.model_selection import GridSearchCV
    except ImportError:
        print("This example needs scikit-learn: pip install fastconv[sklearn] "
              "(or pip install scikit-learn).", file=sys.stderr)
        return 1

    fastconv.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = digits.load_data(seed=args.seed)
    if args.quick:
        x_train, y_train = x_train[:600], y_train[:600]
        grid = {"filters": [4, 16], "learning_rate": [1e-4, 1e-2]}
    else:
        grid = {"filters": [4, 8, 16], "learning_rate": [3e-4, 1e-3, 3e-3, 1e-2]}
    epochs = args.epochs or (3 if args.quick else 10)

    estimator = SKLearnClassifier(build_cnn, epochs=epochs, batch_size=32)
    search = GridSearchCV(estimator, grid, cv=args.folds)
    n_fits = args.folds * len(search.param_grid["filters"]) * len(search.param_grid["learning_rate"])
    print(f"Grid {grid}\n{n_fits} fits ({args.folds}-fold cross-validation) of {epochs} epochs on "
          f"{len(x_train)} digits, then one refit of the best on all of them")
    start = time.perf_counter()
    search.fit(x_train, y_train)
    seconds = time.perf_counter() - start

    results = search.cv_results_
    order = sorted(range(len(results["params"])), key=lambda i: results["rank_test_score"][i])
    print(f"\n{'rank':>4}  {'filters':>7}  {'learning_rate':>13}  {'mean accuracy':>13}  {'std':>6}")
    for i in order:
        params = results["params"][i]
        print(f"{results['rank_test_score'][i]:4d}  {params['filters']:7d}  "
              f"{params['learning_rate']:13g}  {results['mean_test_score'][i]:13.4f}  "
              f"{results['std_test_score'][i]:6.4f}")
    print(f"\nBest parameters: {search.best_params_} (cross-validated accuracy "
          f"{search.best_score_:.4f}); search took {seconds:.1f} s")
    print(f"Test accuracy of the refitted best model: {search.score(x_test, y_test):.2%} "
          f"({len(x_test)} digits)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
