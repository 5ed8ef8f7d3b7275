# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""PNG plots of an offline evaluation: actions over time, per-dimension errors, latency.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly, never
through ``pyplot``: no global backend switch, no GUI window, and safe in a process (the ROS node,
a test run) that may use matplotlib for something else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from openvla_ros.core.decoding import ACTION_NAMES
from openvla_ros.core.stats import percentile

#: Unit of each action dimension, for axis labels.
ACTION_UNITS = ('m', 'm', 'm', 'rad', 'rad', 'rad', 'gripper')
PREDICTED_COLOR = '#1f77b4'
TRUTH_COLOR = '#2ca02c'


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(width, height), dpi=100, layout='constrained')
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path | str) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format='png')
    return out


def _no_data(figure: Any, text: str) -> None:
    axis = figure.add_subplot()
    axis.set_axis_off()
    axis.text(0.5, 0.5, text, ha='center', va='center', fontsize=14)


def _label(index: int) -> str:
    unit = ACTION_UNITS[index]
    name = ACTION_NAMES[index]
    return f'{name} (0 closed, 1 open)' if unit == 'gripper' else f'{name} [{unit}]'


def plot_actions(records: Sequence[Mapping[str, Any]], path: Path | str,
                 title: str = 'Predicted vs ground-truth actions') -> Path:
    """Plot predicted and ground-truth actions over time, one subplot per dimension."""
    figure = _figure(10, 13)
    if not records:
        _no_data(figure, 'no evaluated frames')
        return _save(figure, path)
    stamps = np.asarray([r['stamp'] for r in records], dtype=np.float64)
    # Seconds since the first evaluated frame: wall-clock stamps (1.7e9 s) are unreadable.
    t = stamps - stamps[0]
    pred = np.asarray([r['predicted'] for r in records], dtype=np.float64)
    truth = np.asarray([r['ground_truth'] for r in records], dtype=np.float64)
    axes = figure.subplots(len(ACTION_NAMES), 1, sharex=True)
    marker = 'o' if len(records) <= 60 else None
    for index, axis in enumerate(axes):
        axis.plot(t, truth[:, index], color=TRUTH_COLOR, marker=marker, markersize=3,
                  label='ground truth')
        axis.plot(t, pred[:, index], color=PREDICTED_COLOR, marker=marker, markersize=3,
                  linestyle='--', label='predicted')
        axis.set_ylabel(_label(index), fontsize=9)
        axis.grid(True, alpha=0.3)
    axes[0].legend(loc='upper right', fontsize=9)
    axes[-1].set_xlabel('time since first evaluated frame [s]')
    figure.suptitle(f'{title} ({len(records)} frames)')
    return _save(figure, path)


def plot_errors(summary: Mapping[str, Any], path: Path | str,
                title: str = 'Per-dimension error') -> Path:
    """Plot per-dimension MSE and MAE as bar charts (m for translation, rad for rotation)."""
    figure = _figure(10, 4.5)
    mse, mae = summary.get('mse_per_dim'), summary.get('mae_per_dim')
    if not mse or not mae:
        _no_data(figure, 'no evaluated frames: no errors to plot')
        return _save(figure, path)
    x = np.arange(len(ACTION_NAMES))
    axes = figure.subplots(1, 2)
    for axis, values, name, units in (
            (axes[0], mse, 'MSE', 'm², rad², gripper²'),
            (axes[1], mae, 'MAE', 'm, rad, gripper')):
        bars = axis.bar(x, values, color=['#4c72b0'] * 3 + ['#dd8452'] * 3 + ['#55a868'])
        axis.bar_label(bars, labels=[f'{v:.3g}' for v in values], fontsize=8)
        axis.set_xticks(x, ACTION_NAMES)
        axis.set_ylabel(f'{name} [{units}]')
        axis.set_title(name)
        axis.grid(True, axis='y', alpha=0.3)
    overall = summary.get('mse')
    suffix = f' (overall MSE {overall:.4g})' if overall is not None else ''
    figure.suptitle(title + suffix)
    return _save(figure, path)


def plot_latency(latencies: Sequence[float], path: Path | str,
                 title: str = 'Prediction latency') -> Path:
    """Plot a histogram of latencies (seconds, shown in ms) with the p50 and p95 marked."""
    figure = _figure(8, 4.5)
    values = np.asarray(list(latencies), dtype=np.float64) * 1000.0
    if values.size == 0:
        _no_data(figure, 'no latency samples (after warm-up)')
        return _save(figure, path)
    axis = figure.add_subplot()
    axis.hist(values, bins=min(30, max(5, values.size // 2)), color='#4c72b0', alpha=0.8)
    for q, style in ((50, '-'), (95, '--')):
        value = percentile(values, q)
        axis.axvline(value, color='#c44e52', linestyle=style, label=f'p{q} = {value:.1f} ms')
    axis.set_xlabel('latency per prediction [ms]')
    axis.set_ylabel('frames')
    from matplotlib.ticker import MaxNLocator
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))  # frame counts are whole
    axis.legend()
    axis.grid(True, alpha=0.3)
    axis.set_title(f'{title} ({values.size} samples)')
    return _save(figure, path)
