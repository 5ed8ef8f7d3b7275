# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros replay``: replay a rosbag2 into a running policy node and score its actions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from openvla_ros.cli.common import (add_bag_topic_arguments, add_preprocessing_arguments,
                                    check_output_folder, command_metadata,
                                    preparation_from_args, read_bag_from_args)
from openvla_ros.tools.report import format_table, REPORT_MD


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``replay`` subcommand."""
    parser = subparsers.add_parser(
        'replay', help='replay a rosbag2 into a running policy node and score what it publishes',
        description='Publish a bag\'s camera and instruction topics to a running policy node '
                    'with the bag\'s timing and /clock (run the node with use_sim_time true), '
                    'record its ee_delta, gripper, action and diagnostics into DIR/recording '
                    'and score the actions against the bag\'s ground truth (report.json, '
                    'report.md, plots in DIR).')
    parser.add_argument('bag', metavar='BAG', type=Path, help='rosbag2 directory or file')
    parser.add_argument('--out', required=True, type=Path, metavar='DIR',
                        help='folder for the recording, report.json, report.md and the plots')
    parser.add_argument('--namespace', default='', metavar='NS',
                        help='namespace of the policy node\'s topics (default: none)')
    parser.add_argument('--rate', type=float, default=1.0, metavar='FACTOR',
                        help='playback speed factor, as ros2 bag play --rate (default 1)')
    parser.add_argument('--settle', type=float, default=5.0, metavar='S',
                        help='seconds to keep recording after the last frame, for the action '
                             'in flight; above the engine latency (default %(default)s)')
    parser.add_argument('--wait', type=float, default=30.0, metavar='S',
                        help='seconds to wait for the policy node to appear (default 30)')
    add_bag_topic_arguments(
        parser, instruction_help='publish this instruction once instead of the bag\'s',
        warmup_help='actions left out of the latency summary (default 1)')
    # The node is started elsewhere and its settings are read-only: the flags say what it
    # must run with, and the replay stops before publishing if it runs something else.
    add_preprocessing_arguments(parser, expected=True)
    parser.set_defaults(func=run)


def expected_settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Return the node settings the replay flags ask for (None = not asked), checked for sense."""
    preparation_from_args(args)   # a bad --center-crop-scale fails here, before any ROS work
    scale = args.center_crop_scale
    return {'image_preprocessing': args.image_preprocessing,
            'center_crop': args.center_crop,
            'center_crop_scale': None if scale is None else float(scale),
            'statistics_file': args.statistics_file}


def run(args: argparse.Namespace) -> int:
    """Replay the bag to the node, print the summary (a table or JSON)."""
    from openvla_ros.tools.replay import format_node_line, replay_bag, require_rclpy
    require_rclpy()
    expected = expected_settings_from_args(args)
    check_output_folder(args.out, args.force)
    bag = read_bag_from_args(args)
    report = replay_bag(bag, args.out, namespace=args.namespace, rate=args.rate,
                        settle_s=args.settle, instruction=args.instruction,
                        tolerance_s=args.tolerance, warmup=args.warmup,
                        wait_for_node_s=args.wait, progress=not args.no_progress,
                        metadata={'command': command_metadata(args)},
                        expected_settings=expected)
    if args.json:
        print(json.dumps(report['summary'], indent=2))
    else:
        print(format_table(report))
        print(format_node_line(report))
        print(f'report: {Path(args.out) / REPORT_MD}')
    return 0
