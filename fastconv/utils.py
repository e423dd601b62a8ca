"""Small shared utilities: the random number generator behind initializers and dropout."""
import numbers
import random

import numpy as np

# One module-level generator so that `set_random_seed` makes weight initialisation, dropout
# masks (of layers without their own seed) and anything else drawn here reproducible.
# Created on first use: `numpy.random` adds ~10 ms to `import fastconv`.
_rng = None


def set_random_seed(seed):
    """Seed fastconv's random generator (and, as Keras does, Python's and NumPy's global ones).

    Args:
        seed: non-negative integer.
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer; received {seed!r}.")
    seed = int(seed)
    _rng = np.random.default_rng(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def get_rng():
    """Return fastconv's module-level `numpy.random.Generator`."""
    global _rng
    if _rng is None:
        _rng = np.random.default_rng()
    return _rng


def check_seed(seed, name="seed"):
    """Validate a `seed=` argument: None, a non-negative int or a `numpy.random.Generator`."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)) or seed < 0:
        raise ValueError(
            f"`{name}` must be None, a non-negative integer or a numpy.random.Generator; "
            f"received {seed!r}."
        )
    return int(seed)
