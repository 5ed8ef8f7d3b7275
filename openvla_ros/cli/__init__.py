# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The ``openvla-ros`` command line: one tool, one subcommand per job.

Each subcommand is one module here, ``openvla_ros/cli/<verb>.py``, holding only its argument
parser, ``register(subparsers)``, which sets ``func`` on the parser, and a thin ``run(args)``
that calls the work in :mod:`openvla_ros.tools` (or :mod:`openvla_ros.core`) and returns the
exit code. Errors a user can fix (a missing model, a bad key, an unreadable file) are raised as
the library's :class:`~openvla_ros.core.errors.OpenVlaError` (what failed and its fix, as
fields) or ``ValueError``/``FileNotFoundError``/``OSError`` and printed as one line, without a
traceback, with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
from pathlib import Path
import sys
import textwrap
import time

from openvla_ros.core.errors import OpenVlaError

#: Modules that contribute subcommands, in the order ``--help`` lists them.
SUBCOMMAND_MODULES = (
    'openvla_ros.cli.predict',
    'openvla_ros.cli.prepare_image',
    'openvla_ros.cli.make_test_model',
    'openvla_ros.cli.demo',
    'openvla_ros.cli.make_bag',
    'openvla_ros.cli.evaluate',
    'openvla_ros.cli.replay',
    'openvla_ros.cli.benchmark',
    'openvla_ros.cli.doctor',
    'openvla_ros.cli.serve',
    'openvla_ros.cli.sim_arm',
    'openvla_ros.cli.run',
)


#: Engine log files kept in the cache's logs folder.
KEEP_LOGS = 30


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every available subcommand."""
    # Raw: the description is wrapped here, without breaking make-test-model at its hyphens.
    parser = argparse.ArgumentParser(prog='openvla-ros',
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='log engine and library messages')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    # Listed from the registered subcommands: a hand-written list once left doctor and serve out.
    parser.description = textwrap.fill(
        'OpenVLA vision-language-action policy tools: ' + ', '.join(subparsers.choices) + '.',
        width=79, break_on_hyphens=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``openvla-ros`` command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    # vLLM logs every engine detail at INFO on stdout, burying the command's own output
    # (and the JSON of `predict`); keep its warnings unless asked for more.
    os.environ.setdefault('VLLM_LOGGING_LEVEL', 'INFO' if args.verbose else 'WARNING')
    # Dozens of third-party warnings (vLLM, torch, oneDNN, progress bars) come before the first
    # action; unless --verbose they go to a log file the command names when something fails.
    # A file named in the environment is the user's choice and wins.
    from openvla_ros.core.processes import ENGINE_LOG_ENV, use_engine_log
    use_engine_log(os.environ.get(ENGINE_LOG_ENV)
                   or (None if args.verbose else engine_log_path(args.command)))
    try:
        return int(args.func(args) or 0)
    except (OpenVlaError, ValueError, FileNotFoundError, OSError) as error:
        # One line a person can act on; --verbose keeps the traceback for bug reports.
        if args.verbose:
            logging.exception('failed')
        print(f'openvla-ros {args.command}: error: {_one_line(error)}{_engine_log_note()}',
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def engine_log_path(command: str) -> Path:
    """Return a new file path for the engine's output of one command run."""
    from openvla_ros.tools.generated_checkpoint import default_cache_dir
    folder = default_cache_dir().parent / 'logs'
    # Keep the newest logs only: every command run writes one.
    old = sorted(folder.glob('*.log'), key=lambda p: p.stat().st_mtime)[:-KEEP_LOGS] \
        if folder.is_dir() else []
    for path in old:
        path.unlink(missing_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    return folder / f'{command}-{stamp}-{os.getpid()}.log'


def _one_line(error: BaseException) -> str:
    """Return what failed and its fix, from the error's fields when it is the project's."""
    if isinstance(error, OpenVlaError):
        return f'{error.what}: {error.fix}' if error.fix else error.what
    return str(error)


def _engine_log_note() -> str:
    from openvla_ros.core.processes import engine_log
    path = Path(engine_log() or '')
    if path.name and path.is_file() and path.stat().st_size:
        return f' (engine output: {path})'
    return ''


def run() -> None:
    """Console-script entry: run the command, then leave at once (see ``exit_now``)."""
    code = main()
    from openvla_ros.core.processes import exit_now
    exit_now(code)


if __name__ == '__main__':
    run()
