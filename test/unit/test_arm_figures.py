# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The arm benchmark's figures on hand-made records (no ROS, no engine)."""

import math

import numpy as np
import pytest

from openvla_ros.tools.arm_demo import ArmRun, benchmark_table


def record(fraction):
    """Two steps (10 mm x, 0.1 rad yaw) at t=0 and t=1; the arm does ``fraction`` of each."""
    run = ArmRun('stream', 2.0, arrivals=[0.0, 1.0],
                 commanded=[np.array([0.01, 0, 0, 0, 0, 0.1])] * 2)
    for k in range(201):
        t = k * 0.01
        done = sum(min(max((t - at) / 0.2, 0.0), 1.0) for at in (0.0, 1.0))
        yaw = 0.1 * fraction * done
        run.samples.append((t, np.array([0.3 + 0.01 * fraction * done, 0, 0.15]),
                            np.array([0, 0, math.sin(yaw / 2), math.cos(yaw / 2)])))
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
