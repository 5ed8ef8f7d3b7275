# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""CPU engine settings: the environment a CPU engine's processes get, and the alternatives.

vLLM's CPU backend binds its OpenMP threads to cores and, on x86 and Arm, reserves one core per
worker for its scheduler process. On a 2-core machine that leaves the model one core. It also
suggests preloading tcmalloc and Intel OpenMP. The named settings here (``knob_settings``) are
measured side by side by ``benchmark --cpu-knobs`` (:mod:`openvla_ros.tools.cpu_knobs_benchmark`);
the engine applies only what measured faster in repeated runs (see ``ADOPTED``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
from typing import Iterator, Mapping


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
