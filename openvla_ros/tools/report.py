# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The report of a scored run, shared by offline evaluation and online replay.

:func:`write_report` summarizes the evaluated frames
(:func:`~openvla_ros.tools.metrics.summarize`), counts the skipped ones by reason and writes
``report.json``, ``report.md`` and the plots; :func:`format_table` is the short terminal view.
:func:`report_provenance` and :func:`jsonable` describe an engine for this report and for the
benchmark's.
"""

from __future__ import annotations

from collections import Counter
import json
from pathlib import Path
import time
from typing import Any, Mapping

from openvla_ros.core.decoding import ACTION_DIM, ACTION_NAMES
from openvla_ros.core.policy import EngineReport
from openvla_ros.tools.metrics import GRIPPER_THRESHOLD, summarize
from openvla_ros.tools.plots import ACTION_UNITS

REPORT_JSON = 'report.json'
REPORT_MD = 'report.md'
PLOT_FILES = {'actions': 'actions.png', 'errors': 'errors.png', 'latency': 'latency.png'}
#: Units in the accuracy table: the gripper is a 0-1 opening.
_UNITS = ACTION_UNITS[:-1] + ('0-1',)


def jsonable(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the entries of ``options`` whose values are JSON scalars (or None)."""
    return {k: v for k, v in (options or {}).items()
            if isinstance(v, (str, int, float, bool)) or v is None}


def write_json(path: Path | str, data: Any) -> Path:
    """Write ``data`` as strict, indented JSON (no NaN) to ``path``, creating its folder."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, 'w', encoding='utf-8') as stream:
        json.dump(data, stream, indent=2, allow_nan=False)
        stream.write('\n')
    return out


def report_provenance(report: EngineReport) -> dict[str, Any]:
    """Return the engine's image preparation and the statistics' source and hash."""
    return {'image_preprocessing': report.image_preprocessing,
            'statistics_source': report.statistics_source,
            'statistics_hash': report.statistics_hash}


def write_report(out_dir: Path | str, records: list[dict[str, Any]],
                 skipped: list[dict[str, Any]], read: int, metadata: dict[str, Any],
                 warmup: int = 1, started: float | None = None, write_plots: bool = True,
                 skip_reasons: tuple[str, ...] = ()) -> dict[str, Any]:
    """Summarize evaluated ``records`` and write report.json, report.md and the plots.

    Shared by offline evaluation and online replay. ``read`` is the number of frames read;
    it must equal ``len(records) + len(skipped)``. ``started`` (a ``time.perf_counter()``
    value) gives the run's wall time; ``skip_reasons`` orders the reason counts
    (reasons not in it come after, sorted). Returns the
    report: ``{'summary', 'metadata', 'frames', 'skipped', 'plots'}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(records, warmup=warmup)
    reasons = Counter(entry['reason'] for entry in skipped)
    order = list(skip_reasons) + sorted(set(reasons) - set(skip_reasons))
    summary['counts'] = {
        'read': read,
        'evaluated': len(records),
        'skipped': len(skipped),
        'skip_reasons': {reason: reasons[reason] for reason in order if reasons[reason]},
    }
    if summary['counts']['read'] != len(records) + len(skipped):
        raise RuntimeError('frame bookkeeping is broken: read != evaluated + skipped')
    meta = metadata
    if started is not None:
        meta['wall_time_s'] = time.perf_counter() - started
    report = {'summary': summary, 'metadata': meta, 'frames': records, 'skipped': skipped,
              'plots': dict(PLOT_FILES) if write_plots else {}}
    if write_plots:
        from openvla_ros.tools.plots import plot_actions, plot_errors, plot_latency
        plot_actions(records, out / PLOT_FILES['actions'])
        plot_errors(summary, out / PLOT_FILES['errors'])
        plot_latency([r['latency_s'] for r in records][warmup:], out / PLOT_FILES['latency'])
    # Plot time belongs to the run's wall time as well; refresh it before writing.
    if started is not None:
        meta['wall_time_s'] = time.perf_counter() - started
    write_json(out / REPORT_JSON, report)
    (out / REPORT_MD).write_text(format_markdown(report), encoding='utf-8')
    return report


def _num(value: float | None, digits: int = 4) -> str:
    return 'n/a' if value is None else f'{value:.{digits}g}'


def _ms(value: float | None) -> str:
    return 'n/a' if value is None else f'{value * 1000.0:.1f}'


def _percent(value: float | None) -> str:
    return 'n/a' if value is None else f'{value * 100.0:.1f} %'


def format_markdown(report: Mapping[str, Any]) -> str:
    """Return the readable report.md for an evaluation report."""
    summary, meta = report['summary'], report['metadata']
    counts = summary['counts']
    options = meta.get('options', {})
    if 'stride' in options:
        run = f"stride {options.get('stride')}, limit {options.get('limit')}, "
    else:  # an online replay: no stride or limit, the node picks its frames
        run = f"replay rate {options.get('rate')}, "
    lines = [
        f"# {meta.get('title', 'OpenVLA offline evaluation')}",
        '',
        f"- Bag: `{meta.get('bag')}` ({meta.get('storage')}, images on "
        f"`{meta.get('image_topic')}`, ground truth from `{meta.get('ground_truth_source')}`)",
        f"- Model: `{meta.get('model')}`, unnorm_key `{meta.get('unnorm_key')}`",
        f"- Statistics: hash `{meta.get('statistics_hash') or 'n/a'}` from "
        f"{meta.get('statistics_source') or 'n/a'}; image preprocessing "
        f"`{meta.get('image_preprocessing') or 'n/a'}`",
        f"- Run: {meta.get('timestamp')}, wall time {meta.get('wall_time_s', 0.0):.1f} s, "
        f"{run}warm-up {options.get('warmup')}",
    ]
    lines += [f'- {note}' for note in meta.get('report_notes', [])]
    if options.get('instruction') is not None:
        lines.append(f"- Instruction (given): \"{options['instruction']}\"")
    lines += ['', '## Accuracy', '', '| dimension | unit | MSE | MAE |', '|---|---|---:|---:|']
    mse_dims = summary.get('mse_per_dim') or [None] * ACTION_DIM
    mae_dims = summary.get('mae_per_dim') or [None] * ACTION_DIM
    for name, unit, mse_value, mae_value in zip(ACTION_NAMES, _UNITS, mse_dims, mae_dims):
        lines.append(f'| {name} | {unit} | {_num(mse_value)} | {_num(mae_value)} |')
    lines += [
        f"| **all** | | **{_num(summary.get('mse'))}** | |",
        '',
        f"Overall MSE is the mean over all {ACTION_DIM} dimensions and frames (OpenVLA-7B "
        'reports 0.048 on BridgeData V2).',
        '',
        f"Gripper accuracy (open/closed agreement, threshold {GRIPPER_THRESHOLD}): "
        f"{_percent(summary.get('gripper_accuracy'))}",
        '',
        f"## Latency (first {options.get('warmup')} prediction(s) excluded as warm-up)",
        '',
        '| mean | p50 | p95 | p99 |',
        '|---:|---:|---:|---:|',
    ]
    latency = summary.get('latency', {})
    cells = [f'{_ms(latency.get(k))} ms' for k in ('mean', 'p50', 'p95', 'p99')]
    lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', '## Frames', '', '| read | evaluated | skipped |', '|---:|---:|---:|',
              f"| {counts['read']} | {counts['evaluated']} | {counts['skipped']} |"]
    if counts['skip_reasons']:
        lines += ['', '| skip reason | frames |', '|---|---:|']
        lines += [f'| {reason} | {n} |' for reason, n in counts['skip_reasons'].items()]
    if meta.get('bag_notes'):
        lines += ['', 'Bag notes:', ''] + [f'- {note}' for note in meta['bag_notes']]
    plots = report.get('plots') or {}
    if plots:
        lines += ['', '## Plots', '']
        titles = {'actions': 'Predicted vs ground-truth actions', 'errors': 'Per-dimension error',
                  'latency': 'Latency histogram'}
        for key, name in plots.items():
            lines += [f'### {titles.get(key, key)}', '', f'![{key}]({name})', '']
    return '\n'.join(lines).rstrip() + '\n'


def format_table(report: Mapping[str, Any]) -> str:
    """Return a short plain-text summary of an evaluation for the terminal."""
    summary = report['summary']
    counts = summary['counts']
    reasons = ', '.join(f'{k} {v}' for k, v in counts['skip_reasons'].items())
    lines = [f"evaluated {counts['evaluated']} of {counts['read']} frames"
             + (f" ({counts['skipped']} skipped: {reasons})" if counts['skipped'] else '')]
    lines.append(f"{'dim':<8}{'MSE':>12}{'MAE':>12}")
    mse_dims = summary.get('mse_per_dim') or [None] * ACTION_DIM
    mae_dims = summary.get('mae_per_dim') or [None] * ACTION_DIM
    for name, mse_value, mae_value in zip(ACTION_NAMES, mse_dims, mae_dims):
        lines.append(f'{name:<8}{_num(mse_value):>12}{_num(mae_value):>12}')
    lines.append(f"overall MSE {_num(summary.get('mse'))}, gripper accuracy "
                 f"{_percent(summary.get('gripper_accuracy'))}")
    latency = summary['latency']
    lines.append('latency ' + ', '.join(f'{k} {_ms(latency.get(k))} ms'
                                        for k in ('mean', 'p50', 'p95', 'p99')))
    return '\n'.join(lines)
