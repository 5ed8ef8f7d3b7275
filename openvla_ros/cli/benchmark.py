# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros benchmark``: engine latency per mode and the node's action rate, or CPU knobs."""

from __future__ import annotations

import argparse
from pathlib import Path

from openvla_ros.cli.common import (add_engine_arguments, add_model_arguments,
                                    add_preprocessing_arguments, engine_config_from_args,
                                    preparation_from_args, statistics_file_from_args)
from openvla_ros.core.cpu_knobs import KNOB_NAMES
from openvla_ros.tools.benchmark import MODES
from openvla_ros.tools.synthetic import DEFAULT_INSTRUCTION


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` subcommand."""
    parser = subparsers.add_parser(
        'benchmark', help='measure TTFT, TPOT, end-to-end latency and the node\'s action rate',
        description='Measure the engine per execution mode (eager; CUDA graphs where the '
                    'platform has them) on distinct images, then run the policy node in this '
                    'process under a synthetic camera. Prints two tables and writes every '
                    'figure, the machine and the software versions to a JSON file.')
    add_model_arguments(parser)
    parser.add_argument('--images', type=int, default=20, metavar='N',
                        help='measured predictions, each on a new image (default %(default)s)')
    parser.add_argument('--warmup', type=int, default=2, metavar='W',
                        help='predictions before measuring (default %(default)s)')
    parser.add_argument('--modes', default=','.join(MODES),
                        help='comma-separated engine modes: eager (no CUDA graphs), graph '
                             '(CUDA graphs; skipped on CPU); default %(default)s')
    parser.add_argument('--camera-hz', type=float, default=30.0, metavar='HZ',
                        help='synthetic camera rate for the node figure (default %(default)s)')
    parser.add_argument('--node-seconds', type=float, default=20.0, metavar='S',
                        help='how long the node runs; 0 skips the node (default %(default)s)')
    parser.add_argument('--instruction', default=DEFAULT_INSTRUCTION, metavar='TEXT',
                        help='instruction for every prediction (default "%(default)s")')
    parser.add_argument('--out', type=Path, default=Path('benchmark.json'), metavar='FILE.json',
                        help='JSON report (default %(default)s)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bars')
    parser.add_argument('--cpu-knobs', default=None, metavar='SETTINGS',
                        help='instead of the modes and the node: compare CPU engine settings '
                             'side by side, one engine each on the same images (comma-separated '
                             'from: ' + ', '.join(KNOB_NAMES) + '; the first is the '
                             'reference)')
    parser.add_argument('--clients', default='1,2,4', metavar='K,K,...',
                        help='with --engine-url: numbers of concurrent robot clients to run '
                             'against the server, one after another (default %(default)s)')
    parser.add_argument('--requests-per-client', type=int, default=4, metavar='N',
                        help='with --engine-url: requests each client sends, each on a new '
                             'image (default %(default)s)')
    parser.add_argument('--compare-in-process', action='store_true',
                        help='with --engine-url: also measure the in-process engine on this '
                             'machine (needs the engine installed) and print the ratios')
    parser.add_argument('--arm', type=float, default=None, metavar='SECONDS',
                        help='instead of the modes and the node: drive the simulated arm '
                             '(MoveIt Servo semantics) with publish_mode pulse and stream side '
                             'by side, SECONDS each, on a GPU-speed (0.1 s) and a CPU-speed '
                             '(2.0 s) synthetic engine, then on this engine unless --model is '
                             "'synthetic'; prints the per-action error, halts and idle table")
    add_preprocessing_arguments(parser)
    add_engine_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check everything that fails fast, run the benchmark, print its tables."""
    from openvla_ros.core.engine import early_decoder
    from openvla_ros.core.prompt import clean_instruction
    from openvla_ros.tools.benchmark import check_options, format_tables, run_benchmark

    if args.arm is not None:
        return _run_arm(args)
    modes = tuple(m.strip() for m in args.modes.split(',') if m.strip())
    check_options(args.images, args.warmup, modes, args.camera_hz, args.node_seconds)
    clean_instruction(args.instruction)
    preparation = preparation_from_args(args)
    statistics_file = statistics_file_from_args(args)
    early_decoder(args.model, args.unnorm_key, statistics_file)
    engine = engine_config_from_args(args)
    if engine.remote:
        return _run_fleet(args, engine, preparation, statistics_file)
    if args.cpu_knobs:
        from openvla_ros.tools.cpu_knobs_benchmark import format_knobs, run_knobs
        names = [name.strip() for name in args.cpu_knobs.split(',') if name.strip()]
        report = run_knobs(args.model, args.unnorm_key, names, images=args.images,
                           warmup=args.warmup, engine=engine, out=args.out,
                           progress=not args.no_progress)
        print(format_knobs(report['cpu_knobs']))
    else:
        report = run_benchmark(args.model, args.unnorm_key, images=args.images,
                               warmup=args.warmup, modes=modes, camera_hz=args.camera_hz,
                               node_seconds=args.node_seconds, engine=engine,
                               instruction=args.instruction, out=args.out,
                               progress=not args.no_progress, preparation=preparation,
                               statistics_file=statistics_file)
        print(format_tables(report))
    print(f"wall time {report['wall_time_s']:.1f} s; report: {args.out}")
    return 0


def _run_arm(args: argparse.Namespace) -> int:
    import os

    from openvla_ros.node.parameters import engine_values, preparation_values
    from openvla_ros.tools.arm_demo import benchmark_arm, benchmark_table
    if args.arm < 2.0:
        raise ValueError(f'--arm must be at least 2 s per run, got {args.arm}')
    real = None
    if args.model != 'synthetic':
        from openvla_ros.core.engine import early_decoder
        statistics_file = statistics_file_from_args(args)
        early_decoder(args.model, args.unnorm_key, statistics_file)
        real = {'model': args.model, 'unnorm_key': args.unnorm_key,
                'statistics_file': statistics_file or '',
                **preparation_values(preparation_from_args(args)),
                **engine_values(engine_config_from_args(args))}
    before = os.getloadavg()[0]
    rows = benchmark_arm(duration=args.arm, real=real)
    print(benchmark_table(rows), flush=True)
    # Gaps and halts depend on the CPU left to this process: say how busy the machine was.
    print(f'load average {before:.1f} before, {os.getloadavg()[0]:.1f} after, '
          f'{os.cpu_count()} CPUs', flush=True)
    failed = [f"{row['engine']} {row['mode']}: {row['reason']}" for row in rows if row['reason']]
    for line in failed:
        print(f'FAILED {line}', flush=True)
    return 1 if failed else 0


def _run_fleet(args: argparse.Namespace, engine, preparation, statistics_file) -> int:
    import json

    from openvla_ros.tools.fleet import format_fleet, run_fleet_benchmark
    try:
        clients = [int(k) for k in args.clients.split(',') if k.strip()]
    except ValueError:
        raise ValueError(f'--clients must be comma-separated counts, got {args.clients!r}')
    if not clients or min(clients) < 1 or args.requests_per_client < 1:
        raise ValueError('--clients and --requests-per-client must be positive')
    report = run_fleet_benchmark(engine.url, args.model, args.unnorm_key, clients,
                                 args.requests_per_client, engine=engine,
                                 instruction=args.instruction,
                                 compare_in_process=args.compare_in_process,
                                 preparation=preparation, statistics_file=statistics_file,
                                 progress=not args.no_progress)
    args.out.write_text(json.dumps(report, indent=2))
    print(format_fleet(report['fleet']))
    local = report.get('in_process')
    if local:
        ratios = ', '.join(f"K={run['clients']}: {run['ratio_vs_in_process']:.2f}x"
                           for run in report['fleet']['runs'])
        print(f"in-process engine here: {local['actions_per_s']:.3f} actions/s; fleet "
              f'aggregate vs in-process: {ratios}')
    print(f"wall time {report['wall_time_s']:.1f} s; report: {args.out}")
    return 0
