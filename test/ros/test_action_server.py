# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The ExecuteInstruction action over real rclpy and DDS, with a fake policy.

A real ``ActionClient`` in a peer node sends goals to the node's ``~/execute_instruction``; the
node's real topics are watched. The fake policy's action is a known function of the image, so
the feedback's actions are checked against values computed here from the pixels.
"""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from action_msgs.msg import GoalStatus  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from openvla_ros.core.engine import Prediction  # noqa: E402
from openvla_ros.core.goals import EndReason  # noqa: E402
from openvla_ros.core.preprocessing import ImagePreparation  # noqa: E402
from openvla_ros.tools.synthetic import scene_image  # noqa: E402
from ros_harness import ExecuteInstruction, NOT_BUILT, RosGraph, wait_until  # noqa: E402

TASK = 'put the spoon on the towel'
PARAMETERS = {'max_linear': 0.0, 'max_angular': 0.0, 'max_image_age': 30.0,
              'diagnostics_period': 0.2, 'inference_timeout': 5.0, 'command_timeout': 60.0}
pytestmark = NOT_BUILT


def expected_action(index):
    """The fake policy's action for frame ``index``, from the pixels."""
    means = scene_image(index).reshape(-1, 3).mean(axis=0) / 255.0
    return np.array([0.1 * means[0], -0.1 * means[1], 0.05 * means[2],
                     0.3 * means[0], 0.0, -0.3 * means[2], 1.0])


class FakePolicy:
    def __init__(self):
        self.decoder = SimpleNamespace(unnorm_key='bridge_orig', provenance=lambda: {
            'unnorm_key': 'bridge_orig', 'statistics_source': 'fake', 'statistics_hash': 'f00d'})
        self.preparation = ImagePreparation()
        self.instructions = []
        self.error = None

    def prompt_ids(self, instruction):
        return [1, 2, 29871]

    def predict(self, image, instruction, prompt_ids=None):
        self.instructions.append(instruction)
        if self.error is not None:
            raise self.error
        means = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0) / 255.0
        action = np.array([0.1 * means[0], -0.1 * means[1], 0.05 * means[2],
                           0.3 * means[0], 0.0, -0.3 * means[2], 1.0])
        return Prediction(action, [31800] * 7, {'engine_s': 0.01})

    def is_alive(self):
        return True

    def close(self, fast=False):
        pass


class Goal:
    """One goal sent by a real ActionClient: its feedback, acceptance and result."""

    def __init__(self, client, instruction=TASK, max_steps=0, timeout_s=0.0, dry_run=False):
        self.feedback = []
        self.lock = threading.Lock()
        goal = ExecuteInstruction.Goal(instruction=instruction, max_steps=max_steps,
                                       timeout_s=float(timeout_s), dry_run=dry_run)
        self.sent = time.monotonic()
        self.handle = wait(client.send_goal_async(goal, feedback_callback=self._keep))
        self._result = None

    def _keep(self, msg):
        with self.lock:
            self.feedback.append(msg.feedback)

    @property
    def accepted(self):
        return self.handle.accepted

    def result(self, timeout=30.0):
        if self._result is None:
            self._result = wait(self.handle.get_result_async(), timeout)
        return self._result

    def started(self):
        """Wait for the first feedback: the node acts on the goal (frames from now on count)."""
        assert wait_until(lambda: bool(self.steps_seen())), 'the goal never started'
        return self

    def steps_seen(self):
        with self.lock:
            return [f.step for f in self.feedback]


def wait(future, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not future.done():
        assert time.monotonic() < deadline, 'no answer in time'
        time.sleep(0.01)
    return future.result()


def is_zero(twist):
    t = twist.twist
    return not any((t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z))


def twist_values(msg):
    t = msg.twist
    return [t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z]


class Camera:
    """Publish generated frames at ``hz`` until stopped."""

    def __init__(self, harness, hz=20.0):
        self.harness, self.period, self.stop_event = harness, 1.0 / hz, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        index = 0
        while not self.stop_event.wait(self.period):
            self.harness.publish_image(index % 8)
            index += 1

    def stop(self):
        self.stop_event.set()
        self.thread.join(5)


def active_graph(tmp_path, namespace):
    """Return a node with the fake policy, configured and active, with no instruction."""
    graph = RosGraph(None, tmp_path, namespace, PARAMETERS, shared=FakePolicy())
    assert graph.harness.transition(Transition.TRANSITION_CONFIGURE)
    assert graph.harness.transition(Transition.TRANSITION_ACTIVATE)
    return graph


@pytest.fixture
def graph(tmp_path):
    """An active node with no instruction, and an action client beside it."""
    graph = active_graph(tmp_path, 'robot')
    graph.client = graph.action_client('/robot/openvla_policy/execute_instruction')
    assert graph.client.wait_for_server(timeout_sec=15.0)
    yield graph
    graph.close()


def moving(harness):
    return [t for t in harness.snapshot('ee_delta') if not is_zero(t)]


def test_result_constants_are_the_core_reasons():
    for reason in EndReason:
        assert getattr(ExecuteInstruction.Result, f'REASON_{reason.name}') == reason.value


def test_goal_feedback_per_action_then_success_at_the_step_limit(graph):
    h = graph.harness
    goal = Goal(graph.client, max_steps=3).started()
    assert goal.accepted
    for n, index in enumerate((2, 5, 7), 1):
        h.publish_image(index)
        assert wait_until(lambda: len(moving(h)) == n), f'action {n} not published'
    wrapped = goal.result()
    result = wrapped.result
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED
    assert (result.reason, result.reason_text) == (ExecuteInstruction.Result.REASON_STEP_LIMIT,
                                                   'step_limit')
    assert result.steps == 3 and result.elapsed_s > 0.0
    np.testing.assert_allclose(result.last_action, expected_action(7))
    # A feedback for every action, in order, each carrying that action (a heartbeat, once a
    # second without an action, repeats the last step).
    assert wait_until(lambda: sorted(set(goal.steps_seen())) == [0, 1, 2, 3])
    assert goal.steps_seen() == sorted(goal.steps_seen())
    per_action = [next(f for f in goal.feedback if f.step == step) for step in (1, 2, 3)]
    for feedback, index in zip(per_action, (2, 5, 7)):
        np.testing.assert_allclose(feedback.action, expected_action(index))
        assert feedback.latency_s == pytest.approx(0.01) and feedback.max_steps == 3
        assert 0.0 <= feedback.image_age_s < 5.0 and feedback.loop_state == 'running'
    # The ending is a zero twist, and the node then holds still: a new frame moves nothing.
    assert wait_until(lambda: is_zero(h.snapshot('ee_delta')[-1]))
    h.publish_image(3)
    time.sleep(0.5)
    assert len(moving(h)) == 3
    assert graph.shared.instructions == [TASK] * 3


def test_time_limit_succeeds_with_the_steps_done(graph):
    h = graph.harness
    goal = Goal(graph.client, timeout_s=0.6).started()
    h.publish_image(1)
    wrapped = goal.result()
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED
    assert wrapped.result.reason == ExecuteInstruction.Result.REASON_TIME_LIMIT
    assert wrapped.result.steps == 1
    assert 0.6 <= wrapped.result.elapsed_s < 5.0
    assert wait_until(lambda: is_zero(h.snapshot('ee_delta')[-1]))


def test_cancel_publishes_a_zero_at_once_and_nothing_after(graph):
    h = graph.harness
    camera = Camera(h, hz=20.0)
    try:
        goal = Goal(graph.client, max_steps=10000).started()
        assert wait_until(lambda: len(moving(h)) >= 3)
        cancel_sent = time.monotonic()
        wait(goal.handle.cancel_goal_async())
        assert wait_until(lambda: is_zero(h.snapshot('ee_delta')[-1]))
        zero_after = time.monotonic() - cancel_sent
        wrapped = goal.result()
        count = len(h.snapshot('ee_delta'))
        time.sleep(0.5)     # frames keep coming; the node must stay still
    finally:
        camera.stop()
    assert wrapped.status == GoalStatus.STATUS_CANCELED
    assert wrapped.result.reason_text == 'cancelled' and wrapped.result.steps >= 3
    assert len(h.snapshot('ee_delta')) == count and is_zero(h.snapshot('ee_delta')[-1])
    # Within one camera period (50 ms) plus the goal thread's tick and DDS: generous bound
    # only as a hang guard; the measured figure is printed for the record.
    print(f'cancel -> zero twist received: {zero_after * 1000:.0f} ms')
    assert zero_after < 2.0


def test_a_new_goal_preempts_the_running_one(graph):
    h = graph.harness
    camera = Camera(h, hz=20.0)
    try:
        first = Goal(graph.client, instruction='open the drawer', max_steps=10000).started()
        assert wait_until(lambda: len(moving(h)) >= 2)
        second = Goal(graph.client, instruction='close the drawer', max_steps=3).started()
        assert second.accepted
        wrapped = first.result()
        assert wrapped.status == GoalStatus.STATUS_ABORTED
        assert wrapped.result.reason == ExecuteInstruction.Result.REASON_PREEMPTED
        assert 'preempted by goal' in wrapped.result.message
        done = second.result()
    finally:
        camera.stop()
    assert done.status == GoalStatus.STATUS_SUCCEEDED and done.result.steps == 3
    # After the preemption the engine only saw the second task (one request may have been in
    # flight for the first: it is computed but never published).
    instructions = graph.shared.instructions
    switch = instructions.index('close the drawer')
    assert set(instructions[switch:]) == {'close the drawer'}
    assert set(instructions[:switch]) == {'open the drawer'}


def test_goals_are_rejected_with_a_reason(graph):
    h = graph.harness
    for instruction, steps, seconds, phrase in (('   ', 5, 0.0, 'instruction is empty'),
                                                (TASK, 0, 0.0, 'the goal has no end')):
        goal = Goal(graph.client, instruction=instruction, max_steps=steps, timeout_s=seconds)
        assert not goal.accepted
        assert phrase in graph.node.loop.last_error
    assert h.transition(Transition.TRANSITION_DEACTIVATE)
    goal = Goal(graph.client, max_steps=5)
    assert not goal.accepted
    assert 'not active' in graph.node.loop.last_error
    assert wait_until(lambda: h.diagnostics_values()['last_error'].startswith('goal rejected'))


def test_deactivation_aborts_the_goal_with_a_zero_twist(graph):
    h = graph.harness
    camera = Camera(h, hz=20.0)
    try:
        goal = Goal(graph.client, max_steps=10000).started()
        assert wait_until(lambda: len(moving(h)) >= 2)
        assert h.transition(Transition.TRANSITION_DEACTIVATE)
        wrapped = goal.result()
    finally:
        camera.stop()
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.reason == ExecuteInstruction.Result.REASON_DEACTIVATED
    assert is_zero(h.snapshot('ee_delta')[-1])
    # Reactivated, the node does not resume the goal's task by itself.
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    count = len(h.snapshot('ee_delta'))
    h.publish_image(4)
    time.sleep(0.5)
    assert len(h.snapshot('ee_delta')) == count


def test_engine_error_aborts_the_goal_with_the_error(graph):
    h = graph.harness
    goal = Goal(graph.client, max_steps=10).started()
    h.publish_image(1)
    assert wait_until(lambda: len(moving(h)) == 1)
    graph.shared.error = RuntimeError('the accelerator fell off')
    h.publish_image(2)
    wrapped = goal.result()
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.reason == ExecuteInstruction.Result.REASON_ENGINE_ERROR
    assert 'the accelerator fell off' in wrapped.result.last_error
    assert wrapped.result.steps == 1 and is_zero(h.snapshot('ee_delta')[-1])


def test_dry_run_reports_actions_and_publishes_no_command(graph):
    h = graph.harness
    goal = Goal(graph.client, max_steps=2, dry_run=True).started()
    for n, index in enumerate((3, 6), 1):
        h.publish_image(index)
        assert wait_until(lambda: n in goal.steps_seen())
    wrapped = goal.result()
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED and wrapped.result.steps == 2
    np.testing.assert_allclose(wrapped.result.last_action, expected_action(6))
    assert moving(h) == [] and h.snapshot('action') == []


def test_topic_instruction_preempts_a_goal_and_resumes_topic_mode(graph):
    h = graph.harness
    goal = Goal(graph.client, max_steps=10).started()
    h.publish_image(1)
    assert wait_until(lambda: len(moving(h)) == 1)
    h.instruction_pub.publish(String(data='wipe the table'))
    wrapped = goal.result()
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.reason == ExecuteInstruction.Result.REASON_PREEMPTED
    assert 'instruction topic' in wrapped.result.message
    # Topic mode: every frame gives an action again, for the topic's instruction.
    for n, index in enumerate((2, 3), 2):
        h.publish_image(index)
        assert wait_until(lambda: len(moving(h)) == n)
    np.testing.assert_allclose(twist_values(moving(h)[-1]), expected_action(3)[:6])
    assert graph.shared.instructions[-1] == 'wipe the table'
    assert wait_until(lambda: h.diagnostics_values()['instruction_source'] == 'topic')


def test_after_a_goal_a_topic_message_resumes_acting(graph):
    h = graph.harness
    goal = Goal(graph.client, max_steps=1).started()
    h.publish_image(1)
    assert goal.result().status == GoalStatus.STATUS_SUCCEEDED
    assert wait_until(lambda: h.diagnostics_values()['instruction_source'] == 'idle')
    h.instruction_pub.publish(String(data='wipe the table'))
    assert wait_until(lambda: graph.node.loop.instruction[0] == 'wipe the table')
    h.publish_image(2)
    assert wait_until(lambda: len(moving(h)) == 2)


def test_instruction_parameter_preempts_a_goal(graph):
    h = graph.harness
    goal = Goal(graph.client, max_steps=10).started()
    assert h.set_parameter('instruction', 'stack the cups').successful
    wrapped = goal.result()
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.reason_text == 'preempted'
    assert 'instruction parameter' in wrapped.result.message
    h.publish_image(2)
    assert wait_until(lambda: len(moving(h)) == 1)
    assert graph.shared.instructions == ['stack the cups']
