# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The simulated arm's Servo semantics and pose following, on a fake clock (hand arithmetic)."""

import math

import numpy as np
import pytest

from openvla_ros.core.arm_sim import render, SimArm


def test_a_stream_moves_exactly_and_never_halts():
    arm = SimArm([0.3, 0.0, 0.15])
    for k in range(10):                        # 0.05 m/s, 0.5 rad/s about z, every 0.02 s
        arm.twist([0.05, 0, 0, 0, 0, 0.5], k * 0.02)
    for k in range(10, 20):                    # then zeros at the same rate
        arm.twist([0.0] * 6, k * 0.02)
    arm.advance(0.40)
    # 0.05 m/s x 0.2 s = 0.01 m; 0.5 rad/s x 0.2 s = 0.1 rad about z: (0, 0, sin .05, cos .05).
    assert arm.position == pytest.approx([0.31, 0.0, 0.15], abs=1e-12)
    assert arm.orientation == pytest.approx([0, 0, math.sin(0.05), math.cos(0.05)], abs=1e-12)
    assert arm.halts == 0 and arm.timeouts == 0


def test_a_pulse_moves_for_the_timeout_then_halts():
    arm = SimArm([0.3, 0.0, 0.15], command_timeout=0.1)
    arm.twist([0.05, 0, 0, 0, 0, 0], 0.0)      # one twist per 0.2 s step, as pulse mode sends
    arm.advance(0.2)
    # Moves 0.1 s x 0.05 m/s = 0.005 m, half of the step's 0.01 m, then halts.
    assert arm.position[0] == pytest.approx(0.305, abs=1e-12)
    assert arm.halts == 1
    arm.twist([0.0] * 6, 0.3)                  # a zero that lapses stops nothing: no halt
    arm.advance(0.5)
    assert arm.halts == 1 and arm.timeouts == 2


def test_pose_target_is_followed_at_the_speed_limit():
    arm = SimArm([0.3, 0.0, 0.15], max_linear_speed=0.25, max_angular_speed=1.0)
    arm.pose_target([0.4, 0.0, 0.15], [0, 0, math.sin(0.1), math.cos(0.1)], 0.0)
    arm.advance(0.2)
    # 0.25 m/s x 0.2 s = 0.05 m of 0.1 m; the 0.2 rad turn at 1 rad/s is done in 0.2 s.
    assert arm.position == pytest.approx([0.35, 0.0, 0.15], abs=1e-12)
    assert arm.orientation == pytest.approx([0, 0, math.sin(0.1), math.cos(0.1)], abs=1e-9)
    arm.advance(1.0)
    assert arm.position == pytest.approx([0.4, 0.0, 0.15], abs=1e-12)


def test_camera_image_depends_on_the_pose():
    home = render([0.3, 0.0, 0.15], [0, 0, 0, 1], size=64)
    moved = render([0.32, 0.0, 0.15], [0, 0, 0, 1], size=64)
    turned = render([0.3, 0.0, 0.15], [0, 0, math.sin(0.5), math.cos(0.5)], size=64)
    assert home.shape == (64, 64, 3) and home.dtype == np.uint8
    assert np.any(home != moved) and np.any(home != turned)
