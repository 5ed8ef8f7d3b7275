# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Latency benchmark: the engine alone per execution mode, then the real policy node.

Engine figures come from ``VllmPolicy.predict`` on distinct images: vLLM caches the
preprocessing and the KV blocks of an image it has seen (keyed by a hash of its pixels), so
repeating one image would measure the cache, not the model. Every image here is a synthetic
scene with its index and a per-run random salt written into its first pixels.

Node figures come from the real :class:`~openvla_ros.node.policy_node.OpenVlaPolicyNode`, run in
this process on the already loaded engine (through its ``policy_factory`` hook), fed with
synthetic camera frames at a fixed rate and an instruction over real topics:

* action rate: actions published per second, against 1 / engine latency (the ceiling);
* cycle time: interval between consecutive published actions (publisher source timestamps);
  node overhead per action = cycle time - engine time of the later action (``predict`` wall
  time inside the node: preprocessing + engine), i.e. everything the node adds: frame hand-off,
  image decoding, conditioning, publishing, thread wake-ups;
* image age at engine start: wall time when the node called ``predict`` minus the header stamp
  of the frame it was called with (the frame is identified by a hash of its pixels; the stamp
  is the wall time the harness published it, so this includes transport and mailbox wait);
* camera to command: receive time of the command minus the image stamp it carries.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
import hashlib
import math
import os
from pathlib import Path
import secrets
import sys
import threading
import time
from typing import Any, Mapping, Sequence

import numpy as np

from openvla_ros.core.decoding import ActionDecoder
from openvla_ros.core.engine import EngineConfig, Prediction
from openvla_ros.core.policy import EngineReport, Policy, report_of
from openvla_ros.core.preprocessing import ImagePreparation
from openvla_ros.core.stats import NS_PER_S, percentile, stamp_to_ns
from openvla_ros.tools.inventory import hardware_info, software_versions
from openvla_ros.tools.report import jsonable, report_provenance, write_json
from openvla_ros.tools.synthetic import DEFAULT_INSTRUCTION, unique_image

MODES = ('eager', 'graph')
CPU_GRAPH_REASON = 'no CUDA graphs on the CPU platform'
#: Published figures to compare with: OpenVLA on vLLM on an AMD Strix Halo iGPU.
REFERENCE = {
    'name': 'Strix Halo iGPU (AMD), OpenVLA on vLLM',
    'ttft_ms': 195.0,
    'tpot_ms': 66.0,
    'e2e_ms': 590.0,
    'actions_per_s': 1000.0 / 590.0,
    'note': 'reference for the real OpenVLA-7B checkpoint; the generated test checkpoint is '
            'tiny and random, so its figures measure the pipeline, not OpenVLA-7B',
}


# --------------------------------------------------------------------------------------------
# Inputs and statistics


def _image_key(image: Any) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


def stats_ms(values_s: Sequence[float]) -> dict[str, float | int | None]:
    """Return count, mean, p50, p95, min and max of seconds, in milliseconds (None if empty)."""
    values = np.asarray([v for v in values_s if v is not None and math.isfinite(v)],
                        dtype=np.float64) * 1000.0
    if values.size == 0:
        return {'n': 0, 'mean': None, 'p50': None, 'p95': None, 'min': None, 'max': None}
    return {'n': int(values.size), 'mean': float(values.mean()),
            'p50': percentile(values, 50), 'p95': percentile(values, 95),
            'min': float(values.min()), 'max': float(values.max())}


# --------------------------------------------------------------------------------------------
# Machine description


# --------------------------------------------------------------------------------------------
# Engine benchmark


def _is_cpu_platform() -> bool:
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return bool(current_platform.is_cpu())


def _policy_mode(report: EngineReport) -> str:
    # An engine that does not say (remote, stand-in) counts as graph mode, vLLM's default.
    return 'eager' if report.enforce_eager else 'graph'


def measure_engine(policy: Policy, images: int, warmup: int,
                   instruction: str = DEFAULT_INSTRUCTION, salt: int = 0, progress: bool = True,
                   label: str = 'engine') -> dict[str, Any]:
    """Run ``warmup`` then ``images`` predictions on distinct images; return the statistics."""
    from tqdm import tqdm

    for index in range(warmup):
        policy.predict(unique_image(index, salt), instruction)
    samples = []
    bar = tqdm(range(warmup, warmup + images), desc=f'benchmark {label}', unit='image',
               file=sys.stderr, disable=not progress, leave=False)
    for index in bar:
        timings = policy.predict(unique_image(index, salt), instruction).timings
        samples.append({'image': index, **{k: float(v) for k, v in timings.items()}})
    bar.close()

    def column(key: str) -> list[float]:
        return [s[key] for s in samples if key in s]

    e2e = stats_ms(column('e2e_s'))
    return {
        'ttft_ms': stats_ms(column('ttft_s')),
        'tpot_ms': stats_ms(column('tpot_s')),
        'e2e_ms': e2e,
        'engine_ms': stats_ms(column('engine_s')),
        'preprocess_ms': stats_ms(column('preprocess_s')),
        'actions_per_s': (1000.0 / e2e['mean']) if e2e['mean'] else None,
        'samples': samples,
    }


# --------------------------------------------------------------------------------------------
# Node benchmark


class _RecordingPolicy:
    """Forward to a policy, recording when each call ran and on which image; never close it."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self.decoder: ActionDecoder = policy.decoder
        self.preparation: ImagePreparation = policy.preparation
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._busy = 0
        self._begun = 0

    def activity(self) -> tuple[int, int]:
        """Return (calls running now, calls begun so far)."""
        with self._lock:
            return self._busy, self._begun

    def prompt_ids(self, instruction: str) -> list[int]:
        return self._policy.prompt_ids(instruction)

    def predict(self, image: Any, instruction: str,
                prompt_ids: Sequence[int] | None = None) -> Prediction:
        key = _image_key(image)
        with self._lock:
            self._busy += 1
            self._begun += 1
        start_ns = time.time_ns()
        try:
            prediction = self._policy.predict(image, instruction, prompt_ids)
        finally:
            end_ns = time.time_ns()
            with self._lock:
                self._busy -= 1
        with self._lock:
            self.calls.append({'key': key, 'start_ns': start_ns, 'end_ns': end_ns,
                               **{k: float(v) for k, v in prediction.timings.items()}})
        return prediction

    def is_alive(self) -> bool:
        return self._policy.is_alive()

    def close(self, fast: bool = False) -> None:
        """Leave the engine to its owner."""

    def engine_report(self) -> EngineReport:
        """Return the recorded engine's report (the node logs and reports it)."""
        return report_of(self._policy)


def _node_values(node: Any) -> dict[str, Any]:
    """Return the node's figures for JSON: numbers as numbers, NaN as None."""
    return {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in node.status().items()}


def measure_node(policy: Policy, camera_hz: float = 30.0, seconds: float = 20.0,
                 instruction: str = DEFAULT_INSTRUCTION, salt: int = 0,
                 progress: bool = True) -> dict[str, Any]:
    """Run the policy node in-process on ``policy`` under a synthetic camera; return its figures.

    Uses a private rclpy context (so it works whether or not the caller initialised rclpy) and
    a unique namespace. See the module documentation for what each figure means.
    """
    from geometry_msgs.msg import TwistStamped
    import rclpy
    from std_msgs.msg import Float64MultiArray, String

    from openvla_ros.node.parameters import preparation_values
    from openvla_ros.node.qos import LATCHED
    from openvla_ros.tools.harness import NodeRunner
    from openvla_ros.tools.synthetic_camera import SyntheticCamera

    if not (math.isfinite(camera_hz) and camera_hz > 0):
        raise ValueError(f'camera rate must be a positive number of Hz, got {camera_hz}')
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f'node seconds must be positive, got {seconds}')
    recorder = _RecordingPolicy(policy)
    report = recorder.engine_report()
    lock = threading.Lock()
    twists: list[tuple[int, int, int]] = []     # (stamp ns, source ns, received ns)
    actions: list[tuple[int, int]] = []         # (source ns, received ns)
    published: dict[bytes, int] = {}            # image key -> stamp ns
    stamps: set[int] = set()
    # A private context (works whether or not the caller initialised rclpy), a unique namespace.
    runner = NodeRunner({
        'model': report.model or 'injected',
        'unnorm_key': str(policy.decoder.unnorm_key or ''), 'diagnostics_period': 0.5,
        # Every frame the engine takes counts, however late a slow engine takes the last one:
        # ages are measured and reported, not filtered.
        'max_image_age': 0.0,
        'statistics_file': report.statistics_file or '',
        **preparation_values(policy.preparation)},
        namespace=f'openvla_benchmark_{os.getpid()}_{secrets.token_hex(3)}',
        policy_factory=lambda *args, **kwargs: recorder, context=rclpy.Context())
    try:
        node = runner.node
        harness = runner.add_peer('openvla_benchmark_camera', namespace=node.get_namespace())

        def on_twist(msg: Any, info: Any) -> None:
            stamp = stamp_to_ns(msg.header.stamp)
            with lock:
                twists.append((stamp, info['source_timestamp'], info['received_timestamp']))

        def on_action(msg: Any, info: Any) -> None:
            with lock:
                actions.append((info['source_timestamp'], info['received_timestamp']))

        harness.create_subscription(TwistStamped, 'ee_delta', on_twist, 50)
        harness.create_subscription(Float64MultiArray, 'action', on_action, 50)
        camera = SyntheticCamera(harness, frames=lambda index: unique_image(index, salt))
        instruction_pub = harness.create_publisher(String, 'instruction', LATCHED)
        instruction_pub.publish(String(data=instruction))
        if not runner.configure():
            raise RuntimeError('the policy node failed to configure: '
                               f"{node.status()['last_error']}")
        if not runner.activate():
            raise RuntimeError('the policy node failed to activate')
        _wait_ready(node, camera)
        count = int(round(seconds * camera_hz))
        camera_s, camera_end_ns = _play_camera(camera, count, camera_hz, salt, lock, published,
                                               stamps, progress)
        _wait_quiet(recorder)
        diagnostics = _node_values(node)
        node.trigger_deactivate()
        node.trigger_cleanup()
    finally:
        runner.close()
    return _node_figures(recorder.calls, twists, actions, published, stamps, diagnostics,
                         camera_hz=camera_hz, seconds=seconds, frames=count, camera_s=camera_s,
                         camera_end_ns=camera_end_ns)


def _wait_ready(node: Any, camera: Any, timeout_s: float = 15.0) -> None:
    """Wait until the node has its instruction and hears the camera (each up to ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while not node.status()['instruction'] and time.monotonic() < deadline:
        time.sleep(0.05)
    deadline = time.monotonic() + timeout_s
    while camera.publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)


def _play_camera(camera: Any, count: int, camera_hz: float, salt: int, lock: threading.Lock,
                 published: dict[bytes, int], stamps: set[int], progress: bool
                 ) -> tuple[float, int]:
    """Publish ``count`` distinct frames at ``camera_hz``; return (seconds, wall ns at the end).

    Each frame is stamped with the wall time of its publication, recorded in ``published`` and
    ``stamps``.
    """
    from tqdm import tqdm

    period = 1.0 / camera_hz
    bar = tqdm(total=count, desc='benchmark node', unit='frame', file=sys.stderr,
               disable=not progress, leave=False)
    start = time.monotonic()
    for k in range(count):
        delay = start + k * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp = time.time_ns()
        msg, rgb = camera.message(100_000 + k, stamp)
        with lock:
            published[_image_key(rgb)] = stamp
            stamps.add(stamp)
        camera.send(msg)
        bar.update()
    camera_s = time.monotonic() - start
    camera_end_ns = time.time_ns()
    bar.close()
    return camera_s, camera_end_ns


def _wait_quiet(recorder: '_RecordingPolicy', timeout_s: float = 120.0) -> None:
    """Let the inference in flight (and the one on the last frame) finish.

    Done when no call has run or started for a second.
    """
    deadline = time.monotonic() + timeout_s
    quiet: tuple[float, int] | None = None
    while time.monotonic() < deadline:
        busy, begun = recorder.activity()
        if busy:
            quiet = None
        elif quiet is None or quiet[1] != begun:
            quiet = (time.monotonic(), begun)
        elif time.monotonic() - quiet[0] > 1.0:
            break
        time.sleep(0.05)


#: What each node figure means (written into the report beside the figures).
NODE_DEFINITIONS = {
    'samples': 'per action, seconds since the first camera frame: image stamp, '
               'engine start, publication; engine time in ms',
    'cycle_ms': 'interval between consecutive published actions (publisher timestamps)',
    'engine_ms': 'policy.predict wall time inside the node (preprocessing + engine)',
    'inverse_engine_latency_hz': '1 / mean engine time of the actions that close a '
                                 'cycle (the ceiling of action_rate_hz)',
    'overhead_ms': 'cycle time minus the engine time of the later action',
    'image_age_at_engine_start_ms': 'predict() start (wall) minus the image header '
                                    'stamp (wall time of publication), inferences '
                                    'started while the camera ran',
    'camera_to_command_ms': 'command receive time minus the image header stamp, '
                            'same inferences',
}


def _node_figures(calls: list[dict], twists: list[tuple[int, int, int]],
                  actions: list[tuple[int, int]], published: dict[bytes, int], stamps: set[int],
                  diagnostics: dict[str, Any], *, camera_hz: float, seconds: float, frames: int,
                  camera_s: float, camera_end_ns: int) -> dict[str, Any]:
    """Join the node's calls, commands and diagnostics into the node figures.

    Image age and camera-to-command cover the inferences that started while the camera ran:
    the last frame waits in the mailbox for the engine after the camera stops, an artefact of
    ending the run, not a figure of the node.
    """
    # Commands computed from a camera frame carry its stamp; zero twists carry "now".
    commands = sorted((t for t in twists if t[0] in stamps), key=lambda t: t[1])
    by_stamp = {}
    for call in calls:
        stamp = published.get(call['key'])
        if stamp is not None:
            by_stamp[stamp] = call
    engine_s, cycle_s, overhead_s, age_s, camera_to_command_s = [], [], [], [], []
    cycle_engine_s = []   # engine time of the actions that close a cycle
    samples = []
    previous_source = None
    first_stamp = min(stamps) if stamps else 0
    for stamp, source, received in commands:
        call = by_stamp.get(stamp)
        if call is None:
            continue
        engine_s.append(call.get('e2e_s', float('nan')))
        sample = {'image_stamp_s': (stamp - first_stamp) / NS_PER_S,
                  'engine_start_s': (call['start_ns'] - first_stamp) / NS_PER_S,
                  'published_s': (source - first_stamp) / NS_PER_S,
                  'engine_ms': call.get('e2e_s', float('nan')) * 1e3,
                  'during_camera': call['start_ns'] <= camera_end_ns}
        if sample['during_camera']:
            age_s.append((call['start_ns'] - stamp) / NS_PER_S)
            camera_to_command_s.append((received - stamp) / NS_PER_S)
        if previous_source is not None:
            cycle = (source - previous_source) / NS_PER_S
            cycle_s.append(cycle)
            cycle_engine_s.append(call.get('e2e_s', float('nan')))
            overhead_s.append(cycle - call.get('e2e_s', float('nan')))
        previous_source = source
        samples.append(sample)
    sources = [source for _, source, _ in commands]
    rate = ((len(sources) - 1) / ((sources[-1] - sources[0]) / NS_PER_S)
            if len(sources) >= 2 and sources[-1] > sources[0] else None)
    engine = stats_ms(engine_s)
    # The ceiling over the same actions as the rate: those that close a cycle.
    ceiling = stats_ms(cycle_engine_s if cycle_engine_s else engine_s)['mean']
    inverse_latency = 1000.0 / ceiling if ceiling else None
    return {
        'camera_hz': camera_hz,
        'camera_hz_achieved': frames / camera_s if camera_s > 0 else None,
        'seconds': seconds,
        'frames_published': frames,
        'actions': len(commands),
        'action_messages': len(actions),
        'action_rate_hz': rate,
        'inverse_engine_latency_hz': inverse_latency,
        'rate_vs_ceiling': (rate / inverse_latency) if rate and inverse_latency else None,
        'cycle_ms': stats_ms(cycle_s),
        'engine_ms': engine,
        'overhead_ms': stats_ms(overhead_s),
        'image_age_at_engine_start_ms': stats_ms(age_s),
        'camera_to_command_ms': stats_ms(camera_to_command_s),
        'diagnostics': {key: diagnostics.get(key) for key in (
            'latency_p50_s', 'latency_p95_s', 'action_rate_hz', 'frames_received',
            'frames_superseded', 'frames_used', 'frames_stale', 'last_frame_age_s', 'actions',
            'engine_errors', 'no_instruction', 'image_preprocessing', 'statistics_source',
            'statistics_hash')},
        'samples': samples,
        'definitions': dict(NODE_DEFINITIONS),
    }


# --------------------------------------------------------------------------------------------
# The whole benchmark


def run_benchmark(model: str | None = None, unnorm_key: str | None = None, *, images: int = 20,
                  warmup: int = 2, modes: Sequence[str] = MODES, camera_hz: float = 30.0,
                  node_seconds: float = 20.0, engine: EngineConfig | None = None,
                  policy: Policy | None = None,
                  instruction: str = DEFAULT_INSTRUCTION, out: Path | str | None = None,
                  progress: bool = True, preparation: Any = None,
                  statistics_file: str | None = None) -> dict[str, Any]:
    """Benchmark each engine mode, then the node on the last measured engine; return the report.

    With ``policy`` (an already loaded :class:`~openvla_ros.core.engine.VllmPolicy`), only the mode
    that engine runs in is measured and the engine is left open; otherwise one engine per mode
    is built from ``model`` and closed before the next. ``node_seconds`` 0 skips the node
    figure. ``engine`` (its ``enforce_eager`` set by each mode), ``preparation`` and
    ``statistics_file`` go to the engines built here (a given ``policy`` keeps its own). With
    ``out`` the report is also written there as JSON.
    """
    check_options(images, warmup, modes, camera_hz, node_seconds)
    if policy is None and not model:
        raise ValueError('give a model (checkpoint directory or hub id) or a loaded policy')
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc)
    salt = secrets.randbits(63)
    on_cpu = _is_cpu_platform()
    results: list[dict[str, Any]] = []
    node: dict[str, Any] | None = None
    node_skip = None if node_seconds > 0 else 'disabled (node seconds 0)'
    given = report_of(policy) if policy is not None else None
    measured = [m for m in modes if not (m == 'graph' and on_cpu)
                and (given is None or m == _policy_mode(given))]
    node_mode = measured[-1] if measured else None
    settings = None
    identity: dict[str, Any] = {'model': str(model), 'unnorm_key': unnorm_key}
    if given is not None:
        identity = {'model': given.model or str(model), 'unnorm_key': given.unnorm_key,
                    **report_provenance(given)}
    for mode in modes:
        entry: dict[str, Any] = {'mode': mode}
        skip = _mode_skip(mode, on_cpu, given)
        if skip:
            results.append({**entry, 'status': 'skipped', 'reason': skip})
            continue
        current: Policy
        if policy is None:
            from openvla_ros.core.engine import VllmPolicy
            current = VllmPolicy(model, unnorm_key,
                                 engine=replace(engine or EngineConfig(),
                                                enforce_eager=mode == 'eager'),
                                 preparation=preparation, statistics_file=statistics_file)
        else:
            current = policy
        try:
            report = report_of(current)
            entry.update({'status': 'measured',
                          'engine_options': jsonable(report.engine_options),
                          'startup_s': report.startup_s,
                          'engine': jsonable(report.as_dict())})
            settings = entry['engine_options']
            identity = {'model': report.model or str(model), 'unnorm_key': report.unnorm_key,
                        **report_provenance(report)}
            measure_started = time.perf_counter()
            entry.update(measure_engine(current, images, warmup, instruction, salt, progress,
                                        label=mode))
            entry['wall_time_s'] = time.perf_counter() - measure_started
            if mode == node_mode and node_skip is None:
                node, node_skip = _node_or_why_not(current, mode, camera_hz, node_seconds,
                                                   instruction, salt, progress)
        finally:
            if policy is None:   # built here: closed here; a given engine stays open
                current.close()
        results.append(entry)
    if node is None and node_skip is None:
        node_skip = 'no engine mode was measured'
    report = {**identity, 'images': images, 'warmup': warmup, 'instruction': instruction,
              'modes': results,
              'node': node if node is not None else {'status': 'skipped', 'reason': node_skip},
              **_context(settings, started_at), 'wall_time_s': time.perf_counter() - started}
    if out is not None:
        write_json(out, report)
    return report


def _context(settings: Any, started_at: datetime) -> dict[str, Any]:
    """Return what a report says about where it ran: settings, machine, software, time."""
    return {
        'engine_settings': {'options': settings,
                            'VLLM_CPU_KVCACHE_SPACE': os.environ.get('VLLM_CPU_KVCACHE_SPACE'),
                            'max_num_seqs': 1},
        'hardware': hardware_info(),
        'software': software_versions(),
        'reference': dict(REFERENCE),
        'timestamp': started_at.isoformat(timespec='seconds'),
    }


def _mode_skip(mode: str, on_cpu: bool, given: EngineReport | None) -> str:
    """Return why ``mode`` is not measured here, or ''."""
    if mode == 'graph' and on_cpu:
        return CPU_GRAPH_REASON
    if given is not None and mode != _policy_mode(given):
        return f'the given engine runs in {_policy_mode(given)} mode'
    return ''


def _node_or_why_not(policy: Policy, mode: str, camera_hz: float, seconds: float,
                     instruction: str, salt: int, progress: bool
                     ) -> tuple[dict[str, Any] | None, str | None]:
    """Return (the node's figures, None), or (None, why there are none); never raises."""
    missing = _rclpy_missing()
    if missing is not None:
        return None, missing
    started = time.perf_counter()
    try:
        node = measure_node(policy, camera_hz, seconds, instruction, salt, progress)
    except Exception as error:  # noqa: B902 - keep the engine figures
        return None, f'failed: {type(error).__name__}: {error}'
    node['engine_mode'] = mode
    node['wall_time_s'] = time.perf_counter() - started
    return node, None


def _rclpy_missing() -> str | None:
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return 'rclpy (ROS 2) is not installed'
    return None


def check_options(images: int, warmup: int, modes: Sequence[str], camera_hz: float,
                  node_seconds: float) -> None:
    """Raise ``ValueError`` for benchmark options that cannot work, naming the option."""
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f'images must be an integer >= 1, got {images!r}')
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f'warmup must be an integer >= 0, got {warmup!r}')
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f'modes must be a comma-separated subset of {",".join(MODES)}, got '
                         f'{",".join(modes) or "nothing"}')
    if not (math.isfinite(camera_hz) and camera_hz > 0):
        raise ValueError(f'camera rate must be a positive number of Hz, got {camera_hz}')
    if not (math.isfinite(node_seconds) and node_seconds >= 0):
        raise ValueError(f'node seconds must be >= 0, got {node_seconds}')


# --------------------------------------------------------------------------------------------
# Output


def _cell(stats: Mapping[str, Any] | None) -> str:
    if not stats or stats.get('mean') is None:
        return 'n/a'
    return f"{stats['mean']:.1f} ({stats['p95']:.1f})"


def _value(value: float | None, digits: int = 1, unit: str = '') -> str:
    return 'n/a' if value is None else f'{value:.{digits}f}{unit}'


def format_tables(report: Mapping[str, Any]) -> str:
    """Return the engine table (mean and p95 per mode, the reference) and the node table."""
    lines = [f"engine: {report['images']} distinct images after {report['warmup']} warm-up, "
             'mean (p95)',
             f"{'mode':<10}{'TTFT ms':>18}{'TPOT ms':>18}{'E2E ms':>20}{'actions/s':>12}"]
    for entry in report['modes']:
        if entry['status'] != 'measured':
            lines.append(f"{entry['mode']:<10}skipped: {entry['reason']}")
            continue
        lines.append(f"{entry['mode']:<10}{_cell(entry['ttft_ms']):>18}"
                     f"{_cell(entry['tpot_ms']):>18}{_cell(entry['e2e_ms']):>20}"
                     f"{_value(entry['actions_per_s'], 2):>12}")
    ref = report['reference']
    lines.append(f"{'reference':<10}{ref['ttft_ms']:>18.1f}{ref['tpot_ms']:>18.1f}"
                 f"{ref['e2e_ms']:>20.1f}{ref['actions_per_s']:>12.2f}  ({ref['name']})")
    node = report['node']
    lines.append('')
    if node.get('status') == 'skipped':
        lines.append(f"node: skipped: {node['reason']}")
        return '\n'.join(lines)
    diag = node['diagnostics']
    lines += [
        f"node: {node['camera_hz']:g} Hz camera for {node['seconds']:g} s "
        f"({node['engine_mode']} engine), mean (p95)",
        f"{'action rate':<28}{_value(node['action_rate_hz'], 2, ' Hz'):>16}   "
        f"1/engine latency {_value(node['inverse_engine_latency_hz'], 2, ' Hz')}",
        f"{'cycle time':<28}{_cell(node['cycle_ms']) + ' ms':>16}   "
        f"engine {_cell(node['engine_ms'])} ms",
        f"{'node overhead per action':<28}{_cell(node['overhead_ms']) + ' ms':>16}",
        f"{'image age at engine start':<28}"
        f"{_cell(node['image_age_at_engine_start_ms']) + ' ms':>16}",
        f"{'camera to command':<28}{_cell(node['camera_to_command_ms']) + ' ms':>16}",
        f"{'frames':<28}published {node['frames_published']}, received "
        f"{diag.get('frames_received')}, used {diag.get('frames_used')}, superseded "
        f"{diag.get('frames_superseded')}, stale {diag.get('frames_stale')}",
    ]
    return '\n'.join(lines)
