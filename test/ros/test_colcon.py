# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``colcon build`` of this repository: the install space a ROS 2 user gets, and its node.

No engine needed: the node from the install space starts and waits unconfigured. The engine
tier launches it with ``ros2 launch`` until active (test/engine/test_colcon_launch.py).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from colcon_harness import build_workspace, INTERFACES, ROOT, sourced  # noqa: I100


@pytest.fixture(scope='module')
def install(tmp_path_factory):
    install, _ = build_workspace(tmp_path_factory.mktemp('colcon_ws'))
    return install


def test_install_space_layout(install):
    prefix = install / 'openvla_ros'
    node = prefix / 'lib' / 'openvla_ros' / 'policy_node'
    assert node.is_file() and os.access(node, os.X_OK)
    share = prefix / 'share' / 'openvla_ros'
    assert (share / 'launch' / 'policy.launch.py').is_file()
    assert (share / 'config' / 'policy.yaml').is_file()
    assert (share / 'package.xml').read_text() == (ROOT / 'package.xml').read_text()
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'openvla_ros'
    assert marker.is_file()
    assert (install / 'setup.bash').is_file()


def test_interface_package_is_built_beside_it(install):
    if not (ROOT / INTERFACES / 'package.xml').is_file():
        pytest.skip(f'no {INTERFACES} package in this repository')
    prefix = install / INTERFACES
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / INTERFACES
    assert marker.is_file()
    assert list(prefix.glob('lib/python3*/site-packages/openvla_ros_interfaces/action'))


def test_installed_node_starts_unconfigured(install):
    # `ros2 run openvla_ros policy_node` (the launch stack's) starts exactly this executable.
    executable = install / 'openvla_ros' / 'lib' / 'openvla_ros' / 'policy_node'
    node = subprocess.Popen(
        sourced(install, f'exec "{executable}" --ros-args -r __ns:=/colcon_probe '
                         '-r __node:=colcon_policy'),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        cwd=install)
    lines = []
    try:
        deadline = time.monotonic() + 120
        for line in node.stdout:
            lines.append(line)
            if 'ready (unconfigured)' in line or time.monotonic() > deadline:
                break
        assert any('ready (unconfigured)' in line for line in lines), ''.join(lines)
        # The package the node runs is the install space's, not another copy on the path.
        probe = subprocess.run(
            sourced(install, f'"{sys.executable}" -c '
                             '"import openvla_ros; print(openvla_ros.__file__)"'),
            capture_output=True, text=True, timeout=60, cwd=install)
        assert str(install / 'openvla_ros') in probe.stdout, probe.stdout + probe.stderr
        os.killpg(node.pid, signal.SIGINT)
        assert node.wait(timeout=60) == 0, ''.join(lines)
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
