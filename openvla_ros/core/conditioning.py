# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Turn a decoded OpenVLA action into the command the robot gets: scaling, units, clamps.

ROS-free, so the exact arithmetic the node applies is unit-tested without a ROS graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Sequence

import numpy as np

OUTPUT_MODES = ('delta', 'velocity')


@dataclass
class Command:
    """One conditioned command: linear and angular parts and the gripper value."""

    linear: np.ndarray
    angular: np.ndarray
    gripper: float

    @classmethod
    def zero(cls, gripper: float = float('nan')) -> 'Command':
        """Return the stop command (no motion; the gripper left as it is: NaN)."""
        return cls(np.zeros(3), np.zeros(3), gripper)


@dataclass
class Conditioning:
    """How actions become commands; the node keeps one and updates it on parameter changes.

    ``output_mode`` ``delta`` publishes the model's per-step deltas (metres and radians per
    control step, as the dataset recorded them); ``velocity`` divides them by
    ``control_period`` (seconds per step) for servo-style consumers that expect m/s and rad/s.
    ``action_scale`` (6 values: x y z roll pitch yaw) is applied next, then the clamps
    ``max_linear`` (norm of the linear part) and ``max_angular`` (norm of the angular part),
    in the output's units; 0 disables a clamp. Clamping scales the whole vector so the direction
    of motion is kept. ``gripper_threshold`` < 0 passes the gripper through; otherwise values at
    or above it become 1.0 (open) and below it 0.0 (closed). ``gripper_invert`` maps g to 1 - g
    for grippers whose command is "1 = closed".
    """

    output_mode: str = 'delta'
    control_period: float = 0.2
    action_scale: Sequence[float] = field(default_factory=lambda: [1.0] * 6)
    max_linear: float = 0.0
    max_angular: float = 0.0
    gripper_threshold: float = -1.0
    gripper_invert: bool = False

    def __post_init__(self) -> None:
        """Validate the settings (raise ``ValueError`` naming the bad one)."""
        problem = validate(self.output_mode, self.control_period, self.action_scale,
                           self.max_linear, self.max_angular)
        if problem:
            raise ValueError(problem)
        self.action_scale = [float(v) for v in self.action_scale]

    def apply(self, action: Sequence[float]) -> Command:
        """Return the command for one decoded 7-vector ``[dx dy dz droll dpitch dyaw grip]``."""
        values = np.asarray(action, dtype=np.float64)
        if values.shape != (7,) or not np.all(np.isfinite(values)):
            raise ValueError(f'expected 7 finite action values, got {values.tolist()}')
        motion = values[:6].copy()
        if self.output_mode == 'velocity':
            motion /= self.control_period
        motion *= np.asarray(self.action_scale)
        linear = _clamp_norm(motion[:3], self.max_linear)
        angular = _clamp_norm(motion[3:], self.max_angular)
        gripper = float(values[6])
        if self.gripper_threshold >= 0.0:
            gripper = 1.0 if gripper >= self.gripper_threshold else 0.0
        if self.gripper_invert:
            gripper = 1.0 - gripper
        return Command(linear, angular, gripper)


def validate(output_mode: str, control_period: float, action_scale: Sequence[float],
             max_linear: float, max_angular: float) -> str:
    """Return why these conditioning settings are invalid, or an empty string."""
    if output_mode not in OUTPUT_MODES:
        return f'output_mode must be one of {", ".join(OUTPUT_MODES)}, got {output_mode!r}'
    if not (math.isfinite(control_period) and control_period > 0.0):
        return f'control_period must be a positive number of seconds, got {control_period}'
    scale = list(action_scale)
    if len(scale) != 6 or not all(math.isfinite(float(v)) for v in scale):
        return ('action_scale must be 6 finite numbers (x y z roll pitch yaw), got '
                f'{scale}')
    for name, value in (('max_linear', max_linear), ('max_angular', max_angular)):
        if not (math.isfinite(value) and value >= 0.0):
            return f'{name} must be >= 0 (0 disables the clamp), got {value}'
    return ''


def _clamp_norm(vector: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if limit > 0.0 and norm > limit:
        return vector * (limit / norm)
    return vector
