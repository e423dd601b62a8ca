"""AlexNet, scaled down for 32x32 images, on CIFAR-10 read from the official batch files.

    python examples/alexnet_cifar10.py --data-dir ~/data/cifar-10-batches-bin
    python examples/alexnet_cifar10.py --data-dir ~/data --limit 10000 --epochs 3 --batch-norm
    python examples/alexnet_cifar10.py --quick        # seconds, synthetic data, no download

--data-dir holds the binary version (data_batch_1.bin ... data_batch_5.bin, test_batch.bin)
or the python version of CIFAR-10, or is their parent folder; fastconv never downloads
anything. With --quick and no --data-dir, the script writes small synthetic batches in the
binary format (one label byte and 3,072 channel-first pixel bytes per image) to a temporary
folder, where each class is a coloured square at its own position on a noisy background, so
the whole path (batch files -> loader -> AlexNet) runs offline.

The model is `fastconv.applications.AlexNet(input_shape=(32, 32, 3), num_classes=10,
width=...)`: the 2012 layer structure with its small-input first convolution (5x5, stride 1,
instead of 11x11, stride 4) and every layer's width multiplied by --width. Pixels are
standardised per channel with the training set's mean and standard deviation.
"""
import argparse
import os
import time

import numpy as np

import fastconv
from fastconv.applications import AlexNet
from fastconv.datasets import cifar10

# examples/_common.py: Python puts the script's own folder on sys.path.
from _common import (
    add_data_dir_options,
    add_training_options,
    load_from_data_dir_or_standin,
    positive_int,
    require_data_dir_unless_quick,
)


def synthetic_images(n, rng):
    """Noisy images where class c is a coloured 8x8 square at a class-dependent position."""
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 96, size=(n, 32, 32, 3)).astype(np.uint8)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255],
                        [0, 255, 255], [255, 128, 0], [128, 0, 255], [255, 255, 255], [0, 128, 128]])
    for i, label in enumerate(labels):
        top, left = 4 + 16 * (label % 2), 2 + 5 * (label // 2)
        images[i, top:top + 8, left:left + 8] = colours[label]
    return images, labels


def write_binary_batch(path, images, labels):
    """CIFAR-10 binary records: label byte, then the image as 1,024 R, 1,024 G, 1,024 B bytes."""
    chw = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    records = np.concatenate([labels.astype(np.uint8)[:, None], chw], axis=1)
    with open(path, "wb") as f:
        f.write(records.tobytes())


def write_synthetic_cifar10(folder, per_batch, seed=0):
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        write_binary_batch(os.path.join(folder, name), *synthetic_images(per_batch, rng))


def standardise(x_train, x_test):
    x_train = x_train.astype(np.float32) / 255.0
    x_test = x_test.astype(np.float32) / 255.0
    mean = x_train.mean(axis=(0, 1, 2))
    std = x_train.std(axis=(0, 1, 2)) + 1e-6
    return (x_train - mean) / std, (x_test - mean) / std


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_dir_options(parser,
                         data_dir_help="folder with the CIFAR-10 batches (binary or python)",
                         quick_help="a few seconds: small subset, width 0.125 "
                                    "(synthetic data if no --data-dir)")
    add_training_options(parser, epochs_help="training epochs (default 10, --quick 3)")
    parser.add_argument("--width", type=float, help="AlexNet width multiplier (default 0.25, --quick 0.125)")
    parser.add_argument("--batch-norm", action="store_true",
                        help="BatchNormalization after each convolution (instead of LRN)")
    parser.add_argument("--limit", type=positive_int, help="use only the first N training images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    require_data_dir_unless_quick(parser, args, quick_uses="synthetic data")
    epochs = args.epochs or (3 if args.quick else 10)
    width = args.width or (0.125 if args.quick else 0.25)
    limit = args.limit or (300 if args.quick else None)
    fastconv.utils.set_random_seed(args.seed)

    data = load_from_data_dir_or_standin(
        cifar10.load_data, args.data_dir,
        lambda folder: write_synthetic_cifar10(folder, per_batch=100, seed=args.seed),
        "synthetic CIFAR-10 binary batches")
    if data is None:  # missing or damaged files, already reported
        return 1
    (x_train, y_train), (x_test, y_test) = data
    print(f"Loaded {len(x_train)} training and {len(x_test)} test images of shape {x_train.shape[1:]}")
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    if args.quick:
        x_test, y_test = x_test[:100], y_test[:100]
    x_train, x_test = standardise(x_train, x_test)

    model = AlexNet(input_shape=(32, 32, 3), num_classes=10, width=width, batch_norm=args.batch_norm)
    model.summary()
    model.compile(optimizer=fastconv.optimizers.Adam(learning_rate=args.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, verbose=2,
              validation_split=0.1)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"Trained AlexNet (width {width}, {model.count_params():,} parameters) on "
          f"{len(x_train)} images for {epochs} epochs in {seconds:.1f} s")
    print(f"Test accuracy: {accuracy:.2%} (loss {loss:.4f}) on {len(x_test)} test images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
