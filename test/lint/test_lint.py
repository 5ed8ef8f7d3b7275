# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
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


HEADER = '# Copyright 2026 openvla_ros developers\n# SPDX-License-Identifier: Apache-2.0\n'


@pytest.mark.linter
def test_copyright():
    """Every source file starts with the licence header (after a shebang line)."""
    missing = []
    files = [*(ROOT / 'openvla_ros').rglob('*.py'), *(ROOT / 'test').rglob('*.py'),
             *(ROOT / 'launch').glob('*.py'), ROOT / 'setup.py', ROOT / 'scripts' / 'policy_node',
             ROOT / 'scripts' / 'sim_arm']
    for path in files:
        text = path.read_text()
        if text.startswith('#!'):
            text = text.split('\n', 1)[1]
        if not text.startswith(HEADER):
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f'no licence header: {missing}'


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
    assert root.findtext('license') == 'Apache-2.0'
    # The package.xml format 3 schema (REP 149): name, version, description, maintainer(s),
    # license(s) in this order, then the other elements in any order.
    tags = [e.tag for e in root if isinstance(e.tag, str)]
    head = [tag for i, tag in enumerate(tags) if i == 0 or tag != tags[i - 1]][:5]
    assert head == ['name', 'version', 'description', 'maintainer', 'license'], head
    allowed = {'name', 'version', 'description', 'maintainer', 'license', 'url', 'author',
               'buildtool_depend', 'build_depend', 'build_export_depend', 'exec_depend',
               'buildtool_export_depend', 'depend', 'doc_depend', 'test_depend', 'conflict',
               'replace', 'group_depend', 'member_of_group', 'export'}
    assert set(tags) <= allowed, set(tags) - allowed
    for message_package in ('rcl_interfaces', 'diagnostic_msgs', 'lifecycle_msgs'):
        assert message_package in depends, message_package


@pytest.mark.linter
def test_dependencies_are_declared():
    """Third-party imports of the package are declared in setup.py and package.xml alike."""
    setup_text = (ROOT / 'setup.py').read_text()
    xml = (ROOT / 'package.xml').read_text()
    for module, pip_name, rosdep in (('numpy', 'numpy', 'python3-numpy'),
                                     ('PIL', 'pillow', 'python3-pil'),
                                     ('psutil', 'psutil', 'python3-psutil')):
        used = any(f'import {module}' in p.read_text() or f'from {module}' in p.read_text()
                   for p in (ROOT / 'openvla_ros').rglob('*.py'))
        assert used, module
        assert f"'{pip_name}'" in setup_text, pip_name
        assert f'>{rosdep}<' in xml, rosdep
