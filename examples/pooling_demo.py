"""Max pooling versus average pooling on a feature map, printed step by step.

Pooling shrinks a feature map by summarising each window: max pooling keeps the strongest
response ("is the feature there?"), average pooling the mean ("how much of it is there?").
The script pools a small hand-written 4x4 map (the classic textbook example), then a 6x6 map
with one strong activation that moves by one pixel within a window (pooling does not see
such small shifts), then 'same' padding and global pooling. Every result is checked against a
direct NumPy computation. Without --quick it also pools a batch of large random maps on the
compiled kernels and on the NumPy reference, and compares them.

    python examples/pooling_demo.py --quick
"""
import argparse
import time

import numpy as np

import fastconv
from fastconv.layers import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)


def pool(layer, feature_map):
    """Run a pooling layer on one single-channel 2-D map; return the 2-D result."""
    return layer.forward(feature_map[np.newaxis, :, :, np.newaxis].astype(np.float64))[0, :, :, 0]


def numpy_pool(feature_map, size, stride, reduce):
    """Direct 'valid' pooling with a loop over windows, for checking the layers."""
    rows = (feature_map.shape[0] - size) // stride + 1
    cols = (feature_map.shape[1] - size) // stride + 1
    return np.array([[reduce(feature_map[i * stride:i * stride + size, j * stride:j * stride + size])
                      for j in range(cols)] for i in range(rows)])


def show(title, array):
    print(f"{title}:")
    for row in np.atleast_2d(array):
        print("    " + " ".join(f"{v:6.2f}" for v in row))


def check(name, got, expected):
    ok = np.allclose(got, expected, rtol=0, atol=1e-12)
    print(f"    -> {name} matches the direct NumPy computation: {'yes' if ok else 'NO'}")
    if not ok:
        raise SystemExit(f"{name} does not match NumPy")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="only the small printed examples (no timing of large maps)")
    args = parser.parse_args(argv)
    kw = {"dtype": "float64"}

    print("1. A 4x4 feature map, 2x2 windows, stride 2\n")
    feature_map = np.array([[1, 1, 2, 4],
                            [5, 6, 7, 8],
                            [3, 2, 1, 0],
                            [1, 2, 3, 4]], dtype=np.float64)
    show("input", feature_map)
    max_out = pool(MaxPooling2D(2, **kw), feature_map)
    avg_out = pool(AveragePooling2D(2, **kw), feature_map)
    show("max pooling (strongest value of each 2x2 window)", max_out)
    check("max pooling", max_out, numpy_pool(feature_map, 2, 2, np.max))
    show("average pooling (mean of each 2x2 window)", avg_out)
    check("average pooling", avg_out, numpy_pool(feature_map, 2, 2, np.mean))

    print("\n2. Translation: one strong activation moves by one pixel\n")
    before = np.zeros((6, 6))
    before[2, 2] = 9.0
    after = np.roll(before, 1, axis=1)  # the same feature, one column to the right
    for name, layer in (("max", MaxPooling2D(2, **kw)), ("average", AveragePooling2D(2, **kw))):
        a, b = pool(layer, before), pool(layer, after)
        print(f"{name:>7} pooling, 6x6 -> 3x3: same output after the shift: "
              f"{'yes' if np.array_equal(a, b) else 'no'}; strongest output {a.max():.2f}")
    print("    max pooling passes the activation on whole; average pooling divides it by 4.")
    show("max pooling, before the shift", pool(MaxPooling2D(2, **kw), before))
    show("max pooling, after the shift", pool(MaxPooling2D(2, **kw), after))
    print("    (the shift stays inside one 2x2 window, so max pooling does not see it; a shift\n"
          "     across a window border would move the output too)")

    print("\n3. Padding 'same' with stride 1 keeps the size; global pooling keeps one value\n")
    ramp = np.arange(16, dtype=np.float64).reshape(4, 4)
    show("input", ramp)
    same_max = pool(MaxPooling2D(3, strides=1, padding="same", **kw), ramp)
    show("3x3 max pooling, stride 1, 'same' padding (4x4 -> 4x4)", same_max)
    padded = np.pad(ramp, 1, constant_values=-np.inf)  # padding never wins a max
    check("'same' max pooling", same_max, numpy_pool(padded, 3, 1, np.max))
    x = ramp[np.newaxis, :, :, np.newaxis]
    global_max = GlobalMaxPooling2D(**kw).forward(x)[0, 0]
    global_avg = GlobalAveragePooling2D(**kw).forward(x)[0, 0]
    print(f"global max pooling: {global_max:.2f}   global average pooling: {global_avg:.2f}")
    check("global pooling", [global_max, global_avg], [ramp.max(), ramp.mean()])

    if not args.quick:
        print("\n4. A batch of large maps: compiled kernels versus the NumPy reference\n")
        rng = np.random.default_rng(0)
        batch = rng.normal(size=(32, 64, 64, 32)).astype(np.float32)
        for layer in (MaxPooling2D(2), AveragePooling2D(2)):
            timings = {}
            outputs = {}
            for backend in ("compiled", "reference"):
                with fastconv.use_backend(backend):
                    start = time.perf_counter()
                    outputs[backend] = layer.forward(batch)
                    timings[backend] = time.perf_counter() - start
            same = np.allclose(outputs["compiled"], outputs["reference"], rtol=1e-6, atol=1e-6)
            print(f"{type(layer).__name__}: {batch.shape} -> {outputs['compiled'].shape}; "
                  f"compiled {timings['compiled'] * 1e3:.1f} ms, reference "
                  f"{timings['reference'] * 1e3:.1f} ms; results agree: {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
