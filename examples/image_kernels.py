"""The classic image kernels (sharpen, outline, blur, emboss, Sobel) applied with a Conv2D layer.

A convolution layer is nothing but a bank of small kernels slid over the image. Here the
kernels are not learned: they are set by hand with `layer.set_weights`, one filter per
kernel, and applied to a grey test image in one forward pass. The script prints, for each
kernel, what it does to the image (statistics, and the image itself as text for small
sizes), checks the layer against a direct NumPy computation, and saves a PNG of all the
results when matplotlib is installed.

    python examples/image_kernels.py                 # 64x64 synthetic image
    python examples/image_kernels.py --digit 3       # a bundled 8x8 digit, enlarged 4x
    python examples/image_kernels.py --quick         # small image, printed as text
"""
import argparse

import numpy as np

import fastconv
from fastconv.datasets import digits
from fastconv.layers import Conv2D

# Kernels in the orientation Conv2D applies them: like Keras (and every deep learning
# framework), Conv2D computes a cross-correlation, out[i, j] = sum(k[a, b] * x[i + a, j + b]),
# without flipping the kernel. The symmetric kernels are unaffected; the Sobel kernel below
# responds to intensity increasing downwards (bright below dark gives positive values).
KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "outline": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "box blur": np.full((3, 3), 1 / 9),
    "gaussian blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
    "sobel (bottom)": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
}
ASCII_RAMP = " .:-=+*#%@"


def synthetic_image(size):
    """A grey image with flat regions, sharp edges and a smooth gradient, values in [0, 1]."""
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1)
    image = 0.15 + 0.2 * cols  # gentle left-to-right gradient
    square = (rows > 0.15) & (rows < 0.55) & (cols > 0.1) & (cols < 0.5)
    disc = (rows - 0.65) ** 2 + (cols - 0.68) ** 2 < 0.22 ** 2
    image[square] = 0.9
    image[disc] = 0.6
    return image


def digit_image(index, scale=4):
    """The first bundled digit of class `index`, enlarged by pixel repetition, in [0, 1]."""
    images, labels = digits.load_raw()
    image = images[np.flatnonzero(labels == index)[0]] / digits.MAX_PIXEL_VALUE
    return np.kron(image, np.ones((scale, scale)))


def kernel_bank(names):
    """Stack the kernels as one Conv2D kernel, HWIO layout (3, 3, 1 input channel, filters)."""
    return np.stack([np.asarray(KERNELS[name], dtype=np.float64) for name in names],
                    axis=-1)[:, :, np.newaxis, :]


def correlate_same(image, kernel):
    """Direct NumPy 'same' cross-correlation with zero padding: the check for Conv2D."""
    padded = np.pad(image, 1)
    out = np.zeros_like(image)
    for a in range(3):
        for b in range(3):
            out += kernel[a, b] * padded[a:a + image.shape[0], b:b + image.shape[1]]
    return out


def flat_pixels(image):
    """Mask of the interior pixels whose whole 3x3 neighbourhood has one value."""
    h, w = image.shape
    centre = image[1:-1, 1:-1]
    same = np.ones(centre.shape, dtype=bool)
    for a in range(3):
        for b in range(3):
            same &= image[a:a + h - 2, b:b + w - 2] == centre
    mask = np.zeros(image.shape, dtype=bool)
    mask[1:-1, 1:-1] = same
    return mask


def as_text(image, max_width=32):
    """Render an image as characters (darker to brighter), at most `max_width` columns."""
    step = max(1, int(np.ceil(image.shape[1] / max_width)))
    small = image[::step, ::step]
    low, high = small.min(), small.max()
    scaled = (small - low) / (high - low) if high > low else np.zeros_like(small)
    index = np.minimum((scaled * len(ASCII_RAMP)).astype(int), len(ASCII_RAMP) - 1)
    return "\n".join("".join(ASCII_RAMP[i] * 2 for i in row) for row in index)


def save_png(path, image, outputs):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG written (pip install matplotlib to get one).")
        return
    fig, axes = plt.subplots(2, (len(outputs) + 2) // 2, figsize=(3 * ((len(outputs) + 2) // 2), 6))
    panels = [("input", image)] + list(outputs.items())
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, picture) in zip(axes.flat, panels):
        ax.imshow(picture, cmap="gray")
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"Saved {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small image, printed as text")
    parser.add_argument("--size", type=int, default=64, help="side of the synthetic image")
    parser.add_argument("--digit", type=int, choices=range(10), help="use a bundled digit instead")
    parser.add_argument("--output", default="image_kernels.png",
                        help="PNG to write if matplotlib is installed")
    parser.add_argument("--no-png", action="store_true", help="do not write the PNG")
    args = parser.parse_args(argv)
    if args.size < 8:
        parser.error("--size must be at least 8")

    if args.digit is not None:
        image, source = digit_image(args.digit), f"bundled digit {args.digit}, enlarged 4x"
    else:
        size = 24 if args.quick else args.size
        image, source = synthetic_image(size), f"synthetic {size}x{size} image"
    print(f"Input: {source}, values {image.min():.2f}..{image.max():.2f}")

    names = list(KERNELS)
    layer = Conv2D(len(names), 3, padding="same", use_bias=False, dtype="float64", name="kernels")
    layer.build(image.shape + (1,))
    layer.set_weights([kernel_bank(names)])  # the only weight: use_bias=False
    outputs = layer.forward(image[np.newaxis, :, :, np.newaxis])[0]  # (H, W, filters)

    flat = flat_pixels(image)
    print(f"\n{'kernel':<16}{'sum':>5}{'min':>8}{'max':>8}{'mean':>8}   flat areas    matches NumPy")
    results = {}
    for i, name in enumerate(names):
        kernel = np.asarray(KERNELS[name], dtype=np.float64)
        out = results[name] = outputs[:, :, i]
        # Where the image is constant the output is the pixel times the kernel's sum.
        flat_ok = np.abs(out[flat] - kernel.sum() * image[flat]).max() < 1e-12
        error = np.abs(out - correlate_same(image, kernel)).max()
        print(f"{name:<16}{kernel.sum():5.0f}{out.min():8.3f}{out.max():8.3f}{out.mean():8.3f}   "
              f"{'out = sum*in' if flat_ok else 'NOT sum*in':<13} "
              f"{'yes' if error < 1e-12 else 'NO'} (max error {error:.1e})")
    print(f"\n{flat.sum()} of {flat.size} pixels lie in flat areas. Kernels summing to 1 "
          "(identity, sharpen,\nblurs, emboss) keep them as they are; kernels summing to 0 "
          "(outline, Sobel) give 0\nthere and respond only at edges.")

    if image.shape[1] <= 64:
        print("\nInput:\n" + as_text(image))
        print("\nOutline (edges light up):\n" + as_text(np.abs(results["outline"])))
        print("\nGaussian blur (edges soften):\n" + as_text(results["gaussian blur"]))
    if not args.no_png and not args.quick:
        save_png(args.output, image, results)
    elif args.quick:
        print("\n(--quick: no PNG written)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
