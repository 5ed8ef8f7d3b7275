# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Static types: ``mypy --strict`` is clean on the ROS-free core and the rclpy glue (issue 20).

The configuration (which third-party modules read as Any, and why) is in setup.cfg. mypy keeps
its cache in ``.mypy_cache`` at the repository root, so a second run takes seconds.
"""

import importlib.metadata
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ['openvla_ros/core', 'openvla_ros/node']


@pytest.mark.linter
def test_mypy_strict():
    pytest.importorskip('mypy', reason='mypy is not installed (pip install -e .[test])')
    # The types are checked against the default distribution's rclpy (Kilted, 9.x, annotated);
    # Jazzy's rclpy 7 leaves most of its API unannotated, which --strict reports as errors in
    # our calls, not in our code.
    try:
        rclpy_major = int(importlib.metadata.version('ros-rclpy').split('.')[0])
    except importlib.metadata.PackageNotFoundError:
        rclpy_major = None
    if rclpy_major is not None and rclpy_major < 9:
        pytest.skip(f'rclpy {rclpy_major}.x (Jazzy) is not annotated; types are checked with '
                    "the default distribution's rclpy 9 (make test)")
    done = subprocess.run([sys.executable, '-m', 'mypy', '--config-file', 'setup.cfg',
                           '--strict', *CHECKED], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
