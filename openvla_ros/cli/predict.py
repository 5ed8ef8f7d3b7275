# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros predict``: one image and instruction in, one JSON action out."""

from __future__ import annotations

import argparse
import json

from openvla_ros.cli.common import (add_engine_arguments, add_model_arguments,
                                    add_pixel_limit_argument, add_preprocessing_arguments,
                                    engine_config_from_args, load_image_file,
                                    pixel_limit_from_args, preparation_from_args,
                                    statistics_file_from_args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand."""
    parser = subparsers.add_parser(
        'predict', help='predict one action for an image file and an instruction (JSON out)',
        description='Run the policy once and print {"action", "names", "token_ids", "timings", '
                    '"engine"} as one JSON object on stdout ("engine": dtype, image '
                    'preparation, unnorm_key and the statistics\' source and hash).')
    add_model_arguments(parser)
    parser.add_argument('--image', required=True, help='image file (PNG, JPEG, ...)')
    parser.add_argument('--instruction', required=True,
                        help='task, e.g. "put the spoon on the towel"')
    add_preprocessing_arguments(parser)
    add_pixel_limit_argument(parser)
    add_engine_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the engine, predict once, print the JSON object."""
    from openvla_ros.core.factory import make_policy
    from openvla_ros.core.prompt import clean_instruction
    image = load_image_file(args.image, pixel_limit_from_args(args))
    # Everything a user can get wrong is checked before the engine's long start-up.
    clean_instruction(args.instruction)
    engine = engine_config_from_args(args)
    policy = make_policy(args.model, args.unnorm_key, engine=engine,
                         preparation=preparation_from_args(args),
                         statistics_file=statistics_file_from_args(args))
    try:
        prediction = policy.predict(image, args.instruction)
        report = policy.engine_report()
    finally:
        policy.close(fast=True)
    result = prediction.as_dict()
    result['timings']['startup_s'] = report.startup_s
    result['engine'] = report.as_dict()
    print(json.dumps(result))
    return 0
