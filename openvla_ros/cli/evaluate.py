# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros evaluate``: score the policy offline on a rosbag2 with ground-truth actions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from openvla_ros.cli.common import (add_bag_topic_arguments, add_engine_arguments,
                                    add_model_arguments, add_pixel_limit_argument,
                                    add_preprocessing_arguments, check_output_folder,
                                    command_metadata, engine_config_from_args,
                                    pixel_limit_from_args, preparation_from_args,
                                    read_bag_from_args, statistics_file_from_args)
from openvla_ros.tools.report import format_table, REPORT_MD


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        'evaluate', help='score the policy on a rosbag2 with ground-truth actions',
        description='Run OpenVLA on every frame of a rosbag2, compare with the recorded '
                    'ground-truth actions and write report.json, report.md and plots.')
    parser.add_argument('bag', metavar='BAG', type=Path, help='rosbag2 directory or file')
    add_model_arguments(parser, unnorm_key_help='dataset statistics to unnormalize with (e.g. '
                                                'bridge_orig); required when the checkpoint has '
                                                'several')
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
    add_pixel_limit_argument(parser)
    add_engine_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the options and the bag, evaluate, print the summary (a table or JSON)."""
    from openvla_ros.tools.evaluate import check_options, evaluate_model
    check_options(args.stride, args.limit, args.warmup)
    check_output_folder(args.out, args.force)
    max_pixels = pixel_limit_from_args(args)
    # The bag first, then the key: both fail in milliseconds, the engine takes minutes.
    bag = read_bag_from_args(args)
    report = evaluate_model(bag, args.model, args.unnorm_key, args.out,
                            engine=engine_config_from_args(args),
                            preparation=preparation_from_args(args),
                            statistics_file=statistics_file_from_args(args),
                            instruction=args.instruction, stride=args.stride, limit=args.limit,
                            warmup=args.warmup, progress=not args.no_progress,
                            tolerance_s=args.tolerance, max_pixels=max_pixels,
                            metadata={'command': command_metadata(args)})
    if args.json:
        print(json.dumps(report['summary'], indent=2))
    else:
        print(format_table(report))
        print(f'report: {Path(args.out) / REPORT_MD}')
    return 0
