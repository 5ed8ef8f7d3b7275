# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``ros2 launch openvla_ros policy.launch.py`` from a colcon install space, until active.

What a ROS 2 user does after ``colcon build`` and ``source install/setup.bash``, with the
generated checkpoint as the model. Needs the ROS 2 launch stack (``ros2 launch``); skipped with
that reason where it is absent.
"""

import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from colcon_harness import build_workspace, sourced  # noqa: I100

pytestmark = pytest.mark.engine
ACTIVE_TIMEOUT_S = 600   # engine start-up: one to two minutes on 2 CPU cores, more under load
STARTED = re.compile(r'\[policy_node-\d+\]: process started with pid \[(\d+)\]')


def test_ros2_launch_from_the_install_space_reaches_active(test_model, tmp_path):
    ros2 = Path(sys.executable).parent / 'ros2'
    if not ros2.is_file():
        pytest.skip('ros2 launch (ROS 2 launch stack) is not installed in this environment; '
                    'it ships with ROS 2 distributions and is not on PyPI')
    install, _ = build_workspace(tmp_path / 'ws')
    launch = subprocess.Popen(
        sourced(install, f'exec "{ros2}" launch openvla_ros policy.launch.py '
                         f'model:="{test_model}" namespace:=colcon_launch'),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        cwd=tmp_path)
    lines = []
    active = threading.Event()

    def read():
        for line in launch.stdout:
            lines.append(line)
            if 'active: publishing actions' in line:
                active.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + ACTIVE_TIMEOUT_S
        while not active.is_set() and launch.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert active.is_set(), ''.join(lines[-40:])
        # The node is the install space's executable: ros2 launch names the process's pid.
        pids = [int(m.group(1)) for m in map(STARTED.search, lines) if m]
        assert pids, ''.join(lines[:20])
        command = Path(f'/proc/{pids[0]}/cmdline').read_bytes().decode().split('\0')
        assert str(install / 'openvla_ros' / 'lib' / 'openvla_ros' / 'policy_node') in command, \
            command
        os.killpg(launch.pid, signal.SIGINT)
        assert launch.wait(timeout=120) == 0, ''.join(lines[-40:])
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()
        reader.join(timeout=5)
