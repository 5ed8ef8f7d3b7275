# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The policy node's arm-facing outputs: pulse or stream, pose targets, safety envelope.

Glue only: the arithmetic is :mod:`openvla_ros.core.execution` (stream scheduler, pose
composition, envelope). This module owns the topics ``ee_pose`` (in), ``enable`` (in),
``pose_target`` (out) and, in ``publish_mode: stream``, the timer that publishes ``ee_delta``
at ``stream_rate_hz`` with a fresh stamp. The node hands it every conditioned action
(:meth:`MotionOutput.act`) and every stop (:meth:`MotionOutput.stop`).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from geometry_msgs.msg import PoseStamped, TwistStamped
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, Float64

from openvla_ros.core.conditioning import Command
from openvla_ros.core.execution import (next_request_at, rpy_to_rotvec, SafetyEnvelope,
                                        StreamScheduler)
from openvla_ros.node import qos

#: The interpreter's thread switch interval while this node runs (see MotionOutput).
STREAM_SWITCH_INTERVAL_S = 0.0002

#: Arm drivers publish their pose reliable or best effort; a best-effort reader takes both.
POSE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                      history=HistoryPolicy.KEEP_LAST)


def envelope_from(values: dict[str, Any]) -> SafetyEnvelope:
    """Return the safety envelope the parameter values ask for (``ValueError`` if invalid)."""
    return SafetyEnvelope(require_enable=bool(values['require_enable']),
                          enable_timeout=float(values['enable_timeout']),
                          workspace_min=[float(v) for v in values['workspace_min']],
                          workspace_max=[float(v) for v in values['workspace_max']],
                          ee_pose_timeout=float(values['ee_pose_timeout']))


class MotionOutput:
    """Publish each action the way the arm consumes it, inside the safety envelope."""

    def __init__(self, node: Any, values: dict[str, Any], twist_pub: Any,
                 gripper_pub: Any) -> None:
        """Create the topics (and the stream timer) on ``node``; ``values`` is live."""
        self._node = node
        self._values = values
        self._twist_pub = twist_pub
        self._gripper_pub = gripper_pub
        self._lock = threading.Lock()
        self.envelope = envelope_from(values)
        self.stream = values['publish_mode'] == 'stream'
        self.scheduler = StreamScheduler(float(values['control_period']),
                                         float(values['stream_rate_hz']),
                                         values['early_action'])
        self.counts = {'motion_held': 0, 'pose_targets': 0, 'pose_targets_skipped': 0,
                       'stream_ticks': 0, 'bad_ee_poses': 0}
        self.hold_reason = ''
        self._pose_pub = node.create_lifecycle_publisher(PoseStamped, 'pose_target',
                                                         qos.COMMANDS)
        # The arm's pose arrives at the driver's rate (100 Hz and more). On the node's
        # MultiThreadedExecutor every message is a task for its thread pool, offered again and
        # again until a pool thread starts it (see the switch interval below); these two cheap
        # inputs spin instead on a single-threaded executor of their own, in a small node of
        # their own. That node ignores the process's global arguments (a launch file's
        # ``__node:=`` would give it the policy node's name) and subscribes to the names the
        # policy node resolves, so the user's remappings still apply.
        self._inputs = rclpy.create_node(
            f'{node.get_name()}_motion_inputs', namespace=node.get_namespace(),
            context=node.context, use_global_arguments=False, start_parameter_services=False)
        self._inputs.create_subscription(PoseStamped, node.resolve_topic_name('ee_pose'),
                                         self._on_pose, POSE_QOS)
        self._inputs.create_subscription(Bool, node.resolve_topic_name('enable'),
                                         self._on_enable, 10)
        self._input_executor = SingleThreadedExecutor(context=node.context)
        self._input_executor.add_node(self._inputs)
        threading.Thread(target=self._spin_inputs, name='openvla-motion-inputs',
                         daemon=True).start()
        # Its own thread on absolute deadlines, not an executor timer: a busy executor (image
        # callbacks, services, other nodes) must not delay the stream, since a gap longer than
        # the consumer's timeout halts the arm. In pulse mode it only watches the envelope, so
        # a lapsing dead-man gets its zero twist at once.
        self._closed = threading.Event()
        self._was_held = True       # no error for the state the node starts in
        # rclpy's MultiThreadedExecutor offers a queued callback again and again until a pool
        # thread starts it; each start needs the GIL, which the offering thread holds for the
        # interpreter's switch interval (5 ms by default). Under a steady message rate that
        # feeds on itself: measured with the simulated arm, one core busy and stream ticks
        # late by up to 1.2 s (a Servo halts after 0.1 s). A shorter interval lets waiting
        # threads in sooner and breaks the cycle (one core -> 0.4 of a core at 0.2 ms, and the
        # stream on time); the engine runs in its own processes, so little else here pays.
        if sys.getswitchinterval() > STREAM_SWITCH_INTERVAL_S:
            sys.setswitchinterval(STREAM_SWITCH_INTERVAL_S)
        threading.Thread(target=self._stream, name='openvla-stream', daemon=True).start()

    # ------------------------------------------------------------------ inputs

    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        try:
            with self._lock:
                self.envelope.on_pose([p.x, p.y, p.z], [q.x, q.y, q.z, q.w], time.monotonic())
        except ValueError as error:
            self.counts['bad_ee_poses'] += 1
            self._node._problem('ee_pose', f'ee_pose ignored: {error}', 'error')

    def _on_enable(self, msg: Bool) -> None:
        with self._lock:
            self.envelope.on_enable(bool(msg.data), time.monotonic())

    def update(self, changes: dict[str, Any]) -> None:
        """Apply run-time parameter changes (already validated); keeps pose and enable."""
        if not any(name in changes for name in ('require_enable', 'enable_timeout',
                                                'workspace_min', 'workspace_max',
                                                'ee_pose_timeout', 'control_period',
                                                'early_action')):
            return
        with self._lock:
            old, self.envelope = self.envelope, envelope_from(self._values)
            self.envelope.keep_state_of(old)
            self.scheduler.control_period = float(self._values['control_period'])
            self.scheduler.early_rule = self._values['early_action']

    # ------------------------------------------------------------------ outputs

    def act(self, command: Command, stamp: Any) -> None:
        """Execute one conditioned action (called for every published action)."""
        now = time.monotonic()
        delta = np.concatenate([command.linear, command.angular]).astype(np.float64)
        per_step = self._values['output_mode'] == 'velocity'
        period = float(self._values['control_period'])
        if per_step:
            delta = delta * period   # the scheduler and the box work in m, rad per step
        with self._lock:
            why = self.envelope.why_not(now)
            if why:
                self.counts['motion_held'] += 1
                self.hold_reason = why
                self.scheduler.clear()
            else:
                self.hold_reason = ''
                delta, _ = self.envelope.cut_delta(delta, now)
                target = (self.envelope.target(delta, self._values['rotation_convention'], now)
                          if self._values['pose_target'] else None)
                if self.stream:
                    # Servo integrates an angular velocity: send the rotation vector of the
                    # Bridge rotation so the integral is that rotation exactly.
                    self.scheduler.push(np.concatenate([delta[:3], rpy_to_rotvec(*delta[3:])]))
        if why:
            self._node._problem('motion', f'action not executed: {why}', 'warning')
            if not self.stream:
                self._publish_twist(np.zeros(6), stamp)
            return
        if self._values['pose_target']:
            self._publish_target(target)
        if not self.stream:
            self._publish_twist(delta / period if per_step else delta, stamp)
        if not np.isnan(command.gripper):
            self._gripper_pub.publish(Float64(data=float(command.gripper)))

    def next_request_at(self, now: float, expected_s: float) -> float:
        """Return when the loop should start its next inference (the loop's ``pacing``).

        Streaming, the action of a request started then arrives as the current step ends, so
        it is computed on the freshest frame and the arm does not pause between steps (with an
        engine faster than the step). Otherwise, and with nothing moving: now.
        """
        if not self.stream:
            return now
        with self._lock:
            ends = self.scheduler.motion_ends_at(now)
        return next_request_at(now, ends, expected_s)

    def stop(self) -> None:
        """Drop the step in progress (zero twist, stale engine, deactivation).

        Returns after any tick in flight has been published; later ticks send zeros.
        """
        with self._lock:
            self.scheduler.clear()

    def close(self) -> None:
        """Stop the stream and input threads (the node is being destroyed)."""
        self._closed.set()
        self._input_executor.shutdown(timeout_sec=1.0)
        self._inputs.destroy_node()

    def _spin_inputs(self) -> None:
        try:
            self._input_executor.spin()
        except ExternalShutdownException:
            pass   # the context is shutting down with the process

    def _stream(self) -> None:
        period = self.scheduler.period
        deadline = time.monotonic()
        while not self._closed.is_set() and self._node.context.ok():
            deadline += period
            delay = deadline - time.monotonic()
            if delay < -period:
                deadline = time.monotonic()     # fell behind: resynchronize, never burst
            elif delay > 0.0:
                self._closed.wait(delay)
            try:
                self._tick()
            except Exception as error:  # noqa: B902 - a destroyed publisher ends the stream
                if self._closed.is_set() or not self._node.context.ok():
                    return
                self._node._problem('stream', f'stream tick failed: {error!r}', 'error')

    def _tick(self) -> None:
        if not self._twist_pub.is_activated:
            self._was_held = True
            return
        now = time.monotonic()
        with self._lock:
            why = self.envelope.why_not(now)
            stopped = bool(why) and not self._was_held
            self._was_held = bool(why)
        if stopped:
            # Motion was allowed and no longer is (dead-man lapsed, pose lost): say so once.
            self._node.get_logger().error(f'motion stopped: {why}')
            if not self.stream:
                self._publish_twist(np.zeros(6), self._node.get_clock().now().to_msg())
        if not self.stream:
            return
        with self._lock:
            if why:
                self.scheduler.clear()       # a disabled arm must not resume an old step
            velocity = self.scheduler.tick(now)
            velocity = self.envelope.cut_velocity(velocity, self.scheduler.period, now)
            self.counts['stream_ticks'] += 1
            # Published under the lock: once stop() has returned, no tick computed before it
            # can still go out, so the node's final zero twist really is the last word.
            self._publish_twist(velocity, self._node.get_clock().now().to_msg())

    def _publish_twist(self, values: np.ndarray, stamp: Any) -> None:
        twist = TwistStamped()
        twist.header.stamp = stamp
        twist.header.frame_id = self._values['frame_id']
        t = twist.twist
        t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z = (
            float(v) for v in values)
        self._twist_pub.publish(twist)

    def _publish_target(self, target: Any) -> None:
        if target is None:
            self.counts['pose_targets_skipped'] += 1
            self._node._problem('pose_target', 'no pose_target: no ee_pose younger than '
                                f"ee_pose_timeout ({self._values['ee_pose_timeout']} s)",
                                'warning')
            return
        position, orientation = target
        msg = PoseStamped()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.header.frame_id = self._values['frame_id']
        p, q = msg.pose.position, msg.pose.orientation
        p.x, p.y, p.z = (float(v) for v in position)
        q.x, q.y, q.z, q.w = (float(v) for v in orientation)
        self._pose_pub.publish(msg)
        self.counts['pose_targets'] += 1

    def step_starts(self) -> list[float]:
        """Return the monotonic time of each streamed step's first tick (newest last)."""
        with self._lock:
            return list(self.scheduler.step_starts)

    # ------------------------------------------------------------------ diagnostics

    def status(self) -> dict[str, Any]:
        """Return the execution figures for diagnostics (``motion_warning``: why WARN)."""
        now = time.monotonic()
        with self._lock:
            pose = self.envelope.pose
            why = self.envelope.why_not(now)
            stale = self._values['pose_target'] and self.envelope.fresh_pose(now) is None
            values: dict[str, Any] = {
                'publish_mode': self._values['publish_mode'],
                'motion_allowed': not why,
                'ee_pose_age_s': now - pose.received if pose else float('nan'),
                'workspace_cuts': self.envelope.cuts,
                'stream_idle_fraction': self.scheduler.idle_fraction(),
                'stream_early_actions': self.scheduler.early}
            values.update(self.counts)
        warning = why or ('pose_target is on but ee_pose is stale or missing' if stale else '')
        values['motion_warning'] = warning
        return values
