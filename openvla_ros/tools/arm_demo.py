# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The policy node driving the simulated arm: per-action commanded vs executed, plot, benchmark.

:func:`run_arm` runs the real node (real engine, or a synthetic one for the benchmark) with the
package's simulated arm node (MoveIt Servo semantics; its camera feeds the node) over DDS in one
process, and measures per action what was commanded (the action after the node's conditioning)
and what the arm executed: its displacement from the first twist that carries this action to the
first twist of the next one, read from the arm's journal (exact poses at twist arrivals, no
sampling) on the arm's own receive clock, so delivery delays count against the stream.
:func:`benchmark_arm` runs ``pulse`` and ``stream`` side by side on a GPU-speed and a CPU-speed
synthetic engine; :func:`plot_arm` draws the paths and the speed profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from pathlib import Path
import threading
import time
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np

from openvla_ros.core.engine import Prediction
from openvla_ros.core.execution import (quat_conjugate, quat_from_rotvec, quat_from_rpy,
                                        quat_multiply, quat_to_rotvec)
from openvla_ros.core.preprocessing import ImagePreparation

#: Bridge-sized synthetic steps: up to 1.5 cm and 0.1 rad per axis per 0.2 s step.
SYNTHETIC_LINEAR = 0.015
SYNTHETIC_ANGULAR = 0.1
#: Below this a commanded step is too small for a relative error to mean anything (m).
MIN_STEP = 1e-3
#: An action and the start of its motion are this close in time at most (s): a stream starts
#: a step at its next tick, a pulse goes out with the action.
MATCH_WINDOW = 0.1


class SyntheticPolicy:
    """A stand-in engine for the arm benchmark: seeded Bridge-sized deltas after ``latency`` s.

    A measuring instrument (what the arm does with known actions at a known engine speed),
    never a model: its actions ignore the image.
    """

    def __init__(self, latency: float, seed: int = 0) -> None:
        """Answer every request after ``latency`` seconds."""
        self.latency = float(latency)
        self._rng = np.random.default_rng(seed)
        self.decoder = SimpleNamespace(unnorm_key='bridge_orig', provenance=lambda: {
            'unnorm_key': 'bridge_orig', 'statistics_source': 'synthetic',
            'statistics_hash': 'synthetic'})
        self.preparation = ImagePreparation()

    def prompt_ids(self, instruction: str) -> list[int]:
        """Return placeholder prompt ids (the synthetic engine reads no prompt)."""
        return [1, 29871]

    def predict(self, image: Any, instruction: str, prompt_ids: Any = None) -> Prediction:
        """Return the next seeded delta after the engine's latency."""
        time.sleep(self.latency)
        linear = self._rng.uniform(-SYNTHETIC_LINEAR, SYNTHETIC_LINEAR, 3)
        angular = self._rng.uniform(-SYNTHETIC_ANGULAR, SYNTHETIC_ANGULAR, 3)
        return Prediction(np.concatenate([linear, angular, [1.0]]), [31872] * 7,
                          {'engine_s': self.latency})

    def is_alive(self) -> bool:
        """Return True: nothing to die."""
        return True

    def close(self, fast: bool = False) -> None:
        """Free nothing."""


@dataclass
class ArmRun:
    """What one run measured."""

    mode: str
    seconds: float
    arrivals: list[float] = field(default_factory=list)        # monotonic, per action
    commanded: list[np.ndarray] = field(default_factory=list)  # 6-vector per action
    samples: list[tuple[float, np.ndarray, np.ndarray]] = field(default_factory=list)
    halts: int = 0
    max_gap_s: float = 0.0
    idle_fraction: float = float('nan')
    reason: str = ''
    #: The arm's (time, position, orientation) at each twist's arrival, and the node's stream
    #: step starts (monotonic s); :meth:`refresh` reads them from the live run.
    journal: list[tuple[float, np.ndarray, np.ndarray]] = field(default_factory=list)
    step_starts: list[float] = field(default_factory=list)
    sources: tuple[Callable[[], list], Callable[[], list[float]]] | None = None

    def refresh(self) -> None:
        """Read the arm's journal and the node's step starts as they are now."""
        if self.sources is not None:
            self.journal = self.sources[0]()
            self.step_starts = self.sources[1]()

    def motion_starts(self) -> list[int | None]:
        """Return, per action, the journal index of the first twist that carries it.

        ``stream``: the first twist the arm received at or after the start of the step that
        began nearest the action's arrival; ``pulse``: the twist received nearest the arrival.
        None where no such twist was seen (yet), or where two actions would share one.
        """
        times = np.array([entry[0] for entry in self.journal])
        starts = np.array(self.step_starts if self.mode == 'stream' else [])
        out: list[int | None] = []
        for arrival in self.arrivals:
            index: int | None = None
            if len(times) and self.mode != 'stream':
                nearest = int(np.argmin(np.abs(times - arrival)))
                index = nearest if abs(times[nearest] - arrival) <= MATCH_WINDOW else None
            elif len(times) and len(starts):
                start = float(starts[np.argmin(np.abs(starts - arrival))])
                first = int(np.searchsorted(times, start))
                if abs(start - arrival) <= MATCH_WINDOW and first < len(times):
                    index = first
            if index is not None and index in out:
                index = None
            out.append(index)
        return out

    def executed(self, control_period: float = 0.2) -> list[np.ndarray | None]:
        """Return each action's executed displacement (translation, rotation vector).

        The arm's motion from the first twist carrying the action to the first twist of the
        next action (for the last one: to the last twist seen), from the journal's exact poses.
        None where the action's motion was not seen.
        """
        out: list[np.ndarray | None] = []
        for window in self.windows():
            if window is None:
                out.append(None)
                continue
            first, last = self.journal[window[0]], self.journal[window[1]]
            rotation = quat_multiply(last.orientation, quat_conjugate(first.orientation))
            out.append(np.concatenate([last.position - first.position,
                                       quat_to_rotvec(rotation)]))
        return out

    def windows(self) -> list[tuple[int, int] | None]:
        """Return, per action, the journal indices its motion runs between (None: not seen).

        From the first twist carrying the action to the first twist of the next action seen
        (for the last one: the last twist seen).
        """
        starts = self.motion_starts()
        out: list[tuple[int, int] | None] = []
        for k, first in enumerate(starts):
            later = [i for i in starts[k + 1:] if i is not None]
            last = later[0] if later else len(self.journal) - 1
            out.append(None if first is None or last <= first else (first, last))
        return out

    def window_closed(self, index: int, control_period: float = 0.2) -> bool:
        """Return whether action ``index`` (0-based) is over (the next one moves, or it ended)."""
        starts = self.motion_starts()
        if starts[index] is None:
            return False
        if any(i is not None for i in starts[index + 1:]):
            return True
        begun = self.journal[starts[index]].received
        return self.journal[-1].received >= begun + control_period + MATCH_WINDOW

    def sent(self) -> list[np.ndarray | None]:
        """Return each action's translation as sent: sum of twist x time between stamps.

        The same twists as :meth:`executed`, integrated on the sender's stamps instead of the
        arm's receive clock: what the node's stream adds up to, apart from delivery delays.
        """
        out: list[np.ndarray | None] = []
        for window in self.windows():
            if window is None:
                out.append(None)
                continue
            entries = self.journal[window[0]:window[1] + 1]
            out.append(sum((a.velocity[:3] * (b.sent - a.sent)
                            for a, b in zip(entries, entries[1:])), np.zeros(3)))
        return out

    def _index(self, times: np.ndarray, t: float) -> int:
        return int(np.clip(np.searchsorted(times, t), 0, len(times) - 1))

    def motion_start_delays(self) -> list[float]:
        """Return, per action, the time from its arrival to the first sample where it moved."""
        times = np.array([s[0] for s in self.samples])
        delays = []
        for start in self.arrivals:
            i = int(np.searchsorted(times, start))
            if i >= len(times):
                continue
            origin = self.samples[i][1]
            for t, position, _ in self.samples[i + 1:]:
                if np.linalg.norm(position - origin) > 1e-6:
                    delays.append(t - start)
                    break
        return delays

    def tracking(self, control_period: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
        """Return sample times and the executed path's deviation from the commanded one.

        The commanded path puts each action in place linearly over one control period from
        its arrival (what the model asked for, as a servo would execute it): translations
        add, rotations (rotation vectors of the Bridge rotations) compose on the left in
        arrival order. Columns: translation deviation (m), rotation deviation (rotation
        vector, rad).
        """
        times = np.array([s[0] for s in self.samples])
        if not len(times) or not self.arrivals:
            return times, np.zeros((len(times), 6))
        first = int(np.clip(np.searchsorted(times, self.arrivals[0]), 0, len(times) - 1))
        origin, turned = self.samples[first][1], self.samples[first][2]
        rotations = [quat_to_rotvec(quat_from_rpy(*delta[3:6])) for delta in self.commanded]
        deviation = np.zeros((len(times), 6))
        done_q = np.array([0.0, 0.0, 0.0, 1.0])
        done_p = np.zeros(3)
        completed = 0
        for k, (t, position, orientation) in enumerate(self.samples):
            while (completed < len(self.arrivals)
                   and self.arrivals[completed] + control_period <= t):
                done_p = done_p + self.commanded[completed][:3]
                done_q = quat_multiply(quat_from_rotvec(rotations[completed]), done_q)
                completed += 1
            ref_p, ref_q = done_p.copy(), done_q
            for i in range(completed, len(self.arrivals)):
                if self.arrivals[i] > t:
                    break
                fraction = (t - self.arrivals[i]) / control_period
                ref_p = ref_p + fraction * self.commanded[i][:3]
                ref_q = quat_multiply(quat_from_rotvec(fraction * rotations[i]), ref_q)
            executed_q = quat_multiply(orientation, quat_conjugate(turned))
            deviation[k, :3] = position - origin - ref_p
            deviation[k, 3:] = quat_to_rotvec(quat_multiply(executed_q, quat_conjugate(ref_q)))
        return times, deviation

    def action_errors(self, control_period: float = 0.2) -> list[float]:
        """Return each action's translation error in % of its step (NaN for tiny steps)."""
        errors = []
        for delta, done in zip(self.commanded, self.executed(control_period)):
            norm = float(np.linalg.norm(delta[:3]))
            errors.append(float(np.linalg.norm(done[:3] - delta[:3])) / norm * 100
                          if norm > MIN_STEP and done is not None else float('nan'))
        return errors

    def sent_errors(self) -> list[float]:
        """Return each action's translation error as sent (stamps), in % of its step."""
        return [float(np.linalg.norm(done - delta[:3])) / float(np.linalg.norm(delta[:3])) * 100
                if done is not None and np.linalg.norm(delta[:3]) > MIN_STEP else float('nan')
                for delta, done in zip(self.commanded, self.sent())]

    def figures(self, control_period: float = 0.2) -> dict[str, float]:
        """Return the benchmark figures: errors in %, halts per minute, delays in ms."""
        # The last action's window is cut by the end of the run: leave it out.
        linear = [e for e in self.action_errors(control_period)[:-1] if not math.isnan(e)]
        sent = [e for e in self.sent_errors()[:-1] if not math.isnan(e)]
        angular = []
        for c, e in list(zip(self.commanded, self.executed(control_period)))[:-1]:
            wanted = quat_to_rotvec(quat_from_rpy(*c[3:6]))
            if e is not None and np.linalg.norm(wanted) > 0.01:
                angular.append(np.linalg.norm(e[3:] - wanted) / np.linalg.norm(wanted) * 100)
        _, deviation = self.tracking(control_period)
        deviation = deviation[:, :3]
        delays = self.motion_start_delays()
        return {'actions': len(self.arrivals),
                'measured_actions': len(linear),
                'max_tracking_error_mm': (float(np.linalg.norm(deviation, axis=1).max()) * 1000
                                          if len(deviation) else float('nan')),
                'translation_error_median_pct': _median(linear),
                'translation_error_max_pct': max(linear) if linear else float('nan'),
                'sent_error_median_pct': _median(sent),
                'sent_error_max_pct': max(sent) if sent else float('nan'),
                'within_2pct_share': (sum(e <= 2.0 for e in linear) / len(linear) if linear
                                      else float('nan')),
                'rotation_error_median_pct': _median(angular),
                'halts_per_min': self.halts / self.seconds * 60.0 if self.seconds else 0.0,
                'max_gap_s': self.max_gap_s,
                'motion_start_median_ms': _median(delays) * 1000.0,
                'idle_fraction': self.idle_fraction}


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else float('nan')


def run_arm(values: dict[str, Any], mode: str, duration: float,
            policy_factory: Callable[..., Any] | None = None, namespace: str = 'arm_demo',
            on_action: Callable[[int, ArmRun], None] | None = None,
            camera_hz: float = 10.0, first_action_timeout: float = 600.0) -> ArmRun:
    """Run node + simulated arm for ``duration`` s after the first action; return the record.

    ``values`` are node parameters (model, unnorm_key, instruction, engine ...); ``mode`` the
    ``publish_mode``. Pulse publishes velocities (``output_mode: velocity``), as a Servo
    consumer needs; stream converts the per-step deltas itself.
    """
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_msgs.msg import Float64MultiArray

    from openvla_ros.node.parameters import conditioning_from
    from openvla_ros.node.sim_arm import SimArmNode
    from openvla_ros.tools.harness import NodeRunner

    params = _arm_parameters(values, mode)
    runner = NodeRunner(params, namespace=namespace, policy_factory=policy_factory)
    node = runner.node
    conditioning = conditioning_from(_node_values(node))
    period = float(params.get('control_period', 0.2))
    arm = SimArmNode(namespace='/' + namespace, context=runner.context, record=True,
                     parameter_overrides=[Parameter('camera_hz', value=float(camera_hz))])
    executor = SingleThreadedExecutor(context=runner.context)
    executor.add_node(arm)
    threading.Thread(target=executor.spin, daemon=True).start()
    run = ArmRun(mode, duration, sources=(arm.journal, node.stream_step_starts))
    lock = threading.Lock()
    peer = runner.add_peer('arm_demo_listener', namespace='/' + namespace)

    def listen(msg: Float64MultiArray) -> None:
        command = conditioning.apply(list(msg.data))
        delta = np.concatenate([command.linear, command.angular])
        if conditioning.output_mode == 'velocity':
            delta = delta * period
        with lock:
            run.arrivals.append(time.monotonic())
            run.commanded.append(delta)
            index = len(run.arrivals)
        if on_action is not None:
            on_action(index, run)

    peer.create_subscription(Float64MultiArray, 'action', listen, 10)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            position, orientation = arm.pose()
            with lock:
                run.samples.append((time.monotonic(), position, orientation))

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        _measure(run, runner, arm, sampler, duration, first_action_timeout, period)
    finally:
        stop.set()
        if sampler.is_alive():
            sampler.join(1.0)
        executor.shutdown(timeout_sec=1.0)
        arm.destroy_node()
        runner.close(fast=True)
    with lock:
        _keep_window(run, duration)
    return run


def _measure(run: ArmRun, runner: Any, arm: Any, sampler: threading.Thread, duration: float,
             first_action_timeout: float, period: float) -> None:
    """Activate the node, wait for its first action, then record ``duration`` s into ``run``."""
    node = runner.node
    if not runner.configure():
        run.reason = f"configure failed: {node.status()['last_error']}"
        return
    runner.activate()
    sampler.start()
    deadline = time.monotonic() + first_action_timeout
    while not run.arrivals and time.monotonic() < deadline:
        time.sleep(0.05)
    if not run.arrivals:
        run.reason = f'no action in {first_action_timeout:.0f} s'
        return
    halts_before = arm.status()['halts']
    time.sleep(duration)
    status = arm.status()
    run.halts = status['halts'] - halts_before
    run.max_gap_s = status['max_gap_s']
    run.idle_fraction = float(node.status()['stream_idle_fraction'])
    time.sleep(period + MATCH_WINDOW)   # the last step in flight ends: its motion counts
    run.refresh()


def _arm_parameters(values: dict[str, Any], mode: str) -> dict[str, Any]:
    """Return the node parameters of an arm run: Bridge rate, ``mode``, clamps per output unit."""
    from openvla_ros.node.parameters import BY_NAME
    params = {'max_rate_hz': 5.0, 'stamp_source': 'now', 'max_image_age': 5.0,
              **values, 'publish_mode': mode,
              'output_mode': 'velocity' if mode == 'pulse' else 'delta'}
    if mode == 'pulse':
        # The clamps are in output units: keep them the same per step in m/s and rad/s.
        period = float(params.get('control_period', BY_NAME['control_period'].default))
        for name in ('max_linear', 'max_angular'):
            params[name] = float(params.get(name, BY_NAME[name].default)) / period
    return params


def _keep_window(run: ArmRun, duration: float) -> None:
    """Keep the actions that arrived within ``duration`` s of the first one."""
    end = run.arrivals[0] + duration if run.arrivals else 0.0
    keep = [i for i, t in enumerate(run.arrivals) if t <= end]
    run.arrivals = [run.arrivals[i] for i in keep]
    run.commanded = [run.commanded[i] for i in keep]


def _node_values(node: Any) -> dict[str, Any]:
    from openvla_ros.node.parameters import CONDITIONING
    return {name: node.get_parameter(name).value for name in CONDITIONING}


def action_line(index: int, commanded: np.ndarray, executed: np.ndarray | None,
                error: float = float('nan')) -> str:
    """Return the printed line of one action: commanded and executed displacement, error %."""
    def mm(v: np.ndarray) -> str:
        return ' '.join(f'{x * 1000:+6.1f}' for x in v[:3])
    line = f'[arm] action #{index:3d} commanded [{mm(commanded)}] mm'
    if executed is None:
        return line
    shown = '  n/a' if math.isnan(error) else f'{error:5.1f} %'
    return f'{line}  executed [{mm(executed)}] mm  error {shown}'


def plot_arm(run: ArmRun, path: Path | str) -> Path:
    """Write a PNG: commanded vs executed path per axis, and the speed profile."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(10, 7), dpi=100, layout='constrained')
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    t0 = run.arrivals[0] if run.arrivals else run.samples[0][0]
    times = np.array([s[0] for s in run.samples]) - t0
    positions = np.array([s[1] for s in run.samples])
    start = positions[int(np.clip(np.searchsorted(times, 0.0), 0, len(times) - 1))]
    commanded = np.cumsum(np.array(run.commanded)[:, :3], axis=0) if run.commanded else []
    arrivals = np.array(run.arrivals) - t0
    for axis, colour in zip(range(3), ('#d62728', '#2ca02c', '#1f77b4')):
        name = 'xyz'[axis]
        top.plot(times, (positions[:, axis] - start[axis]) * 1000, color=colour,
                 label=f'{name} executed')
        if len(commanded):
            top.step(arrivals, commanded[:, axis] * 1000, where='post', color=colour,
                     linestyle='--', label=f'{name} commanded (sum of deltas)')
    top.set_ylabel('displacement (mm)')
    top.set_title(f'publish_mode {run.mode}: commanded vs executed path')
    top.legend(fontsize=7, ncol=3)
    speed = np.linalg.norm(np.diff(positions, axis=0), axis=1) / np.maximum(
        np.diff(times), 1e-6)
    bottom.plot(times[1:], speed * 1000, color='black', linewidth=0.8)
    for t in arrivals:
        bottom.axvline(t, color='#999999', linewidth=0.5)
    bottom.set_ylabel('speed (mm/s)')
    bottom.set_xlabel('time since the first action (s); grey lines: actions')
    bottom.set_title('speed profile (zero = the arm stood still)')
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format='png')
    return out


#: The two synthetic engines of the benchmark: a GPU-speed one (faster than the 0.2 s step)
#: and the CPU figure measured here (ENVIRONMENT: 1.5-2.2 s per action).
BENCHMARK_ENGINES = (('GPU-speed (0.1 s)', 0.1), ('CPU-speed (2.0 s)', 2.0))


def benchmark_arm(duration: float = 20.0, engines: Sequence[tuple[str, float]] = BENCHMARK_ENGINES,
                  modes: Sequence[str] = ('pulse', 'stream'), model: str = 'synthetic',
                  progress: Callable[[str], None] = print,
                  real: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run every engine x mode for ``duration`` s; return one row of figures per run.

    ``real``: node parameters of a real engine (model, unnorm_key, engine and image settings)
    to run after the synthetic ones, each mode with its own engine load (minutes on a CPU).
    """
    runs: list[tuple[str, dict[str, Any], Callable[..., Any] | None, str, float]] = [
        (label, {'model': model, 'unnorm_key': 'bridge_orig'},
         lambda *a, latency=latency, **k: SyntheticPolicy(latency),
         f'arm_bench_{int(latency * 1000)}', 30.0) for label, latency in engines]
    if real is not None:
        runs.append((f"this engine ({Path(str(real['model'])).name})", real, None,
                     'arm_bench_engine', 900.0))
    rows = []
    for label, values, factory, namespace, first_timeout in runs:
        for mode in modes:
            progress(f'[arm benchmark] {label}, {mode}: {duration:.0f} s ...')
            run = run_arm({'instruction': 'put the carrot on the plate', 'command_timeout': 60.0,
                           **values}, mode, duration, policy_factory=factory,
                          namespace=f'{namespace}_{mode}', camera_hz=10.0,
                          first_action_timeout=first_timeout)
            rows.append({'engine': label, 'mode': mode, 'reason': run.reason, **run.figures()})
    return rows


def benchmark_table(rows: Sequence[dict[str, Any]]) -> str:
    """Return the benchmark rows as a Markdown table (pulse and stream side by side)."""
    lines = ['| engine | mode | actions | per-action translation error median / max '
             '(arm clock) | actions within 2 % | same error, as sent (stamps) | rotation error '
             'median | max path deviation | halts/min | max gap | motion start | idle fraction |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        idle = r['idle_fraction']
        # A pulse is meant to be integrated by its consumer: "as sent" has no meaning there.
        sent = (f"{r['sent_error_median_pct']:.1f} % / {r['sent_error_max_pct']:.1f} %"
                if r['mode'] == 'stream' else '-')
        lines.append(
            f"| {r['engine']} | {r['mode']} | {r['actions']} | "
            f"{r['translation_error_median_pct']:.1f} % / {r['translation_error_max_pct']:.1f} % "
            f"| {r['within_2pct_share'] * 100:.0f} % | {sent} | "
            f"{r['rotation_error_median_pct']:.1f} % | {r['max_tracking_error_mm']:.1f} mm | "
            f"{r['halts_per_min']:.0f} | "
            f"{r['max_gap_s'] * 1000:.0f} ms | {r['motion_start_median_ms']:.0f} ms | "
            f"{'-' if math.isnan(idle) else f'{idle:.2f}'} |")
    return '\n'.join(lines)


def run_arm_demo(model: str, unnorm_key: str, instruction: str, duration: float,
                 values: dict[str, Any], mode: str = 'stream',
                 plot: Path | str | None = 'arm_demo.png') -> ArmRun:
    """Run the node with its engine on the simulated arm; print per-action lines and figures.

    ``values`` are extra node parameters (engine, image preparation, statistics).
    """
    printed = [0]

    def print_closed(run: ArmRun, final: bool = False) -> None:
        # An action's line is due once its motion is over (the next one moves, or its step
        # ended); at the end, whatever is left.
        executed, errors = run.executed(), run.action_errors()
        while printed[0] < len(run.commanded) and (final or run.window_closed(printed[0])):
            k = printed[0]
            line = action_line(k + 1, run.commanded[k], executed[k], errors[k])
            print(line, flush=True)
            printed[0] += 1

    def on_action(index: int, run: ArmRun) -> None:
        if index == 1:
            print(f'[arm] first action; measuring for {duration:.0f} s', flush=True)
        run.refresh()
        print_closed(run)

    print(f'[arm] node + simulated arm (MoveIt Servo semantics, publish_mode {mode}); '
          'configuring the node (loads the engine) ...', flush=True)
    run = run_arm({'model': model, 'unnorm_key': unnorm_key, 'instruction': instruction,
                   **values}, mode, duration, on_action=on_action)
    if not run.arrivals:
        return run
    print_closed(run, final=True)
    figures = run.figures()
    share = figures['within_2pct_share']
    idle = figures['idle_fraction']
    print(f"[arm] {figures['actions']} actions; per-action translation error median "
          f"{figures['translation_error_median_pct']:.1f} % (max "
          f"{figures['translation_error_max_pct']:.1f} %; "
          f"{'n/a' if math.isnan(share) else f'{share * 100:.0f} %'} of "
          f"{figures['measured_actions']} measured within 2 %); largest deviation from the "
          f"model's path {figures['max_tracking_error_mm']:.1f} mm; halts {run.halts} "
          f"({figures['halts_per_min']:.0f}/min); idle fraction "
          f"{'n/a (pulse)' if math.isnan(idle) else f'{idle:.2f}'}; "
          f"motion starts {figures['motion_start_median_ms']:.0f} ms after an action",
          flush=True)
    if plot:
        print(f'[arm] plot: {plot_arm(run, plot)}', flush=True)
    return run
