# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""STEPS.json: the dataset export ``make-bag`` turns into a bag, checked before any bag exists.

``{"steps": [{"image": "frame_0000.png", "instruction": "...", "action": [7 floats],
"stamp": optional seconds}]}``: every step is validated (image file, instruction, 7 finite action
values, increasing stamps) with an error naming the step and the fix. Also writes synthetic
STEPS.json sets with a known action sequence for the tests and the demo.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from openvla_ros.core.decoding import ACTION_DIM, ACTION_NAMES
from openvla_ros.core.errors import BagError
from openvla_ros.core.images import DEFAULT_MAX_PIXELS, ImageError, load_image_file
from openvla_ros.core.prompt import clean_instruction, InstructionError
from openvla_ros.core.stats import NS_PER_S
from openvla_ros.tools.synthetic import DEFAULT_INSTRUCTION, synthetic_actions, table_scene

#: Stamp of step 0 when STEPS.json gives none: 2023-11-14 22:13:20 UTC. A wall-clock-like
#: value, so tools that show dates (rqt_bag, Foxglove) display something plausible, and a whole
#: number of seconds, so ``t0 + i / rate`` is exact in nanoseconds for common rates.
DEFAULT_T0_S = 1_700_000_000.0
#: Default step rate: BridgeData V2, OpenVLA's main training set, was collected at 5 Hz.
DEFAULT_RATE_HZ = 5.0
# builtin_interfaces/Time.sec is an int32.
_MAX_STAMP_S = 2 ** 31 - 1


class StepsError(BagError):
    """A STEPS.json file with a problem; the text names the step and the fix."""


def _stamp_ns(stamp_s: float) -> int:
    """Return seconds as integer nanoseconds, rounding only the fractional part."""
    whole = math.floor(stamp_s)
    return int(whole) * NS_PER_S + int(round((stamp_s - whole) * NS_PER_S))


@dataclass
class Step:
    """One validated step of a STEPS.json file."""

    index: int
    image: Path
    instruction: str
    action: list[float]
    stamp_ns: int


def _check_action(index: int, action: Any) -> list[float]:
    if not isinstance(action, (list, tuple)) or len(action) != ACTION_DIM:
        raise StepsError(
            f'step {index}: "action" must be a list of {ACTION_DIM} numbers '
            f'({", ".join(ACTION_NAMES)}), got {_short(action)}')
    values = []
    for value in action:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StepsError(
                f'step {index}: "action" must hold numbers only, got {_short(value)}: write '
                f'{ACTION_DIM} plain numbers')
        if not _finite(value):
            raise StepsError(
                f'step {index}: "action" holds a non-finite value ({_short(value)}): replace '
                'NaN, infinity or absurd magnitudes with the real action')
        values.append(float(value))
    return values


def _finite(value: int | float) -> bool:
    """Return whether a JSON number is a finite float (JSON integers are unbounded)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:120] + '...'


def load_steps(steps_json: Path | str, rate_hz: float = DEFAULT_RATE_HZ,
               t0_s: float = DEFAULT_T0_S) -> list[Step]:
    """Read and validate a STEPS.json file; image paths resolve against the file's folder.

    Steps without a ``stamp`` get ``t0_s + i / rate_hz``; either every step has a stamp or none
    does. Raises :class:`StepsError` naming the step and the fix for any problem.
    """
    path = Path(steps_json)
    if not path.is_file():
        raise FileNotFoundError(
            f'steps file {str(path)!r} does not exist: write a STEPS.json '
            '({"steps": [{"image": ..., "instruction": ..., "action": [7 numbers]}]}) or '
            'generate one with write_synthetic_steps')
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise StepsError(f'rate must be a positive number of Hz, got {rate_hz}')
    try:
        with open(path, encoding='utf-8') as stream:
            document = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StepsError(f'{path.name} is not valid JSON ({exc}): fix the file') from exc
    steps = document.get('steps') if isinstance(document, dict) else None
    if not isinstance(steps, list):
        raise StepsError(
            f'{path.name} must be an object with a "steps" list: '
            '{"steps": [{"image": ..., "instruction": ..., "action": [...]}]}')
    if not steps:
        raise StepsError(f'{path.name} has no steps: add at least one step')
    folder = path.parent
    has_stamps = isinstance(steps[0], dict) and steps[0].get('stamp') is not None
    period_ns = NS_PER_S / rate_hz
    t0_ns = _stamp_ns(t0_s)
    result: list[Step] = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise StepsError(f'step {index} must be an object, got {type(step).__name__}')
        image = step.get('image')
        if not isinstance(image, str) or not image.strip():
            raise StepsError(
                f'step {index} has no "image": give the path of a PNG/JPEG file, relative to '
                f'the folder of {path.name}')
        image_path = folder / image
        if not image_path.is_file():
            raise StepsError(
                f'step {index}: image {image!r} not found (looked at {image_path}): paths are '
                f'relative to the folder of {path.name}')
        instruction = step.get('instruction')
        if not isinstance(instruction, str) or not instruction.strip():
            raise StepsError(
                f'step {index} has no "instruction": give the task text, e.g. '
                f'"{DEFAULT_INSTRUCTION}"')
        try:
            clean_instruction(instruction)
        except InstructionError as exc:
            raise StepsError(f'step {index}: {exc}') from None
        action = _check_action(index, step.get('action'))
        stamp = step.get('stamp')
        if (stamp is not None) != has_stamps:
            raise StepsError(
                f'step {index} {"has" if stamp is not None else "has no"} "stamp" but step 0 '
                f'{"has" if has_stamps else "has none"}: give every step a stamp, or none')
        if stamp is None:
            stamp_ns = t0_ns + int(round(index * period_ns))
        else:
            if (isinstance(stamp, bool) or not isinstance(stamp, (int, float))
                    or not _finite(stamp) or not 0 <= stamp <= _MAX_STAMP_S):
                raise StepsError(
                    f'step {index}: "stamp" must be seconds between 0 and {_MAX_STAMP_S}, '
                    f'got {_short(stamp)}')
            stamp_ns = _stamp_ns(float(stamp))
        if result and stamp_ns <= result[-1].stamp_ns:
            raise StepsError(
                f'step {index}: stamp {stamp_ns / NS_PER_S:.9f} s is not after step '
                f'{index - 1}\'s '
                f'{result[-1].stamp_ns / NS_PER_S:.9f} s: stamps must increase strictly')
        result.append(Step(index, image_path, instruction.strip(), action, stamp_ns))
    return result


def load_step_image(step: Step, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return a step's image as RGB uint8, or raise StepsError naming the step."""
    try:
        return np.array(load_image_file(step.image, max_pixels, label=step.image.name),
                        dtype=np.uint8)
    except (ImageError, OSError) as exc:
        raise StepsError(f'step {step.index}: {exc}') from None


def write_synthetic_steps(folder: Path | str, n: int, size: int = 224, seed: int = 0,
                          instruction: str = DEFAULT_INSTRUCTION) -> Path:
    """Write ``n`` synthetic PNG frames and a STEPS.json with a known action sequence.

    Each frame shows a red block moving across a gradient table towards a blue plate, its
    position the running sum of the x/y actions, plus a gripper bar, so consecutive frames
    differ in structure, not just noise. ``seed`` varies colours and start position. Returns the
    path of ``STEPS.json``; images are ``frame_0000.png`` ... beside it.
    """
    if n < 1:
        raise ValueError(f'n must be at least 1, got {n}')
    if size < 8:
        raise ValueError(f'size must be at least 8 pixels, got {size}')
    from PIL import Image
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    background = rng.uniform(90, 200, size=(2, 3))
    plate = rng.uniform(0.55, 0.8, size=2)
    start = rng.uniform(0.2, 0.35, size=2)
    actions = synthetic_actions(n)
    # Positions in image units: 2 cm of motion moves the block 4 % of the frame.
    positions = start + np.vstack([np.zeros(2), np.cumsum(actions[:-1, :2], axis=0)]) * 2.0
    steps = []
    for index in range(n):
        name = f'frame_{index:04d}.png'
        frame = table_scene(size, positions[index], actions[index, 6], index, background,
                            plate)
        Image.fromarray(frame).save(out / name)
        steps.append({'image': name, 'instruction': instruction,
                      'action': [float(v) for v in actions[index]]})
    steps_path = out / 'STEPS.json'
    with open(steps_path, 'w', encoding='utf-8') as stream:
        json.dump({'steps': steps}, stream, indent=1)
    return steps_path
