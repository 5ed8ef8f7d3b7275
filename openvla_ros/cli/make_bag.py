# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros make-bag``: a rosbag2 from a STEPS.json of images, instructions and actions."""

from __future__ import annotations

import argparse
from pathlib import Path

from openvla_ros.cli.common import add_pixel_limit_argument, pixel_limit_from_args
from openvla_ros.tools.bags import (COMPRESSED_IMAGE_TOPIC, DEFAULT_RATE_HZ, format_summary,
                                    JPEG_QUALITY, make_bag, STORAGES)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``make-bag`` subcommand."""
    parser = subparsers.add_parser(
        'make-bag', help='write a rosbag2 from a STEPS.json of images and actions',
        description='Write a rosbag2 replaying STEPS.json ({"steps": [{"image": PATH, '
                    '"instruction": TEXT, "action": [7 numbers], "stamp": seconds (optional)}]}'
                    ') for offline evaluation: camera frames, the instruction and the '
                    'ground-truth actions, one step per frame.')
    parser.add_argument('steps_json', metavar='STEPS.json', type=Path)
    parser.add_argument('out_bag', metavar='OUT_BAG', type=Path,
                        help='bag directory to create (must not exist, unless --force)')
    parser.add_argument('--force', action='store_true',
                        help='replace OUT_BAG if it exists (only a rosbag2 directory or file)')
    parser.add_argument('--rate', type=float, default=DEFAULT_RATE_HZ, metavar='HZ',
                        help='step rate when STEPS.json has no stamps (default %(default)s)')
    parser.add_argument('--storage', choices=STORAGES, default='sqlite3',
                        help='rosbag2 storage format (default %(default)s)')
    parser.add_argument('--compressed', action='store_true',
                        help=f'write {COMPRESSED_IMAGE_TOPIC} instead of raw rgb8 frames')
    parser.add_argument('--compressed-format', choices=('jpeg', 'png'), default='jpeg',
                        help=f'compression with --compressed: jpeg (quality {JPEG_QUALITY}, '
                             'lossy) or png (exact); default %(default)s')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    add_pixel_limit_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the bag, print its one-line summary."""
    summary = make_bag(args.steps_json, args.out_bag, rate_hz=args.rate, storage=args.storage,
                       compressed=args.compressed, progress=not args.no_progress,
                       compressed_format=args.compressed_format, force=args.force,
                       max_pixels=pixel_limit_from_args(args))
    print(format_summary(summary))
    return 0
