"""Counter-based random bits (Dropout's masks): compiled kernel vs the NumPy definition."""
import numpy as np
import pytest

import fastconv
from fastconv import layers as L
from fastconv import ops
from fastconv import reference as ref

SEEDS = [0, 1, 12345, 2**63, 2**64 - 1]
SHAPES = [(0,), (1,), (2,), (7,), (3, 5, 7), (64, 3136), (1001,)]


def _splitmix64(seed, j):
    """Word j of the definition, in Python integers (independent of the NumPy code)."""
    mask = (1 << 64) - 1
    z = (seed + (j + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_follows_the_definition(seed):
    bits = ref.random_bits(seed, (9,))
    words = [_splitmix64(seed, j) for j in range(5)]
    expected = [w >> (32 * half) & 0xFFFFFFFF for w in words for half in (0, 1)][:9]
    assert bits.dtype == np.uint32
    assert bits.tolist() == expected


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_compiled_equals_reference(seed, shape):
    got = ops.random_bits(seed, shape)
    assert got.dtype == np.uint32 and got.shape == shape
    np.testing.assert_array_equal(got, ref.random_bits(seed, shape))


def test_same_bits_for_any_thread_count():
    previous = fastconv.backend._num_threads
    try:
        results = []
        for threads in (1, 2, 3, 7):
            fastconv.set_num_threads(threads)
            results.append(ops.random_bits(99, (100_003,)))
    finally:
        fastconv.set_num_threads(previous)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_statistics_of_a_fixed_seed():
    bits = ops.random_bits(2024, (1_000_000,))
    assert abs(bits.mean() / 2**32 - 0.5) < 0.01
    for k in range(32):
        assert abs(((bits >> np.uint32(k)) & 1).mean() - 0.5) < 0.01, k
    assert len(np.unique(bits[:10_000])) > 9_990  # no short cycles / repeats
    other = ops.random_bits(2025, (1_000_000,))
    assert (bits == other).mean() < 1e-3  # neighbouring seeds give unrelated streams


@pytest.mark.parametrize("module", [ops, ref])
@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "1", None])
def test_bad_seed_raises(module, seed):
    with pytest.raises(ValueError, match="seed"):
        module.random_bits(seed, (3,))


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_dropout_masks_reproducible_and_fresh(backend):
    x = np.ones((64, 300), dtype=np.float32)
    with fastconv.backend.use_backend(backend):
        first = L.Dropout(0.3, seed=11)
        a, b = first.forward(x, training=True), first.forward(x, training=True)
        again = L.Dropout(0.3, seed=11).forward(x, training=True)
    np.testing.assert_array_equal(a, again)  # same seed, same mask
    assert not np.array_equal(a, b)  # consecutive calls draw new masks
    kept = (a != 0).mean()
    assert abs(kept - 0.7) < 0.01
    np.testing.assert_allclose(a[a != 0], 1 / 0.7, rtol=1e-6)


def test_both_backends_draw_the_same_mask():
    x = np.ones((8, 50), dtype=np.float64)
    masks = []
    for backend in ("compiled", "reference"):
        with fastconv.backend.use_backend(backend):
            masks.append(L.Dropout(0.5, seed=3).forward(x, training=True))
    np.testing.assert_array_equal(masks[0], masks[1])
