# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A camera made of generated frames: ``sensor_msgs/Image`` messages published from a node.

The demo, the node benchmark and the ROS tests all stand a :class:`SyntheticCamera` where a
real camera would be, so a frame is built, stamped and published one way everywhere. The frames
come from :mod:`openvla_ros.tools.synthetic` (``scene_image`` unless told otherwise); this
module is the ROS side of it (``tools/synthetic.py`` itself stays free of ROS).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from openvla_ros.core.images import rgb_to_image_fields
from openvla_ros.core.stats import ns_to_stamp_fields
from openvla_ros.tools.synthetic import scene_image

#: The ``header.frame_id`` of every synthetic frame.
FRAME_ID = 'camera'


class SyntheticCamera:
    """Publish frame after frame of a generated scene as ``sensor_msgs/Image`` (rgb8).

    ``node`` owns the publisher on ``topic`` (relative names resolve in its namespace);
    ``frames`` maps a frame index to an (H, W, 3) uint8 RGB array. Frames are stamped with the
    node's clock unless a stamp is given.
    """

    def __init__(self, node: Any, topic: str = 'image', *,
                 frames: Callable[[int], np.ndarray] = scene_image, depth: int = 10):
        from sensor_msgs.msg import Image

        self._image_type = Image
        self.node = node
        self.frames = frames
        self.publisher = node.create_publisher(Image, topic, depth)
        #: Frames published so far; the next frame :meth:`publish` sends by default.
        self.count = 0
        self.timer = None

    def message(self, index: int, stamp_ns: int | None = None) -> tuple[Any, np.ndarray]:
        """Return frame ``index`` as an Image message and its RGB pixels.

        The message is stamped ``stamp_ns`` (default: the node's clock now).
        """
        rgb = self.frames(index)
        msg = self._image_type(**rgb_to_image_fields(rgb))
        if stamp_ns is None:
            stamp_ns = self.node.get_clock().now().nanoseconds
        fields = ns_to_stamp_fields(stamp_ns)
        msg.header.stamp.sec = fields['sec']
        msg.header.stamp.nanosec = fields['nanosec']
        msg.header.frame_id = FRAME_ID
        return msg, rgb

    def send(self, msg: Any) -> None:
        """Publish a message built by :meth:`message` and count it."""
        self.publisher.publish(msg)
        self.count += 1

    def publish(self, index: int | None = None, stamp_ns: int | None = None) -> Any:
        """Publish frame ``index`` (default: the next one) and return the message sent."""
        msg, _ = self.message(self.count if index is None else index, stamp_ns)
        self.send(msg)
        return msg

    def start(self, hz: float) -> Any:
        """Publish the next frame ``hz`` times a second from a timer of the node; return it."""
        self.timer = self.node.create_timer(1.0 / hz, lambda: self.publish())
        return self.timer
