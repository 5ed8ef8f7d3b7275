# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros make-test-model``: a small random-weight OpenVLA checkpoint for tests, demos."""

from __future__ import annotations

import argparse
import json

from openvla_ros.tools import generated_checkpoint


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``make-test-model`` subcommand."""
    parser = subparsers.add_parser(
        'make-test-model',
        help='write a small random-weight OpenVLA-architecture checkpoint (for tests/demos)',
        description=generated_checkpoint.__doc__.split('\n\n')[0])
    parser.add_argument('directory', metavar='DIR', help='where to write the checkpoint')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the weights')
    parser.add_argument('--overwrite', action='store_true', help='rebuild an existing one')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the checkpoint, print ``{"model": DIR, ...}`` as one JSON line."""
    path = generated_checkpoint.make_test_model(args.directory, seed=args.seed,
                                                overwrite=args.overwrite)
    info = generated_checkpoint.checkpoint_info(path)
    print(json.dumps({'model': str(path), **info}))
    return 0
