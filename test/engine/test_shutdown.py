# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node as its own process: signals mid-inference and a killed engine process.

Each test starts ``python -m openvla_ros.node.policy_node`` with the generated checkpoint (a real
engine start-up each, over a minute on a CPU) and drives it from this process over DDS.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')
psutil = pytest.importorskip('psutil')

from geometry_msgs.msg import TwistStamped  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from openvla_ros.core.images import rgb_to_image_fields  # noqa: E402
from openvla_ros.tools.synthetic import scene_image  # noqa: E402

pytestmark = pytest.mark.engine


class NodeProcess:
    """A policy node subprocess in its own namespace and a client node talking to it."""

    def __init__(self, test_model, tmp_path, namespace):
        self.log_path = tmp_path / f'{namespace}.log'
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'openvla_ros.node.policy_node', '--ros-args',
             '-r', f'__ns:=/{namespace}', '-p', f'model:={test_model}',
             '-p', 'unnorm_key:=bridge_orig', '-p', 'instruction:=pick up the cup',
             '-p', 'max_image_age:=30.0', '-p', 'command_timeout:=60.0'],
            stdout=open(self.log_path, 'w'), stderr=subprocess.STDOUT, env=dict(os.environ),
            # Its own process group: every engine process it starts is in it, and stays in it
            # after an orphaning, so a leftover can be found even once the node is gone.
            start_new_session=True)
        self.node = rclpy.create_node(f'{namespace}_driver')
        ns = f'/{namespace}'
        self.change = self.node.create_client(ChangeState, f'{ns}/openvla_policy/change_state')
        self.get = self.node.create_client(GetState, f'{ns}/openvla_policy/get_state')
        self.camera = self.node.create_publisher(Image, f'{ns}/image', 10)
        self.actions, self.twists = [], []
        self.node.create_subscription(Float64MultiArray, f'{ns}/action', self.actions.append,
                                      10)
        self.node.create_subscription(TwistStamped, f'{ns}/ee_delta', self.twists.append, 10)
        self.frame = 0

    def call(self, client, request, timeout=600.0):
        assert client.wait_for_service(timeout_sec=60.0), self.log()
        future = client.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        assert future.done(), self.log()
        return future.result()

    def transition(self, transition_id):
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.call(self.change, request).success

    def state(self):
        return self.call(self.get, GetState.Request(), timeout=10.0).current_state.id

    def send_frame(self):
        msg = Image(**rgb_to_image_fields(scene_image(self.frame)))
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.camera.publish(msg)
        self.frame += 1

    def run_until_actions(self, count, timeout=120.0):
        deadline = time.monotonic() + timeout
        target = len(self.actions) + count
        while len(self.actions) < target and time.monotonic() < deadline:
            self.send_frame()
            rclpy.spin_once(self.node, timeout_sec=0.03)
        assert len(self.actions) >= target, self.log()

    def engine_processes(self):
        return psutil.Process(self.proc.pid).children(recursive=True)

    def group_members(self):
        """Return the processes of the node's process group other than the node itself."""
        members = []
        for process in psutil.process_iter():
            try:
                if process.pid != self.proc.pid and os.getpgid(process.pid) == self.proc.pid:
                    members.append(process)
            except (psutil.Error, ProcessLookupError):
                pass
        return members

    def log(self):
        return self.log_path.read_text()[-4000:]

    def close(self):
        # Kill the engine processes too: a failed test must not leave them running (orphans
        # included: they keep the node's process group).
        family = self.group_members()
        if self.proc.poll() is None:
            family.append(psutil.Process(self.proc.pid))
        for process in family:
            try:
                process.kill()
            except psutil.Error:
                pass
        if self.proc.poll() is None:
            self.proc.wait(10)
        self.node.destroy_node()


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_signal_mid_inference_zero_twist_exit_0(ros, test_model, tmp_path, signum):
    node = NodeProcess(test_model, tmp_path, f'sig{int(signum)}')
    try:
        assert node.transition(Transition.TRANSITION_CONFIGURE), node.log()
        assert node.transition(Transition.TRANSITION_ACTIVATE)
        node.run_until_actions(2)
        children = node.engine_processes()
        assert children, 'the engine runs in child processes'
        node.send_frame()          # an inference is in flight when the signal arrives
        time.sleep(0.3)
        sent = time.monotonic()
        node.proc.send_signal(signum)
        while node.proc.poll() is None and time.monotonic() - sent < 30:
            rclpy.spin_once(node.node, timeout_sec=0.05)
        took = time.monotonic() - sent
        for _ in range(20):
            rclpy.spin_once(node.node, timeout_sec=0.05)
        assert node.proc.returncode == 0, node.log()
        assert took < 5.0, f'exit took {took:.1f} s'
        last = node.twists[-1].twist
        assert [last.linear.x, last.linear.y, last.linear.z, last.angular.x, last.angular.y,
                last.angular.z] == [0.0] * 6
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f'orphan engine processes: {alive}'
        print(f'{signal.Signals(signum).name}: exit 0 in {took:.2f} s, zero twist last, '
              f'{len(children)} engine processes gone')
    finally:
        node.close()


def test_killed_engine_process_then_configure_recovers(ros, test_model, tmp_path):
    node = NodeProcess(test_model, tmp_path, 'kill')
    try:
        assert node.transition(Transition.TRANSITION_CONFIGURE), node.log()
        assert node.transition(Transition.TRANSITION_ACTIVATE)
        node.run_until_actions(1)
        for child in node.engine_processes():   # the engine dies under the node
            child.kill()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and node.state() != State.PRIMARY_STATE_INACTIVE:
            node.send_frame()
            rclpy.spin_once(node.node, timeout_sec=0.2)
        assert node.state() == State.PRIMARY_STATE_INACTIVE, node.log()
        assert node.proc.poll() is None, 'the node process must survive its engine'
        assert 'engine died' in node.log()
        assert node.transition(Transition.TRANSITION_CLEANUP)
        assert node.transition(Transition.TRANSITION_CONFIGURE), node.log()
        assert node.transition(Transition.TRANSITION_ACTIVATE)
        node.run_until_actions(1)
    finally:
        node.close()


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_signal_while_configure_loads_the_engine_leaves_no_engine_process(
        ros, test_model, tmp_path, signum):
    """Issue 16: a signal 12 s into configure used to exit 0 and leave 3 engine processes."""
    node = NodeProcess(test_model, tmp_path, f'load{int(signum)}')
    try:
        assert node.change.wait_for_service(timeout_sec=60.0), node.log()
        request = ChangeState.Request()
        request.transition.id = Transition.TRANSITION_CONFIGURE
        asked = time.monotonic()
        configure = node.change.call_async(request)
        # Loading: wait for the engine's processes to appear (vLLM's engine core, then its
        # workers), and a few seconds more so the workers are being started too.
        deadline = time.monotonic() + 120
        while not node.engine_processes() and time.monotonic() < deadline:
            rclpy.spin_once(node.node, timeout_sec=0.1)
        first = time.monotonic()
        while time.monotonic() - first < 8.0:
            rclpy.spin_once(node.node, timeout_sec=0.1)
        seen = node.group_members()
        assert seen, 'the engine should run in child processes by now: ' + node.log()
        assert not configure.done() and 'engine ready' not in node.log(), (
            'configure finished before the signal: the test did not hit the loading phase')
        sent = time.monotonic()
        node.proc.send_signal(signum)
        while node.proc.poll() is None and time.monotonic() - sent < 60:
            rclpy.spin_once(node.node, timeout_sec=0.05)
        took = time.monotonic() - sent
        assert node.proc.returncode == 0, node.log()
        # Anything left of the engine: the processes seen before the signal, and any other one
        # still in the node's process group (started after we looked).
        gone, alive = psutil.wait_procs(seen, timeout=5)
        left = alive + [p for p in node.group_members() if p not in alive]
        assert not left, f'engine processes left behind: {left}\n{node.log()}'
        print(f'{signal.Signals(signum).name} {sent - asked:.0f} s into configure: exit 0 '
              f'in {took:.1f} s, {len(seen)} engine processes seen, none left')
    finally:
        node.close()
