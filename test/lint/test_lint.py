"""ROS conventions: flake8 at 99 columns, pep257 docstrings, a well-formed package.xml."""

from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [str(ROOT / name) for name in ('openvla_ros', 'launch', 'test', 'setup.py')]
# The ignore list of ament_pep257: no docstring demanded of every test and helper.
PEP257_IGNORE = 'D100,D101,D102,D103,D104,D105,D106,D107,D203,D212,D404'


@pytest.mark.linter
def test_flake8():
    done = subprocess.run([sys.executable, '-m', 'flake8', '--max-line-length', '99',
                           *SOURCES], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.linter
def test_pep257():
    done = subprocess.run([sys.executable, '-m', 'pydocstyle', '--convention=pep257',
                           f'--add-ignore={PEP257_IGNORE}', *SOURCES],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.linter
def test_package_xml():
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'openvla_ros'
    depends = {e.text for e in root if e.tag.endswith('depend')}
    for needed in ('rclpy', 'sensor_msgs', 'geometry_msgs', 'std_msgs', 'lifecycle_msgs',
                   'diagnostic_msgs', 'cv_bridge', 'python3-numpy', 'python3-pil',
                   'launch', 'launch_ros', 'launch_testing'):
        assert needed in depends, needed
    assert root.find('export/build_type').text == 'ament_python'
