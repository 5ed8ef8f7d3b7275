# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""cv_bridge (a ROS 2 package) and the built-in converter give the same pixels.

In the ROS tier because cv_bridge comes with a ROS distribution (no registry wheel: it skips
in the pip environments here and runs where a distribution is sourced).
"""

import numpy as np
import pytest

from openvla_ros.core import images

RGB = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3) * 7 + 3


def message(encoding, pixels):
    """Return an Image-like message of ``pixels`` with two bytes of padding per row."""
    rows, cols = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    data = bytearray()
    for row in pixels.reshape(rows, cols * channels):
        data += bytes(row) + b'\0\0'
    return type('Image', (), {'height': rows, 'width': cols, 'encoding': encoding,
                              'is_bigendian': 0, 'step': cols * channels + 2,
                              'data': bytes(data)})()


@pytest.mark.skipif(not images.cv_bridge_available(), reason='cv_bridge (ROS 2) not installed')
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'mono8'])
def test_cv_bridge_matches_builtin(encoding):
    gray = RGB[..., 0]
    pixels = {'rgb8': RGB, 'bgr8': RGB[..., ::-1], 'mono8': gray}[encoding]
    # By hand: bgr8 back to RGB is the channels reversed; mono8 is the gray value three times.
    expected = {'rgb8': RGB, 'bgr8': RGB, 'mono8': np.stack([gray] * 3, axis=-1)}[encoding]
    msg = message(encoding, np.ascontiguousarray(pixels))
    images.use_cv_bridge(True)
    try:
        bridged = images.image_to_rgb(msg)
    finally:
        images.use_cv_bridge(False)
    np.testing.assert_array_equal(bridged, expected)
    np.testing.assert_array_equal(images.image_to_rgb(msg), expected)
