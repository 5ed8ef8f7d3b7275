# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A simulated arm as a ROS 2 node: a test and demo instrument for the policy node's outputs.

It consumes ``ee_delta`` (``TwistStamped``) with MoveIt Servo's semantics (speed units, held
until the next message, halt after ``incoming_command_timeout``) or ``pose_target``
(``PoseStamped``, followed at a speed limit), and publishes ``ee_pose`` (``PoseStamped``) and a
camera ``image`` drawn from its pose, so the policy node sees what its actions did. The motion
logic is :mod:`openvla_ros.core.arm_sim`; this module is its ROS glue. Not a robot model: no
dynamics, no joints, no collisions.

Run it with ``openvla-ros sim-arm`` or ``ros2 run openvla_ros sim_arm``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rcl_interfaces.msg import ParameterDescriptor
from sensor_msgs.msg import Image

from openvla_ros.core.arm_sim import ARM_INPUTS, render, SimArm
from openvla_ros.core.images import rgb_to_image_fields
from openvla_ros.node import qos

#: name -> (default, description) of the sim arm's parameters (all read-only).
PARAMETERS = {
    'input': ('twist', "'twist': ee_delta with MoveIt Servo semantics (speed_units); 'pose': "
                       'follow pose_target at the speed limits'),
    'rate_hz': (200.0, 'integration and halt-check rate (Hz, >= 100 like a servo loop)'),
    'incoming_command_timeout': (0.1, 'halt when no twist arrived for this long (s); '
                                      'MoveIt Servo default 0.1'),
    'max_linear_speed': (0.25, "speed limit in 'pose' input (m/s)"),
    'max_angular_speed': (1.0, "angular speed limit in 'pose' input (rad/s)"),
    'initial_position': ([0.3, 0.0, 0.15], 'start position x y z (m, frame_id)'),
    'frame_id': ('base_link', 'frame of ee_pose (and of the commands it expects)'),
    'pose_rate_hz': (50.0, 'rate of ee_pose (Hz)'),
    'camera_hz': (10.0, 'rate of the rendered camera image (Hz); 0 = no camera'),
    'image_size': (224, 'camera image width and height (px)'),
}


class SimArmNode(Node):
    """The simulated arm node (see the module docstring)."""

    def __init__(self, node_name: str = 'sim_arm', record: bool = False, **kwargs: Any) -> None:
        """Declare parameters, topics and timers; start at rest at ``initial_position``.

        ``record`` keeps the arm's journal of twists (see :meth:`journal`); for measurements.
        """
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True))
        v = {name: self.get_parameter(name).value for name in PARAMETERS}
        if v['input'] not in ARM_INPUTS:
            raise ValueError(f"input must be one of {', '.join(ARM_INPUTS)}, got {v['input']!r}")
        if float(v['rate_hz']) < 100.0:
            raise ValueError(f"rate_hz must be >= 100 (a servo loop), got {v['rate_hz']}")
        self.values = v
        self._lock = threading.Lock()
        self.arm = SimArm(v['initial_position'], command_timeout=v['incoming_command_timeout'],
                          max_linear_speed=v['max_linear_speed'],
                          max_angular_speed=v['max_angular_speed'], now=time.monotonic(),
                          record=record)
        self.start_position = self.arm.position.copy()
        # Delivery delay of twists (receive time minus stamp; the clocks' offset cancels in
        # the spread): a servo executes a stream exactly only when this stays small.
        self._lag_range = [float('inf'), float('-inf')]
        self._pose_pub = self.create_publisher(PoseStamped, 'ee_pose', 10)
        self._image_pub = self.create_publisher(Image, 'image', qos.IMAGES)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        if v['input'] == 'twist':
            # Servo's ~/delta_twist_cmds: reliable, depth 10.
            self.create_subscription(TwistStamped, 'ee_delta', self._on_twist, 10)
        else:
            self.create_subscription(PoseStamped, 'pose_target', self._on_target, 10)
        self.create_timer(1.0 / float(v['rate_hz']), self._advance)
        self.create_timer(1.0 / float(v['pose_rate_hz']), self._publish_pose)
        if float(v['camera_hz']) > 0.0:
            self.create_timer(1.0 / float(v['camera_hz']), self._publish_image)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"sim arm ready: input {v['input']}, at "
                               f"{[round(float(x), 3) for x in self.arm.position]}")

    def _on_twist(self, msg: TwistStamped) -> None:
        t = msg.twist
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        lag = time.time() - stamp
        with self._lock:
            self._lag_range = [min(self._lag_range[0], lag), max(self._lag_range[1], lag)]
            self.arm.twist([t.linear.x, t.linear.y, t.linear.z,
                            t.angular.x, t.angular.y, t.angular.z], time.monotonic(), stamp)

    def _on_target(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        try:
            with self._lock:
                self.arm.pose_target([p.x, p.y, p.z], [q.x, q.y, q.z, q.w], time.monotonic())
        except ValueError as error:
            self.get_logger().error(f'pose_target ignored: {error}')

    def _advance(self) -> None:
        with self._lock:
            self.arm.advance(time.monotonic())

    def journal(self) -> list[Any]:
        """Return the arm's journal: one ``JournalEntry`` per twist (when recording)."""
        with self._lock:
            return list(self.arm.journal or [])

    def pose(self) -> tuple[Any, Any]:
        """Return the current position and orientation (copies)."""
        with self._lock:
            self.arm.advance(time.monotonic())
            return self.arm.position.copy(), self.arm.orientation.copy()

    def _publish_pose(self) -> None:
        position, orientation = self.pose()
        msg = PoseStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.values['frame_id']
        p, q = msg.pose.position, msg.pose.orientation
        p.x, p.y, p.z = (float(x) for x in position)
        q.x, q.y, q.z, q.w = (float(x) for x in orientation)
        self._pose_pub.publish(msg)

    def _publish_image(self) -> None:
        position, orientation = self.pose()
        size = int(self.values['image_size'])
        msg = Image(**rgb_to_image_fields(render(position, orientation, size=size)))
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = 'sim_camera'
        self._image_pub.publish(msg)

    def status(self) -> dict[str, Any]:
        """Return the arm's counters: halts, timeouts, twists, targets, travelled offset."""
        position, _ = self.pose()
        with self._lock:
            return {'halts': self.arm.halts, 'timeouts': self.arm.timeouts,
                    'twists': self.arm.twists, 'targets': self.arm.targets,
                    'max_gap_s': self.arm.max_gap,
                    'delivery_jitter_s': max(0.0, self._lag_range[1] - self._lag_range[0]),
                    'offset_m': [float(x) for x in position - self.start_position]}

    def _publish_diagnostics(self) -> None:
        status = self.status()
        entry = DiagnosticStatus(name=f'{self.get_fully_qualified_name()}: simulated arm',
                                 hardware_id='sim_arm', message=f"halts {status['halts']}")
        entry.level = DiagnosticStatus.OK
        entry.values = [KeyValue(key=k, value=str(v)) for k, v in status.items()]
        array = DiagnosticArray(status=[entry])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def main(args: list[str] | None = None) -> None:
    """Run the simulated arm until Ctrl-C."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = SimArmNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as error:      # a bad parameter: one line, no traceback
        print(f'sim_arm: error: {error}', file=sys.stderr, flush=True)
        code = 2
    finally:
        if node is not None:
            # The context may be shut down already (Ctrl-C): report on stdout, not rosout.
            print(f'sim_arm stopped: {node.status()}', flush=True)
            node.destroy_node()
        rclpy.try_shutdown()
    if code:
        raise SystemExit(code)


if __name__ == '__main__':
    main()
