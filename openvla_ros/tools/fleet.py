# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Measure one OpenVLA server shared by K robots: per-robot latency and total actions/s.

Each simulated robot is a thread with its own :class:`~openvla_ros.core.remote.RemotePolicy` (its
own connection), sending one request after another, as a node does. Every request carries an
image no other request sent: vLLM caches processed images (and prefixes), so repeating a frame
would measure the cache instead of the model.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from openvla_ros.core.policy import Policy
from openvla_ros.core.engine import DEFAULT_API_KEY_ENV
from openvla_ros.core.errors import RemoteError
from openvla_ros.core.remote import RemotePolicy
from openvla_ros.core.stats import percentile
from openvla_ros.tools.synthetic import DEFAULT_INSTRUCTION, scene_image, unique_image


def run_fleet(url: str, model: str, unnorm_key: str | None, clients: Iterable[int] = (1, 2, 4),
              requests_per_client: int = 4, images: Sequence[np.ndarray] | None = None, *,
              instruction: str = DEFAULT_INSTRUCTION, api_key_env: str = DEFAULT_API_KEY_ENV,
              image_format: str = 'png', timeout_s: float = 300.0,
              policy_factory: Callable[..., Policy] | None = None) -> dict[str, Any]:
    """Return per-client p50/p95 latency and aggregate actions/s for each client count, JSON-ready.

    For each K in ``clients``, K threads each build a policy, wait for the others, then send
    ``requests_per_client`` requests back to back; aggregate actions/s is the K x N actions over
    the wall time from the common start to the last reply. ``images`` are base frames (default:
    synthetic scenes); each request stamps a serial number into one, so none repeats. Latency is
    the request round trip (``engine_s``). Failed requests are counted, not timed.
    """
    counts = [int(k) for k in clients]
    if not counts or any(k < 1 for k in counts):
        raise ValueError(f'clients must be positive counts, got {list(clients)!r}')
    if requests_per_client < 1:
        raise ValueError(f'requests_per_client must be at least 1, got {requests_per_client}')
    bases = [np.asarray(image, dtype=np.uint8) for image in images] if images is not None \
        else [scene_image(index) for index in range(8)]
    if not bases:
        raise ValueError('images is empty')
    factory = policy_factory or RemotePolicy
    serial = iter(range(1, 1 << 24))
    serial_lock = threading.Lock()

    def next_image(client: int) -> np.ndarray:
        with serial_lock:
            number = next(serial)
        return unique_image(number, base=bases[(number + client) % len(bases)])

    runs = []
    for count in counts:
        policies: list[Policy] = []
        try:
            for _ in range(count):
                policies.append(factory(model, unnorm_key, url=url, api_key_env=api_key_env,
                                        image_format=image_format, timeout_s=timeout_s))
            ids = policies[0].prompt_ids(instruction)
            latencies: list[list[float]] = [[] for _ in range(count)]
            errors: list[list[str]] = [[] for _ in range(count)]
            ends = [0.0] * count
            barrier = threading.Barrier(count + 1)

            def robot(index: int) -> None:
                policy = policies[index]
                barrier.wait()
                for _ in range(requests_per_client):
                    image = next_image(index)
                    try:
                        prediction = policy.predict(image, instruction, prompt_ids=ids)
                    except (RemoteError, ValueError, OSError) as error:
                        errors[index].append(f'{type(error).__name__}: {error}')
                        continue
                    latencies[index].append(float(prediction.timings['engine_s']))
                ends[index] = time.perf_counter()

            threads = [threading.Thread(target=robot, args=(i,), daemon=True)
                       for i in range(count)]
            for thread in threads:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            wall = max(ends) - started
        finally:
            for policy in policies:
                policy.close()
        runs.append(_run_figures(count, requests_per_client, latencies, errors, wall))
    return {'url': url, 'model': model, 'unnorm_key': unnorm_key, 'instruction': instruction,
            'image_format': image_format, 'requests_per_client': requests_per_client,
            'runs': runs}


def format_fleet(result: dict[str, Any]) -> str:
    """Return a small text table of :func:`run_fleet`'s result."""
    lines = ['clients  actions/s  p50 s   p95 s   per-client p50/p95 s']
    for run in result['runs']:
        per = ', '.join(f'{c["p50_s"]:.2f}/{c["p95_s"]:.2f}' for c in run['per_client'])
        lines.append(f'{run["clients"]:>7}  {run["actions_per_s"]:>9.3f}  {run["p50_s"]:>6.2f}'
                     f'  {run["p95_s"]:>6.2f}  {per}'
                     + (f'  ({run["errors"]} errors)' if run['errors'] else ''))
    return '\n'.join(lines)


def _run_figures(count: int, requests_per_client: int, latencies: list[list[float]],
                 errors: list[list[str]], wall: float) -> dict[str, Any]:
    """Return one client count's figures: completed, errors, actions/s, p50/p95 per client."""
    done = sum(len(values) for values in latencies)
    everything = [value for values in latencies for value in values]
    return {
        'clients': count,
        'requests': count * requests_per_client,
        'completed': done,
        'errors': sum(len(e) for e in errors),
        'wall_s': wall,
        'actions_per_s': done / wall if wall > 0 else float('nan'),
        'p50_s': percentile(everything, 50),
        'p95_s': percentile(everything, 95),
        'per_client': [{
            'client': index,
            'completed': len(values),
            'p50_s': percentile(values, 50),
            'p95_s': percentile(values, 95),
            'mean_s': float(np.mean(values)) if values else float('nan'),
            'first_error': errors[index][0] if errors[index] else None,
        } for index, values in enumerate(latencies)],
    }


def run_fleet_benchmark(url: str, model: str, unnorm_key: str | None, clients: Sequence[int],
                        requests_per_client: int, *, engine: Any, instruction: str,
                        compare_in_process: bool = False, preparation: Any = None,
                        statistics_file: str | None = None, progress: bool = True
                        ) -> dict[str, Any]:
    """Run :func:`run_fleet` against ``url`` and, if asked, the in-process engine on this machine.

    The in-process figure (one engine, the same number of distinct images as one client sends)
    is the reference a fleet is compared with: ``ratio_vs_in_process`` is each client count's
    aggregate actions/s over the in-process engine's actions/s.
    """
    started = time.perf_counter()
    result: dict[str, Any] = {'url': url, 'model': model, 'fleet': run_fleet(
        url, model, unnorm_key, clients, requests_per_client, instruction=instruction,
        api_key_env=engine.api_key_env, image_format=engine.image_format)}
    if compare_in_process:
        from dataclasses import replace

        from openvla_ros.core.engine import VllmPolicy
        from openvla_ros.tools.benchmark import measure_engine
        policy = VllmPolicy(model, unnorm_key, engine=replace(engine, url=''),
                            preparation=preparation, statistics_file=statistics_file)
        try:
            local = measure_engine(policy, requests_per_client, 1, instruction=instruction,
                                   salt=7, progress=progress, label='in-process')
        finally:
            policy.close(fast=True)
        local.pop('samples', None)
        result['in_process'] = local
        rate = local.get('actions_per_s') or float('nan')
        for run in result['fleet']['runs']:
            run['ratio_vs_in_process'] = run['actions_per_s'] / rate
    result['wall_time_s'] = time.perf_counter() - started
    return result
