# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metric functions against hand-computed values; ground-truth time matching."""

import math

import numpy as np
import pytest

from openvla_ros.tools.metrics import (control_period, default_tolerance, gripper_accuracy,
                                       latency_summary, mae_per_dim, match_ground_truth, mse,
                                       mse_per_dim, summarize)

T0 = 1_700_000_000.0  # wall-clock-like stamps, as in real bags


def test_match_exact_stamps():
    """Pair identical stamps one to one."""
    stamps = [T0 + i * 0.2 for i in range(5)]
    assert match_ground_truth(stamps, stamps, tolerance_s=0.1) == [0, 1, 2, 3, 4]


def test_match_jittered_stamps_finds_each_step():
    """Find each step despite camera jitter."""
    rng = np.random.default_rng(1)
    gt = [T0 + i * 0.2 for i in range(50)]
    # Camera stamps up to +-40 ms off a 5 Hz grid: well inside half a period (100 ms).
    frames = [t + rng.uniform(-0.04, 0.04) for t in gt]
    assert match_ground_truth(frames, gt) == list(range(50))


def test_match_missing_ground_truth_is_none_not_the_neighbour():
    """Leave a frame unmatched rather than borrow a neighbour."""
    frames = [T0 + i * 0.2 for i in range(6)]
    gt = [frames[i] + 0.01 for i in (0, 1, 3, 5)]  # steps 2 and 4 lost
    assert match_ground_truth(frames, gt, tolerance_s=0.1) == [0, 1, None, 2, None, 3]


def test_match_missing_frames_and_unsorted_ground_truth():
    """Match sparse frames against unsorted ground truth."""
    gt = [T0 + 0.4, T0, T0 + 0.2, T0 + 0.6]
    frames = [T0 + 0.21, T0 + 0.59]
    assert match_ground_truth(frames, gt, tolerance_s=0.1) == [2, 3]


def test_match_default_tolerance_is_half_the_frame_period():
    """Use half the frame period by default."""
    frames = [0.0, 0.2, 0.4, 0.6]
    assert default_tolerance(frames) == pytest.approx(0.1)
    # 0.09 s off: matched; 0.11 s off: not.
    assert match_ground_truth(frames, [0.09, 0.51]) == [0, None, None, 1]


def test_match_tie_goes_to_earlier_ground_truth():
    """Break ties towards the earlier ground truth."""
    assert match_ground_truth([1.0], [0.9, 1.1], tolerance_s=0.5) == [0]


def test_match_edge_cases():
    """Handle empty inputs and refuse bad arguments."""
    assert match_ground_truth([1.0, 2.0], []) == [None, None]
    assert match_ground_truth([], [1.0]) == []
    with pytest.raises(ValueError, match='one value per stamp'):
        match_ground_truth([1.0], [1.0, 2.0], gt_values=[[0] * 7])
    with pytest.raises(ValueError, match='tolerance_s'):
        match_ground_truth([1.0], [1.0], tolerance_s=-1)


def test_control_period_ignores_gaps_and_duplicates():
    """Estimate the period with a median."""
    assert control_period([0.0, 0.2, 0.4, 1.0, 1.2, 1.2]) == pytest.approx(0.2)
    assert control_period([5.0]) is None
    assert default_tolerance([5.0]) == pytest.approx(0.1)


PRED = np.array([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                 [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
GT = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
               [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]])


def test_mse_and_mae_per_dim():
    """Compute per-dimension and overall errors."""
    # Errors: frame 0 dx=1; frame 1 dy=2, dyaw=-1, gripper=-1.
    assert mse_per_dim(PRED, GT) == pytest.approx([0.5, 2.0, 0, 0, 0, 0.5, 0.5])
    assert mae_per_dim(PRED, GT) == pytest.approx([0.5, 1.0, 0, 0, 0, 0.5, 0.5])
    # (1 + 4 + 1 + 1) / 14
    assert mse(PRED, GT) == pytest.approx(7 / 14)


def test_metrics_single_action_and_empty():
    """Accept one action; return None without data."""
    assert mse([0.0] * 7, [0.5] * 7) == pytest.approx(0.25)
    assert mse_per_dim(np.zeros((0, 7)), np.zeros((0, 7))) is None
    assert mae_per_dim([], []) is None
    assert mse([], []) is None
    with pytest.raises(ValueError, match='shape'):
        mse(PRED, GT[:1])


def test_gripper_accuracy():
    """Classify open/closed at the threshold."""
    assert gripper_accuracy(PRED, GT) == pytest.approx(0.5)
    assert gripper_accuracy([0.9, 0.1, 0.6, 0.4], [1.0, 0.0, 0.0, 1.0]) == pytest.approx(0.5)
    # Exactly at the threshold counts as open.
    assert gripper_accuracy([0.5], [1.0]) == 1.0
    assert gripper_accuracy([0.2], [0.3], threshold=0.25) == 0.0
    assert gripper_accuracy([], []) is None


def test_latency_summary_excludes_warmup():
    """Drop warm-up samples from the latency summary."""
    summary = latency_summary([10.0, 1.0, 2.0, 3.0, 4.0], warmup=1)
    assert summary['mean'] == pytest.approx(2.5)
    assert summary['p50'] == pytest.approx(2.5)
    assert summary['p95'] == pytest.approx(1.0 + 0.95 * 3.0)
    assert summary['p99'] == pytest.approx(1.0 + 0.99 * 3.0)
    assert set(summary) == {'mean', 'p50', 'p95', 'p99'}
    assert latency_summary([0.3], warmup=0)['p99'] == pytest.approx(0.3)
    assert latency_summary([0.3], warmup=1) == {'mean': None, 'p50': None, 'p95': None,
                                                'p99': None}
    with pytest.raises(ValueError):
        latency_summary([1.0], warmup=-1)


def test_summarize():
    """Summarize records, with and without data."""
    records = [{'predicted': list(p), 'ground_truth': list(g), 'latency_s': lat}
               for p, g, lat in zip(PRED, GT, (5.0, 0.1))]
    summary = summarize(records, warmup=1)
    assert summary['mse'] == pytest.approx(0.5)
    assert summary['mse_per_dim'][1] == pytest.approx(2.0)
    assert summary['gripper_accuracy'] == pytest.approx(0.5)
    assert summary['latency']['mean'] == pytest.approx(0.1)
    empty = summarize([], warmup=1)
    assert empty['mse'] is None and empty['gripper_accuracy'] is None
    assert all(v is None for v in empty['latency'].values())
    assert not any(isinstance(v, float) and math.isnan(v) for v in empty.values())
