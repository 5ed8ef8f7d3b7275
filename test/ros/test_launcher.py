# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The ``lib/openvla_ros/policy_node`` launcher runs with its own prefix's Python."""

import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

LAUNCHER = Path(__file__).resolve().parents[2] / 'scripts' / 'policy_node'


def test_launcher_starts_the_node_without_an_activated_environment(tmp_path):
    # An install prefix as pip lays it out: <prefix>/bin/python3 and the launcher in
    # <prefix>/lib/openvla_ros. This prefix's python3 is this test's interpreter.
    (tmp_path / 'bin').mkdir()
    python = tmp_path / 'bin' / 'python3'
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (tmp_path / 'lib' / 'openvla_ros').mkdir(parents=True)
    launcher = tmp_path / 'lib' / 'openvla_ros' / 'policy_node'
    shutil.copy(LAUNCHER, launcher)
    # No virtual environment on PATH, as when ros2 launch starts it from a plain shell; the
    # package comes from the source tree the way the installed one would from site-packages.
    env = dict(os.environ, PATH='/usr/bin:/bin',
               PYTHONPATH=str(LAUNCHER.parent.parent))
    env.pop('VIRTUAL_ENV', None)
    node = subprocess.Popen([str(launcher), '--ros-args', '-r', '__ns:=/launcher_probe'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    try:
        deadline = time.monotonic() + 120
        for line in node.stdout:
            lines.append(line)
            if 'ready (unconfigured)' in line or time.monotonic() > deadline:
                break
        assert any('ready (unconfigured)' in line for line in lines), ''.join(lines)
        node.send_signal(signal.SIGINT)
        assert node.wait(timeout=60) == 0, ''.join(lines)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
