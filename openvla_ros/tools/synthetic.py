# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Generated camera frames and actions for demos, benchmarks and tests: scenes, not noise.

A random-weight test checkpoint reacts to large structures (colours, edges) and hardly at all
to pixel noise, so these frames vary flat colours, a block and its position from frame to
frame. They stand in for a camera where none is attached; they mean nothing to a real model.

* :func:`scene_image`: frame ``index`` of a table scene (demo camera, node tests);
* :func:`unique_image`: the same scenes (or any frame) with an index and a salt stamped into the
  pixels, so that no two frames are equal (vLLM caches by image content; benchmarks and the
  fleet measurement must not hit it);
* :func:`synthetic_actions` and :func:`table_scene`: a known action sequence and the frames of
  a block moved by it (the STEPS.json of ``steps.write_synthetic_steps``).
"""

from __future__ import annotations

import numpy as np

from openvla_ros.core.decoding import ACTION_DIM

#: Instruction of generated data sets and of the benchmark.
DEFAULT_INSTRUCTION = 'put the red block on the blue plate'
#: Instruction the demo sends (the task of OpenVLA's own examples).
DEMO_INSTRUCTION = 'put the spoon on the towel'

# Table and block colours, far apart so consecutive frames differ a lot.
_PALETTE = np.array([
    (200, 40, 40), (30, 160, 60), (40, 60, 200), (220, 200, 40), (150, 60, 170),
    (40, 190, 190), (240, 240, 240), (20, 20, 20), (230, 120, 30), (100, 100, 100),
], dtype=np.uint8)


def scene_image(index: int, height: int = 224, width: int = 224) -> np.ndarray:
    """Return frame ``index`` of a synthetic scene as an RGB uint8 array (height, width, 3)."""
    if height <= 0 or width <= 0:
        raise ValueError(f'image size must be positive, got {height}x{width}')
    table = _PALETTE[index % len(_PALETTE)]
    block = _PALETTE[(3 * index + 5) % len(_PALETTE)]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = table
    # A horizon line and a vertical gradient give the frame large-scale structure.
    horizon = height // 3
    ramp = np.linspace(0.55, 1.0, horizon, dtype=np.float32)[:, None, None]
    image[:horizon] = (ramp * table.astype(np.float32)).astype(np.uint8)
    size = max(2, min(height, width) // 4)
    phase = (index * 37) % 100 / 100.0
    top = horizon + int((height - horizon - size) * phase)
    left = int((width - size) * ((index * 61) % 100 / 100.0))
    image[top:top + size, left:left + size] = block
    return image


#: Side in pixels of one cell of :func:`unique_image`'s stamp: 4 x 4 black or white cells
#: survive JPEG (a one-level change in one pixel would not), so a fleet sending JPEG is stamped
#: as uniquely as one sending PNG.
STAMP_CELL = 4
#: Bits stamped: 64 of the index, then 64 of the salt.
_STAMP_BITS = 128


def unique_image(index: int, salt: int = 0, base: np.ndarray | None = None) -> np.ndarray:
    """Return scene ``index`` (or a copy of ``base``) with ``index`` and ``salt`` stamped in.

    The scene repeats every 100 frames; the stamp (the 64-bit index, then the 64-bit salt, one
    bit per black or white :data:`STAMP_CELL`-pixel cell, row by row from the top-left corner)
    makes every (index, salt) pair a distinct image, so vLLM's image and prefix caches never
    hit. Only the top rows change (three cell rows on a 224-pixel-wide frame).
    """
    image = scene_image(index) if base is None else np.array(base, dtype=np.uint8, copy=True)
    columns = image.shape[1] // STAMP_CELL if image.ndim == 3 else 0
    if columns < 1 or image.shape[0] < -(-_STAMP_BITS // columns) * STAMP_CELL:
        raise ValueError(f'image of shape {image.shape} is too small to stamp')
    code = (int(index) % (1 << 64)) | (int(salt) % (1 << 64)) << 64
    for bit in range(_STAMP_BITS):
        row, column = divmod(bit, columns)
        top, left = row * STAMP_CELL, column * STAMP_CELL
        image[top:top + STAMP_CELL, left:left + STAMP_CELL] = 255 if (code >> bit) & 1 else 0
    return image


def synthetic_actions(n: int) -> np.ndarray:
    """Return a smooth, known action sequence: a loop in x/y, a bob in z, a wrist sweep."""
    i = np.arange(n, dtype=np.float64)
    phase = 2.0 * np.pi * i / max(n, 1)
    actions = np.zeros((n, ACTION_DIM))
    actions[:, 0] = 0.02 * np.cos(phase)
    actions[:, 1] = 0.02 * np.sin(phase)
    actions[:, 2] = 0.01 * np.sin(2.0 * phase)
    actions[:, 3] = 0.05 * np.sin(phase)
    actions[:, 4] = -0.03 * np.cos(phase)
    actions[:, 5] = 0.1 * np.sin(0.5 * phase)
    # Open for the first half (approach), closed for the second (grasp and carry).
    actions[:, 6] = np.where(i < n / 2.0, 1.0, 0.0)
    return np.round(actions, 6)


def table_scene(size: int, position: np.ndarray, gripper: float, index: int,
                background: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """Draw a table scene: gradient background, blue plate, red block at ``position`` (0..1).

    ``background`` holds the top and bottom colours of the gradient, ``plate`` the centre of
    the plate (0..1); ``gripper`` >= 0.5 draws an open gripper bar; ``index`` shifts a stripe
    pattern in the top rows so that even identical poses give different frames.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / max(size - 1, 1)
    image = (background[0] * (1.0 - yy)[..., None] + background[1] * yy[..., None])
    # A blue plate (disc) that stays put, the target of the task.
    disc = (xx - plate[0]) ** 2 + (yy - plate[1]) ** 2 < 0.12 ** 2
    image[disc] = (40, 70, 200)
    # The red block (the end effector's load) moves with the integrated actions.
    half = 0.08
    block = (np.abs(xx - position[0]) < half) & (np.abs(yy - position[1]) < half)
    image[block] = (210, 40, 40)
    # Gripper state as a bar at the bottom: wide and green when open, short and yellow closed.
    bar_width = 0.9 if gripper >= 0.5 else 0.3
    bar = (yy > 0.92) & (xx < bar_width)
    image[bar] = (40, 180, 60) if gripper >= 0.5 else (220, 200, 40)
    # A frame counter stripe pattern in the top rows so even identical poses differ.
    stripes = (yy < 0.04) & (((xx * 16).astype(int) + index) % 4 == 0)
    image[stripes] = (250, 250, 250)
    return np.clip(image, 0, 255).astype(np.uint8)
