# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What offline evaluation and online replay share when they score a bag.

Both take an optional instruction that replaces the bag's instruction topic, match every frame
to the bag's ground truth within a tolerance, and describe the bag in the report's metadata
the same way; the report itself is :func:`openvla_ros.tools.report.write_report`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from openvla_ros.tools.bags import BagData
from openvla_ros.tools.metrics import match_ground_truth


def check_instruction_override(instruction: str | None, error: type[Exception]) -> None:
    """Raise ``error`` when an instruction override is given but empty (the fix in the text)."""
    if instruction is not None and not instruction.strip():
        raise error("the instruction is empty: give the task text, or leave it out to use the "
                    "bag's instruction topic")


def ground_truth_matches(bag: BagData, tolerance_s: float | None) -> list[int | None]:
    """Return, per frame of ``bag``, the index of its ground-truth action (None: none near)."""
    frame_times = [bag.frame_time(frame) for frame in bag.frames]
    return match_ground_truth(frame_times, [gt.stamp_s for gt in bag.ground_truth],
                              bag.ground_truth, tolerance_s)


def bag_metadata(bag: BagData, instruction: str | None, options: Mapping[str, Any],
                 started_at: datetime, notes: list[str] | tuple[str, ...] = ()
                 ) -> dict[str, Any]:
    """Return the report metadata that describes the bag and the run's options."""
    return {
        'bag': str(bag.path),
        'storage': bag.storage,
        'image_topic': bag.image_topic,
        'instruction_topic': None if instruction is not None else bag.instruction_topic,
        'ground_truth_source': bag.gt_source,
        'ground_truth_time_base': bag.gt_time_base,
        'options': dict(options),
        'timestamp': started_at.isoformat(timespec='seconds'),
        'bag_notes': list(bag.notes) + list(notes),
    }
