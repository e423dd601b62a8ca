"""LeNet-5 on MNIST, read from the standard IDX files.

    python examples/lenet5_mnist.py --data-dir ~/data/mnist            # 5 epochs on all of MNIST
    python examples/lenet5_mnist.py --data-dir ~/data/mnist --limit 10000 --epochs 2
    python examples/lenet5_mnist.py --quick                            # seconds, no download

--data-dir is a folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may be gzipped); fastconv never
downloads anything. With --quick and no --data-dir, the script writes a small stand-in in the
same IDX format to a temporary folder, made from the bundled 8x8 digits enlarged to 28x28, so
the whole path (IDX files -> loader -> LeNet-5) runs offline.

As in LeCun et al. (1998), the 28x28 images are padded to 32x32 so that strokes reach the
centre of C1's receptive fields; pixels are scaled to [0, 1].
"""
import argparse
import os
import struct
import time

import numpy as np

import fastconv
from fastconv.applications import LeNet5
from fastconv.datasets import digits, mnist

# examples/_common.py: Python puts the script's own folder on sys.path.
from _common import (
    add_data_dir_options,
    add_training_options,
    load_from_data_dir_or_standin,
    positive_int,
    require_data_dir_unless_quick,
)


def write_idx(path, array):
    """Write a uint8 array as an IDX file: magic 0x00000800 | ndim, big-endian sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x00000800 | array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def write_standin_mnist(folder, seed=0):
    """MNIST-format files made from the bundled digits: 8x8 -> 24x24 (x3) -> padded to 28x28."""
    (x_train, y_train), (x_test, y_test) = digits.load_data(test_split=0.25, seed=seed)

    def to_mnist(x):
        big = np.kron(x[..., 0], np.ones((3, 3), dtype=np.float32))  # (n, 24, 24)
        big = np.pad(big, ((0, 0), (2, 2), (2, 2)))
        return np.round(big * 255).astype(np.uint8)

    for name, array in ((mnist.FILES["train_images"], to_mnist(x_train)),
                        (mnist.FILES["train_labels"], y_train),
                        (mnist.FILES["test_images"], to_mnist(x_test)),
                        (mnist.FILES["test_labels"], y_test)):
        write_idx(os.path.join(folder, name), array)


def prepare(images):
    """uint8 (n, 28, 28) -> float32 (n, 32, 32, 1) in [0, 1], padded by 2 pixels per side."""
    x = images.astype(np.float32) / 255.0
    return np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., np.newaxis]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_dir_options(parser, data_dir_help="folder with the MNIST IDX files",
                         quick_help="a few seconds: small subset, 2 epochs "
                                    "(a stand-in data set if no --data-dir)")
    add_training_options(parser, epochs_help="training epochs (default 5, --quick 2)")
    parser.add_argument("--limit", type=positive_int, help="use only the first N training images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    require_data_dir_unless_quick(parser, args, quick_uses="an offline stand-in data set")
    epochs = args.epochs or (2 if args.quick else 5)
    limit = args.limit or (600 if args.quick else None)
    fastconv.utils.set_random_seed(args.seed)

    data = load_from_data_dir_or_standin(
        mnist.load_data, args.data_dir, lambda folder: write_standin_mnist(folder, seed=args.seed),
        "a stand-in MNIST (bundled digits enlarged to 28x28) in IDX format")
    if data is None:  # missing or damaged files, already reported
        return 1
    (x_train, y_train), (x_test, y_test) = data
    print(f"Loaded {len(x_train)} training and {len(x_test)} test images of "
          f"{x_train.shape[1]}x{x_train.shape[2]} pixels")
    if x_train.shape[1:] != (28, 28):
        parser.error(f"expected 28x28 images, found {x_train.shape[1:]}")
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    test_limit = 300 if args.quick else None
    x_train, x_test = prepare(x_train), prepare(x_test[:test_limit])
    y_test = y_test[:test_limit]

    model = LeNet5(input_shape=(32, 32, 1), num_classes=10)
    model.summary()
    model.compile(optimizer=fastconv.optimizers.Adam(learning_rate=args.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, verbose=2,
              validation_split=0.1)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"Trained LeNet-5 ({model.count_params():,} parameters) on {len(x_train)} images for "
          f"{epochs} epochs in {seconds:.1f} s")
    print(f"Test accuracy: {accuracy:.2%} (loss {loss:.4f}) on {len(x_test)} test images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
