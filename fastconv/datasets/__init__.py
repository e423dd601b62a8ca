"""Data sets for examples and tests, Keras-style: `fastconv.datasets.<name>.load_data(...)`.

* `digits`: the UCI hand-written digits (1,797 8x8 images), bundled, no file needed.
* `mnist`: MNIST (or Fashion-MNIST) from the IDX files in a local folder.
* `cifar10`: CIFAR-10 from the binary or python batches in a local folder.

fastconv never downloads data; every loader reads local files only.
"""
from . import cifar10, digits, mnist

__all__ = ["cifar10", "digits", "mnist"]
