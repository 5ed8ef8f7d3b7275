# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Output conditioning: expected commands worked out by hand in each test."""

import math

import numpy as np
import pytest

from openvla_ros.core.conditioning import Command, Conditioning

ACTION = [0.03, -0.04, 0.0, 0.1, 0.0, -0.2, 0.7]


def test_defaults_pass_the_action_through():
    command = Conditioning().apply(ACTION)
    assert command.linear.tolist() == [0.03, -0.04, 0.0]
    assert command.angular.tolist() == [0.1, 0.0, -0.2]
    assert command.gripper == 0.7


def test_velocity_scale_and_clamp_keep_the_direction():
    command = Conditioning(output_mode='velocity', control_period=0.5,
                           action_scale=[2, 1, 1, 1, 1, 1], max_linear=0.1,
                           max_angular=0.3).apply(ACTION)
    # velocity: (0.12, -0.08, 0) m/s, norm 0.1442 > 0.1 -> scaled by 0.1 / 0.1442
    norm = math.hypot(0.12, -0.08)
    np.testing.assert_allclose(command.linear, [0.12 * 0.1 / norm, -0.08 * 0.1 / norm, 0.0])
    # angular: (0.2, 0, -0.4) rad/s, norm 0.4472 > 0.3
    norm = math.hypot(0.2, 0.4)
    np.testing.assert_allclose(command.angular, [0.2 * 0.3 / norm, 0.0, -0.4 * 0.3 / norm])


@pytest.mark.parametrize('threshold, invert, expected', [
    (-1.0, False, 0.7), (0.5, False, 1.0), (0.8, False, 0.0), (0.5, True, 0.0),
    (-1.0, True, 0.30000000000000004)])
def test_gripper(threshold, invert, expected):
    command = Conditioning(gripper_threshold=threshold, gripper_invert=invert).apply(ACTION)
    assert command.gripper == expected


@pytest.mark.parametrize('settings, phrase', [
    ({'output_mode': 'warp'}, 'output_mode'), ({'control_period': 0.0}, 'control_period'),
    ({'action_scale': [1, 1]}, 'action_scale'), ({'max_linear': -1.0}, 'max_linear'),
    ({'max_angular': float('nan')}, 'max_angular')])
def test_bad_settings_are_refused(settings, phrase):
    with pytest.raises(ValueError, match=phrase):
        Conditioning(**settings)


def test_bad_actions_are_refused_and_zero_leaves_the_gripper():
    with pytest.raises(ValueError):
        Conditioning().apply([0.0] * 6)
    with pytest.raises(ValueError):
        Conditioning().apply([float('nan')] + [0.0] * 6)
    zero = Command.zero()
    assert zero.linear.tolist() == [0.0] * 3 and math.isnan(zero.gripper)
