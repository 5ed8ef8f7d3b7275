# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A simulated arm that consumes commands the way real controllers do (ROS-free).

A test and demo instrument, not a robot model: an end effector with no dynamics that

* in ``twist`` input follows MoveIt Servo's semantics for ``command_in_type: speed_units``:
  the newest twist (m/s, rad/s in the base frame) is held until the next one, and when no
  twist arrived for ``command_timeout`` (Servo's ``incoming_command_timeout``, 0.1 s) it halts;
  a halt that interrupts motion (the held twist was not zero) is counted;
* in ``pose`` input moves toward the newest target pose at ``max_linear_speed`` /
  ``max_angular_speed``, as a Cartesian pose controller does.

Motion is integrated exactly between events (zero-order hold, cut at the timeout), so what it
reports as executed depends on the commands and their timing only, not on its timer rate.
:func:`render` draws a camera image that depends on the pose, closing the loop for the demo.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from openvla_ros.core.execution import (quat_angle, quat_from_rotvec, quat_multiply,
                                        quat_normalize)

ARM_INPUTS = ('twist', 'pose')


class JournalEntry(NamedTuple):
    """One twist as the arm took it: when, the pose it found, the sender's stamp, the twist."""

    received: float            # the arm's clock (s)
    position: np.ndarray       # pose when it arrived, before it acted
    orientation: np.ndarray
    sent: float                # the sender's stamp (s, the sender's clock)
    velocity: np.ndarray       # [vx vy vz wx wy wz]


class SimArm:
    """The simulated end effector; every method takes the caller's monotonic time ``now``."""

    def __init__(self, position: Sequence[float] = (0.3, 0.0, 0.15),
                 orientation: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
                 command_timeout: float = 0.1, max_linear_speed: float = 0.25,
                 max_angular_speed: float = 1.0, now: float = 0.0,
                 record: bool = False) -> None:
        """Start at rest at the given pose; ``record`` keeps a journal of every twist."""
        self.position = np.asarray(position, dtype=np.float64).copy()
        self.orientation = quat_normalize(orientation)
        self.command_timeout = float(command_timeout)
        self.max_linear_speed = float(max_linear_speed)
        self.max_angular_speed = float(max_angular_speed)
        self._t = float(now)
        self._velocity = np.zeros(6)
        self._received: float | None = None
        self._halted = True
        self._target: tuple[np.ndarray, np.ndarray] | None = None
        self.halts = 0          # timeouts that stopped motion
        self.timeouts = 0       # every time the command stream lapsed
        self.twists = 0
        self.targets = 0
        self.speed = 0.0        # linear speed during the last advance (m/s)
        self.max_gap = 0.0      # longest time between two twists (s)
        # One JournalEntry per twist: the pose when it arrived is exact (motion is integrated
        # between events), so a measurement between two twists needs no sampling.
        self.journal: list[JournalEntry] | None = [] if record else None

    def twist(self, velocity: Sequence[float], now: float, sent: float = float('nan')) -> None:
        """Take a velocity command [vx vy vz wx wy wz] received at ``now``.

        ``sent``: the sender's stamp (s), kept in the journal only.
        """
        self.advance(now)
        if self.journal is not None:
            self.journal.append(JournalEntry(float(now), self.position.copy(),
                                             self.orientation.copy(), float(sent),
                                             np.asarray(velocity, dtype=np.float64).copy()))
        if self._received is not None:
            self.max_gap = max(self.max_gap, now - self._received)
        self._velocity = np.asarray(velocity, dtype=np.float64).copy()
        self._received = now
        self._halted = False
        self._target = None
        self.twists += 1

    def pose_target(self, position: Sequence[float], orientation: Sequence[float],
                    now: float) -> None:
        """Take a target pose received at ``now`` (replaces any twist)."""
        self.advance(now)
        self._target = (np.asarray(position, dtype=np.float64).copy(),
                        quat_normalize(orientation))
        self._velocity = np.zeros(6)
        self._received = None
        self.targets += 1

    def advance(self, now: float) -> None:
        """Move the arm from its last update to ``now``."""
        start = self._t
        if now <= start:
            return
        before = self.position.copy()
        if self._received is not None and not self._halted:
            until = min(now, self._received + self.command_timeout)
            if until > start:
                self._integrate(self._velocity, until - start)
            if now > self._received + self.command_timeout:
                self._halted = True
                self.timeouts += 1
                if np.any(self._velocity):
                    self.halts += 1
                self._velocity = np.zeros(6)
        elif self._target is not None:
            self._follow(self._target, now - start)
        self.speed = float(np.linalg.norm(self.position - before)) / (now - start)
        self._t = now

    def _integrate(self, velocity: np.ndarray, dt: float) -> None:
        self.position = self.position + velocity[:3] * dt
        # The angular velocity is in the base frame: the small rotation multiplies on the left.
        self.orientation = quat_normalize(quat_multiply(quat_from_rotvec(velocity[3:] * dt),
                                                        self.orientation))

    def _follow(self, target: tuple[np.ndarray, np.ndarray], dt: float) -> None:
        position, orientation = target
        offset = position - self.position
        distance = float(np.linalg.norm(offset))
        step = self.max_linear_speed * dt
        self.position = position.copy() if distance <= step else \
            self.position + offset * (step / distance)
        angle = quat_angle(self.orientation, orientation)
        turn = self.max_angular_speed * dt
        if angle <= turn or angle < 1e-12:
            self.orientation = orientation.copy()
        else:
            self.orientation = _slerp(self.orientation, orientation, turn / angle)


def _slerp(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    if float(np.dot(a, b)) < 0.0:
        b = -b
    cos = min(1.0, float(np.dot(a, b)))
    angle = math.acos(cos)
    if angle < 1e-9:
        return a.copy()
    return quat_normalize((math.sin((1 - fraction) * angle) * a
                           + math.sin(fraction * angle) * b) / math.sin(angle))


def render(position: Sequence[float], orientation: Sequence[float], size: int = 224,
           home: Sequence[float] = (0.3, 0.0, 0.15)) -> np.ndarray:
    """Return an RGB camera image (uint8, size x size x 3) of the gripper seen from above.

    A table with a fixed target square, and the gripper as a disc whose image position
    follows x and y (10 px per cm from ``home``), whose radius grows with height and whose
    colour turns with yaw: whatever the arm did changes what the model sees next.
    """
    p = np.asarray(position, dtype=np.float64)
    x, y, z, w = quat_normalize(orientation)
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    rows, cols = np.mgrid[0:size, 0:size]
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[..., 0] = 90 + (rows * 60 // size)
    image[..., 1] = 110
    image[..., 2] = 70 + (cols * 60 // size)
    scale = size / 224.0
    image[int(40 * scale):int(70 * scale), int(150 * scale):int(180 * scale)] = (230, 230, 60)
    centre_r = size / 2 - (p[0] - home[0]) * 1000.0 * scale
    centre_c = size / 2 - (p[1] - home[1]) * 1000.0 * scale
    radius = max(4.0, (12.0 + (p[2] - home[2]) * 200.0) * scale)
    disc = (rows - centre_r) ** 2 + (cols - centre_c) ** 2 <= radius ** 2
    image[disc] = (int(127 + 120 * math.cos(yaw)), 40, int(127 + 120 * math.sin(yaw)))
    return image
