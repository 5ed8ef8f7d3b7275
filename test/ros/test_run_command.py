# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros run`` as a separate process against a node with a fake policy, over DDS."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from lifecycle_msgs.msg import Transition  # noqa: E402

from test_action_server import active_graph, Camera, is_zero, NOT_BUILT  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NODE = '/robot/openvla_policy'
pytestmark = NOT_BUILT


def command(*args):
    return [sys.executable, '-m', 'openvla_ros.cli', 'run', *args, '--node', NODE]


def start(*args):
    return subprocess.Popen(command(*args), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))


@pytest.fixture
def graph(tmp_path):
    graph = active_graph(tmp_path, 'robot')
    graph.camera = Camera(graph.harness, hz=20.0)
    yield graph
    graph.camera.stop()
    graph.close()


def test_run_prints_feedback_and_succeeds_at_the_step_limit(graph):
    done = subprocess.run(command('put the spoon on the towel', '--steps', '4'), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[0] == f"[run] sending 'put the spoon on the towel' to {NODE} (max 4 steps)"
    assert '[run] goal accepted' in lines, done.stdout
    for step in (1, 2, 3, 4):
        assert any(line.startswith(f'[run] step     {step}/4 ') and ' action ' in line
                   for line in lines), f'no feedback line for step {step}'
    assert lines[-1].startswith('[run] succeeded: step_limit: reached max_steps (4) after 4 '
                                'steps')
    assert graph.shared.instructions[-1] == 'put the spoon on the towel'


def test_ctrl_c_cancels_the_goal_and_the_node_stops(graph):
    h = graph.harness
    process = start('wipe the table', '--timeout', '600')
    deadline = time.monotonic() + 60
    while not any(not is_zero(t) for t in h.snapshot('ee_delta')):
        assert time.monotonic() < deadline and process.poll() is None, 'no action'
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 1, out
    assert '[run] cancelling the goal' in out
    assert out.splitlines()[-1].startswith('[run] canceled: cancelled: cancelled by the client')
    time.sleep(0.3)
    assert is_zero(h.snapshot('ee_delta')[-1])


def test_rejection_when_inactive_says_why(graph):
    assert graph.harness.transition(Transition.TRANSITION_DEACTIVATE)
    done = subprocess.run(command('wipe the table', '--steps', '3'), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert (f'[run] rejected by {NODE}: the node is inactive, not active: configure and '
            'activate it') in done.stdout


@pytest.mark.parametrize('args, phrase', [
    (('wipe the table',), 'the goal has no end'),
    (('  ', '--steps', '3'), 'the instruction is empty'),
    (('wipe the table', '--timeout', '-1'), 'timeout_s must be')])
def test_user_mistakes_are_one_line_with_exit_code_2(args, phrase):
    done = subprocess.run(command(*args), cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert phrase in done.stderr and 'Traceback' not in done.stderr
