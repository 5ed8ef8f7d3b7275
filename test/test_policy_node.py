"""The lifecycle node over real rclpy/DDS with the generated checkpoint on the real engine.

The engine is the session's shared one (its start-up costs over a minute on a CPU), handed to
the node through the documented ``policy_factory`` hook; everything else is real: topics,
QoS, lifecycle services, parameter services, diagnostics.
"""

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from builtin_interfaces.msg import Time as TimeMsg  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64, Float64MultiArray, String  # noqa: E402

from openvla_ros.conditioning import Conditioning  # noqa: E402
from openvla_ros.images import rgb_to_image_fields  # noqa: E402
from openvla_ros.synthetic import scene_image  # noqa: E402

pytestmark = pytest.mark.engine
INSTRUCTION = 'put the carrot on the plate'


class SharedPolicy:
    """Forward to the session's engine; record close() instead of freeing the engine."""

    def __init__(self, policy):
        self._policy = policy
        self.decoder = policy.decoder
        self.closed = False

    def predict(self, image, instruction):
        return self._policy.predict(image, instruction)

    def prompt_ids(self, instruction):
        return self._policy.prompt_ids(instruction)

    def close(self):
        self.closed = True


class Harness:
    """A test node that drives the policy node through its real ROS interfaces."""

    def __init__(self, node_ns):
        self.node = rclpy.create_node('policy_node_test')
        self.received = {'ee_delta': [], 'gripper': [], 'action': [], 'diagnostics': []}
        self.lock = threading.Lock()
        n = self.node
        n.create_subscription(TwistStamped, f'{node_ns}/ee_delta',
                              self._keep('ee_delta'), 10)
        n.create_subscription(Float64, f'{node_ns}/gripper', self._keep('gripper'), 10)
        n.create_subscription(Float64MultiArray, f'{node_ns}/action', self._keep('action'), 10)
        n.create_subscription(DiagnosticArray, f'{node_ns}/diagnostics',
                              self._keep('diagnostics'), 10)
        self.image_pub = n.create_publisher(Image, f'{node_ns}/image', 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.instruction_pub = n.create_publisher(String, f'{node_ns}/instruction', latched)
        self.change_state = n.create_client(ChangeState, f'{node_ns}/openvla_policy/change_state')
        self.get_state = n.create_client(GetState, f'{node_ns}/openvla_policy/get_state')
        self.set_params = n.create_client(SetParameters,
                                          f'{node_ns}/openvla_policy/set_parameters')
        self.sent_stamps = {}

    def _keep(self, name):
        def callback(msg):
            with self.lock:
                self.received[name].append(msg)
        return callback

    def snapshot(self, name):
        with self.lock:
            return list(self.received[name])

    def clear(self):
        with self.lock:
            for value in self.received.values():
                value.clear()

    def call(self, client, request, timeout=600.0):
        assert client.wait_for_service(timeout_sec=30.0), client.srv_name
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert future.done(), f'{client.srv_name} did not answer in {timeout} s'
        return future.result()

    def transition(self, transition_id):
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.call(self.change_state, request).success

    def state(self):
        return self.call(self.get_state, GetState.Request()).current_state.id

    def set_parameter(self, name, value):
        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg()]
        return self.call(self.set_params, request).results[0]

    def publish_image(self, index, stamp_ns=None):
        msg = Image(**rgb_to_image_fields(scene_image(index)))
        if stamp_ns is None:
            stamp_ns = self.node.get_clock().now().nanoseconds
        msg.header.stamp = TimeMsg(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        msg.header.frame_id = 'camera'
        self.sent_stamps[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = index
        self.image_pub.publish(msg)
        return msg.header.stamp

    def wait_for(self, name, count, timeout=120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.snapshot(name)) >= count:
                return self.snapshot(name)
            time.sleep(0.05)
        raise AssertionError(f'{count} messages on {name} not received in {timeout} s; got '
                             f'{len(self.snapshot(name))}')

    def diagnostics_values(self):
        latest = self.wait_for('diagnostics', 1)[-1]
        return {kv.key: kv.value for kv in latest.status[0].values}


@pytest.fixture(scope='module')
def ros_graph(policy, test_model):
    """Start the policy node (namespace /robot) and the harness on one spinning executor."""
    from openvla_ros.policy_node import OpenVlaPolicyNode

    rclpy.init()
    shared = SharedPolicy(policy)
    OpenVlaPolicyNode.policy_factory = staticmethod(lambda *a, **k: shared)
    node = OpenVlaPolicyNode(namespace='robot', parameter_overrides=[
        Parameter('model', value=str(test_model)),
        Parameter('unnorm_key', value='bridge_orig'),
        Parameter('max_linear', value=0.0),
        Parameter('max_angular', value=0.0),
        Parameter('max_image_age', value=30.0),
        Parameter('diagnostics_period', value=0.25),
    ])
    harness = Harness('/robot')
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    executor.add_node(harness.node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    yield node, harness, shared
    OpenVlaPolicyNode.policy_factory = None
    node.stop_and_release()
    executor.shutdown(timeout_sec=2.0)
    node.destroy_node()
    harness.node.destroy_node()
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
