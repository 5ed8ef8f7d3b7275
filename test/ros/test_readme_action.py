# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The README's behaviour-tree leaf, run as printed against a node with a fake policy."""

from pathlib import Path
import re
import time

import pytest

pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')


from test_action_server import active_graph, Camera, is_zero, NOT_BUILT  # noqa: E402

README = Path(__file__).resolve().parents[2] / 'README.md'
pytestmark = NOT_BUILT


def readme_leaf():
    """Return the ExecuteInstructionLeaf class defined by the README's code block."""
    text = README.read_text()
    section = text[text.index('A behaviour-tree leaf in Python'):]
    code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    namespace = {}
    exec(compile(code, 'README.md', 'exec'), namespace)
    return namespace['ExecuteInstructionLeaf']


@pytest.fixture
def graph(tmp_path):
    graph = active_graph(tmp_path, 'bt')
    graph.camera = Camera(graph.harness, hz=20.0)
    yield graph
    graph.camera.stop()
    graph.close()


def tick_until_done(leaf, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = leaf.tick()
        if status != 'RUNNING':
            return status
        time.sleep(0.02)
    raise AssertionError('the leaf kept running')


def test_leaf_runs_to_success_then_halt_cancels_a_second_goal(graph):
    Leaf = readme_leaf()
    h = graph.harness
    action = '/bt/openvla_policy/execute_instruction'
    leaf = Leaf(h.node, 'put the spoon on the towel', max_steps=3, timeout_s=30.0,
                action=action)
    assert leaf.client.wait_for_server(timeout_sec=15.0)
    assert tick_until_done(leaf) == 'SUCCESS'
    assert leaf.last_feedback.step == 3

    long = Leaf(h.node, 'wipe the table', max_steps=100000, timeout_s=0.0, action=action)
    assert long.tick() == 'RUNNING'
    deadline = time.monotonic() + 15
    while long.last_feedback is None or long.last_feedback.step < 2:
        assert long.tick() == 'RUNNING' and time.monotonic() < deadline
        time.sleep(0.02)
    long.halt()
    assert tick_until_done(long) == 'FAILURE'   # cancelled: not its own limits
    assert long.result.result().result.reason_text == 'cancelled'
    assert is_zero(h.snapshot('ee_delta')[-1])
