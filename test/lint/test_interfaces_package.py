# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The interface package is a well-formed ament_cmake rosidl package colcon and rosdep accept."""

from pathlib import Path
import re
import xml.etree.ElementTree as ElementTree

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / 'openvla_ros_interfaces'


@pytest.mark.linter
def test_interfaces_package_xml():
    root = ElementTree.parse(PACKAGE / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'openvla_ros_interfaces' == PACKAGE.name
    assert root.find('export/build_type').text == 'ament_cmake'
    by_tag = {}
    for element in root:
        by_tag.setdefault(element.tag, set()).add(element.text)
    assert {'ament_cmake', 'rosidl_default_generators'} <= by_tag['buildtool_depend']
    assert 'rosidl_default_runtime' in by_tag['exec_depend']
    assert 'action_msgs' in by_tag['depend']   # every action depends on it
    assert by_tag['member_of_group'] == {'rosidl_interface_packages'}


@pytest.mark.linter
def test_every_interface_file_is_generated():
    cmake = (PACKAGE / 'CMakeLists.txt').read_text()
    listed = set(re.findall(r'"((?:msg|srv|action)/\w+\.(?:msg|srv|action))"', cmake))
    present = {str(p.relative_to(PACKAGE)) for p in PACKAGE.glob('*/*')
               if p.suffix in ('.msg', '.srv', '.action')}
    assert listed == present


@pytest.mark.linter
def test_every_action_field_is_commented():
    """A field's meaning and unit sit in the comment line right above it."""
    for path in PACKAGE.glob('action/*.action'):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip() and not line.startswith('#') and line != '---':
                assert lines[number - 1].startswith('#'), f'{path.name}:{number + 1}: {line}'
