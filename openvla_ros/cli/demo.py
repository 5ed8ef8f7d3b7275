# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros demo``: the policy node on a generated camera, printing its actions."""

from __future__ import annotations

import argparse

from openvla_ros.cli.common import (add_engine_arguments, add_model_arguments,
                                    add_preprocessing_arguments, engine_config_from_args,
                                    preparation_from_args, statistics_file_from_args)
from openvla_ros.tools import demo
from openvla_ros.tools.synthetic import DEMO_INSTRUCTION


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        'demo', help='run the policy node on a generated camera and print its actions',
        description=demo.__doc__.split('\n\n')[0])
    add_model_arguments(
        parser, required=False,
        model_help='checkpoint directory or hub id (default: the generated test checkpoint, '
                   'built and cached on first use)',
        unnorm_key_default='bridge_orig', unnorm_key_help='dataset statistics (default '
                                                          '%(default)s)')
    parser.add_argument('--instruction', default=DEMO_INSTRUCTION,
                        help='the task, sent as an ExecuteInstruction goal limited to '
                             '--duration (on the instruction topic where the action interface '
                             'is not installed)')
    parser.add_argument('--duration', type=float, default=30.0,
                        help='seconds to run after the node is active (default %(default)s)')
    parser.add_argument('--camera-hz', type=float, default=30.0,
                        help='rate of the generated camera (default %(default)s)')
    parser.add_argument('--arm', choices=('none', 'sim'), default='none',
                        help="'sim': drive the simulated arm (its camera feeds the node) and "
                             'print commanded vs executed displacement per action')
    parser.add_argument('--publish-mode', choices=('pulse', 'stream'), default='stream',
                        help='publish_mode with --arm sim (default %(default)s)')
    parser.add_argument('--plot', default='arm_demo.png', metavar='FILE.png',
                        help='plot written with --arm sim (default %(default)s)')
    add_preprocessing_arguments(parser)
    add_engine_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo for ``--duration`` seconds; exit 1 when no action came."""
    demo.check_options(args.duration, args.camera_hz)
    preparation = preparation_from_args(args)   # a bad --center-crop-scale fails right here
    engine = engine_config_from_args(args)
    model = demo.demo_model(args.model)
    print(demo.DISCLAIMER, flush=True)
    if args.arm == 'sim':
        return _run_arm(args, model, engine, preparation)
    result = demo.run_demo(model, args.unnorm_key, args.instruction, args.duration,
                           args.camera_hz, engine, preparation=preparation,
                           statistics_file=statistics_file_from_args(args))
    if result['actions'] > 0:
        return 0
    print(demo.failure_line(result, args.duration), flush=True)
    return 1


def _run_arm(args: argparse.Namespace, model: str, engine, preparation) -> int:
    from openvla_ros.node.parameters import engine_values, preparation_values
    from openvla_ros.tools.arm_demo import run_arm_demo
    values = {'statistics_file': statistics_file_from_args(args) or '',
              **preparation_values(preparation), **engine_values(engine)}
    run = run_arm_demo(model, args.unnorm_key, args.instruction, args.duration, values,
                       mode=args.publish_mode, plot=args.plot)
    if run.arrivals:
        return 0
    print(f'[arm] FAILED: {run.reason}', flush=True)
    return 1
