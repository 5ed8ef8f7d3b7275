"""Generated camera frames for demos and tests: structured scenes, not noise.

A random-weight test checkpoint reacts to large structures (colours, edges) and hardly at all
to pixel noise, so these frames vary a flat-coloured table, a block and its position from frame
to frame. They stand in for a camera where none is attached; they mean nothing to a real model.
"""

from __future__ import annotations

import numpy as np

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
