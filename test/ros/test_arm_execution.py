# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The policy node driving the simulated arm over DDS: stream vs pulse, dead-man, pose targets.

The policy is scripted (known deltas, no engine); the simulated arm is the package's real node
with MoveIt Servo's semantics. Expected displacements are the scripted deltas summed by hand.
"""

import math
import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402

from openvla_ros.core.engine import Prediction  # noqa: E402
from openvla_ros.core.preprocessing import ImagePreparation  # noqa: E402
from openvla_ros.node.sim_arm import SimArmNode  # noqa: E402
from ros_harness import RosGraph, wait_until  # noqa: E402

INSTRUCTION = 'put the carrot on the plate'
#: One Bridge-sized step: 1 cm x, -0.5 cm y, 0.4 cm z, 0.05 rad yaw.
DELTA = [0.01, -0.005, 0.004, 0.0, 0.0, 0.05]
STEPS = 8


class ScriptedPolicy:
    """``DELTA`` for the first ``steps`` requests, then zero motion; gripper open."""

    def __init__(self, steps=STEPS, latency=0.03):
        self.decoder = SimpleNamespace(unnorm_key='bridge_orig', provenance=lambda: {
            'unnorm_key': 'bridge_orig', 'statistics_source': 'scripted',
            'statistics_hash': 'f00d'})
        self.preparation = ImagePreparation()
        self.steps = steps
        self.latency = latency
        self.calls = 0
        self.lock = threading.Lock()

    def prompt_ids(self, instruction):
        return [1, 2, 29871]

    def predict(self, image, instruction, prompt_ids=None):
        time.sleep(self.latency)
        with self.lock:
            self.calls += 1
            moving = self.calls <= self.steps
        action = np.array((DELTA if moving else [0.0] * 6) + [1.0])
        return Prediction(action, [31800] * 7, {'engine_s': self.latency})

    def is_alive(self):
        return True

    def close(self, fast=False):
        pass


BASE = {'max_linear': 0.0, 'max_angular': 0.0, 'max_image_age': 30.0, 'max_rate_hz': 5.0,
        'diagnostics_period': 0.2, 'inference_timeout': 5.0, 'command_timeout': 60.0,
        'stamp_source': 'now'}


class ArmGraph:
    """Policy node + harness (one executor) and the simulated arm (its own executor)."""

    def __init__(self, tmp_path, namespace, parameters, policy, arm=True, arm_input='twist'):
        self.graph = RosGraph(None, tmp_path, namespace, {**BASE, **parameters}, shared=policy)
        self.h = self.graph.harness
        self.arm = None
        if arm:
            # In the policy node's context, as `demo --arm sim` runs it: an executor spinning a
            # second context in the same process kept the node's executor busy (one core) and
            # starved the stream thread of the GIL.
            context = self.graph.runner.context
            self.arm = SimArmNode(namespace='/' + namespace, context=context, parameter_overrides=[
                Parameter('input', value=arm_input), Parameter('camera_hz', value=10.0),
                Parameter('image_size', value=64), Parameter('rate_hz', value=100.0)])
            self.executor = SingleThreadedExecutor(context=context)
            self.executor.add_node(self.arm)
            threading.Thread(target=self.executor.spin, daemon=True).start()

    def start(self):
        assert self.h.set_parameter('instruction', INSTRUCTION).successful
        assert self.h.transition(Transition.TRANSITION_CONFIGURE)
        assert self.h.transition(Transition.TRANSITION_ACTIVATE)

    def close(self):
        if self.arm is not None:
            self.executor.shutdown(timeout_sec=1.0)
            self.arm.destroy_node()
        self.graph.close()


def executed_after_script(rig, policy):
    """Run the node until the scripted steps are done and the arm settled; return its offset."""
    rig.start()
    assert wait_until(lambda: policy.calls >= policy.steps + 3), 'the scripted steps never ran'
    time.sleep(0.5)     # the last step's stream (0.2 s) has ended
    return np.array(rig.arm.status()['offset_m']), rig.arm.status()


def overloaded(status):
    """Skip when the stream left the node right but reached the arm unevenly.

    A zero-order-hold consumer executes a stream exactly only when the delivery delay is
    steady; with gaps beyond Servo's timeout or a delay spread beyond 20 ms (CPU starvation by
    other processes) the arm's figures say nothing about the node.
    """
    if status['max_gap_s'] > 0.1 or status['delivery_jitter_s'] > 0.02:
        pytest.skip(f"machine overloaded: twist gap up to {status['max_gap_s']:.3f} s, "
                    f"delivery delay spread {status['delivery_jitter_s']:.3f} s (load average "
                    f'{os.getloadavg()[0]:.1f})')


def stamp_s(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def test_stream_executes_the_commanded_displacement_without_halts(tmp_path):
    policy = ScriptedPolicy()
    rig = ArmGraph(tmp_path, 'arm_stream', {'publish_mode': 'stream', 'output_mode': 'delta'},
                   policy)
    try:
        offset, status = executed_after_script(rig, policy)
        _, orientation = rig.arm.pose()
        twists = rig.h.snapshot('ee_delta')
    finally:
        rig.close()
    commanded = STEPS * np.array(DELTA[:3])      # 8 x (0.01, -0.005, 0.004)
    # What the node sent, held from each stamp to the next (Servo's zero-order hold).
    stamps = np.array([stamp_s(m) for m in twists])
    sent = sum(np.array([m.twist.linear.x, m.twist.linear.y, m.twist.linear.z]) * dt
               for m, dt in zip(twists, np.diff(stamps)))
    assert np.linalg.norm(sent - commanded) / np.linalg.norm(commanded) <= 0.02, sent
    assert all(m.header.frame_id == 'base_link' for m in twists)
    overloaded(status)
    error = np.linalg.norm(offset - commanded) / np.linalg.norm(commanded)
    assert error <= 0.02, (offset, commanded, status)
    yaw = 2.0 * math.atan2(orientation[2], orientation[3])
    assert yaw == pytest.approx(STEPS * DELTA[5], rel=0.02)     # 8 x 0.05 rad
    assert status['halts'] == 0, status


def test_pulse_halts_and_moves_half_a_step_per_action(tmp_path):
    policy = ScriptedPolicy()
    rig = ArmGraph(tmp_path, 'arm_pulse', {'publish_mode': 'pulse',
                                           'output_mode': 'velocity'}, policy)
    try:
        offset, status = executed_after_script(rig, policy)
    finally:
        rig.close()
    commanded = STEPS * np.array(DELTA[:3])
    ratio = float(np.dot(offset, commanded) / np.dot(commanded, commanded))
    # Each pulse holds delta / 0.2 s for Servo's 0.1 s timeout: half of every step.
    assert 0.4 <= ratio <= 0.6, (offset, commanded)
    assert status['halts'] >= STEPS - 1, status


def test_dead_man_stops_motion_within_enable_timeout_plus_one_period(tmp_path):
    policy = ScriptedPolicy(steps=10 ** 6)
    timeout, period = 0.3, 1.0 / 50.0
    rig = ArmGraph(tmp_path, 'arm_deadman', {'publish_mode': 'stream', 'require_enable': True,
                                             'enable_timeout': timeout}, policy)
    enable = rig.h.node.create_publisher(Bool, '/arm_deadman/enable', 10)
    try:
        rig.start()
        assert wait_until(lambda: policy.calls >= 2)
        time.sleep(0.5)
        held, _ = rig.arm.pose()
        assert np.allclose(held, rig.arm.start_position), 'moved without enable'
        last = 0.0
        for _ in range(30):                         # 1.5 s of dead-man presses at 20 Hz
            enable.publish(Bool(data=True))
            last = time.time()
            time.sleep(0.05)
        moved, _ = rig.arm.pose()
        assert np.linalg.norm(moved - held) > 0.01, 'enabled arm did not move'
        time.sleep(timeout + 0.7)
        twists = rig.h.snapshot('ee_delta')
        stopped, _ = rig.arm.pose()
        time.sleep(0.5)
        still, _ = rig.arm.pose()
    finally:
        rig.close()
    moving = [m for m in twists if m.twist.linear.x != 0.0]
    last_motion = max(stamp_s(m) for m in moving)
    # The last non-zero twist left at most one stream period after the enable expired
    # (plus 50 ms for the enable message's delivery on a loaded machine).
    assert last_motion - last <= timeout + period + 0.05, last_motion - last
    assert np.allclose(stopped, still, atol=1e-12)


def test_stale_ee_pose_gives_no_pose_target(tmp_path):
    policy = ScriptedPolicy(steps=10 ** 6)
    rig = ArmGraph(tmp_path, 'arm_pose', {'publish_mode': 'pulse', 'pose_target': True,
                                          'ee_pose_timeout': 0.3}, policy, arm=False)
    h = rig.h
    targets = []
    h.node.create_subscription(PoseStamped, '/arm_pose/pose_target', targets.append, 10)
    pose_pub = h.node.create_publisher(PoseStamped, '/arm_pose/ee_pose', 10)
    feeding = threading.Event()
    feeding.set()
    stop = threading.Event()

    def feed():
        index = 0
        while not stop.is_set():
            h.publish_image(index % 4)
            index += 1
            if feeding.is_set():
                msg = PoseStamped()
                msg.header.frame_id = 'base_link'
                msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = 0.3, 0.0, 0.15
                msg.pose.orientation.w = 1.0
                pose_pub.publish(msg)
            time.sleep(0.05)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        rig.start()
        assert wait_until(lambda: len(targets) >= 3)
        first = targets[0]
        feeding.clear()
        time.sleep(0.3 + 0.4)
        count, actions = len(targets), len(h.snapshot('action'))
        assert wait_until(lambda: len(h.snapshot('action')) >= actions + 3)
        assert len(targets) == count, 'a pose target from a stale ee_pose'
        assert wait_until(lambda: int(h.diagnostics_values()['pose_targets_skipped']) >= 1)
        status = h.snapshot('diagnostics')[-1]
    finally:
        stop.set()
        thread.join(2.0)
        rig.close()
    p, q = first.pose.position, first.pose.orientation
    # (0.3, 0, 0.15) + (0.01, -0.005, 0.004); identity (+) yaw 0.05 = (0, 0, sin .025, cos .025).
    assert [p.x, p.y, p.z] == pytest.approx([0.31, -0.005, 0.154], abs=1e-12)
    assert [q.x, q.y, q.z, q.w] == pytest.approx([0, 0, math.sin(0.025), math.cos(0.025)],
                                                 abs=1e-12)
    assert first.header.frame_id == 'base_link'
    assert status.level == DiagnosticStatus.WARN and 'ee_pose' in status.message


def test_workspace_box_cuts_the_motion_at_its_face(tmp_path):
    policy = ScriptedPolicy(steps=6)
    # x may reach 0.325: two and a half of the 1 cm steps from 0.3; y and z are free.
    rig = ArmGraph(tmp_path, 'arm_box', {'publish_mode': 'stream',
                                         'workspace_min': [0.0, -1.0, -1.0],
                                         'workspace_max': [0.325, 1.0, 1.0]}, policy)
    try:
        offset, status = executed_after_script(rig, policy)
        assert wait_until(lambda: int(rig.h.diagnostics_values()['workspace_cuts']) >= 3)
    finally:
        rig.close()
    overloaded(status)
    # x stops at the face (0.025 m from the start), never beyond; y and z travel on (their
    # accuracy is the stream test's business: here they only show the cut is per axis).
    assert 0.025 * 0.9 <= offset[0] <= 0.025 * 1.02, offset
    assert offset[1:] == pytest.approx([6 * -0.005, 6 * 0.004], rel=0.1)


def test_stream_goes_on_with_zeros_when_the_engine_hangs(tmp_path):
    policy = ScriptedPolicy(steps=10 ** 6)
    gate = threading.Event()
    predict = policy.predict

    def hanging(image, instruction, prompt_ids=None):
        if policy.calls >= 2:
            gate.wait(30)          # the engine stops answering after two actions
        return predict(image, instruction, prompt_ids)

    policy.predict = hanging
    rig = ArmGraph(tmp_path, 'arm_hang', {'publish_mode': 'stream', 'inference_timeout': 0.5},
                   policy)
    try:
        rig.start()
        assert wait_until(lambda: int(rig.h.diagnostics_values()['engine_timeouts']) >= 1)
        rig.h.clear()
        time.sleep(1.0)
        twists = rig.h.snapshot('ee_delta')
    finally:
        gate.set()
        rig.close()
    # A stale engine: the stream keeps Servo fed (50 a second; 25 allows a busy machine),
    # all zeros.
    assert len(twists) >= 25, len(twists)
    assert all(m.twist.linear.x == 0.0 and m.twist.angular.z == 0.0 for m in twists)


def test_deactivating_mid_step_ends_the_stream_with_a_zero(tmp_path):
    policy = ScriptedPolicy(steps=10 ** 6)
    rig = ArmGraph(tmp_path, 'arm_stop', {'publish_mode': 'stream'}, policy, arm=False)
    h = rig.h
    try:
        rig.start()
        for index in range(40):
            h.publish_image(index % 4)
            if any(m.twist.linear.x != 0.0 for m in h.snapshot('ee_delta')):
                break
            time.sleep(0.05)
        assert any(m.twist.linear.x != 0.0 for m in h.snapshot('ee_delta')), 'no motion'
        assert h.transition(Transition.TRANSITION_DEACTIVATE)
        time.sleep(0.5)
        twists = h.snapshot('ee_delta')
        time.sleep(0.3)
        assert len(h.snapshot('ee_delta')) == len(twists), 'the stream outlived deactivation'
    finally:
        rig.close()
    last = twists[-1].twist
    assert [last.linear.x, last.linear.y, last.linear.z, last.angular.z] == [0.0] * 4
