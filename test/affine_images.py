# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""An affine test image and the reference crop geometry, computed without the package.

Shared by the policy-boundary tests (test/ros) and the ``prepare-image`` tests (test/unit):
the expected images come from the crop geometry alone, never from
``openvla_ros.core.preprocessing``.
"""

import math

import numpy as np

SIZE = 224

# An affine image: bilinear interpolation reproduces it exactly, so the crop's output is known
# in closed form from the crop geometry alone (up to the uint8 rounding of the input).
HEIGHT, WIDTH = 480, 640
SLOPES = ((0.0, 0.39), (0.5, 0.0), (0.2, 0.2))   # per channel: (per row, per column)
OFFSETS = (2.0, 3.0, 1.0)


def affine_image(height=HEIGHT, width=WIDTH):
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [np.floor(o + a * y + b * x) for o, (a, b) in zip(OFFSETS, SLOPES)]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def affine_value(y, x):
    """Return the (unrounded) affine image at float positions, shape (len(y), len(x), 3)."""
    y, x = np.asarray(y)[:, None], np.asarray(x)[None, :]
    return np.stack([o + a * y + b * x for o, (a, b) in zip(OFFSETS, SLOPES)], axis=-1)


def expected_crop(scale, height, width, to_source=None):
    """Return the closed-form centre crop of the affine image (reference geometry).

    The crop keeps the centred ``scale`` of the area (side fraction sqrt(scale)) and samples it
    corner-aligned: row i at (off + i * side / 223) * (H - 1). ``to_source`` maps positions
    of an intermediate image back to the original (for a crop after a resize).
    """
    side = math.sqrt(scale)
    offset = (1.0 - side) / 2.0
    steps = np.arange(SIZE) * side / (SIZE - 1)
    rows = (offset + steps) * (height - 1)
    cols = (offset + steps) * (width - 1)
    if to_source is not None:
        rows, cols = to_source(rows, HEIGHT, height), to_source(cols, WIDTH, width)
    return affine_value(rows, cols)


def bilinear_centre_crop(rgb, scale):
    """Return the reference centre crop of any image in float (0-255 units), written here.

    Corner-aligned bilinear sampling of the centred box whose sides are sqrt(scale), as
    ``tf.image.crop_and_resize``; the result is not rounded (the module truncates after
    scaling by 255.5 / 255, which moves it by at most 1.5 levels).
    """
    image = np.asarray(rgb).astype(np.float64)
    side = math.sqrt(scale)
    offset = (1.0 - side) / 2.0
    steps = offset + np.arange(SIZE) * side / (SIZE - 1)

    def sample(axis_size):
        position = steps * (axis_size - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, axis_size - 1)
        return low, high, position - low
    top, bottom, fy = sample(image.shape[0])
    left, right, fx = sample(image.shape[1])
    fy, fx = fy[:, None, None], fx[None, :, None]
    upper = image[top][:, left] * (1 - fx) + image[top][:, right] * fx
    lower = image[bottom][:, left] * (1 - fx) + image[bottom][:, right] * fx
    return upper * (1 - fy) + lower * fy


def pixel_centres(position, source_size, resized_size):
    """Map a position in a resized image to the source (pixel-centre convention)."""
    return (position + 0.5) * source_size / resized_size - 0.5


def assert_close(image, expected, max_abs, interior=0):
    got = np.asarray(image).astype(np.float64)
    if interior:
        got = got[interior:-interior, interior:-interior]
        expected = expected[interior:-interior, interior:-interior]
    diff = np.abs(got - expected)
    assert diff.max() <= max_abs, f'max abs difference {diff.max():.2f} > {max_abs}'
