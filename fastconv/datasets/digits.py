"""The UCI ML hand-written digits, bundled with fastconv (1,797 8x8 grey images, 10 classes).

The data (Alpaydin & Kaynak 1998, UCI Machine Learning Repository, CC BY 4.0) ships inside the
package as `data/digits.npz`; `data/DIGITS_SOURCE.txt` gives its origin, licence, citation and
checksums. It is small enough to train a CNN on in seconds, so examples and tests need no download.
"""
import numbers
from importlib import resources

import numpy as np

NUM_CLASSES = 10
IMAGE_SHAPE = (8, 8, 1)
MAX_PIXEL_VALUE = 16  # each pixel counts the "on" pixels of a 4x4 block: 0..16


def load_raw():
    """Load the 1,797 bundled images and labels exactly as stored.

    Returns:
        Tuple `(images, labels)`: uint8 arrays of shapes (1797, 8, 8) (values 0..16)
        and (1797,) (values 0..9).
    """
    source = resources.files(__package__).joinpath("data", "digits.npz")
    with source.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        return npz["images"], npz["labels"]


def _check_split_args(test_split, seed):
    if (
        isinstance(test_split, bool)
        or not isinstance(test_split, numbers.Real)
        or not 0.0 < float(test_split) < 1.0
    ):
        raise ValueError(
            f"`test_split` must be a number strictly between 0 and 1; received {test_split!r}."
        )
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer; received {seed!r}.")


def load_data(test_split=0.2, seed=0):
    """Load the bundled digits, split into train and held-out test sets.

    The split is stratified (each class keeps its share in both sets) and depends only on
    `seed`, so the same arguments always give the same sets.

    Args:
        test_split: fraction of each class held out for testing, strictly between 0 and 1.
        seed: non-negative integer seeding the split and the order of the samples.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.
        `x_*`: float32 images of shape (n, 8, 8, 1), scaled from 0..16 to [0, 1].
        `y_*`: int64 class labels 0..9, shape (n,).
    """
    _check_split_args(test_split, seed)
    images, labels = load_raw()
    rng = np.random.default_rng(int(seed))
    train_parts, test_parts = [], []
    for digit in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == digit))
        n_test = int(round(len(members) * float(test_split)))
        # Keep at least one sample of every class on each side, whatever the fraction.
        n_test = min(max(n_test, 1), len(members) - 1)
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    # Shuffle across classes so that mini-batches are mixed even without fit(shuffle=True).
    train_idx = rng.permutation(np.concatenate(train_parts))
    test_idx = rng.permutation(np.concatenate(test_parts))

    def select(idx):
        x = images[idx].astype(np.float32)[..., np.newaxis] / np.float32(MAX_PIXEL_VALUE)
        return x, labels[idx].astype(np.int64)

    return select(train_idx), select(test_idx)
