# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros doctor``: what this machine will do, checked in seconds without an engine."""

from __future__ import annotations

import argparse

from openvla_ros.tools import doctor


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``doctor`` subcommand."""
    parser = subparsers.add_parser(
        'doctor', help='check what this machine will do (CPU, GPU, dtype, vLLM, ROS) in seconds',
        description=doctor.__doc__.split('\n\n')[0])
    parser.add_argument('--json', action='store_true', help='print one JSON object instead')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run every check, print the report; exit 1 when a check FAILs."""
    checks, facts = doctor.diagnose()
    print(doctor.format_report(checks, facts, as_json=args.json))
    return 1 if doctor.failed(checks) else 0
