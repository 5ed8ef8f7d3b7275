"""The lifecycle node over real rclpy/DDS with the generated checkpoint on the real engine.

The engine is the session's shared one (its start-up costs over a minute on a CPU), handed to
the node through the documented ``policy_factory`` hook; everything else is real: topics,
QoS, lifecycle services, parameter services, diagnostics.
"""

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from openvla_ros.core.conditioning import Conditioning  # noqa: E402
from openvla_ros.tools.synthetic import scene_image  # noqa: E402
from ros_harness import RosGraph  # noqa: E402

pytestmark = pytest.mark.engine
INSTRUCTION = 'put the carrot on the plate'


@pytest.fixture(scope='module')
def ros_graph(policy, test_model):
    """Start the policy node (namespace /robot) and the harness on one spinning executor."""
    rclpy.init()
    graph = RosGraph(policy, test_model, 'robot', [
        Parameter('max_linear', value=0.0),
        Parameter('max_angular', value=0.0),
        Parameter('max_image_age', value=30.0),
        Parameter('diagnostics_period', value=0.25),
    ])
    yield graph.node, graph.harness, graph.shared
    graph.close()
    rclpy.try_shutdown()


def test_lifecycle_and_actions_traceable_to_images(ros_graph, policy):
    node, h, shared = ros_graph
    assert h.state() == State.PRIMARY_STATE_UNCONFIGURED
    # Unconfigured and inactive: images produce nothing.
    h.publish_image(0)
    time.sleep(0.5)
    assert not h.snapshot('ee_delta')
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.state() == State.PRIMARY_STATE_INACTIVE
    h.instruction_pub.publish(String(data=INSTRUCTION))
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    assert h.state() == State.PRIMARY_STATE_ACTIVE

    for index in range(3):
        h.publish_image(index + 1)
        h.wait_for('ee_delta', index + 1)
    twists = h.snapshot('ee_delta')
    actions = h.wait_for('action', 3)
    grippers = h.wait_for('gripper', 3)
    for twist, action, gripper in zip(twists, actions, grippers):
        key = (twist.header.stamp.sec, twist.header.stamp.nanosec)
        assert key in h.sent_stamps, 'ee_delta stamp is not the stamp of a sent image'
        assert twist.header.frame_id == 'base_link'
        expected = policy.predict(scene_image(h.sent_stamps[key]), INSTRUCTION).action
        np.testing.assert_allclose(action.data, expected)
        assert action.layout.dim[0].label == 'dx,dy,dz,droll,dpitch,dyaw,gripper'
        command = Conditioning(max_linear=0.0, max_angular=0.0).apply(expected)
        t = twist.twist
        np.testing.assert_allclose([t.linear.x, t.linear.y, t.linear.z], command.linear)
        np.testing.assert_allclose([t.angular.x, t.angular.y, t.angular.z], command.angular)
        assert gripper.data == pytest.approx(expected[6])


def test_conditioning_parameters_apply_and_validate(ros_graph, policy):
    node, h, _ = ros_graph
    bad = h.set_parameter('output_mode', 'teleport')
    assert not bad.successful and 'output_mode' in bad.reason
    bad = h.set_parameter('action_scale', [1.0, 2.0])
    assert not bad.successful and 'action_scale' in bad.reason
    bad = h.set_parameter('model', '/elsewhere')
    assert not bad.successful  # read-only at run time
    assert h.set_parameter('output_mode', 'velocity').successful
    assert h.set_parameter('action_scale', [2.0, 1.0, 1.0, 1.0, 1.0, 1.0]).successful
    assert h.set_parameter('max_linear', 0.05).successful
    h.clear()
    stamp = h.publish_image(5)
    twist = h.wait_for('ee_delta', 1)[0]
    assert (twist.header.stamp.sec, twist.header.stamp.nanosec) == (stamp.sec, stamp.nanosec)
    expected = policy.predict(scene_image(5), INSTRUCTION).action
    command = Conditioning(output_mode='velocity', control_period=0.2,
                           action_scale=[2.0, 1, 1, 1, 1, 1], max_linear=0.05).apply(expected)
    t = twist.twist
    np.testing.assert_allclose([t.linear.x, t.linear.y, t.linear.z], command.linear)
    assert np.linalg.norm([t.linear.x, t.linear.y, t.linear.z]) <= 0.05 + 1e-9
    for name, value in (('output_mode', 'delta'), ('max_linear', 0.0),
                        ('action_scale', [1.0] * 6)):
        assert h.set_parameter(name, value).successful


def test_stale_frames_are_skipped(ros_graph):
    node, h, _ = ros_graph
    before = int(h.diagnostics_values()['frames_stale'])
    h.clear()
    old = node.get_clock().now().nanoseconds - 120 * 10**9   # 2 minutes old > max_image_age
    h.publish_image(6, stamp_ns=old)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if int(h.diagnostics_values()['frames_stale']) > before:
            break
        time.sleep(0.1)
    assert int(h.diagnostics_values()['frames_stale']) == before + 1
    assert not h.snapshot('ee_delta')


def test_bad_instruction_keeps_the_current_one(ros_graph):
    node, h, _ = ros_graph
    # One at a time: the subscription keeps only the newest instruction (depth 1).
    for count, text in enumerate(['   ', 'pick it up ' * 100], 1):   # empty, over-long
        h.instruction_pub.publish(String(data=text))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if int(h.diagnostics_values()['bad_instructions']) >= count:
                break
            time.sleep(0.1)
    values = h.diagnostics_values()
    assert int(values['bad_instructions']) == 2
    assert 'too long' in values['last_error']
    assert values['instruction'] == INSTRUCTION
    h.clear()
    h.publish_image(7)
    assert h.wait_for('ee_delta', 1)


def test_diagnostics_report_the_loop(ros_graph):
    _, h, _ = ros_graph
    values = h.diagnostics_values()
    assert values['engine_state'] == 'active'
    assert int(values['actions']) >= 4 and int(values['frames_used']) >= 4
    assert float(values['latency_p50_s']) > 0
    assert int(values['frames_received']) >= 5
    status = h.snapshot('diagnostics')[-1].status[0]
    assert status.level == DiagnosticStatus.OK and 'OpenVLA' in status.name


def test_deactivate_publishes_zero_and_cleanup_frees_engine(ros_graph):
    node, h, shared = ros_graph
    h.clear()
    assert h.transition(Transition.TRANSITION_DEACTIVATE)
    zero = h.wait_for('ee_delta', 1)[-1].twist
    assert [zero.linear.x, zero.linear.y, zero.linear.z,
            zero.angular.x, zero.angular.y, zero.angular.z] == [0.0] * 6
    h.clear()
    h.publish_image(8)
    time.sleep(1.0)
    assert not h.snapshot('ee_delta'), 'inactive node must not publish commands'
    assert h.transition(Transition.TRANSITION_CLEANUP)
    assert shared.closed
    assert h.state() == State.PRIMARY_STATE_UNCONFIGURED
