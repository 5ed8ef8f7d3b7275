# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Core imports no ROS and no engine; test/unit needs neither (layering: test_cli_layout)."""

import os
from pathlib import Path
import pkgutil
import re
import subprocess
import sys

import openvla_ros.core

ROOT = Path(__file__).resolve().parents[2]
#: What a robot computer without ROS 2 or an engine lacks.
BLOCKED = ('rclpy', 'vllm', 'torch', 'transformers', 'sensor_msgs', 'std_msgs', 'geometry_msgs',
           'diagnostic_msgs', 'lifecycle_msgs', 'rcl_interfaces', 'builtin_interfaces')


def test_core_imports_neither_ros_nor_the_engine():
    modules = [f'openvla_ros.core.{m.name}' for m in pkgutil.iter_modules(
        openvla_ros.core.__path__)]
    assert len(modules) >= 10
    code = ('import sys\n'
            + ''.join(f'import {name}\n' for name in modules)
            + f'print(sorted(n for n in sys.modules if n.split(".")[0] in {BLOCKED!r}))')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '[]', done.stdout


def test_unit_tier_passes_without_ros_and_the_engine(test_model):
    # The generated checkpoint is test data that some unit tests read (config, tokenizer):
    # it is built here, with torch, before the blocked run uses it from the cache.
    # Third-party pytest plugins stay out of the blocked run: a ROS 2 distribution (or CI with
    # the launch stack) installs launch_testing's plugin, whose collection hooks import ROS;
    # the unit tier needs no plugin, so what happens to be installed cannot change its outcome.
    env = dict(os.environ, OPENVLA_ROS_BLOCK_IMPORTS=','.join(BLOCKED),
               PYTEST_DISABLE_PLUGIN_AUTOLOAD='1')
    done = subprocess.run(
        [sys.executable, '-m', 'pytest', 'test/unit', '-q', '-p', 'no:cacheprovider',
         '-x', '-k', 'not test_unit_tier_passes_without_ros_and_the_engine'],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # Tests ran, not a collection that skipped everything.
    passed = re.search(r'(\d+) passed', done.stdout)
    assert passed and int(passed.group(1)) >= 200, done.stdout[-2000:]


def test_unit_tier_needs_no_ros():
    """No unit-tier module skips itself for want of rclpy: such a test belongs in test/ros."""
    needle = 'importorskip(' + "'rclpy'"
    offenders = [path.name for path in sorted((ROOT / 'test' / 'unit').glob('test_*.py'))
                 if needle in path.read_text()]
    assert not offenders, f'{offenders} need rclpy: move them to test/ros'
