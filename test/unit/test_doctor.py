# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros doctor`` on this machine, and its verdict logic."""

import json
import os
import subprocess
import sys

from openvla_ros.cli import doctor as doctor_command
from openvla_ros.tools import doctor


#: An environment without the engine (the Jazzy no-engine tiers) gets FAIL for vllm and torch.
#: Asked in a fresh process, as doctor's own: this one may block imports (test_tiers).
ENGINE_INSTALLED = subprocess.run(
    [sys.executable, '-c', 'import importlib.util, sys; sys.exit(0 if all('
     'importlib.util.find_spec(n) for n in ("vllm", "torch")) else 1)'],
    env={k: v for k, v in os.environ.items() if k != 'OPENVLA_ROS_BLOCK_IMPORTS'},
    timeout=120).returncode == 0
EXPECTED_EXIT = 0 if ENGINE_INSTALLED else 1


def _cpu_flags():
    with open('/proc/cpuinfo', encoding='utf-8') as stream:
        for line in stream:
            if line.startswith('flags'):
                return set(line.split(':', 1)[1].split())
    return set()


def test_doctor_on_this_machine_names_the_cpu_and_the_dtype():
    done = subprocess.run([sys.executable, '-m', 'openvla_ros.cli', 'doctor', '--json'],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == EXPECTED_EXIT, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    flags = _cpu_flags()
    native = bool(flags & {'avx512_bf16', 'amx_bf16'})
    assert report['device'] == 'cpu'      # no GPU on the machines this suite runs on
    assert report['dtype'] == ('bfloat16' if native else 'float32')
    assert ('AVX2' in report['cpu_kind']) == ('avx512f' not in flags and 'avx2' in flags)
    names = [check['name'] for check in report['checks']]
    for name in ('cpu', 'dtype auto', 'vllm', 'torch', 'rclpy', 'expected latency'):
        assert name in names
    failed = {c['name'] for c in report['checks'] if c['level'] == 'FAIL'}
    assert failed == (set() if ENGINE_INSTALLED else {'vllm', 'torch'}), report['checks']


def test_doctor_text_output_has_one_verdict_per_line():
    done = subprocess.run([sys.executable, '-m', 'openvla_ros.cli', 'doctor'],
                          capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == EXPECTED_EXIT
    assert all(line[:6] in ('[ OK ]', '[WARN]', '[FAIL]') for line in lines[:-1])
    assert lines[-1].startswith('doctor: ')


def test_a_failed_check_fails_the_command(monkeypatch, capsys):
    monkeypatch.setattr(doctor.importlib.util, 'find_spec',
                        lambda name: None if name == 'vllm' else object())
    check = doctor.check_vllm()
    assert check.level == doctor.FAIL and 'setup_venv' in check.fix
    monkeypatch.setattr(doctor, 'diagnose', lambda: ([check], {'dtype': 'float32'}))
    assert doctor_command.run(type('Args', (), {'json': False})()) == 1
    assert '[FAIL] vllm: not installed' in capsys.readouterr().out


def test_doctor_says_whether_the_action_interface_is_built(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    for built, level in ((False, doctor.WARN), (True, doctor.OK)):
        monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a, built=built: (
            (object() if built else None) if name == 'openvla_ros_interfaces'
            else real(name, *a)))
        check = next(c for c in doctor.check_ros() if c.name == 'actions')
        assert check.level == level
        if not built:
            assert 'scripts/build_interfaces.sh' in check.fix
