# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
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

from datetime import datetime, timezone
import math
from pathlib import Path
import sys
import time
from typing import Any, Mapping

import numpy as np

from openvla_ros.core.decoding import ACTION_DIM
from openvla_ros.core.engine import EngineConfig
from openvla_ros.core.images import DEFAULT_MAX_PIXELS, ImageError
from openvla_ros.core.policy import Policy, report_of
from openvla_ros.core.preprocessing import ImagePreparation
from openvla_ros.tools.bags import BagData, INSTRUCTION_TOPIC, read_bag
from openvla_ros.tools.report import jsonable, report_provenance, write_report
from openvla_ros.tools.scoring import (bag_metadata, check_instruction_override,
                                       ground_truth_matches)

#: Skip reasons, in the order they are checked.
SKIP_REASONS = ('stride', 'limit', 'no_ground_truth', 'no_instruction', 'bad_image',
                'engine_error')


class EvaluationError(ValueError):
    """Evaluation options that cannot work together; the text names the fix."""


def check_options(stride: int, limit: int | None, warmup: int) -> None:
    """Raise :class:`EvaluationError` for a stride, limit or warm-up that cannot work."""
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise EvaluationError(f'stride must be an integer >= 1, got {stride!r}')
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise EvaluationError(f'limit must be an integer >= 1 (or None for all), got {limit!r}')
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise EvaluationError(f'warmup must be an integer >= 0, got {warmup!r}')


def _policy_metadata(policy: Policy) -> dict[str, Any]:
    """Return what the policy tells about itself.

    Model, unnorm_key, engine options, start-up, image preparation and the statistics'
    source and hash (None where the policy does not say).
    """
    report = report_of(policy)
    return {
        'model': report.model or None,
        'unnorm_key': report.unnorm_key,
        'engine_options': jsonable(report.engine_options),
        'startup_s': report.startup_s,
        **report_provenance(report),
    }


def _prediction_action(prediction: Any) -> np.ndarray:
    action = np.asarray(getattr(prediction, 'action', None), dtype=np.float64).reshape(-1)
    if action.shape != (ACTION_DIM,):
        raise ValueError(f'the policy returned {action.size} action values, not {ACTION_DIM}')
    if not np.all(np.isfinite(action)):
        raise ValueError(f'the policy returned a non-finite action {action.tolist()}')
    return action


def evaluate_bag(policy: Policy, bag_data_or_path: BagData | Path | str, out_dir: Path | str,
                 instruction: str | None = None, stride: int = 1, limit: int | None = None,
                 warmup: int = 1, progress: bool = True, tolerance_s: float | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 metadata: Mapping[str, Any] | None = None,
                 write_plots: bool = True) -> dict[str, Any]:
    """Run ``policy.predict(rgb, instruction)`` over a bag's frames and write the report.

    ``bag_data_or_path`` is a :class:`BagData` or a bag path (read with the default topics).
    ``instruction`` overrides the bag's instruction messages. ``stride`` evaluates every Nth
    frame, ``limit`` sends at most N frames to the policy, ``warmup`` excludes the first N
    latencies from the latency summary (not from accuracy). ``tolerance_s`` bounds the
    frame-to-ground-truth stamp gap (default half the frame period). Writes report.json,
    report.md, actions.png, errors.png and latency.png into ``out_dir``; returns the report.
    """
    check_options(stride, limit, warmup)
    check_instruction_override(instruction, EvaluationError)
    if isinstance(bag_data_or_path, BagData):
        bag = bag_data_or_path
    else:
        bag = read_bag(bag_data_or_path,
                       instruction_topic=None if instruction is not None else INSTRUCTION_TOPIC)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()

    records, skipped = _run_frames(policy, bag, ground_truth_matches(bag, tolerance_s),
                                   instruction, stride, limit, max_pixels, progress)
    meta = _policy_metadata(policy)
    meta.update(bag_metadata(bag, instruction, {
        'instruction': instruction, 'stride': stride, 'limit': limit, 'warmup': warmup,
        'tolerance_s': tolerance_s, 'max_pixels': max_pixels}, started_at))
    if metadata:
        meta.update(metadata)
    return write_report(out, records, skipped, len(bag.frames), meta, warmup=warmup,
                        started=started, write_plots=write_plots, skip_reasons=SKIP_REASONS)


def _run_frames(policy: Policy, bag: BagData, matches: list[int | None],
                instruction: str | None, stride: int, limit: int | None,
                max_pixels: int | None, progress: bool
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predict on every frame that can be scored; return (records, skipped)."""
    from tqdm import tqdm

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
    return records, skipped


def evaluate_model(bag: BagData, model: str, unnorm_key: str | None, out_dir: Path | str, *,
                   engine: EngineConfig, preparation: ImagePreparation | None = None,
                   statistics_file: str | None = None, instruction: str | None = None,
                   stride: int = 1, limit: int | None = None, warmup: int = 1,
                   progress: bool = True, tolerance_s: float | None = None,
                   metadata: Mapping[str, Any] | None = None,
                   max_pixels: int | None = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """Start an engine for ``model``, run :func:`evaluate_bag` on it, close it; return the report.

    The model and its statistics (``unnorm_key``, ``statistics_file``) are checked before the
    engine's long start-up (:func:`~openvla_ros.core.engine.early_decoder`).
    """
    from openvla_ros.core import engine as engine_module
    check_options(stride, limit, warmup)
    engine_module.early_decoder(model, unnorm_key, statistics_file)
    from openvla_ros.core.factory import make_policy
    policy = make_policy(model, unnorm_key, engine=engine, preparation=preparation,
                         statistics_file=statistics_file)
    try:
        return evaluate_bag(policy, bag, out_dir, instruction=instruction, stride=stride,
                            limit=limit, warmup=warmup, progress=progress,
                            tolerance_s=tolerance_s, metadata=metadata,
                            max_pixels=max_pixels)
    finally:
        policy.close(fast=True)   # the command ends here: do not wait on a hung engine
