# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros sim-arm``: the simulated arm node (a test and demo instrument)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sim-arm`` subcommand."""
    parser = subparsers.add_parser(
        'sim-arm', help='run a simulated arm node that consumes ee_delta (MoveIt Servo '
                        'semantics) or pose_target and publishes ee_pose and a camera image',
        description='A simulated end effector for testing and demos, not a robot model: '
                    'ee_delta twists are held until the next one and halt after '
                    '--incoming-command-timeout (as MoveIt Servo in speed_units), or '
                    'pose_target is followed at a speed limit; ee_pose and a camera image '
                    'drawn from the pose are published. Ctrl-C stops it.')
    parser.add_argument('--input', choices=('twist', 'pose'), default='twist',
                        help='command input (default %(default)s)')
    parser.add_argument('--namespace', default='',
                        help="ROS namespace, the policy node's to connect to it")
    parser.add_argument('--incoming-command-timeout', type=float, default=0.1,
                        help='halt after this long without a twist, s (default %(default)s)')
    parser.add_argument('--camera-hz', type=float, default=10.0,
                        help='camera image rate, 0 = none (default %(default)s)')
    parser.add_argument('--rate-hz', type=float, default=200.0,
                        help='integration rate, >= 100 (default %(default)s)')
    parser.add_argument('--benchmark', action='store_true',
                        help='instead of serving: run the policy node on the simulated arm '
                             'with synthetic engines (0.1 s and 2.0 s per action) in pulse and '
                             'stream mode and print the figures side by side')
    parser.add_argument('--seconds', type=float, default=30.0,
                        help='seconds per benchmark run (default %(default)s)')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the node until Ctrl-C."""
    if args.rate_hz < 100.0:
        raise ValueError(f'--rate-hz must be >= 100 (a servo loop), got {args.rate_hz}')
    if args.incoming_command_timeout <= 0.0 or args.camera_hz < 0.0:
        raise ValueError('--incoming-command-timeout must be > 0 and --camera-hz >= 0')
    if args.benchmark:
        if args.seconds < 2.0:
            raise ValueError(f'--seconds must be at least 2, got {args.seconds}')
        from openvla_ros.tools.arm_demo import benchmark_arm, benchmark_table
        import os
        before = os.getloadavg()[0]
        rows = benchmark_arm(duration=args.seconds)
        print(benchmark_table(rows), flush=True)
        # Gaps and halts depend on the CPU left to this process: say how busy the machine was.
        print(f'load average {before:.1f} before, {os.getloadavg()[0]:.1f} after, '
              f'{os.cpu_count()} CPUs', flush=True)
        return 0 if all(row['actions'] for row in rows) else 1
    from openvla_ros.node import sim_arm
    ros_args = ['--ros-args', '-p', f'input:={args.input}',
                '-p', f'incoming_command_timeout:={float(args.incoming_command_timeout)}',
                '-p', f'camera_hz:={float(args.camera_hz)}',
                '-p', f'rate_hz:={float(args.rate_hz)}']
    if args.namespace:
        ros_args += ['-r', f'__ns:=/{args.namespace.strip("/")}']
    sim_arm.main(ros_args)
    return 0
