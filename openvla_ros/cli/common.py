# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Flags shared by several commands: model, engine (generated from EngineConfig), images, bags."""

from __future__ import annotations

import argparse
from dataclasses import MISSING
from pathlib import Path
from typing import Any

from openvla_ros.core.engine import EngineConfig
from openvla_ros.core.images import DEFAULT_MAX_PIXELS
from openvla_ros.core.preprocessing import (DEFAULT_CROP_SCALE, ImagePreparation,
                                            PREPROCESSING_MODES)
from openvla_ros.tools.bags import (BagData, BagError, GT_GRIPPER_TOPIC, GT_TWIST_TOPIC,
                                    INSTRUCTION_TOPIC, read_bag)


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True,
                        default_model: str | None = None, *, model_help: str | None = None,
                        unnorm_key_default: str | None = None,
                        unnorm_key_help: str | None = None) -> None:
    """Add ``--model`` and ``--unnorm-key`` (a command may word their help its own way)."""
    parser.add_argument('--model', required=required and default_model is None,
                        default=default_model,
                        help=model_help or 'checkpoint directory or hub id (e.g. '
                                           'openvla/openvla-7b)')
    parser.add_argument('--unnorm-key', default=unnorm_key_default,
                        help=unnorm_key_help or 'dataset statistics to unnormalize with (e.g. '
                                                'bridge_orig)')


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per :class:`EngineConfig` option (``--max-model-len`` for max_model_len)."""
    group = parser.add_argument_group('engine (vLLM in this process, or a vLLM server)')
    for option in EngineConfig.options():
        flag = option.metadata.get('flag') or '--' + option.name.replace('_', '-')
        default = option.default if option.default is not MISSING else None
        text = option.metadata['help']
        if isinstance(default, bool):
            group.add_argument(flag, action='store_true', dest=option.name, help=text)
            continue
        group.add_argument(flag, type=type(default), default=default, dest=option.name,
                           choices=option.metadata.get('choices'),
                           help=f'{text} (default: %(default)r)')


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """Return the :class:`EngineConfig` the engine flags ask for (ValueError if invalid)."""
    return EngineConfig(**{option.name: getattr(args, option.name)
                           for option in EngineConfig.options()})


def add_preprocessing_arguments(parser: Any, statistics: bool = True,
                                expected: bool = False) -> None:
    """Add the image-preparation flags (and ``--statistics-file``) for fine-tuned checkpoints.

    ``statistics`` False leaves out ``--statistics-file`` (commands that decode no action).
    ``expected`` True is for commands that talk to a node started elsewhere (``replay``): the
    flags then default to None, meaning "not asked", and state what the node must run with.
    """
    group = parser.add_argument_group(
        'image preparation and statistics (fine-tuned checkpoints, see the README)')
    verb = 'expect the node to prepare' if expected else 'prepare'
    group.add_argument('--image-preprocessing', default=None if expected else 'processor',
                       choices=PREPROCESSING_MODES,
                       help=f'{verb} frames this way: processor = as they are (the '
                            "model's processor resizes, bicubic); training = JPEG round trip "
                            '+ Lanczos3 resize to 224, as the reference evaluation of '
                            'fine-tuned checkpoints (default '
                            f'{"not checked" if expected else "%(default)s"})')
    group.add_argument('--center-crop', action='store_true', default=None if expected else False,
                       help='crop the centred --center-crop-scale of the area and resize back '
                            'to 224, for checkpoints fine-tuned with random-crop augmentation')
    group.add_argument('--center-crop-scale', type=float,
                       default=None if expected else DEFAULT_CROP_SCALE, metavar='S',
                       help='area fraction kept by --center-crop, in (0, 1] (default '
                            f'{"not checked" if expected else "%(default)s"})')
    if statistics:
        group.add_argument('--statistics-file', default=None, metavar='FILE',
                           help=('the statistics_file the node must run with (default not '
                                 'checked)' if expected else
                                 'statistics in dataset_statistics.json layout to unnormalize '
                                 "with; overrides the checkpoint's dataset_statistics.json and "
                                 'config.json norm_stats'))


def preparation_from_args(args: Any) -> ImagePreparation:
    """Return the :class:`ImagePreparation` the shared flags ask for (ValueError if invalid)."""
    def given(name: str, default: Any) -> Any:
        value = getattr(args, name, None)
        return default if value is None else value
    return ImagePreparation(mode=given('image_preprocessing', 'processor'),
                            center_crop=bool(given('center_crop', False)),
                            center_crop_scale=float(given('center_crop_scale',
                                                          DEFAULT_CROP_SCALE)))


def statistics_file_from_args(args: Any) -> str | None:
    """Return ``--statistics-file``, or None when it is not given."""
    return getattr(args, 'statistics_file', None) or None


def add_pixel_limit_argument(parser: Any) -> None:
    """Add ``--max-image-pixels``: the node's ``max_image_pixels`` limit for image files."""
    parser.add_argument('--max-image-pixels', type=int, default=DEFAULT_MAX_PIXELS, metavar='N',
                        help='refuse images of more pixels than this before decoding them, as '
                             'the node does (its max_image_pixels; default %(default)s)')


def pixel_limit_from_args(args: Any) -> int:
    """Return ``--max-image-pixels`` after checking it is positive."""
    limit = getattr(args, 'max_image_pixels', DEFAULT_MAX_PIXELS)
    if limit is None or limit <= 0:
        raise ValueError(f'--max-image-pixels must be positive, got {limit}')
    return int(limit)


def load_image_file(path: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Any:
    """Return the image at ``path`` as an RGB PIL image, or raise a one-line error."""
    from openvla_ros.core.images import load_image_file as load
    return load(path, max_pixels)


def add_bag_topic_arguments(parser: Any, instruction_help: str, warmup_help: str) -> None:
    """Add the flags that name a bag's topics and tune scoring (shared by evaluate and replay)."""
    parser.add_argument('--image-topic', default=None,
                        help='image topic of the bag (default: /camera/image_raw or '
                             '/camera/image_raw/compressed, whichever the bag has)')
    task = parser.add_mutually_exclusive_group()
    task.add_argument('--instruction-topic', default=None,
                      help=f'std_msgs/String instruction topic (default {INSTRUCTION_TOPIC})')
    task.add_argument('--instruction', default=None, metavar='TEXT', help=instruction_help)
    parser.add_argument('--gt-twist-topic', default=None,
                        help=f'ground-truth TwistStamped topic (default {GT_TWIST_TOPIC})')
    parser.add_argument('--gt-gripper-topic', default=None,
                        help=f'ground-truth Float64 gripper topic (default {GT_GRIPPER_TOPIC})')
    parser.add_argument('--gt-array-topic', default=None,
                        help='ground truth as one Float64MultiArray of 7 values instead')
    parser.add_argument('--warmup', type=int, default=1, metavar='N', help=warmup_help)
    parser.add_argument('--tolerance', type=float, default=None, metavar='S',
                        help='max frame to ground-truth stamp gap in seconds '
                             '(default half the frame period)')
    parser.add_argument('--json', action='store_true',
                        help='print the summary as JSON (nothing else on stdout)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    parser.add_argument('--force', action='store_true',
                        help='write into --out even if it already holds a report (its files are '
                             'replaced); refused otherwise, as make-bag refuses an existing bag')


def check_output_folder(out: Path, force: bool) -> None:
    """Refuse a non-empty ``--out`` folder unless ``force`` (nothing is overwritten silently)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f'--out {str(out)!r} is a file: give a folder for the report')
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(f'--out {str(out)!r} already exists and is not empty: choose a new '
                         'folder, or pass --force to replace the report in it')


def read_bag_from_args(args: Any) -> BagData:
    """Read the bag named by the shared bag flags (see :func:`add_bag_topic_arguments`)."""
    if args.gt_array_topic and (args.gt_twist_topic or args.gt_gripper_topic):
        raise BagError('give either --gt-array-topic or --gt-twist-topic/--gt-gripper-topic, '
                       'not both')
    return read_bag(
        args.bag, image_topic=args.image_topic,
        instruction_topic=(None if args.instruction is not None
                           else args.instruction_topic or INSTRUCTION_TOPIC),
        gt_twist_topic=args.gt_twist_topic or GT_TWIST_TOPIC,
        gt_gripper_topic=args.gt_gripper_topic or GT_GRIPPER_TOPIC,
        gt_array_topic=args.gt_array_topic)


def command_metadata(args: argparse.Namespace) -> dict[str, Any]:
    """Return the parsed flags as a JSON-ready dict for a report (paths as text)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k != 'func'}
