# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Without openvla_ros_interfaces the node runs as before: topic instruction, no action."""

import pytest

pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from lifecycle_msgs.msg import Transition  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from openvla_ros.node import action_server  # noqa: E402
from ros_harness import RosGraph  # noqa: E402
from test_policy_node import FakePolicy, PARAMETERS, wait_until  # noqa: E402


def test_node_without_the_interface_package_serves_the_topic_only(tmp_path, monkeypatch):
    monkeypatch.setattr(action_server, 'ExecuteInstruction', None)   # as if never built
    graph = RosGraph(None, tmp_path, 'plain', PARAMETERS, shared=FakePolicy())
    try:
        h = graph.harness
        assert h.transition(Transition.TRANSITION_CONFIGURE)
        assert h.transition(Transition.TRANSITION_ACTIVATE)
        h.instruction_pub.publish(String(data='put the carrot on the plate'))
        assert wait_until(lambda: graph.node.loop.instruction[0] == 'put the carrot on the plate')
        h.publish_image(1)
        h.wait_for('ee_delta', 1)
        names = [name for name, _ in h.node.get_service_names_and_types()]
        assert not any('execute_instruction' in name for name in names)
        assert graph.node.status()['instruction_source'] == 'topic'
    finally:
        graph.close()
