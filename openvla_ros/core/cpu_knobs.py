# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""CPU engine settings, and a side-by-side measurement of each (``benchmark --cpu-knobs``).

vLLM's CPU backend binds its OpenMP threads to cores and, on x86 and Arm, reserves one core per
worker for its scheduler process. On a 2-core machine that leaves the model one core. It also
suggests preloading tcmalloc and Intel OpenMP. Whether any of that helps is measured here, one
engine per setting, on the same distinct images, in one run; the package adopts only what
measured faster in repeated runs (see ``ADOPTED``).
"""

from __future__ import annotations

import contextlib
import glob
import os
from pathlib import Path
import sys
from typing import Any, Iterator, Mapping, Sequence


#: The settings ``benchmark --cpu-knobs`` can compare, in the order of ``knob_settings``.
KNOB_NAMES = ('vllm-default', 'all-cores', 'nobind', 'all-cores+tcmalloc', 'iomp',
              'all-cores+iomp', 'all-cores+iomp+tcmalloc')


def find_library(pattern: str) -> str | None:
    """Return the path of a shared library matching ``pattern`` (system or this venv), or None."""
    roots = [sys.prefix + '/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu',
             '/usr/lib64', '/usr/lib', '/usr/local/lib']
    for root in roots:
        found = sorted(glob.glob(os.path.join(root, pattern)))
        if found:
            return found[0]
    return None


def knob_settings() -> dict[str, dict[str, str | None]]:
    """Return each named setting as the environment it needs (None: library not found)."""
    tcmalloc = find_library('libtcmalloc_minimal.so.4') or find_library('libtcmalloc.so*')
    iomp = find_library('libiomp5.so')
    all_cores = {'VLLM_CPU_NUM_OF_RESERVED_CPU': '0'}
    return {
        # vLLM as installed: threads bound to the cores, one core kept for the scheduler.
        'vllm-default': {},
        # The model may use every core: the scheduler only waits while the model computes.
        'all-cores': dict(all_cores),
        'nobind': {'VLLM_CPU_OMP_THREADS_BIND': 'nobind'},
        'all-cores+tcmalloc': {**all_cores, 'LD_PRELOAD': tcmalloc},
        # Intel OpenMP in place of torch's libgomp (it serves the same GOMP_* entry points).
        'iomp': {'LD_PRELOAD': iomp},
        'all-cores+iomp': {**all_cores, 'LD_PRELOAD': iomp},
        'all-cores+iomp+tcmalloc': {**all_cores, 'LD_PRELOAD': f'{iomp}:{tcmalloc}'
                                    if iomp and tcmalloc else None},
    }


#: Set to ``vllm`` to run the CPU engine with vLLM's own settings instead of ``ADOPTED``.
SETTINGS_ENV = 'OPENVLA_ROS_CPU_SETTINGS'
#: The setting this package applies to a CPU engine: the only one that measured faster in
#: repeated runs (README, "CPUs"); the preloads were within run-to-run noise.
ADOPTED = 'all-cores'


def engine_environment() -> dict[str, str]:
    """Return the environment a CPU engine gets here, leaving alone what the user set.

    vLLM keeps one core per worker for its scheduler process, which on a 2-core robot computer
    halves the model's compute while the scheduler only waits; every core goes to the model.
    Nothing when ``OPENVLA_ROS_CPU_SETTINGS=vllm``.
    """
    if os.environ.get(SETTINGS_ENV, '').strip().lower() == 'vllm':
        return {}
    wanted = knob_settings()[ADOPTED]
    return {key: value for key, value in wanted.items()
            if value is not None and key not in os.environ}


@contextlib.contextmanager
def environment(overrides: Mapping[str, str | None]) -> Iterator[None]:
    """Apply ``overrides`` to ``os.environ`` (inherited by the engine's processes), then undo."""
    saved = {key: os.environ.get(key) for key in overrides}
    try:
        _set_environment(overrides)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def measure_knobs(model: str, unnorm_key: str | None, names: Sequence[str], images: int,
                  warmup: int, engine_options: Mapping[str, Any] | None = None,
                  salt: int = 0, progress: bool = True) -> list[dict[str, Any]]:
    """Start one engine per named setting and time it on the same images; return the rows.

    Each row has the setting's environment, the engine start-up and the end-to-end latency
    statistics; ``speedup`` is the first setting's mean latency over this one's (>1 = faster).
    """
    from openvla_ros.tools.benchmark import measure_engine
    from openvla_ros.core.engine import VllmPolicy

    settings = knob_settings()
    unknown = [name for name in names if name not in settings]
    if unknown or not names:
        raise ValueError(f'unknown CPU setting(s) {", ".join(unknown) or "(none)"}: choose from '
                         f'{", ".join(settings)}')
    rows = []
    # Each setting is measured from vLLM's own defaults, without the adopted one.
    base = {SETTINGS_ENV: 'vllm', 'VLLM_CPU_NUM_OF_RESERVED_CPU': None, 'LD_PRELOAD': None}
    for name in names:
        env = settings[name]
        missing = [key for key, value in env.items() if value is None]
        if missing:
            rows.append({'setting': name, 'status': 'skipped',
                         'reason': 'library not found (install libtcmalloc-minimal4 or '
                                   'intel-openmp to measure it)'})
            continue
        with environment({**base, **env}):
            policy = VllmPolicy(model, unnorm_key, engine_options=dict(engine_options or {}))
            try:
                figures = measure_engine(policy, images, warmup, salt=salt, progress=progress,
                                         label=name)
            finally:
                policy.close()
        rows.append({'setting': name, 'status': 'measured', 'environment': env,
                     'startup_s': policy.startup_s, 'dtype': policy.dtype_choice.dtype,
                     'e2e_ms': figures['e2e_ms'], 'ttft_ms': figures['ttft_ms']})
    measured = [row for row in rows if row['status'] == 'measured']
    if measured:
        reference = measured[0]['e2e_ms']['mean']
        for row in measured:
            row['speedup'] = reference / row['e2e_ms']['mean']
    return rows


def format_knobs(rows: Sequence[Mapping[str, Any]]) -> str:
    """Return the side-by-side table of ``measure_knobs`` rows."""
    if not rows:
        return 'cpu settings: nothing measured'
    first = next((r['setting'] for r in rows if r['status'] == 'measured'), '?')
    lines = [f"cpu settings, one engine each, same images; speed-up vs {first}",
             f"{'setting':<22}{'start-up s':>11}{'E2E ms mean (p95)':>22}{'speed-up':>10}  env"]
    for row in rows:
        if row['status'] != 'measured':
            lines.append(f"{row['setting']:<22}skipped: {row['reason']}")
            continue
        e2e = row['e2e_ms']
        env = ' '.join(f'{k}={_short(k, v)}' for k, v in row['environment'].items()) \
            or '(vLLM defaults)'
        cell = f"{e2e['mean']:.0f} ({e2e['p95']:.0f})"
        lines.append(f"{row['setting']:<22}{row['startup_s']:>11.1f}{cell:>22}"
                     f"{row['speedup']:>9.2f}x  {env}")
    return '\n'.join(lines)


def _short(key: str, value: str) -> str:
    if key != 'LD_PRELOAD':
        return value
    return ':'.join(Path(part).name for part in value.split(':'))
