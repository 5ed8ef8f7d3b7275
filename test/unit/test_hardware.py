# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The engine dtype choice, with the platform and CPU capabilities injected."""

import pytest

from openvla_ros.core.hardware import (expected_action_time, Machine, normalize_dtype,
                                       read_cpu_info, resolve_dtype)

AVX2 = frozenset({'sse4_2', 'avx', 'avx2', 'fma'})
AVX512_BF16 = AVX2 | {'avx512f', 'avx512bw', 'avx512_bf16'}
AVX512_NO_BF16 = AVX2 | {'avx512f', 'avx512bw'}
AMX = AVX512_NO_BF16 | {'amx_tile', 'amx_bf16', 'amx_int8'}


@pytest.mark.parametrize('machine, dtype', [
    (Machine('cuda', AVX2), 'bfloat16'),
    (Machine('rocm', AVX2), 'bfloat16'),
    (Machine('cpu', AVX512_BF16), 'bfloat16'),
    (Machine('cpu', AMX), 'bfloat16'),
    (Machine('cpu', frozenset({'asimd', 'bf16'})), 'bfloat16'),
    (Machine('cpu', AVX2), 'float32'),
    (Machine('cpu', AVX512_NO_BF16), 'float32'),
    (Machine('cpu', frozenset()), 'float32'),
])
def test_auto_picks_bfloat16_only_where_it_is_native(machine, dtype):
    choice = resolve_dtype('auto', machine)
    assert choice.dtype == dtype
    assert choice.requested == 'auto' and choice.reason and not choice.warning


def test_auto_reasons_name_what_decided():
    assert 'avx512_bf16' in resolve_dtype('auto', Machine('cpu', AVX512_BF16)).reason
    assert 'amx_bf16' in resolve_dtype('auto', Machine('cpu', AMX)).reason
    reason = resolve_dtype('auto', Machine('cpu', AVX2)).reason
    assert 'AVX2' in reason and 'emulated' in reason
    assert 'cuda' in resolve_dtype('auto', Machine('cuda', AVX2)).reason


@pytest.mark.parametrize('requested, machine', [
    ('float32', Machine('cuda', AVX2)),
    ('float16', Machine('cuda', AVX2)),
    ('bfloat16', Machine('cpu', AVX512_BF16)),
    ('float32', Machine('cpu', AVX512_BF16)),
    ('bfloat16', Machine('cuda', frozenset())),
])
def test_explicit_values_are_honoured_without_warning(requested, machine):
    choice = resolve_dtype(requested, machine)
    assert (choice.dtype, choice.warning) == (requested, '')
    assert 'explicitly' in choice.reason


def test_explicit_bfloat16_on_a_cpu_without_native_bf16_warns_with_the_slowdown():
    choice = resolve_dtype('bfloat16', Machine('cpu', AVX2))
    assert choice.dtype == 'bfloat16'
    assert 'emulates' in choice.warning and '380x' in choice.warning
    assert 'auto' in choice.warning or 'float32' in choice.warning


@pytest.mark.parametrize('alias, name', [('half', 'float16'), ('float', 'float32'),
                                         ('BF16', 'bfloat16'), (None, 'auto'), ('', 'auto'),
                                         (' Auto ', 'auto')])
def test_aliases(alias, name):
    assert normalize_dtype(alias) == name


def test_unknown_dtype_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        resolve_dtype('float64', Machine('cpu', AVX2))
    for name in ('auto', 'bfloat16', 'float16', 'float32'):
        assert name in str(error.value)


def test_read_cpu_info(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nmodel name\t: Test CPU 9000\n'
                    'flags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n'
                    'model name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16\n')
    flags, model = read_cpu_info(str(info))
    assert model == 'Test CPU 9000'
    assert flags == frozenset({'fpu', 'avx2', 'avx512f', 'avx512_bf16'})
    assert read_cpu_info(str(tmp_path / 'missing')) == (frozenset(), '')


def test_cpu_kind_and_latency_class():
    assert Machine('cpu', AVX2).cpu_kind.startswith('AVX2')
    assert Machine('cpu', AVX512_BF16).cpu_kind == 'AVX-512 with bf16'
    assert Machine('cpu', AMX).cpu_kind == 'AMX'
    assert 'minutes' in expected_action_time(Machine('cpu', AVX2), 'bfloat16')
    assert 'float32' in expected_action_time(Machine('cpu', AVX2), 'float32')
    assert 'GPU' in expected_action_time(Machine('cuda', AVX2), 'bfloat16')


def test_read_memory_gib(tmp_path):
    from openvla_ros.core.hardware import read_memory_gib
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal:       24684484 kB\nMemFree: 1 kB\nMemAvailable:    2097152 kB\n'
                       'HugePages_Total:       0\n')
    assert read_memory_gib(str(meminfo)) == {'total': 24684484 / 2 ** 20, 'available': 2.0}
    assert read_memory_gib(str(tmp_path / 'missing')) == {}
