# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros run``: give a running policy node one task as an action goal."""

from __future__ import annotations

import argparse

from openvla_ros.tools import goal_client


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        'run', help='send a running policy node one task (ExecuteInstruction goal): feedback '
                    'lines, Ctrl-C cancels, exit 0 when it ended by its limits',
        description=goal_client.__doc__.split('\n\n')[0])
    parser.add_argument('instruction', help='the task, e.g. "put the spoon on the towel"')
    parser.add_argument('--steps', type=int, default=0,
                        help='end after this many actions (0: no step limit)')
    parser.add_argument('--timeout', type=float, default=0.0,
                        help='end after this many seconds (0: no time limit); set --steps, '
                             '--timeout or both')
    parser.add_argument('--node', default='/openvla_policy',
                        help='the policy node (default: %(default)s)')
    parser.add_argument('--dry-run', action='store_true',
                        help='report the actions but publish no command')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Send the goal and follow it; return 0 when it succeeded, 1 otherwise."""
    outcome = goal_client.run_goal(args.instruction, args.steps, args.timeout, node=args.node,
                                   dry_run=args.dry_run,
                                   out=lambda line: print(f'[run] {line}', flush=True))
    return outcome.exit_code
