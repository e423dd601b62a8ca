"""Vectorised image resampling shared by the augmentation and resizing layers (NHWC).

One sampler serves translation, rotation, zoom, resizing and bilinear up-sampling: for every
output pixel, an affine map gives the (x, y) position to read in the input; the position's
neighbouring pixels (1 for "nearest", 4 for "bilinear") and their weights are computed for the
whole batch at once into a *plan*, which `sample` applies with one gather per neighbour and
`sample_transpose` undoes (the exact adjoint, for backward passes) with one scatter-add.

Out-of-image neighbours follow `fill_mode` (Keras' names), applied to the integer neighbour
indices (as Keras' JAX and NumPy backends do):
    reflect   (d c b a | a b c d | d c b a)   mirror about the edge of the last pixel
    wrap      (a b c d | a b c d | a b c d)
    nearest   (a a a a | a b c d | d d d d)
    constant  (k k k k | a b c d | k k k k)   k = fill_value
"""
from typing import NamedTuple

import numpy as np

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def fix_indices(index, size, fill_mode):
    """Map integer pixel indices (any range) into [0, size) by `fill_mode`.

    Returns (index, valid): `valid` is False where `fill_mode="constant"` reads the fill value
    (the index is then clipped, only so that gathering stays in bounds).
    """
    if fill_mode == "reflect":
        period = 2 * size
        index = np.mod(index, period)
        return np.where(index >= size, period - 1 - index, index), None
    if fill_mode == "wrap":
        return np.mod(index, size), None
    if fill_mode == "nearest":
        return np.clip(index, 0, size - 1), None
    valid = (index >= 0) & (index < size)
    return np.clip(index, 0, size - 1), valid


class SamplingPlan(NamedTuple):
    """Where each output pixel reads: flat input-pixel indices and weights per neighbour."""

    input_shape: tuple   # (N, H, W, C) of the sampled images
    output_shape: tuple  # (N, OH, OW, C)
    indices: np.ndarray  # (taps, N * OH * OW) int64, into the (N * H * W, C) pixel rows
    weights: np.ndarray  # (taps, N * OH * OW), zero for neighbours that read the fill value
    fill_weights: object  # (N * OH * OW,) weight of the fill value, or None


def affine_plan(matrices, input_shape, output_hw, interpolation="bilinear", fill_mode="reflect",
                dtype=np.float64):
    """Plan the resampling of NHWC images of `input_shape` by per-image affine maps.

    Args:
        matrices: (N, 6) array [a0, a1, a2, b0, b1, b2]; output pixel (x, y) (x along the
            width, y along the height, in pixel units) reads the input at
            (a0 x + a1 y + a2, b0 x + b1 y + b2). This is the inverse map, as in Keras'
            `affine_transform`.
        input_shape: (N, H, W, C).
        output_hw: (OH, OW).
        interpolation: "nearest" or "bilinear".
        fill_mode: "reflect", "wrap", "constant" or "nearest".
        dtype: dtype of the stored weights (that of the images; coordinates are float64).
    """
    n, h, w, c = input_shape
    oh, ow = output_hw
    m = np.asarray(matrices, dtype=np.float64).reshape(n, 6)
    ys, xs = np.meshgrid(np.arange(oh, dtype=np.float64), np.arange(ow, dtype=np.float64),
                         indexing="ij")
    # (N, OH, OW) source coordinates.
    src_x = m[:, 0, None, None] * xs + m[:, 1, None, None] * ys + m[:, 2, None, None]
    src_y = m[:, 3, None, None] * xs + m[:, 4, None, None] * ys + m[:, 5, None, None]
    # Neighbour positions and weights along each axis: [(position, weight), ...].
    if interpolation == "nearest":
        ys_taps = [(np.floor(src_y + 0.5), 1.0)]
        xs_taps = [(np.floor(src_x + 0.5), 1.0)]
    else:
        y0, x0 = np.floor(src_y), np.floor(src_x)
        fy, fx = src_y - y0, src_x - x0
        ys_taps = [(y0, 1.0 - fy), (y0 + 1.0, fy)]
        xs_taps = [(x0, 1.0 - fx), (x0 + 1.0, fx)]
    index_dtype = np.int32 if n * h * w < 2 ** 31 else np.int64  # half the memory traffic
    image_base = (np.arange(n, dtype=index_dtype) * (h * w))[:, None, None]
    rows = []
    for position, weight in ys_taps:
        iy, valid = fix_indices(position.astype(index_dtype), h, fill_mode)
        rows.append((image_base + iy * index_dtype(w), valid, weight))
    cols = []
    for position, weight in xs_taps:
        ix, valid = fix_indices(position.astype(index_dtype), w, fill_mode)
        cols.append((ix, valid, weight))
    taps = len(rows) * len(cols)
    indices = np.empty((taps, n, oh, ow), dtype=index_dtype)
    weights = np.empty((taps, n, oh, ow), dtype=dtype)
    fill_weights = np.zeros((n, oh, ow)) if fill_mode == "constant" else None
    tap = 0
    for row, valid_y, wy in rows:
        for col, valid_x, wx in cols:
            np.add(row, col, out=indices[tap])
            weights[tap] = wy * wx
            if fill_weights is not None:
                outside = ~(valid_y & valid_x)
                fill_weights += np.where(outside, wy * wx, 0.0)
                weights[tap][outside] = 0
            tap += 1
    return SamplingPlan((n, h, w, c), (n, oh, ow, c), indices.reshape(taps, -1),
                        weights.reshape(taps, -1),
                        None if fill_weights is None else fill_weights.reshape(-1))


def sample(images, plan, fill_value=0.0):
    """Apply a plan to NHWC `images`; returns (N, OH, OW, C) in the images' dtype."""
    n, h, w, c = plan.input_shape
    pixels = np.ascontiguousarray(images).reshape(n * h * w, c)
    dtype = images.dtype
    out = np.zeros((plan.indices.shape[1], c), dtype=dtype)
    for index, weight in zip(plan.indices, plan.weights):
        gathered = np.take(pixels, index, axis=0)  # faster than fancy indexing
        gathered *= weight.astype(dtype, copy=False)[:, None]
        out += gathered
    if plan.fill_weights is not None and fill_value != 0:
        out += (fill_value * plan.fill_weights).astype(dtype)[:, None]
    return out.reshape(plan.output_shape)


def sample_transpose(grad_output, plan):
    """The adjoint of `sample` (the fill value is a constant: it gets no gradient)."""
    n, h, w, c = plan.input_shape
    rows = np.ascontiguousarray(grad_output).reshape(-1, c)
    flat_index = plan.indices.reshape(-1)
    grad = np.empty((n * h * w, c), dtype=grad_output.dtype)
    # Scatter-add every (neighbour, output pixel) contribution into its input pixel: one
    # bincount per channel (much faster than np.add.at), accumulated in float64.
    for channel in range(c):
        grad[:, channel] = np.bincount(flat_index, weights=(plan.weights * rows[:, channel]).reshape(-1),
                                       minlength=n * h * w)
    return grad.reshape(plan.input_shape)


def resize_plan(input_shape, output_hw, interpolation="bilinear", dtype=np.float64):
    """Plan a resize with half-pixel centres (TensorFlow/Keras `resize`, no antialiasing):
    output pixel o reads input position (o + 0.5) * in / out - 0.5, edges clamped."""
    n, h, w, _ = input_shape
    oh, ow = output_hw
    sy, sx = h / oh, w / ow
    # "nearest" then reads floor((o + 0.5) * in / out), as TensorFlow's half-pixel nearest.
    matrix = [sx, 0.0, 0.5 * sx - 0.5, 0.0, sy, 0.5 * sy - 0.5]
    return affine_plan(np.tile(matrix, (n, 1)), input_shape, output_hw, interpolation, "nearest",
                       dtype)
