# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""One ExecuteInstruction goal served with the real vLLM engine on the generated checkpoint."""

import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from action_msgs.msg import GoalStatus  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402

from openvla_ros.tools.synthetic import scene_image  # noqa: E402
from ros_harness import ExecuteInstruction, NOT_BUILT, RosGraph  # noqa: E402

pytestmark = [pytest.mark.engine, NOT_BUILT]
TASK = 'put the spoon on the towel'


def wait(future, timeout):
    deadline = time.monotonic() + timeout
    while not future.done():
        assert time.monotonic() < deadline, f'no answer in {timeout} s'
        time.sleep(0.05)
    return future.result()


def test_a_goal_with_the_real_engine_succeeds_with_the_engine_actions(policy, test_model):
    graph = RosGraph(policy, test_model, 'act', {
        'max_image_age': 30.0, 'max_linear': 0.0, 'max_angular': 0.0,
        'command_timeout': 600.0, 'inference_timeout': 600.0})
    h = graph.harness
    stop = threading.Event()
    try:
        assert h.transition(Transition.TRANSITION_CONFIGURE)
        assert h.transition(Transition.TRANSITION_ACTIVATE)
        client = graph.action_client('/act/openvla_policy/execute_instruction')
        assert client.wait_for_server(timeout_sec=30.0)
        feedback = []
        handle = wait(client.send_goal_async(
            ExecuteInstruction.Goal(instruction=TASK, max_steps=2, timeout_s=600.0),
            feedback_callback=lambda msg: feedback.append(msg.feedback)), 30)
        assert handle.accepted

        def camera():
            index = 0
            while not stop.wait(0.2):
                h.publish_image(index % 4)
                index += 1
        threading.Thread(target=camera, daemon=True).start()
        wrapped = wait(handle.get_result_async(), 600)
    finally:
        stop.set()
    try:
        result = wrapped.result
        assert wrapped.status == GoalStatus.STATUS_SUCCEEDED, result.message
        assert result.reason == ExecuteInstruction.Result.REASON_STEP_LIMIT and result.steps == 2
        # The result's last action is the engine's own for the last frame used: the node
        # published it on `action` too, unchanged.
        published = h.wait_for('action', 2)
        np.testing.assert_allclose(result.last_action, published[-1].data)
        # Per-action feedback, plus heartbeats (once a second: an action takes longer here)
        # that repeat the step reached so far.
        steps = [f.step for f in feedback]
        assert steps == sorted(steps) and set(steps) == {0, 1, 2}
        assert all(f.latency_s > 0.0 for f in feedback if f.step)
        # Recompute the last action directly with the engine for the frame it came from.
        last_twist = [t for t in h.snapshot('ee_delta') if any(
            (t.twist.linear.x, t.twist.linear.y, t.twist.linear.z))][-1]
        index = h.sent_stamps[(last_twist.header.stamp.sec, last_twist.header.stamp.nanosec)]
        direct = policy.predict(scene_image(index), TASK).action
        np.testing.assert_allclose(result.last_action, direct, rtol=1e-6)
    finally:
        graph.close()


def test_the_demo_runs_its_task_as_a_goal(test_model):
    done = subprocess.run([sys.executable, '-m', 'openvla_ros.cli', 'demo', '--model',
                           str(test_model), '--duration', '25', '--camera-hz', '10'],
                          capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert re.search(r"\[demo\] goal accepted: '.+' for 25 s", done.stdout), done.stdout
    line = re.search(r'\[demo\] goal \(ExecuteInstruction\): succeeded: time_limit: reached '
                     r'timeout_s \(25 s\) after (\d+) steps?', done.stdout)
    assert line, done.stdout[-2000:]
    actions = re.search(r'\[demo\] (\d+) actions in', done.stdout)
    # The demo's count stops at its own end, a moment before the goal's (it started just
    # after activation): every counted action was a goal step, and at most one came after.
    assert actions and 0 <= int(line.group(1)) - int(actions.group(1)) <= 1
