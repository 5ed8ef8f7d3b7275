# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node with a remote engine over real DDS: a real ``openvla-ros serve`` on 127.0.0.1.

Actions flow and trace to their images; the server is killed mid-run (zero twist and ERROR
within ``inference_timeout``, no lifecycle change), restarted on the same port (actions resume
by themselves); a reply that comes after its deadline is never published.
"""

import time

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402

from ros_harness import RosGraph, wait_until  # noqa: E402
from server_harness import base_env, free_port, serve_argv, Server  # noqa: E402

pytestmark = pytest.mark.engine
INSTRUCTION = 'put the spoon on the towel'
INFERENCE_TIMEOUT = 60.0     # above one action on a 2-core CPU (~5 s), with room for load


def is_zero(twist):
    t = twist.twist
    return [t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z] == [0.0] * 6


@pytest.fixture(scope='module')
def server_port():
    return free_port()


def start_server(test_model, port, log):
    server = Server(serve_argv(test_model, port), base_env(log), log, f'http://127.0.0.1:{port}')
    server.wait_ready()
    return server


def test_remote_node_survives_a_server_restart(test_model, server_port, tmp_path):
    server = start_server(test_model, server_port, tmp_path / 'serve-1.log')
    graph = None
    try:
        # No policy factory: the node builds its own (make_policy -> RemotePolicy).
        graph = RosGraph(None, test_model, 'remote', {
            'engine.url': server.url, 'instruction': INSTRUCTION, 'max_image_age': 120.0,
            'inference_timeout': INFERENCE_TIMEOUT, 'command_timeout': 600.0,
            'diagnostics_period': 0.2}, own_engine=True)
        h = graph.harness
        assert h.transition(Transition.TRANSITION_CONFIGURE)
        assert h.transition(Transition.TRANSITION_ACTIVATE)
        for n, index in enumerate((1, 2), 1):
            stamp = h.publish_image(index)
            twist = h.wait_for('ee_delta', n, timeout=120)[-1]
            assert (twist.header.stamp.sec, twist.header.stamp.nanosec) == (stamp.sec,
                                                                            stamp.nanosec)
        assert h.wait_for('action', 2)

        # The server dies mid-run: zero twist and ERROR within inference_timeout.
        h.clear()
        h.publish_image(3)
        time.sleep(1.0)                      # the request is in flight
        killed = time.monotonic()
        server.stop()
        assert wait_until(lambda: h.diagnostics_values()['engine_health'] == 'unreachable',
                          INFERENCE_TIMEOUT), h.diagnostics_values()
        assert time.monotonic() - killed < INFERENCE_TIMEOUT
        assert any(is_zero(t) for t in h.snapshot('ee_delta'))
        status = h.snapshot('diagnostics')[-1]
        assert status.level == DiagnosticStatus.ERROR and 'unreachable' in status.message
        h.clear()
        for index in (4, 5, 6):
            h.publish_image(index)
            time.sleep(1.0)
        assert not h.snapshot('action'), 'no action while the server is down'
        assert h.state() == State.PRIMARY_STATE_ACTIVE

        # Restarted on the same port: actions resume without a lifecycle transition.
        server = start_server(test_model, server_port, tmp_path / 'serve-2.log')
        restarted = time.monotonic()

        def resumed():
            h.publish_image(int(time.monotonic()) % 50 + 10)
            return len(h.snapshot('action')) >= 1
        assert wait_until(resumed, 180), h.diagnostics_values()
        print(f'actions resumed {time.monotonic() - restarted:.1f} s after the server was '
              'healthy again')
        assert h.state() == State.PRIMARY_STATE_ACTIVE
        assert wait_until(lambda: h.diagnostics_values()['engine_health'] == 'ok', 30)

        # A reply that misses its deadline is discarded, never published.
        assert h.set_parameter('inference_timeout', 0.5).successful
        h.clear()
        before = h.diagnostics_values()
        h.publish_image(99)
        assert wait_until(lambda: int(h.diagnostics_values()['engine_timeouts'])
                          > int(before['engine_timeouts']), 30)
        time.sleep(12.0)                     # the server answers meanwhile
        assert not h.snapshot('action'), 'a late reply must never be published'
        assert all(is_zero(t) for t in h.snapshot('ee_delta'))
    finally:
        if graph is not None:
            graph.close()
        server.stop()
