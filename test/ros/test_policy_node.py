# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The lifecycle node over real rclpy and DDS, with a fake policy: no engine, seconds to run.

Everything ROS is real: topics, QoS, lifecycle and parameter services, ``/diagnostics``. The
policy is a stand-in whose action is a known function of the image, so every expected command
is computed here by hand arithmetic, not with the package's own conditioning code.
"""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from openvla_ros.core.engine import Prediction  # noqa: E402
from openvla_ros.core.preprocessing import ImagePreparation  # noqa: E402
from openvla_ros.core.prompt import InstructionError  # noqa: E402
from openvla_ros.tools.synthetic import scene_image  # noqa: E402
from ros_harness import RosGraph, wait_until  # noqa: E402

INSTRUCTION = 'put the carrot on the plate'


def expected_action(index):
    """The fake policy's action for frame ``index``, computed from the pixels here."""
    means = scene_image(index).reshape(-1, 3).mean(axis=0) / 255.0
    return np.array([0.1 * means[0], -0.1 * means[1], 0.05 * means[2],
                     0.3 * means[0], 0.0, -0.3 * means[2], 1.0])


class FakePolicy:
    """A policy whose action is a fixed function of the image's mean colour."""

    def __init__(self):
        self.decoder = SimpleNamespace(unnorm_key='bridge_orig', provenance=lambda: {
            'unnorm_key': 'bridge_orig', 'statistics_source': 'fake',
            'statistics_hash': 'f00d'})
        self.preparation = ImagePreparation()
        self.prompts = []
        self.closed = False
        self.gate = None
        self.error = None
        self.alive = True

    def prompt_ids(self, instruction):
        if len(instruction) > 300:
            raise InstructionError('the instruction is too long: shorten it')
        self.prompts.append(instruction)
        return [1, 2, 29871]

    def predict(self, image, instruction, prompt_ids=None):
        assert prompt_ids == [1, 2, 29871]
        if self.gate is not None:
            self.gate.wait(30)
        if self.error is not None:
            raise self.error
        means = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0) / 255.0
        action = np.array([0.1 * means[0], -0.1 * means[1], 0.05 * means[2],
                           0.3 * means[0], 0.0, -0.3 * means[2], 1.0])
        return Prediction(action, [31800] * 7, {'engine_s': 0.01})

    def is_alive(self):
        return self.alive

    def close(self, fast=False):
        self.closed = True


PARAMETERS = {'max_linear': 0.0, 'max_angular': 0.0, 'max_image_age': 30.0,
              'diagnostics_period': 0.2, 'inference_timeout': 1.0, 'command_timeout': 60.0}


@pytest.fixture
def fresh(tmp_path):
    """An unconfigured node with a fake policy (it never reads the model directory)."""
    graph = RosGraph(None, tmp_path, 'robot', PARAMETERS, shared=FakePolicy())
    yield graph
    graph.close()


@pytest.fixture
def graph(fresh):
    """The node configured and active, with the instruction set."""
    h = fresh.harness
    assert h.set_parameter('instruction', INSTRUCTION).successful
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    return fresh


def twist_values(msg):
    t = msg.twist
    return [t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z]


def test_lifecycle_and_actions_traceable_to_images(fresh):
    graph, h = fresh, fresh.harness
    assert h.state() == State.PRIMARY_STATE_UNCONFIGURED
    h.publish_image(0)
    time.sleep(0.3)
    assert not h.snapshot('ee_delta'), 'an unconfigured node publishes no command'
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    h.instruction_pub.publish(String(data=INSTRUCTION))
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    assert h.state() == State.PRIMARY_STATE_ACTIVE
    for n, index in enumerate((3, 4, 5), 1):
        h.publish_image(index)
        h.wait_for('ee_delta', n)
    actions = h.wait_for('action', 3)
    for twist, action in zip(h.snapshot('ee_delta'), actions):
        key = (twist.header.stamp.sec, twist.header.stamp.nanosec)
        assert key in h.sent_stamps, 'ee_delta stamp is not the stamp of a sent image'
        assert twist.header.frame_id == 'base_link'
        expected = expected_action(h.sent_stamps[key])
        np.testing.assert_allclose(action.data, expected)
        assert action.layout.dim[0].label == 'dx,dy,dz,droll,dpitch,dyaw,gripper'
        np.testing.assert_allclose(twist_values(twist), expected[:6])   # no scale, no clamp
    assert graph.shared.prompts[-1] == INSTRUCTION


def test_parameters_are_validated_and_applied(graph):
    h = graph.harness
    for name, value, phrase in (('output_mode', 'teleport', 'output_mode'),
                                ('action_scale', [1.0, 2.0], 'action_scale'),
                                ('stamp_source', 'later', 'stamp_source'),
                                ('frame_id', ' ', 'frame_id'),
                                ('instruction', '   ', 'empty')):
        result = h.set_parameter(name, value)
        assert not result.successful and phrase in result.reason, (name, result.reason)
    assert not h.set_parameter('model', '/elsewhere').successful   # read-only
    for name, value in (('output_mode', 'velocity'), ('control_period', 0.5),
                        ('action_scale', [2.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
                        ('max_linear', 0.02), ('frame_id', 'tool0')):
        assert h.set_parameter(name, value).successful, name
    h.clear()
    stamp = h.publish_image(6)
    twist = h.wait_for('ee_delta', 1)[0]
    assert (twist.header.stamp.sec, twist.header.stamp.nanosec) == (stamp.sec, stamp.nanosec)
    assert twist.header.frame_id == 'tool0'
    a = expected_action(6)
    linear = np.array([2.0 * a[0], a[1], a[2]]) / 0.5
    linear *= 0.02 / np.linalg.norm(linear)          # the clamp keeps the direction
    angular = np.array(a[3:6]) / 0.5
    np.testing.assert_allclose(twist_values(twist), [*linear, *angular], rtol=1e-9)
    for name, value in (('output_mode', 'delta'), ('max_linear', 0.0), ('frame_id', 'base_link'),
                        ('action_scale', [1.0] * 6)):
        assert h.set_parameter(name, value).successful


def test_stale_frames_bad_images_bad_instructions(graph):
    h = graph.harness
    before = h.diagnostics_values()
    h.clear()
    h.publish_image(7, stamp_ns=graph.node.get_clock().now().nanoseconds - 120 * 10**9)
    assert wait_until(lambda: int(h.diagnostics_values()['frames_stale'])
                      > int(before['frames_stale']))
    h.publish_raw(height=2, width=2, encoding='rgb8', step=6, data=b'\x00' * 5)   # short data
    assert wait_until(lambda: int(h.diagnostics_values()['bad_images'])
                      > int(before['bad_images']))
    h.instruction_pub.publish(String(data='pick it up ' * 40))                    # over-long
    assert wait_until(lambda: int(h.diagnostics_values()['bad_instructions'])
                      > int(before['bad_instructions']))
    values = h.diagnostics_values()
    assert int(values['frames_stale']) == int(before['frames_stale']) + 1
    assert values['instruction'] == INSTRUCTION and 'too long' in values['last_error']
    assert not h.snapshot('ee_delta')
    h.publish_image(8)
    assert h.wait_for('ee_delta', 1), 'the node keeps running after bad input'


def test_diagnostics_on_the_absolute_topic(graph):
    h = graph.harness
    for n, index in enumerate((1, 2), 1):
        h.publish_image(index)
        h.wait_for('action', n)
    assert wait_until(lambda: int(h.diagnostics_values()['actions']) == 2)
    values = h.diagnostics_values()
    assert values['engine_state'] == 'active' and values['engine_health'] == 'ok'
    assert float(values['latency_p50_s']) == 0.01
    assert values['statistics_hash'] == 'f00d'
    status = h.snapshot('diagnostics')[-1]
    assert status.name == '/robot/openvla_policy: OpenVLA policy'
    assert status.level == DiagnosticStatus.OK
    numbers = graph.node.status()
    assert isinstance(numbers['actions'], int) and isinstance(numbers['latency_p50_s'], float)


def test_engine_timeout_then_recovery(graph):
    h, fake = graph.harness, graph.shared
    fake.gate = threading.Event()
    h.clear()
    h.publish_image(9)
    assert wait_until(lambda: h.diagnostics_values()['engine_health'] == 'timeout')
    zero = h.wait_for('ee_delta', 1)[-1]
    assert twist_values(zero) == [0.0] * 6
    status = h.snapshot('diagnostics')[-1]
    assert status.level == DiagnosticStatus.ERROR and 'inference_timeout' in status.message
    fake.gate.set()
    fake.gate = None
    assert wait_until(lambda: int(h.diagnostics_values()['late_replies']) >= 1)
    assert len(h.snapshot('action')) == 0, 'a late answer must never be published'
    h.publish_image(10)
    assert wait_until(lambda: len(h.snapshot('action')) == 1)


def test_unreachable_engine_recovers_without_a_transition(graph):
    h, fake = graph.harness, graph.shared

    class Unreachable(RuntimeError):
        retryable = True
    fake.error = Unreachable('server at http://127.0.0.1:9 refused the connection')
    h.clear()
    h.publish_image(11)
    assert wait_until(lambda: h.diagnostics_values()['engine_health'] == 'unreachable')
    assert twist_values(h.wait_for('ee_delta', 1)[-1]) == [0.0] * 6
    fake.error = None
    assert wait_until(lambda: h.publish_image(12) and len(h.snapshot('action')) >= 1, 15)
    assert h.state() == State.PRIMARY_STATE_ACTIVE


def test_deactivate_publishes_zero_and_cleanup_frees_engine(graph):
    h, fake = graph.harness, graph.shared
    h.publish_image(1)
    h.wait_for('action', 1)
    h.clear()
    assert h.transition(Transition.TRANSITION_DEACTIVATE)
    assert twist_values(h.wait_for('ee_delta', 1)[-1]) == [0.0] * 6
    h.clear()
    h.publish_image(13)
    time.sleep(0.5)
    assert not h.snapshot('ee_delta'), 'an inactive node must not publish commands'
    assert h.transition(Transition.TRANSITION_CLEANUP)
    assert fake.closed and h.state() == State.PRIMARY_STATE_UNCONFIGURED


def test_engine_death_deactivates_the_node(graph):
    h, fake = graph.harness, graph.shared
    fake.gate = threading.Event()
    h.clear()
    h.publish_image(14)
    time.sleep(0.2)
    fake.alive = False
    assert wait_until(lambda: h.state() == State.PRIMARY_STATE_INACTIVE)
    assert wait_until(lambda: h.diagnostics_values()['engine_state'] == 'dead')
    assert twist_values(h.wait_for('ee_delta', 1)[-1]) == [0.0] * 6
    fake.gate.set()
    fake.gate, fake.alive = None, True
    assert h.transition(Transition.TRANSITION_CLEANUP)
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert wait_until(lambda: h.diagnostics_values()['engine_state'] == 'ready')
    assert h.transition(Transition.TRANSITION_CLEANUP)


def test_configure_failure_is_reported_and_the_node_keeps_running(tmp_path):
    class Refusing(FakePolicy):
        def __init__(self, *args, **kwargs):
            raise ValueError("unnorm_key 'nowhere' is not in the checkpoint; use one of: "
                             'bridge_orig')
    graph = RosGraph(None, tmp_path, 'failing', PARAMETERS, factory=Refusing)
    try:
        h = graph.harness
        assert not h.transition(Transition.TRANSITION_CONFIGURE)
        assert h.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert wait_until(lambda: h.diagnostics_values()['engine_state'] == 'failed')
        status = h.snapshot('diagnostics')[-1]
        assert status.level == DiagnosticStatus.ERROR and 'nowhere' in status.message
        assert graph.node.configure_failed
        assert h.set_parameter('max_rate_hz', 2.0).successful   # still serving requests
    finally:
        graph.close()
