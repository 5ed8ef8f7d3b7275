# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Execute Bridge-style actions on an arm, free of ROS: stream scheduling, pose targets, safety.

An OpenVLA (Bridge) action is a displacement of the end effector over one control step
(``control_period``, 0.2 s) in the base frame. Three consumers are served from here:

* **Streaming (MoveIt Servo, speed units).** :class:`StreamScheduler` turns each action into a
  velocity stream at ``rate_hz`` lasting exactly one control period, whose integral (as a
  zero-order-hold consumer integrates it) equals the delta, then zeros at the same rate until
  the next action: the consumer's ``incoming_command_timeout`` never fires and the arm holds
  still between steps. It tracks what it has already sent against real tick times, so a late
  timer tick is compensated on the next one, and the last tick of a step that is not a whole
  number of ticks long carries only the remainder.
* **Pose targets.** :func:`compose_pose` returns current pose (+) delta, in the Bridge/WidowX
  convention or the tool-frame one (:data:`ROTATION_CONVENTIONS`).
* **Safety.** :class:`SafetyEnvelope`: a workspace box that cuts motion at its faces (counted),
  an enable / dead-man input with a timeout, and the freshness of the measured pose.

Early next action. When an action arrives before the previous step has been sent completely,
the scheduler *blends*: the unsent remainder of the old step is added to the new delta and the
sum is sent over a fresh control period. :func:`compare_early_rules` measures the alternatives
in a simulation with a zero-order-hold consumer (see the README, "Driving a robot"): *preempt*
drops remainders (the arm travels less than the model asked), *finish* queues steps (the sum is
exact but the lag behind the model grows without bound when actions come faster than steps),
*blend* keeps the executed sum exact with a bounded lag, so it is the default. An action that
arrives for the old step's last tick (what pacing aims at) waits for that tick, so every action
is sent whole and on its own. An engine slower
than the step gets zeros after the step: motion is never extrapolated.

Rotation convention of the Bridge/WidowX reference controller (rail-berkeley/bridge_data_robot,
``widowx_envs/widowx_envs/utils/transformation_utils.py`` ``action2transform_local`` and
``eulerAnglesToRotationMatrix``; ``widowx_envs/widowx_envs/base/robot_base_env.py``
``_next_qpos``): the rotation delta is ``R_d = Rz(yaw) Ry(pitch) Rx(roll)`` (extrinsic x-y-z),
applied about the end-effector point with the base frame's axes, and left-multiplied onto the
current orientation: ``R_target = R_d R_current``; the position is ``p + d``. That is
``'base'`` here; ``'tool'`` is ``R_target = R_current R_d`` (the delta in the end-effector's
own axes), for controllers and datasets that define it so.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import math
from typing import Sequence, Union

import numpy as np

PUBLISH_MODES = ('pulse', 'stream')
ROTATION_CONVENTIONS = ('base', 'tool')
EARLY_RULES = ('blend', 'next', 'finish', 'preempt')
#: Float slack when comparing times that are sums of tick periods.
_EPS = 1e-9
#: Step start times a scheduler keeps (for measuring what a consumer executed per step).
STEP_HISTORY = 4096
#: A vector argument: a sequence of floats or a numpy array (read with ``np.asarray``/iteration).
Vector = Union[Sequence[float], np.ndarray]


# ---------------------------------------------------------------------- quaternions (x y z w)

def quat_multiply(a: Vector, b: Vector) -> np.ndarray:
    """Return the Hamilton product ``a * b`` of quaternions in ROS order (x, y, z, w)."""
    ax, ay, az, aw = (float(v) for v in a)
    bx, by, bz, bw = (float(v) for v in b)
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Return the quaternion of ``Rz(yaw) Ry(pitch) Rx(roll)`` (the Bridge delta), x y z w."""
    qx = np.array([math.sin(roll / 2), 0.0, 0.0, math.cos(roll / 2)])
    qy = np.array([0.0, math.sin(pitch / 2), 0.0, math.cos(pitch / 2)])
    qz = np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])
    return quat_multiply(qz, quat_multiply(qy, qx))


def quat_from_rotvec(rotvec: Vector) -> np.ndarray:
    """Return the quaternion of a rotation vector (axis * angle, rad)."""
    vector = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.array([*(0.5 * vector), 1.0]) / math.sqrt(1.0 + 0.25 * angle * angle)
    axis = vector / angle
    return np.array([*(axis * math.sin(angle / 2)), math.cos(angle / 2)])


def quat_to_rotvec(q: Vector) -> np.ndarray:
    """Return the rotation vector (axis * angle, rad, angle in [0, pi]) of a quaternion."""
    x, y, z, w = quat_normalize(q)
    sine = math.sqrt(x * x + y * y + z * z)
    if sine < 1e-12:
        return 2.0 * np.array([x, y, z])
    return np.array([x, y, z]) / sine * 2.0 * math.atan2(sine, w)


def rpy_to_rotvec(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Return the rotation vector of ``Rz(yaw) Ry(pitch) Rx(roll)``.

    A constant base-frame angular velocity ``rotvec / T`` held for ``T`` turns the end
    effector by exactly the Bridge rotation delta; ``(roll, pitch, yaw) / T`` would be off at
    second order (a few percent of Bridge-sized rotations).
    """
    return quat_to_rotvec(quat_from_rpy(roll, pitch, yaw))


def quat_conjugate(q: Vector) -> np.ndarray:
    """Return the inverse of a unit quaternion."""
    x, y, z, w = (float(v) for v in q)
    return np.array([-x, -y, -z, w])


def quat_normalize(q: Vector) -> np.ndarray:
    """Return ``q`` scaled to unit norm (w >= 0); raise ``ValueError`` for a zero or NaN one."""
    values = np.asarray(q, dtype=np.float64)
    norm = float(np.linalg.norm(values))
    if not math.isfinite(norm) or norm < 1e-9:
        raise ValueError(f'orientation quaternion {values.tolist()} is not a rotation')
    values = values / norm
    return -values if values[3] < 0 else values


def quat_angle(a: Vector, b: Vector) -> float:
    """Return the angle (rad) of the rotation between unit quaternions ``a`` and ``b``."""
    dot = abs(float(np.dot(quat_normalize(a), quat_normalize(b))))
    return 2.0 * math.acos(min(1.0, dot))


def compose_pose(position: Vector, orientation: Vector,
                 delta: Vector, convention: str = 'base'
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Return the target pose = current pose (+) ``delta`` (dx dy dz droll dpitch dyaw).

    The translation is added in the base frame for both conventions; ``convention`` says how
    the rotation delta composes with the current orientation (see the module docstring).
    """
    if convention not in ROTATION_CONVENTIONS:
        raise ValueError(f'rotation_convention must be one of {", ".join(ROTATION_CONVENTIONS)},'
                         f' got {convention!r}')
    d = np.asarray(delta, dtype=np.float64)
    current = quat_normalize(orientation)
    rotation = quat_from_rpy(*d[3:6])
    if convention == 'base':
        target = quat_multiply(rotation, current)
    else:
        target = quat_multiply(current, rotation)
    return np.asarray(position, dtype=np.float64) + d[:3], quat_normalize(target)


# ---------------------------------------------------------------------- stream scheduler

@dataclass
class _Step:
    delta: np.ndarray        # what this step must add up to (m, rad)
    start: float             # clock time of its first tick
    emitted: np.ndarray      # integral of what was sent so far (zero-order hold)


class StreamScheduler:
    """Turn per-step deltas into a velocity stream whose integral equals each delta.

    Call :meth:`push` with each action's delta (dx dy dz droll dpitch dyaw, m and rad per
    control step) and :meth:`tick` at ``rate_hz`` with the clock time of the tick; ``tick``
    returns the velocity (m/s, rad/s) to publish now. The consumer is assumed to hold each
    velocity until the next message (zero-order hold), as MoveIt Servo does. Not thread-safe:
    the caller serializes ``push``, ``tick`` and ``clear``.
    """

    def __init__(self, control_period: float, rate_hz: float, early_rule: str = 'blend') -> None:
        """Create an idle scheduler (zeros until the first push)."""
        if not (math.isfinite(control_period) and control_period > 0.0):
            raise ValueError(f'control_period must be > 0 s, got {control_period}')
        if not (math.isfinite(rate_hz) and rate_hz > 0.0):
            raise ValueError(f'stream_rate_hz must be > 0, got {rate_hz}')
        if early_rule not in EARLY_RULES:
            raise ValueError(f'early rule must be one of {", ".join(EARLY_RULES)}')
        self.control_period = float(control_period)
        self.period = 1.0 / float(rate_hz)
        self.early_rule = early_rule
        self._pending: deque[np.ndarray] = deque()
        self._step: _Step | None = None
        self._last_tick: float | None = None
        self._last_out = np.zeros(6)
        self._started = False          # an action has arrived since the last reset
        self.moving_s = 0.0            # time a non-zero velocity was held
        self.idle_s = 0.0              # time zeros were held (after the first action)
        self.steps = 0                 # steps started
        self.early = 0                 # actions that arrived before the previous step was sent
        # Clock time of each step's first tick, newest last: where a consumer's motion for that
        # step begins (the arm benchmark measures each step between two of these).
        self.step_starts: deque[float] = deque(maxlen=STEP_HISTORY)

    def push(self, delta: Sequence[float]) -> None:
        """Queue one action's delta; the next :meth:`tick` starts (or blends) it."""
        values = np.asarray(delta, dtype=np.float64)
        if values.shape != (6,) or not np.all(np.isfinite(values)):
            raise ValueError(f'expected 6 finite delta values, got {values.tolist()}')
        if self.early_rule == 'next' and self._pending:
            # One action waits at most: a newer one joins it, so the sum stays exact.
            self._pending[-1] = self._pending[-1] + values
            return
        if self.early_rule not in ('finish', 'next'):
            self._pending.clear()     # only the newest action counts (blend, preempt)
        self._pending.append(values)

    def clear(self) -> None:
        """Drop the step in progress and any queued action (stop, disable, stale engine)."""
        self._pending.clear()
        self._step = None

    @property
    def busy(self) -> bool:
        """Return whether a step is being sent or queued."""
        return self._step is not None or bool(self._pending)

    def motion_ends_at(self, now: float) -> float | None:
        """Return when the motion sent or queued now ends (clock time), None when idle.

        A queued action starts at the next tick, so its step ends one control period from now.
        """
        if self._pending:
            if self._step is not None and self.early_rule in ('next', 'finish'):
                # The queued steps start when the one in progress ends.
                return self._step.start + self.control_period * (1 + len(self._pending))
            return now + self.control_period
        if self._step is not None:
            return self._step.start + self.control_period
        return None

    def idle_fraction(self) -> float:
        """Return the time streaming zeros over the time since the first action (NaN before)."""
        total = self.moving_s + self.idle_s
        return self.idle_s / total if total > 0.0 else float('nan')

    def tick(self, now: float) -> np.ndarray:
        """Return the velocity to publish at clock time ``now`` (one call per stream tick)."""
        if self._last_tick is not None:
            held = max(0.0, now - self._last_tick)
            if self._step is not None:
                self._step.emitted += self._last_out * held
            if self._started:
                if np.any(self._last_out):
                    self.moving_s += held
                else:
                    self.idle_s += held
        self._last_tick = now
        self._take_pending(now)
        out = np.zeros(6)
        step = self._step
        if step is not None:
            # Aim to have sent delta * fraction by the next tick; the velocity sent now is held
            # until then. The last tick sends only what remains (exact integral).
            reach = now + self.period - step.start
            fraction = min(1.0, reach / self.control_period)
            out = (step.delta * fraction - step.emitted) / self.period
            # A late tick is compensated, but never by reversing the motion.
            out[np.sign(out) * np.sign(step.delta) < 0] = 0.0
            if reach >= self.control_period - _EPS:
                self._step = None   # this tick sends the rest; what follows is the next step
        self._last_out = out
        return out.copy()

    def _take_pending(self, now: float) -> None:
        if not self._pending:
            return
        step = self._step
        if step is not None and self.early_rule in ('finish', 'next'):
            return                      # the queued steps wait for this one
        if (step is not None and self.early_rule == 'blend'
                and now + self.period - step.start >= self.control_period - _EPS):
            # This tick ends the step anyway: it sends its rest and the new step starts at the
            # next tick, without a pause. Blending that last tick's share into the new step
            # instead would move part of one action into the next (a paced engine's action
            # arrives right at this point; measured: up to 3 % of a step).
            return
        delta = self._pending.popleft()
        self._started = True
        self.steps += 1
        if step is not None:
            self.early += 1
            if self.early_rule == 'blend':
                delta = delta + (step.delta - step.emitted)
        self._step = _Step(delta, now, np.zeros(6))
        self.step_starts.append(now)


def next_request_at(now: float, motion_ends_at: float | None, expected_s: float) -> float:
    """Return when the next inference should start so its action arrives as the step ends.

    An action computed earlier would wait (its image older than it need be); later, the arm
    would hold still between steps. ``expected_s`` is the request time the loop has measured
    (p95); with no motion in progress the answer is ``now``.
    """
    if motion_ends_at is None:
        return now
    return motion_ends_at - max(0.0, expected_s)


def simulate_stream(actions: Sequence[tuple[float, Sequence[float]]], control_period: float,
                    rate_hz: float, early_rule: str, duration: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Return (times, executed positions) of a zero-order-hold consumer fed by the scheduler.

    ``actions`` are (arrival time, 6-vector delta) pairs; ticks are perfectly periodic.
    """
    scheduler = StreamScheduler(control_period, rate_hz, early_rule)
    period = 1.0 / rate_hz
    pending = sorted(actions, key=lambda item: item[0])
    position = np.zeros(6)
    times, positions = [], []
    ticks = int(round(duration / period))
    for k in range(ticks):
        now = k * period
        while pending and pending[0][0] <= now + _EPS:
            scheduler.push(pending.pop(0)[1])
        velocity = scheduler.tick(now)
        times.append(now)
        positions.append(position.copy())
        position = position + velocity * period
    return np.asarray(times), np.asarray(positions)


def compare_early_rules(action_period: float, control_period: float = 0.2,
                        rate_hz: float = 50.0, count: int = 20, seed: int = 0,
                        jitter: float = 0.0) -> dict[str, dict[str, float]]:
    """Measure each early-action rule against the model's path (the running sum of deltas).

    Actions arrive every ``action_period`` s (each moved by up to +-``jitter`` s, as a paced
    engine whose latency varies) with random Bridge-sized deltas. Returns, per rule, the error
    of the final position against the sum of all deltas (``end_error``, m) and the largest and
    mean lag behind the model's path (``max_lag``, ``mean_lag``, m), where the model's path
    puts each delta in place linearly over one control period from its arrival.
    """
    rng = np.random.default_rng(seed)
    deltas = rng.uniform(-0.02, 0.02, size=(count, 6))
    offsets = rng.uniform(-jitter, jitter, size=count) if jitter > 0.0 else np.zeros(count)
    actions = sorted(((max(0.0, i * action_period + offsets[i]), deltas[i])
                      for i in range(count)), key=lambda item: item[0])
    duration = count * max(action_period, control_period) * 2 + 1.0
    result = {}
    for rule in EARLY_RULES:
        times, executed = simulate_stream(actions, control_period, rate_hz, rule, duration)
        reference = np.zeros_like(executed)
        for at, delta in actions:
            reference += np.clip((times - at) / control_period, 0.0, 1.0)[:, None] * delta
        lag = np.linalg.norm((executed - reference)[:, :3], axis=1)
        result[rule] = {'end_error': float(np.linalg.norm(executed[-1, :3]
                                                          - deltas.sum(axis=0)[:3])),
                        'max_lag': float(lag.max()), 'mean_lag': float(lag.mean())}
    return result


# ---------------------------------------------------------------------- safety envelope

@dataclass
class Pose:
    """A measured end-effector pose in ``frame_id``, with the clock time it was received."""

    position: np.ndarray
    orientation: np.ndarray     # unit quaternion x y z w
    received: float


def check_workspace(low: Sequence[float], high: Sequence[float]) -> str:
    """Return why a workspace box is invalid, or '' (equal corners disable the box)."""
    lo, hi = list(low), list(high)
    if len(lo) != 3 or len(hi) != 3:
        return f'workspace_min and workspace_max must be 3 numbers (x y z), got {lo} and {hi}'
    if not all(math.isfinite(float(v)) for v in lo + hi):
        return 'workspace_min and workspace_max must be finite'
    if lo == hi:
        return ''
    if any(float(a) >= float(b) for a, b in zip(lo, hi)):
        return (f'workspace_min must be below workspace_max on every axis, got {lo} and {hi} '
                '(set both to [0, 0, 0] to disable the box)')
    return ''


class SafetyEnvelope:
    """Enable / dead-man, workspace box and pose freshness: what may move, and how far.

    Times are one monotonic clock's seconds (the caller's). ``require_enable``: no motion unless
    a ``true`` arrived on the enable input within ``enable_timeout`` and no ``false`` since.
    The workspace box (``workspace_min`` / ``workspace_max`` in the command frame; equal
    corners disable it) needs a fresh pose: without one, no motion. ``ee_pose_timeout``: a pose
    older than this is stale.
    """

    def __init__(self, require_enable: bool = False, enable_timeout: float = 0.5,
                 workspace_min: Sequence[float] = (0.0, 0.0, 0.0),
                 workspace_max: Sequence[float] = (0.0, 0.0, 0.0),
                 ee_pose_timeout: float = 0.5) -> None:
        """Create an envelope; see the class docstring."""
        problem = check_workspace(workspace_min, workspace_max)
        if problem:
            raise ValueError(problem)
        self.require_enable = bool(require_enable)
        self.enable_timeout = float(enable_timeout)
        self.low = np.asarray(workspace_min, dtype=np.float64)
        self.high = np.asarray(workspace_max, dtype=np.float64)
        self.ee_pose_timeout = float(ee_pose_timeout)
        self._enabled_at: float | None = None
        self.pose: Pose | None = None
        self.cuts = 0

    def keep_state_of(self, old: 'SafetyEnvelope') -> None:
        """Carry the measured pose, the enable state and the cut count over from ``old``."""
        self.pose, self._enabled_at, self.cuts = old.pose, old._enabled_at, old.cuts

    @property
    def box_enabled(self) -> bool:
        """Return whether the workspace box is in force."""
        return bool(np.any(self.low != self.high))

    def on_enable(self, value: bool, now: float) -> None:
        """Record one enable message: ``true`` renews the permission, ``false`` withdraws it."""
        self._enabled_at = now if value else None

    def on_pose(self, position: Sequence[float], orientation: Sequence[float],
                now: float) -> None:
        """Record a measured pose (raise ``ValueError`` for an unusable one)."""
        p = np.asarray(position, dtype=np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(f'ee_pose position {p.tolist()} is not 3 finite numbers')
        self.pose = Pose(p, quat_normalize(orientation), now)

    def fresh_pose(self, now: float) -> Pose | None:
        """Return the measured pose if it is younger than ``ee_pose_timeout``."""
        pose = self.pose
        if pose is None or now - pose.received > self.ee_pose_timeout:
            return None
        return pose

    def why_not(self, now: float) -> str:
        """Return why no motion is allowed now, or '' when motion is allowed."""
        if self.require_enable:
            if self._enabled_at is None:
                return 'not enabled: publish true on the enable topic (dead-man)'
            if now - self._enabled_at > self.enable_timeout:
                return f'enable timed out: no true on the enable topic for {self.enable_timeout} s'
        if self.box_enabled and self.fresh_pose(now) is None:
            return (f'workspace box set but no ee_pose younger than {self.ee_pose_timeout} s: '
                    'publish the end-effector pose on ee_pose')
        return ''

    def cut_delta(self, delta: Sequence[float], now: float) -> tuple[np.ndarray, bool]:
        """Return ``delta`` with its translation cut where it would leave the box, and if cut.

        Axis by axis, as the Bridge reference clips its target position. Call
        :meth:`why_not` first: without a fresh pose the delta comes back unchanged.
        """
        d = np.array(delta, dtype=np.float64)
        pose = self.fresh_pose(now)
        if not self.box_enabled or pose is None:
            return d, False
        # A pose already outside may only move back toward the box.
        low = np.minimum(self.low, pose.position)
        high = np.maximum(self.high, pose.position)
        target = np.clip(pose.position + d[:3], low, high)
        cut = not np.allclose(target, pose.position + d[:3], rtol=0.0, atol=1e-12)
        d[:3] = target - pose.position
        if cut:
            self.cuts += 1
        return d, cut

    def cut_velocity(self, velocity: Vector, horizon: float,
                     now: float) -> np.ndarray:
        """Return ``velocity`` with each axis stopped that would leave the box within ``horizon``.

        The per-tick guard of a stream (not counted: the step was counted when it was cut).
        """
        v = np.array(velocity, dtype=np.float64)
        pose = self.fresh_pose(now)
        if not self.box_enabled or pose is None:
            return v
        ahead = pose.position + v[:3] * horizon
        leaving = ((ahead > self.high) & (v[:3] > 0)) | ((ahead < self.low) & (v[:3] < 0))
        v[:3][leaving] = 0.0
        return v

    def target(self, delta: Vector, convention: str, now: float
               ) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the pose target current (+) delta, or None without a fresh pose."""
        pose = self.fresh_pose(now)
        if pose is None:
            return None
        return compose_pose(pose.position, pose.orientation, delta, convention)
