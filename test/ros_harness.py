# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the in-process ROS tests: a shared-engine wrapper and a driver node."""

import threading
import time

import pytest

from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64, Float64MultiArray, String

from openvla_ros.core.images import encode_compressed
from openvla_ros.core.policy import report_of
from openvla_ros.core.stats import ns_to_stamp_fields
from openvla_ros.node.qos import LATCHED
from openvla_ros.tools.harness import NodeRunner
from openvla_ros.tools.synthetic import scene_image
from openvla_ros.tools.synthetic_camera import SyntheticCamera

try:
    from openvla_ros_interfaces.action import ExecuteInstruction
except ImportError:     # not built here: the action tests skip, naming the fix
    ExecuteInstruction = None
# A mark, not a module-level skip: launch_testing's pytest plugin imports every module of the
# directory while collecting, and a module-level skip there would skip the whole directory.
NOT_BUILT = pytest.mark.skipif(
    ExecuteInstruction is None,
    reason='openvla_ros_interfaces is not built: run scripts/build_interfaces.sh')


class SharedPolicy:
    """Forward to the session's engine; record close() instead of freeing the engine."""

    def __init__(self, policy):
        self._policy = policy
        self.decoder = policy.decoder
        self.preparation = policy.preparation
        self.closed = False

    def predict(self, image, instruction, prompt_ids=None):
        return self._policy.predict(image, instruction, prompt_ids)

    def is_alive(self):
        return True

    def prompt_ids(self, instruction):
        return self._policy.prompt_ids(instruction)

    def close(self, fast=False):
        self.closed = True

    def engine_report(self):
        return report_of(self._policy)


class Harness:
    """A test node that drives the policy node through its real ROS interfaces."""

    def __init__(self, node, node_ns):
        self.node = node
        self.node_name = f'{node_ns}/openvla_policy'
        self.received = {'ee_delta': [], 'gripper': [], 'action': [], 'diagnostics': []}
        self.lock = threading.Lock()
        n = self.node
        n.create_subscription(TwistStamped, f'{node_ns}/ee_delta',
                              self._keep('ee_delta'), 10)
        n.create_subscription(Float64, f'{node_ns}/gripper', self._keep('gripper'), 10)
        n.create_subscription(Float64MultiArray, f'{node_ns}/action', self._keep('action'), 10)
        # Diagnostics of every node share /diagnostics: keep this node's status only.
        n.create_subscription(DiagnosticArray, '/diagnostics', self._keep_diagnostics, 10)
        self.camera = SyntheticCamera(n, f'{node_ns}/image')
        self.image_pub = self.camera.publisher
        self.compressed_pub = n.create_publisher(CompressedImage,
                                                 f'{node_ns}/image/compressed', 10)
        self.instruction_pub = n.create_publisher(String, f'{node_ns}/instruction', LATCHED)
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

    def _keep_diagnostics(self, msg):
        mine = [s for s in msg.status if s.name.startswith(self.node_name + ':')]
        if mine:
            with self.lock:
                self.received['diagnostics'].append(mine[0])

    def snapshot(self, name):
        with self.lock:
            return list(self.received[name])

    def clear(self):
        with self.lock:
            for value in self.received.values():
                value.clear()

    def call(self, client, request, timeout=600.0):
        assert client.wait_for_service(timeout_sec=30.0), self._unavailable(client)
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert future.done(), f'{client.srv_name} did not answer in {timeout} s'
        return future.result()

    def _unavailable(self, client):
        """Say what the graph knows when a service stays unavailable (a hint for the flake)."""
        servers = self.node.count_services(client.srv_name) if hasattr(
            self.node, 'count_services') else '?'
        nodes = sorted(f'{ns.rstrip("/")}/{name}'
                       for name, ns in self.node.get_node_names_and_namespaces())
        return (f'{client.srv_name} unavailable for 30 s; servers known: {servers}; '
                f'domain {self.node.context.get_domain_id()}; nodes: {nodes}')

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
        msg, _ = self.camera.message(index, stamp_ns)
        self.sent_stamps[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = index
        self.camera.send(msg)
        return msg.header.stamp

    def now_stamp(self):
        return TimeMsg(**ns_to_stamp_fields(self.node.get_clock().now().nanoseconds))

    def publish_raw(self, **fields):
        """Publish an Image with the given fields (possibly malformed), stamped now."""
        msg = Image(**fields)
        msg.header.stamp = self.now_stamp()
        self.image_pub.publish(msg)

    def publish_compressed(self, data=None, index=0, fmt='jpeg'):
        """Publish a CompressedImage: ``data`` bytes as given, else frame ``index`` encoded."""
        msg = CompressedImage(format=fmt)
        msg.data = data if data is not None else encode_compressed(scene_image(index), fmt)
        msg.header.stamp = self.now_stamp()
        self.compressed_pub.publish(msg)
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
        return {kv.key: kv.value for kv in latest.values}


class RosGraph:
    """One policy node (with the given policy) plus a driver, spinning on a background executor.

    ``parameters`` are rclpy ``Parameter`` objects or a name -> value dict.
    """

    def __init__(self, policy, test_model, namespace, parameters=(), shared=None, factory=None,
                 own_engine=False):
        """``own_engine``: the node builds its engine itself (``engine.url`` and the like)."""
        self.shared = shared or (SharedPolicy(policy) if factory is None and not own_engine
                                 else None)
        values = {'model': str(test_model), 'unnorm_key': 'bridge_orig'}
        values.update(parameters if isinstance(parameters, dict)
                      else {p.name: p.value for p in parameters})
        self.runner = NodeRunner(values, namespace=namespace,
                                 policy_factory=None if own_engine else
                                 factory or (lambda *a, **k: self.shared))
        self.node = self.runner.node
        self.harness = Harness(self.runner.add_peer('policy_node_test'), '/' + namespace)

    def action_client(self, action_name):
        """Return an ExecuteInstruction client on a node of its own, spinning once it exists."""
        from rclpy.action import ActionClient
        node = self.runner.add_peer('goal_client', spin=False)
        client = ActionClient(node, ExecuteInstruction, action_name)
        self.runner.spin_peer(node)
        return client

    def close(self):
        self.runner.close()


def wait_until(condition, seconds=30.0, poll=0.02):
    """Return True once ``condition()`` holds, False after ``seconds`` (a deadline for hangs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return False
