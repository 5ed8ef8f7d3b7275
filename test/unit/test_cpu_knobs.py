# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The CPU engine settings: what is applied, what the user keeps, how they are compared."""

import os

from openvla_ros.core import cpu_knobs
from openvla_ros.tools.cpu_knobs_benchmark import format_knobs


def test_every_named_setting_exists():
    assert tuple(cpu_knobs.knob_settings()) == cpu_knobs.KNOB_NAMES
    assert cpu_knobs.ADOPTED in cpu_knobs.KNOB_NAMES
    assert cpu_knobs.knob_settings()['vllm-default'] == {}


def test_adopted_environment_gives_every_core_to_the_model(monkeypatch):
    for key in ('VLLM_CPU_NUM_OF_RESERVED_CPU', 'LD_PRELOAD', cpu_knobs.SETTINGS_ENV):
        monkeypatch.delenv(key, raising=False)
    assert cpu_knobs.engine_environment() == {'VLLM_CPU_NUM_OF_RESERVED_CPU': '0'}


def test_user_settings_win_and_vllm_defaults_can_be_asked_for(monkeypatch):
    monkeypatch.setenv('VLLM_CPU_NUM_OF_RESERVED_CPU', '1')
    monkeypatch.delenv(cpu_knobs.SETTINGS_ENV, raising=False)
    assert cpu_knobs.engine_environment() == {}
    monkeypatch.delenv('VLLM_CPU_NUM_OF_RESERVED_CPU')
    monkeypatch.setenv(cpu_knobs.SETTINGS_ENV, 'vllm')
    assert cpu_knobs.engine_environment() == {}


def test_environment_applies_and_restores(monkeypatch):
    monkeypatch.setenv('OPENVLA_ROS_PROBE_A', 'before')
    monkeypatch.delenv('OPENVLA_ROS_PROBE_B', raising=False)
    with cpu_knobs.environment({'OPENVLA_ROS_PROBE_A': None, 'OPENVLA_ROS_PROBE_B': 'set'}):
        assert 'OPENVLA_ROS_PROBE_A' not in os.environ
        assert os.environ['OPENVLA_ROS_PROBE_B'] == 'set'
    assert os.environ['OPENVLA_ROS_PROBE_A'] == 'before'
    assert 'OPENVLA_ROS_PROBE_B' not in os.environ


def test_table_shows_ratios_against_the_first():
    rows = [
        {'setting': 'vllm-default', 'status': 'measured', 'environment': {}, 'startup_s': 50.0,
         'e2e_ms': {'mean': 8000.0, 'p95': 8500.0}, 'speedup': 1.0},
        {'setting': 'all-cores+iomp', 'status': 'measured', 'startup_s': 45.0,
         'environment': {'VLLM_CPU_NUM_OF_RESERVED_CPU': '0', 'LD_PRELOAD': '/a/libiomp5.so'},
         'e2e_ms': {'mean': 4000.0, 'p95': 4100.0}, 'speedup': 2.0},
        {'setting': 'all-cores+tcmalloc', 'status': 'skipped', 'reason': 'library not found'},
    ]
    table = format_knobs(rows)
    assert 'speed-up vs vllm-default' in table
    assert '2.00x' in table and 'LD_PRELOAD=libiomp5.so' in table and '/a/' not in table
    assert 'skipped: library not found' in table
