# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""CPU engine settings measured side by side (``openvla-ros benchmark --cpu-knobs``).

vLLM's CPU backend binds its OpenMP threads to cores and, on x86 and Arm, reserves one core per
worker for its scheduler process. On a 2-core machine that leaves the model one core. It also
suggests preloading tcmalloc and Intel OpenMP. Whether any of that helps is measured here, one
engine per setting (:data:`~openvla_ros.core.cpu_knobs.KNOB_NAMES`), on the same distinct
images, in one run; the engine adopts only what measured faster in repeated runs
(:data:`~openvla_ros.core.cpu_knobs.ADOPTED`).
"""

from __future__ import annotations

from pathlib import Path
import secrets
import time
from typing import Any, Mapping, Sequence

from openvla_ros.core.cpu_knobs import environment, knob_settings, SETTINGS_ENV
from openvla_ros.core.engine import EngineConfig
from openvla_ros.tools.benchmark import measure_engine
from openvla_ros.tools.inventory import hardware_info, software_versions
from openvla_ros.tools.report import write_json


def measure_knobs(model: str, unnorm_key: str | None, names: Sequence[str], images: int,
                  warmup: int, engine: EngineConfig | None = None,
                  salt: int = 0, progress: bool = True) -> list[dict[str, Any]]:
    """Start one engine per named setting and time it on the same images; return the rows.

    Each row has the setting's environment, the engine start-up and the end-to-end latency
    statistics; ``speedup`` is the first setting's mean latency over this one's (>1 = faster).
    """
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
            policy = VllmPolicy(model, unnorm_key, engine=engine or EngineConfig())
            try:
                figures = measure_engine(policy, images, warmup, salt=salt, progress=progress,
                                         label=name)
                report = policy.engine_report()
            finally:
                policy.close()
        rows.append({'setting': name, 'status': 'measured', 'environment': env,
                     'startup_s': report.startup_s, 'dtype': report.dtype,
                     'e2e_ms': figures['e2e_ms'], 'ttft_ms': figures['ttft_ms']})
    measured = [row for row in rows if row['status'] == 'measured']
    if measured:
        reference = measured[0]['e2e_ms']['mean']
        for row in measured:
            row['speedup'] = reference / row['e2e_ms']['mean']
    return rows


def run_knobs(model: str, unnorm_key: str | None, names: Sequence[str], *, images: int,
              warmup: int, engine: EngineConfig | None = None, out: Path | str | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Measure the named settings (:func:`measure_knobs`); return the report, written to ``out``.

    The report holds the rows, the image counts, the machine, the software versions and the
    wall time.
    """
    started = time.perf_counter()
    rows = measure_knobs(model, unnorm_key, names, images, warmup, engine,
                         salt=secrets.randbits(63), progress=progress)
    report = {'cpu_knobs': rows, 'images': images, 'warmup': warmup,
              'hardware': hardware_info(), 'software': software_versions(),
              'wall_time_s': time.perf_counter() - started}
    if out is not None:
        write_json(out, report)
    return report


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
