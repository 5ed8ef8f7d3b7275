# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""config/policy.yaml and the README's parameter table agree with the node's parameter table."""

from pathlib import Path
import re

import pytest

from openvla_ros.core.engine import EngineConfig
from openvla_ros.node.parameters import BY_NAME, check_change, TABLE

ROOT = Path(__file__).resolve().parents[2]


def yaml_values():
    yaml = pytest.importorskip('yaml')
    document = yaml.safe_load((ROOT / 'config' / 'policy.yaml').read_text())
    values = dict(document['/**']['ros__parameters'])
    for name, value in values.pop('engine').items():
        values[f'engine.{name}'] = value
    return values


def readme_rows():
    text = (ROOT / 'README.md').read_text()
    section = text.split('## Parameters', 1)[1].split('\n## ', 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r'\| `([a-z_.]+)` \| (.+?) \| (read-only|yes) \|', line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def literal(text):
    """Return the value a README cell such as ``0.0`` or ``'processor'`` shows."""
    text = text.strip().strip('`')
    if text in ("''", ''):
        return ''
    if text in ('true', 'false'):
        return text == 'true'
    if text.startswith('['):
        return [float(v) for v in text.strip('[]').split(',')]
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def test_yaml_sets_every_parameter_to_its_default_or_a_marked_override():
    values = yaml_values()
    assert set(values) == set(BY_NAME), set(values) ^ set(BY_NAME)
    for name, value in values.items():
        param = BY_NAME[name]
        expected = param.yaml if param.yaml is not None else param.default
        assert value == expected, (name, value, expected)
        if param.yaml is not None:
            assert param.yaml_reason, f'{name}: a YAML override needs its reason'


def test_readme_table_lists_every_parameter_with_its_default():
    rows = readme_rows()
    assert set(rows) == set(BY_NAME), set(rows) ^ set(BY_NAME)
    for name, (default_cell, runtime) in rows.items():
        param = BY_NAME[name]
        shown = re.match(r'(`[^`]*`)(?: \(yaml: (`[^`]*`)\))?', default_cell)
        assert shown, (name, default_cell)
        default = literal(shown.group(1))
        if isinstance(param.default, list):
            assert default == [float(v) for v in param.default], name
        else:
            assert default == param.default, (name, default, param.default)
        marked = shown.group(2)
        assert (literal(marked) if marked else None) == param.yaml, name
        assert (runtime == 'read-only') == param.read_only, name


def test_engine_parameters_are_generated_from_the_engine_config():
    options = {option.name: option.default for option in EngineConfig.options()}
    engine = {name[len('engine.'):]: p.default for name, p in BY_NAME.items()
              if name.startswith('engine.')}
    assert engine == options
    assert all(BY_NAME[f'engine.{name}'].read_only for name in options)


def test_run_time_checks():
    current = {p.name: p.default for p in TABLE}
    assert check_change(current, {'output_mode': 'velocity'}) == ''
    assert 'output_mode' in check_change(current, {'output_mode': 'warp'})
    assert 'stamp_source' in check_change(current, {'stamp_source': 'later'})
    assert 'frame_id' in check_change(current, {'frame_id': '  '})
    assert 'action_scale' in check_change(current, {'action_scale': [1.0] * 5})
    assert 'max_rate_hz' in check_change(current, {'max_rate_hz': -1.0})
