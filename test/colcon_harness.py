# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Build this repository with ``colcon build`` in a temporary workspace, as a ROS user would."""

import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Not part of a source checkout a user would clone.
_NOT_SOURCE = shutil.ignore_patterns('.git', '.venv', '.venv-*', 'build', 'install', 'log',
                                     '__pycache__', '*.egg-info', '.pytest_cache', 'out')
INTERFACES = 'openvla_ros_interfaces'


def colcon_executable():
    """Return the colcon of this environment, or skip with the reason."""
    colcon = Path(sys.executable).parent / 'colcon'
    if not colcon.is_file():
        pytest.skip('colcon is not installed in this environment '
                    '(pip install colcon-common-extensions; ROS 2 distributions ship it)')
    return colcon


def base_paths(source):
    """Return the package paths colcon builds: the node package and, if present, its interfaces.

    colcon does not look for packages inside a package's folder, and this repository's root is
    the ``openvla_ros`` package, so the interface package is named explicitly (the README's
    colcon command does the same).
    """
    paths = [str(source)]
    if (source / INTERFACES / 'package.xml').is_file():
        paths.append(str(source / INTERFACES))
    return paths


def build_workspace(workspace):
    """Copy the repository into ``workspace/src``, ``colcon build`` it; return the install."""
    colcon = colcon_executable()
    source = workspace / 'src' / 'openvla_ros'
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    # This environment's cmake, ninja and generators first, and its prefix as the ament prefix a
    # sourced ROS 2 installation would give (the wheels' ament index lives there).
    prefixes = [sys.prefix] + [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)
                               if p and p != sys.prefix]
    env = dict(os.environ, PATH=f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}',
               AMENT_PREFIX_PATH=os.pathsep.join(prefixes))
    done = subprocess.run(
        [str(colcon), 'build', '--event-handlers', 'console_direct-',
         '--base-paths', *base_paths(source)],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return workspace / 'install', done


def sourced(install, command):
    """Return a bash command line running ``command`` with the install space sourced."""
    return ['bash', '-c', f'source "{install}/setup.bash" && {command}']


def ament_prefix_path():
    """Return AMENT_PREFIX_PATH with this environment's prefix first (a pip install's index).

    ``ros2 launch`` and ``FindPackageShare`` find packages through it; the README tells pip
    users to set it the same way.
    """
    paths = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)
             if p and p != sys.prefix]
    return os.pathsep.join([sys.prefix] + paths)
