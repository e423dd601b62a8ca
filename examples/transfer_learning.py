"""Transfer learning: reuse a convolutional base trained on digits 0-4 to learn digits 5-9.

1. Train a small CNN on the digits 0-4, save it, and load it back (as one would load a
   model trained elsewhere).
2. Take the loaded model's convolutional layers (its "base"), freeze them
   (`layer.trainable = False`; their BatchNormalization then runs in inference mode), and put
   a new classification head on top: `Sequential(base_layers + [new head])`.
3. Train only the head on a few examples of each of the digits 5-9.
4. Compare with the same network trained from scratch on the same few examples.

Only the head's few thousand parameters train in step 3, and backpropagation stops at the
head, so each epoch is cheaper than training the whole network. How the two accuracies
compare depends on the data: these 8x8 digits are so easy that a network trained from
scratch on a handful of examples already does well, and the two usually end up within a few
points of each other; the script prints both, and the training times, rather than promising
a winner.

    python examples/transfer_learning.py --quick
    python examples/transfer_learning.py --samples-per-class 5
"""
import argparse
import os
import tempfile
import time

import numpy as np

import fastconv
from fastconv.datasets import digits
from fastconv.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Flatten,
    MaxPooling2D,
)
from fastconv.models import load_model

# examples/_common.py: Python puts the script's own folder on sys.path.
from _common import positive_int


def conv_base():
    """The feature extractor: two conv/BN/ReLU/pool blocks, 8x8x1 -> 128 features.

    BatchNormalization's momentum is 0.9 rather than Keras' 0.99: with the few hundred steps
    of this small data set, 0.99 would leave the moving statistics (which inference and the
    frozen base use) far from the data's.
    """
    return [
        Conv2D(16, 3, padding="same", use_bias=False, name="conv1"),
        BatchNormalization(momentum=0.9, name="bn1"), Activation("relu", name="relu1"),
        MaxPooling2D(2, name="pool1"),
        Conv2D(32, 3, padding="same", use_bias=False, name="conv2"),
        BatchNormalization(momentum=0.9, name="bn2"), Activation("relu", name="relu2"),
        MaxPooling2D(2, name="pool2"),
        Flatten(name="features"),
    ]


def head(prefix):
    return [Dense(32, activation="relu", name=f"{prefix}_hidden"),
            Dense(5, activation="softmax", name=f"{prefix}_output")]


def compile_model(model, learning_rate):
    model.compile(optimizer=fastconv.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def few_per_class(x, y, count, rng):
    """`count` random examples of each class, shuffled."""
    chosen = rng.permutation(np.concatenate([rng.choice(np.flatnonzero(y == c), count, replace=False)
                                             for c in np.unique(y)]))
    return x[chosen], y[chosen]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (a few seconds)")
    parser.add_argument("--samples-per-class", type=positive_int, default=10,
                        help="training examples of each digit 5-9 (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    base_epochs, head_epochs = (6, 40) if args.quick else (15, 60)
    fastconv.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    (x_train, y_train), (x_test, y_test) = digits.load_data(seed=args.seed)
    low_train, low_test = y_train < 5, y_test < 5

    # 1. The source task: digits 0-4, all of their training examples.
    source = compile_model(fastconv.Sequential(conv_base() + head("digits0to4"),
                                               input_shape=(8, 8, 1), name="source"), 3e-3)
    source.fit(x_train[low_train], y_train[low_train], batch_size=32, epochs=base_epochs, verbose=0)
    _, source_accuracy = source.evaluate(x_test[low_test], y_test[low_test], verbose=0)
    print(f"1. Source model trained on digits 0-4 ({low_train.sum()} images, {base_epochs} "
          f"epochs): test accuracy {source_accuracy:.2%}")

    with tempfile.TemporaryDirectory() as folder:
        path = source.save(os.path.join(folder, "digits0to4.fcz"))
        loaded = load_model(path)
    print(f"   saved and loaded back: {len(loaded.layers)} layers, {loaded.count_params():,} parameters")

    # 2. The target task: digits 5-9 (labels 0-4 for the new head), few examples each.
    x_few, y_few = few_per_class(x_train[~low_train], y_train[~low_train] - 5,
                                 args.samples_per_class, rng)
    x_target_test, y_target_test = x_test[~low_test], y_test[~low_test] - 5
    base = loaded.layers[:len(conv_base())]  # conv1 ... features
    for layer in base:
        layer.trainable = False
    transfer = compile_model(fastconv.Sequential(base + head("digits5to9"), name="transfer"), 1e-2)
    frozen_before = [w.copy() for w in transfer.non_trainable_weights]
    print(f"2. Transfer model: the loaded base ({sum(layer.count_params() for layer in base):,} "
          f"frozen parameters) + a new head ({sum(w.size for w in transfer.trainable_weights):,} "
          "trainable)")
    start = time.perf_counter()
    transfer.fit(x_few, y_few, batch_size=16, epochs=head_epochs, verbose=0)
    transfer_seconds = time.perf_counter() - start
    _, transfer_accuracy = transfer.evaluate(x_target_test, y_target_test, verbose=0)
    unchanged = all(np.array_equal(a, b) for a, b in zip(frozen_before, transfer.non_trainable_weights))
    print(f"3. Head trained on {len(x_few)} images of digits 5-9 ({args.samples_per_class} per "
          f"class, {head_epochs} epochs): test accuracy {transfer_accuracy:.2%}; frozen base "
          f"weights unchanged: {'yes' if unchanged else 'NO'}")

    # 4. Baseline: the same architecture from scratch on the same few images.
    scratch = compile_model(fastconv.Sequential(conv_base() + head("scratch"), input_shape=(8, 8, 1),
                                                name="scratch"), 1e-2)
    start = time.perf_counter()
    scratch.fit(x_few, y_few, batch_size=16, epochs=head_epochs, verbose=0)
    scratch_seconds = time.perf_counter() - start
    _, scratch_accuracy = scratch.evaluate(x_target_test, y_target_test, verbose=0)
    print(f"4. Same network from scratch on the same {len(x_few)} images: test accuracy "
          f"{scratch_accuracy:.2%}")
    print(f"\nDigits 5-9 test accuracy ({len(x_target_test)} images): transfer "
          f"{transfer_accuracy:.2%} vs from scratch {scratch_accuracy:.2%}; training time "
          f"{transfer_seconds:.2f} s vs {scratch_seconds:.2f} s")
    return 0 if unchanged else 1


if __name__ == "__main__":
    raise SystemExit(main())
