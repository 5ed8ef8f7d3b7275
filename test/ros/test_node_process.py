# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node as its own process: its exit code says whether its engine could be configured."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from lifecycle_msgs.srv import ChangeState  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def start_node(namespace, model):
    return subprocess.Popen(
        [sys.executable, '-m', 'openvla_ros.node.policy_node', '--ros-args', '-r',
         f'__ns:=/{namespace}', '-p', f'model:={model}', '-p', 'unnorm_key:=bridge_orig'],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def wait_ready(process):
    """Read the node's output until it says it is built (signal handlers are installed first)."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if 'ready (unconfigured)' in line:
            return lines
    raise AssertionError(f'the node ended before it was ready: {"".join(lines)}')


def configure(namespace):
    """Ask the node to configure over its lifecycle service; return the transition's success."""
    rclpy.init()
    try:
        node = rclpy.create_node('exit_code_probe')
        client = node.create_client(ChangeState, f'/{namespace}/openvla_policy/change_state')
        assert client.wait_for_service(timeout_sec=60.0)
        request = ChangeState.Request()
        request.transition.id = 1   # configure
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=60.0)
        node.destroy_node()
        return future.result().success
    finally:
        rclpy.try_shutdown()


def stop(process):
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    return process.returncode, output


def test_failed_configure_exits_non_zero(tmp_path):
    namespace = f'exit_failed_{os.getpid()}'
    process = start_node(namespace, tmp_path / 'missing-checkpoint')
    try:
        early = wait_ready(process)
        assert configure(namespace) is False
        time.sleep(0.5)
    finally:
        code, output = stop(process)
    output = ''.join(early) + output
    assert code == 1, output
    assert 'configure failed' in output and 'does not exist' in output


def test_clean_stop_without_configure_exits_zero():
    namespace = f'exit_clean_{os.getpid()}'
    process = start_node(namespace, 'openvla/openvla-7b')
    wait_ready(process)
    code, output = stop(process)
    assert code == 0, output
