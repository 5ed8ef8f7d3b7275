# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The one synthetic camera, on a stand-in node (no ROS graph needed)."""

import numpy as np
import pytest

pytest.importorskip('sensor_msgs.msg', reason='sensor_msgs (ROS 2 messages) is not installed')

from openvla_ros.tools.synthetic import scene_image  # noqa: E402
from openvla_ros.tools.synthetic_camera import SyntheticCamera  # noqa: E402


class _Node:
    """Records publishers and timers; its clock reads a fixed time."""

    def __init__(self, now_ns):
        self.now_ns = now_ns
        self.published = []
        self.timers = []

    def create_publisher(self, kind, topic, depth):
        node = self

        class _Publisher:
            def publish(self, msg):
                node.published.append((topic, msg))
        self.kind, self.topic, self.depth = kind, topic, depth
        return _Publisher()

    def get_clock(self):
        node = self

        class _Clock:
            def now(self):
                class _Now:
                    nanoseconds = node.now_ns
                return _Now()
        return _Clock()

    def create_timer(self, period, callback):
        self.timers.append((period, callback))
        return len(self.timers)


def test_frames_are_stamped_counted_and_published_on_the_topic():
    node = _Node(now_ns=1_700_000_000_123_456_789)
    camera = SyntheticCamera(node, '/ns/image')
    assert node.topic == '/ns/image' and node.depth == 10 and node.kind.__name__ == 'Image'
    first = camera.publish()
    assert (first.header.stamp.sec, first.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert first.header.frame_id == 'camera' and first.encoding == 'rgb8'
    assert (first.height, first.width, first.step) == (224, 224, 224 * 3)
    pixels = np.frombuffer(bytes(first.data), dtype=np.uint8).reshape(224, 224, 3)
    np.testing.assert_array_equal(pixels, scene_image(0))
    second = camera.publish(stamp_ns=5 * 10**9 + 7)
    assert (second.header.stamp.sec, second.header.stamp.nanosec) == (5, 7)
    np.testing.assert_array_equal(
        np.frombuffer(bytes(second.data), dtype=np.uint8).reshape(224, 224, 3), scene_image(1))
    assert camera.count == 2 and [topic for topic, _ in node.published] == ['/ns/image'] * 2


def test_a_frame_source_and_a_timer_rate_can_be_given():
    node = _Node(now_ns=0)
    camera = SyntheticCamera(node, frames=lambda index: np.full((4, 6, 3), index, np.uint8))
    msg, rgb = camera.message(9)
    assert (msg.height, msg.width) == (4, 6) and rgb.max() == 9 and camera.count == 0
    camera.start(20.0)
    period, tick = node.timers[0]
    assert period == pytest.approx(0.05)
    tick()
    tick()
    assert camera.count == 2 and node.published[-1][1].data[0] == 1
