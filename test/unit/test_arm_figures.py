# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The arm benchmark's figures on hand-made records (no ROS, no engine)."""

import math

import numpy as np
import pytest

from openvla_ros.core.arm_sim import JournalEntry
from openvla_ros.tools.arm_demo import ArmRun, benchmark_table


def quat_yaw(yaw):
    return np.array([0, 0, math.sin(yaw / 2), math.cos(yaw / 2)])


def record(fraction, mode='stream'):
    """Two steps (10 mm x, 0.1 rad yaw) at t=0 and t=1; the arm does ``fraction`` of each.

    Sampled path every 10 ms, and the arm's journal: a twist every 20 ms, moving for the
    step's 0.2 s at ``fraction`` of 50 mm/s and 0.5 rad/s. The pose in the journal is what
    the arm had when each twist arrived: ``fraction`` x 1 mm and 0.01 rad per moving twist
    before it, counted by hand.
    """
    run = ArmRun(mode, 2.0, arrivals=[0.0, 1.0],
                 commanded=[np.array([0.01, 0, 0, 0, 0, 0.1])] * 2)
    for k in range(201):
        t = k * 0.01
        done = sum(min(max((t - at) / 0.2, 0.0), 1.0) for at in (0.0, 1.0))
        yaw = 0.1 * fraction * done
        run.samples.append((t, np.array([0.3 + 0.01 * fraction * done, 0, 0.15]),
                            quat_yaw(yaw)))
    moved = 0
    for k in range(101):
        t = k * 0.02
        moving = t < 0.2 - 1e-9 or 1.0 - 1e-9 <= t < 1.2 - 1e-9
        velocity = np.array([0.05 * fraction, 0, 0, 0, 0, 0.5 * fraction]) * moving
        run.journal.append(JournalEntry(t, np.array([0.3 + 0.001 * fraction * moved, 0, 0.15]),
                                        quat_yaw(0.01 * fraction * moved), t, velocity))
        moved += moving
    run.step_starts = [0.0, 1.0]
    return run


def test_exact_execution_has_no_error():
    figures = record(1.0).figures()
    assert figures['translation_error_median_pct'] == pytest.approx(0.0, abs=1e-9)
    assert figures['rotation_error_median_pct'] == pytest.approx(0.0, abs=1e-6)
    assert figures['max_tracking_error_mm'] == pytest.approx(0.0, abs=1e-9)
    assert figures['motion_start_median_ms'] == pytest.approx(10.0)   # first 10 ms sample


def test_half_execution_is_fifty_percent_off():
    run = record(0.5)
    # Each window: executed 5 mm of 10 mm -> 50 %; after both, 10 mm behind the model.
    assert run.action_errors() == pytest.approx([50.0, 50.0])
    # 0.05 rad of each 0.1 rad yaw: 50 %.
    assert run.figures()['rotation_error_median_pct'] == pytest.approx(50.0)
    assert run.figures()['max_tracking_error_mm'] == pytest.approx(10.0)
    assert '50.0 %' in benchmark_table([{'engine': 'e', **run.figures(), 'mode': 'pulse'}])


def test_each_action_is_measured_from_its_first_twist_to_the_next_ones():
    run = record(1.0)
    # Twists every 20 ms: action 1 starts at the twist at 0.0 s (index 0), action 2 at 1.0 s
    # (index 50).
    assert run.motion_starts() == [0, 50]
    executed = run.executed()
    assert executed[0][:3] == pytest.approx([0.01, 0, 0])
    assert executed[0][5] == pytest.approx(0.1)
    # The last one: to the last twist seen (2.0 s), after its step ended.
    assert executed[1][:3] == pytest.approx([0.01, 0, 0])
    # As sent: 10 moving twists x 50 mm/s x 20 ms between stamps = 10 mm.
    assert run.sent()[0] == pytest.approx([0.01, 0, 0])
    assert run.window_closed(0) and run.window_closed(1)


def test_a_pulse_is_matched_to_the_twist_nearest_its_action():
    run = record(1.0, mode='pulse')
    run.arrivals = [0.005, 1.035]
    assert run.motion_starts() == [0, 52]     # nearest twists: 0.0 s and 1.04 s
    run.arrivals = [0.5, 3.0]                 # 3.0 s: no twist within 0.1 s
    assert run.motion_starts() == [25, None]
    assert run.executed()[1] is None
