"""Offline evaluation: run the policy on every frame of a bag and score it against ground truth.

Every frame read from the bag ends up either evaluated or skipped with a reason, so
``read == evaluated + skipped`` always holds and nothing is lost silently. Skip reasons, in the
order they are checked:

``stride``           not every Nth frame (``--stride N``)
``limit``            after the first N frames sent to the policy (``--limit N``)
``no_ground_truth``  no ground-truth action within tolerance of the frame's stamp
``no_instruction``   no instruction message at or before the frame (and none given)
``bad_image``        the image message cannot be decoded (the ImageError is recorded)
``engine_error``     the policy raised, or returned an unusable action (the error is recorded)

Frames without ground truth are skipped before inference: a prediction that cannot be scored
would only cost time.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import datetime, timezone
import json
import math
from pathlib import Path
import sys
import time
from typing import Any, Mapping

import numpy as np

from openvla_ros.core.decoding import ACTION_DIM, ACTION_NAMES
from openvla_ros.tools.bags import (add_bag_topic_arguments, BagData, INSTRUCTION_TOPIC, read_bag,
                              read_bag_from_args)
from openvla_ros.core.images import ImageError
from openvla_ros.tools.metrics import GRIPPER_THRESHOLD, match_ground_truth, summarize

#: Skip reasons, in the order they are checked.
SKIP_REASONS = ('stride', 'limit', 'no_ground_truth', 'no_instruction', 'bad_image',
                'engine_error')
REPORT_JSON = 'report.json'
REPORT_MD = 'report.md'
PLOT_FILES = {'actions': 'actions.png', 'errors': 'errors.png', 'latency': 'latency.png'}
_UNITS = ('m', 'm', 'm', 'rad', 'rad', 'rad', '0-1')


class EvaluationError(ValueError):
    """Evaluation options that cannot work together; the text names the fix."""


def _check_options(stride: int, limit: int | None, warmup: int) -> None:
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise EvaluationError(f'stride must be an integer >= 1, got {stride!r}')
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise EvaluationError(f'limit must be an integer >= 1 (or None for all), got {limit!r}')
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise EvaluationError(f'warmup must be an integer >= 0, got {warmup!r}')


def _policy_metadata(policy: Any) -> dict[str, Any]:
    """Return what the policy tells about itself.

    Model, unnorm_key, engine options, start-up, image preparation and the statistics'
    source and hash (None where the policy does not say).
    """
    decoder = getattr(policy, 'decoder', None)
    options = getattr(policy, 'engine_options', None) or {}
    provenance = getattr(decoder, 'provenance', None)
    found = provenance() if callable(provenance) else {}
    preparation = getattr(policy, 'preparation', None)
    return {
        'model': getattr(policy, 'model', None),
        'unnorm_key': getattr(decoder, 'unnorm_key', getattr(policy, 'unnorm_key', None)),
        'engine_options': {k: v for k, v in options.items()
                           if isinstance(v, (str, int, float, bool)) or v is None},
        'startup_s': getattr(policy, 'startup_s', None),
        'image_preprocessing': preparation.describe() if preparation is not None else None,
        'statistics_source': found.get('statistics_source'),
        'statistics_hash': found.get('statistics_hash'),
    }


def _prediction_action(prediction: Any) -> np.ndarray:
    action = np.asarray(getattr(prediction, 'action', None), dtype=np.float64).reshape(-1)
    if action.shape != (ACTION_DIM,):
        raise ValueError(f'the policy returned {action.size} action values, not {ACTION_DIM}')
    if not np.all(np.isfinite(action)):
        raise ValueError(f'the policy returned a non-finite action {action.tolist()}')
    return action


def evaluate_bag(policy: Any, bag_data_or_path: BagData | Path | str, out_dir: Path | str,
                 instruction: str | None = None, stride: int = 1, limit: int | None = None,
                 warmup: int = 1, progress: bool = True, tolerance_s: float | None = None,
                 max_pixels: int | None = None, metadata: Mapping[str, Any] | None = None,
                 write_plots: bool = True) -> dict[str, Any]:
    """Run ``policy.predict(rgb, instruction)`` over a bag's frames and write the report.

    ``bag_data_or_path`` is a :class:`BagData` or a bag path (read with the default topics).
    ``instruction`` overrides the bag's instruction messages. ``stride`` evaluates every Nth
    frame, ``limit`` sends at most N frames to the policy, ``warmup`` excludes the first N
    latencies from the latency summary (not from accuracy). ``tolerance_s`` bounds the
    frame-to-ground-truth stamp gap (default half the frame period). Writes report.json,
    report.md, actions.png, errors.png and latency.png into ``out_dir``; returns the report.
    """
    from tqdm import tqdm

    _check_options(stride, limit, warmup)
    if instruction is not None and not instruction.strip():
        raise EvaluationError('the instruction is empty: give the task text, or leave it out '
                              'to use the bag\'s instruction topic')
    if isinstance(bag_data_or_path, BagData):
        bag = bag_data_or_path
    else:
        bag = read_bag(bag_data_or_path,
                       instruction_topic=None if instruction is not None else INSTRUCTION_TOPIC)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()

    frame_times = [bag.frame_time(frame) for frame in bag.frames]
    gt_times = [gt.stamp_s for gt in bag.ground_truth]
    matches = match_ground_truth(frame_times, gt_times, bag.ground_truth, tolerance_s)

    records: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    sent = 0

    def skip(frame: Any, reason: str, message: str | None = None) -> None:
        entry = {'index': frame.index, 'stamp': frame.stamp_s, 'reason': reason}
        if message is not None:
            entry['message'] = message
        skipped.append(entry)

    bar = tqdm(bag.frames, desc='evaluate', unit='frame', file=sys.stderr,
               disable=not progress, leave=False)
    for frame, match in zip(bar, matches):
        if frame.index % stride != 0:
            skip(frame, 'stride')
            continue
        if limit is not None and sent >= limit:
            skip(frame, 'limit')
            continue
        if match is None:
            skip(frame, 'no_ground_truth')
            continue
        text = instruction if instruction is not None else bag.instruction_at(frame.bag_time_ns)
        if text is None or not text.strip():
            skip(frame, 'no_instruction')
            continue
        try:
            rgb = frame.rgb(max_pixels=max_pixels)
        except ImageError as exc:
            skip(frame, 'bad_image', str(exc))
            continue
        sent += 1
        call_started = time.perf_counter()
        try:
            prediction = policy.predict(rgb, text)
            latency = time.perf_counter() - call_started
            action = _prediction_action(prediction)
        except Exception as exc:  # noqa: BLE001 - one failed frame must not end the run
            skip(frame, 'engine_error', f'{type(exc).__name__}: {exc}')
            continue
        timings = getattr(prediction, 'timings', None) or {}
        records.append({
            'index': frame.index,
            'stamp': frame.stamp_s,
            'bag_time': frame.bag_time_s,
            'instruction': text,
            'token_ids': [int(t) for t in getattr(prediction, 'token_ids', [])],
            'predicted': [float(v) for v in action],
            'ground_truth': [float(v) for v in bag.ground_truth[match].values],
            'latency_s': latency,
            'timings': {k: float(v) for k, v in timings.items()
                        if isinstance(v, (int, float)) and math.isfinite(v)},
        })
        bar.set_postfix(evaluated=len(records), skipped=len(skipped), refresh=False)
    bar.close()

    meta = _policy_metadata(policy)
    meta.update({
        'bag': str(bag.path),
        'storage': bag.storage,
        'image_topic': bag.image_topic,
        'instruction_topic': None if instruction is not None else bag.instruction_topic,
        'ground_truth_source': bag.gt_source,
        'ground_truth_time_base': bag.gt_time_base,
        'options': {'instruction': instruction, 'stride': stride, 'limit': limit,
                    'warmup': warmup, 'tolerance_s': tolerance_s, 'max_pixels': max_pixels},
        'timestamp': started_at.isoformat(timespec='seconds'),
        'bag_notes': list(bag.notes),
    })
    if metadata:
        meta.update(metadata)
    return write_report(out, records, skipped, len(bag.frames), meta, warmup=warmup,
                        started=started, write_plots=write_plots)


def write_report(out_dir: Path | str, records: list[dict[str, Any]],
                 skipped: list[dict[str, Any]], read: int, metadata: dict[str, Any],
                 warmup: int = 1, started: float | None = None, write_plots: bool = True,
                 skip_reasons: tuple[str, ...] = SKIP_REASONS) -> dict[str, Any]:
    """Summarize evaluated ``records`` and write report.json, report.md and the plots.

    Shared by offline evaluation and online replay. ``read`` is the number of frames read;
    it must equal ``len(records) + len(skipped)``. ``started`` (a ``time.perf_counter()``
    value) gives the run's wall time; ``skip_reasons`` orders the reason counts. Returns the
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
    with open(out / REPORT_JSON, 'w', encoding='utf-8') as stream:
        json.dump(report, stream, indent=2, allow_nan=False)
        stream.write('\n')
    (out / REPORT_MD).write_text(format_markdown(report), encoding='utf-8')
    return report


# --------------------------------------------------------------------------------------------
# Formatting


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


# --------------------------------------------------------------------------------------------
# Command line


def _precheck_unnorm_key(model: str, unnorm_key: str | None,
                         statistics_file: str | None = None) -> None:
    """Refuse a bad unnorm_key or statistics file before the engine's long start-up.

    Local checkpoints are read directly; hub checkpoints only if their config.json is already
    in the Hugging Face cache (no network access here: otherwise the engine checks after load).
    ``statistics_file`` overrides the checkpoint's statistics, as it will in the engine.
    """
    from openvla_ros.core.decoding import ActionDecoder, load_model_config
    from openvla_ros.core.engine import resolve_model

    resolved, is_local = resolve_model(model)
    if is_local:
        ActionDecoder.from_model_config(resolved, unnorm_key, statistics_file)
        return
    if statistics_file:
        load_model_config({}, statistics_file)   # the file itself, whatever the cache holds
    try:
        ActionDecoder.from_model_config(resolved, unnorm_key, statistics_file)
    except FileNotFoundError:
        return   # not in the local cache: the engine checks the key once it has the config


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    from openvla_ros.core.engine import add_engine_arguments, add_preprocessing_arguments
    parser = subparsers.add_parser(
        'evaluate', help='score the policy on a rosbag2 with ground-truth actions',
        description='Run OpenVLA on every frame of a rosbag2, compare with the recorded '
                    'ground-truth actions and write report.json, report.md and plots.')
    parser.add_argument('bag', metavar='BAG', type=Path, help='rosbag2 directory or file')
    parser.add_argument('--model', required=True,
                        help='checkpoint directory or hub id (e.g. openvla/openvla-7b)')
    parser.add_argument('--unnorm-key', default=None,
                        help='dataset statistics to unnormalize with (e.g. bridge_orig); '
                             'required when the checkpoint has several')
    parser.add_argument('--out', required=True, type=Path, metavar='DIR',
                        help='folder for report.json, report.md and the plots')
    add_bag_topic_arguments(
        parser, instruction_help='use this instruction for every frame instead of the bag\'s',
        warmup_help='predictions left out of the latency summary (default 1)')
    parser.add_argument('--stride', type=int, default=1, metavar='N',
                        help='evaluate every Nth frame (default 1)')
    parser.add_argument('--limit', type=int, default=None, metavar='N',
                        help='send at most N frames to the policy')
    add_preprocessing_arguments(parser)
    add_engine_arguments(parser)
    parser.set_defaults(func=_evaluate_command)


def _evaluate_command(args: argparse.Namespace) -> int:
    _check_options(args.stride, args.limit, args.warmup)
    # The bag first, then the key: both fail in milliseconds, the engine takes minutes.
    bag = read_bag_from_args(args)
    from openvla_ros.core.engine import (engine_options_from_args, preparation_from_args,
                                    statistics_file_from_args, VllmPolicy)
    preparation = preparation_from_args(args)
    statistics_file = statistics_file_from_args(args)
    _precheck_unnorm_key(args.model, args.unnorm_key, statistics_file)
    policy = VllmPolicy(args.model, args.unnorm_key,
                        trust_remote_code=bool(getattr(args, 'trust_remote_code', False)),
                        engine_options=engine_options_from_args(args), preparation=preparation,
                        statistics_file=statistics_file)
    try:
        command = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k != 'func'}
        report = evaluate_bag(policy, bag, args.out, instruction=args.instruction,
                              stride=args.stride, limit=args.limit, warmup=args.warmup,
                              progress=not args.no_progress, tolerance_s=args.tolerance,
                              metadata={'command': command})
    finally:
        policy.close(fast=True)   # the command ends here: do not wait on a hung engine
    if args.json:
        print(json.dumps(report['summary'], indent=2))
    else:
        print(format_table(report))
        print(f'report: {Path(args.out) / REPORT_MD}')
    return 0
