# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Accuracy and latency metrics of an offline evaluation, in plain numpy.

Conventions shared by every function here:

* actions are 7-vectors in the model's order (:data:`openvla_ros.core.decoding.ACTION_NAMES`),
  in the robot's units (metres, radians, gripper 0 = closed ... 1 = open);
* a metric that has no data (no evaluated frame, every latency sample inside the warm-up) is
  ``None``, never NaN, so reports stay strict JSON;
* the overall ``mse`` is the mean over all 7 dimensions and all frames: the figure OpenVLA's
  authors report (MSE 0.048 on BridgeData V2 held-out episodes).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from openvla_ros.core.decoding import ACTION_DIM
from openvla_ros.core.stats import percentile

#: Tolerance used when fewer than two stamps leave the control period unknown: half the period
#: of a 5 Hz controller, the rate OpenVLA was trained at on BridgeData V2.
FALLBACK_TOLERANCE_S = 0.1
#: Gripper values at or above this count as "open" (BridgeData V2: 1 = open, 0 = closed).
GRIPPER_THRESHOLD = 0.5
#: Latency percentiles reported, as (key, percentile).
LATENCY_PERCENTILES = (('p50', 50.0), ('p95', 95.0), ('p99', 99.0))


def control_period(stamps: Sequence[float]) -> float | None:
    """Return the median positive interval between sorted stamps, or None if there is none."""
    values = np.sort(np.asarray(list(stamps), dtype=np.float64))
    steps = np.diff(values)
    steps = steps[steps > 0]
    if steps.size == 0:
        return None
    # The median, not the mean: dropped messages make a few long gaps that must not stretch it.
    return float(np.median(steps))


def default_tolerance(stamps: Sequence[float]) -> float:
    """Return half the control period estimated from ``stamps`` (0.1 s if it is unknown).

    Half a period is the widest window that can never pair a frame with the ground truth of a
    neighbouring step: when a ground-truth message is missing, the next one is a whole period
    away and the frame stays unmatched instead of borrowing a wrong action.
    """
    period = control_period(stamps)
    return FALLBACK_TOLERANCE_S if period is None else 0.5 * period


def match_ground_truth(frame_stamps: Sequence[float], gt_stamps: Sequence[float],
                       gt_values: Sequence[Any] | None = None,
                       tolerance_s: float | None = None) -> list[int | None]:
    """Return, per frame, the index of the nearest ground-truth stamp within tolerance, or None.

    Stamps are seconds; neither list needs to be sorted. ``tolerance_s`` defaults to half the
    control period estimated from the frame stamps (see :func:`default_tolerance`), which absorbs
    timing jitter but never reaches a neighbouring step. Ties go to the earlier ground truth.
    ``gt_values``, when given, must have one entry per ground-truth stamp (checked, not used).
    """
    frames = np.asarray(list(frame_stamps), dtype=np.float64).reshape(-1)
    gts = np.asarray(list(gt_stamps), dtype=np.float64).reshape(-1)
    if gt_values is not None and len(gt_values) != gts.size:
        raise ValueError(
            f'{gts.size} ground-truth stamps but {len(gt_values)} ground-truth values: pass one '
            'value per stamp')
    if tolerance_s is None:
        tolerance_s = default_tolerance(frames if frames.size > 1 else gts)
    if not np.isfinite(tolerance_s) or tolerance_s < 0:
        raise ValueError(f'tolerance_s must be a finite number >= 0, got {tolerance_s}')
    if gts.size == 0:
        return [None] * frames.size
    order = np.argsort(gts, kind='stable')
    sorted_gts = gts[order]
    # Candidates are the ground truth just before and just after each frame stamp.
    after = np.searchsorted(sorted_gts, frames, side='left')
    before = np.clip(after - 1, 0, sorted_gts.size - 1)
    after = np.clip(after, 0, sorted_gts.size - 1)
    gap_before = np.abs(frames - sorted_gts[before])
    gap_after = np.abs(sorted_gts[after] - frames)
    use_after = gap_after < gap_before
    best = np.where(use_after, after, before)
    gap = np.where(use_after, gap_after, gap_before)
    # A hair of slack so a frame exactly half a period away is not lost to float rounding of
    # wall-clock stamps (1.7e9 s carries only ~0.2 us of resolution).
    limit = tolerance_s + 1e-6
    return [int(order[b]) if g <= limit else None for b, g in zip(best, gap)]


def _pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return predictions and ground truth as float arrays of one shape (frames x dims)."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.ndim == 1:
        p = p.reshape(1, -1) if p.size else p.reshape(0, ACTION_DIM)
    if g.ndim == 1:
        g = g.reshape(1, -1) if g.size else g.reshape(0, ACTION_DIM)
    if p.shape != g.shape:
        raise ValueError(
            f'predictions have shape {p.shape} but ground truth has {g.shape}: pass one '
            'ground-truth action per prediction')
    return p, g


def mse_per_dim(pred: Any, gt: Any) -> list[float] | None:
    """Return the mean squared error of each action dimension over frames (None if no frame)."""
    p, g = _pair(pred, gt)
    if p.shape[0] == 0:
        return None
    return [float(v) for v in np.mean((p - g) ** 2, axis=0)]


def mae_per_dim(pred: Any, gt: Any) -> list[float] | None:
    """Return the mean absolute error of each action dimension over frames (None if no frame)."""
    p, g = _pair(pred, gt)
    if p.shape[0] == 0:
        return None
    return [float(v) for v in np.mean(np.abs(p - g), axis=0)]


def mse(pred: Any, gt: Any) -> float | None:
    """Return the mean squared error over all dimensions and frames (None if no frame)."""
    p, g = _pair(pred, gt)
    if p.size == 0:
        return None
    return float(np.mean((p - g) ** 2))


def gripper_accuracy(pred: Any, gt: Any, threshold: float = GRIPPER_THRESHOLD) -> float | None:
    """Return the fraction of frames whose predicted gripper state (open/closed) is right.

    ``pred`` and ``gt`` are either full actions (frames x 7; the last column is the gripper) or
    gripper values alone. A value at or above ``threshold`` counts as open. None if no frame.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.ndim == 2:
        p = p[:, -1]
    if g.ndim == 2:
        g = g[:, -1]
    p, g = p.reshape(-1), g.reshape(-1)
    if p.shape != g.shape:
        raise ValueError(
            f'{p.size} predicted gripper values but {g.size} ground-truth values')
    if p.size == 0:
        return None
    return float(np.mean((p >= threshold) == (g >= threshold)))


def latency_summary(latencies: Iterable[float], warmup: int = 1) -> dict[str, float | None]:
    """Return mean, p50, p95 and p99 of latencies in seconds, the first ``warmup`` excluded.

    The first calls of an engine include compilation and cache warm-up, so they describe
    start-up, not the steady state a controller sees. Percentiles interpolate linearly
    (numpy's default). Every value is None when no sample is left after the warm-up.
    """
    if warmup < 0:
        raise ValueError(f'warmup must be >= 0, got {warmup}')
    values = np.asarray(list(latencies), dtype=np.float64)[warmup:]
    if values.size == 0:
        return {'mean': None, **{key: None for key, _ in LATENCY_PERCENTILES}}
    summary: dict[str, float | None] = {'mean': float(np.mean(values))}
    for key, q in LATENCY_PERCENTILES:
        summary[key] = percentile(values, q)
    return summary


def summarize(records: Sequence[Mapping[str, Any]], warmup: int = 1) -> dict[str, Any]:
    """Return the accuracy and latency summary of evaluated frame records.

    Each record holds ``predicted`` and ``ground_truth`` (7 numbers) and ``latency_s``, in
    evaluation order. Accuracy uses every record; latency drops the first ``warmup`` records.
    The frame counts (read/skipped) are the caller's business: records are evaluated frames.
    """
    pred = np.asarray([r['predicted'] for r in records], dtype=np.float64).reshape(-1, ACTION_DIM)
    gt = np.asarray([r['ground_truth'] for r in records],
                    dtype=np.float64).reshape(-1, ACTION_DIM)
    return {
        'mse_per_dim': mse_per_dim(pred, gt),
        'mae_per_dim': mae_per_dim(pred, gt),
        'mse': mse(pred, gt),
        'gripper_accuracy': gripper_accuracy(pred, gt),
        'latency': latency_summary([r['latency_s'] for r in records], warmup=warmup),
    }
