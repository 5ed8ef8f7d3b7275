# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""One "do this task" goal, free of ROS: its limits, its steps, and why it ended.

The node serves these goals as the ``ExecuteInstruction`` action (``node/action_server.py``);
everything that decides when a goal ends and what its feedback and result say is here, so it is
tested with plain numbers and a fake clock.

A goal runs until the first of: ``max_steps`` actions (SUCCEEDED), ``timeout_s`` seconds from
acceptance (SUCCEEDED), a cancel (CANCELED), a newer instruction from anywhere (ABORTED,
preempted), an engine failure (ABORTED) or the node leaving the active state (ABORTED). The
first ending wins; later ones are ignored, so a goal ends exactly once and says so precisely.
"""

from __future__ import annotations

from collections import deque
import dataclasses
from dataclasses import dataclass
import enum
import math
import threading
from typing import Any, Sequence

#: Loop counters that mean "the engine failed" (see ``core/inference_loop.Counters``).
ENGINE_FAILURE_COUNTERS = ('engine_errors', 'engine_timeouts', 'engine_unreachable')
#: Seconds between feedback messages while no action comes (actions bring their own).
HEARTBEAT_S = 1.0
_NAN7 = (float('nan'),) * 7


class EndReason(enum.IntEnum):
    """Why a goal ended; the values are the action's ``REASON_*`` result constants."""

    UNKNOWN = 0
    STEP_LIMIT = 1
    TIME_LIMIT = 2
    CANCELLED = 3
    PREEMPTED = 4
    ENGINE_ERROR = 5
    DEACTIVATED = 6

    @property
    def text(self) -> str:
        """Return the reason as a word (``step_limit``, ``cancelled``, ...)."""
        return self.name.lower()

    @property
    def outcome(self) -> str:
        """Return the goal status it gives: ``succeeded``, ``canceled`` or ``aborted``."""
        if self in (EndReason.STEP_LIMIT, EndReason.TIME_LIMIT):
            return 'succeeded'
        if self is EndReason.CANCELLED:
            return 'canceled'
        return 'aborted'


class GoalError(ValueError):
    """A goal the node refuses; the message names the problem and the fix."""


@dataclass(frozen=True)
class GoalSpec:
    """A checked goal: the task and its limits."""

    instruction: str
    max_steps: int          # 0: no step limit
    timeout_s: float        # 0: no time limit
    dry_run: bool = False   # report actions, publish no command


def check_limits(max_steps: Any, timeout_s: Any) -> tuple[int, float]:
    """Return ``(max_steps, timeout_s)`` checked; raise :class:`GoalError` naming the fix."""
    try:
        steps, seconds = int(max_steps), float(timeout_s)
    except (TypeError, ValueError):
        raise GoalError(f'max_steps must be a whole number and timeout_s a number of seconds, '
                        f'got {max_steps!r} and {timeout_s!r}') from None
    if steps < 0:
        raise GoalError(f'max_steps must be >= 0 (0: no step limit), got {steps}')
    if not (math.isfinite(seconds) and seconds >= 0.0):
        raise GoalError(f'timeout_s must be a finite number of seconds >= 0 (0: no time '
                        f'limit), got {seconds}')
    if steps == 0 and seconds == 0.0:
        raise GoalError('the goal has no end: set max_steps (e.g. 40) or timeout_s (e.g. 30), '
                        'or both')
    return steps, seconds


def is_clipped(conditioning: Any, action: Sequence[float]) -> bool:
    """Return whether the ``max_linear`` / ``max_angular`` clamps change this action's motion.

    ``conditioning`` is a :class:`~openvla_ros.core.conditioning.Conditioning`; the command is
    compared with the one the same settings give without clamps. Raises ``ValueError`` for an
    unusable action, as ``Conditioning.apply`` does.
    """
    clamped = conditioning.apply(action)
    free = dataclasses.replace(conditioning, max_linear=0.0, max_angular=0.0).apply(action)
    return not (_same(clamped.linear, free.linear) and _same(clamped.angular, free.angular))


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x == y for x, y in zip(a, b))


@dataclass(frozen=True)
class Feedback:
    """What the client hears after each action (and on the heartbeat)."""

    step: int
    max_steps: int
    elapsed_s: float
    action: tuple[float, ...]
    latency_s: float
    image_age_s: float
    clipped_steps: int
    loop_state: str


@dataclass(frozen=True)
class Outcome:
    """How a goal ended: the result's fields."""

    reason: EndReason
    steps: int
    elapsed_s: float
    clipped_steps: int
    last_action: tuple[float, ...]
    message: str
    last_error: str


class GoalRun:
    """One goal's bookkeeping, shared by the action thread and the inference loop's thread.

    ``begin(now)`` starts its clock (when the node starts acting on it); ``record_action`` is
    called for every action published for it; ``end`` with the first reason wins. The action
    thread sleeps in :meth:`wait` and is woken by every event.
    """

    def __init__(self, spec: GoalSpec, goal_id: str = '') -> None:
        """Create a goal that has not started acting."""
        self.spec = spec
        self.goal_id = goal_id
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._started: float | None = None
        self._failures_at_start = 0
        self._steps = 0
        self._clipped = 0
        # action, latency, image age
        self._last: tuple[tuple[float, ...], float, float] = (_NAN7, float('nan'), float('nan'))
        self._pending: deque[Feedback] = deque()
        self._last_feedback: float | None = None
        self._reason: EndReason | None = None
        self._message = ''
        self._error = ''
        self._ended_at: float | None = None

    # ------------------------------------------------------------------ state

    def begin(self, now: float, engine_failures: int = 0) -> None:
        """Start the goal's clock; ``engine_failures``: the loop's failure count right now."""
        with self._lock:
            self._started = now
            self._failures_at_start = engine_failures

    @property
    def started(self) -> bool:
        """Return whether the node acts on this goal (or did)."""
        with self._lock:
            return self._started is not None

    @property
    def live(self) -> bool:
        """Return whether the goal has started and not ended: its actions may be published."""
        with self._lock:
            return self._started is not None and self._reason is None

    @property
    def ended(self) -> bool:
        """Return whether an ending has been decided."""
        with self._lock:
            return self._reason is not None

    @property
    def reason(self) -> EndReason | None:
        """Return why the goal ended (None while it runs)."""
        with self._lock:
            return self._reason

    @property
    def steps(self) -> int:
        """Return the actions published for this goal."""
        with self._lock:
            return self._steps

    def elapsed(self, now: float) -> float:
        """Return the seconds since the goal began (0 before)."""
        with self._lock:
            return self._elapsed(now)

    def _elapsed(self, now: float) -> float:
        if self._started is None:
            return 0.0
        end = self._ended_at if self._ended_at is not None else now
        return max(0.0, end - self._started)

    def end(self, reason: EndReason, message: str, now: float, error: str = '') -> bool:
        """Decide the ending unless one was decided already; return whether this one won."""
        with self._lock:
            if self._reason is not None:
                return False
            self._reason, self._message, self._error = reason, message, error
            self._ended_at = now if self._started is not None else None
        self._event.set()
        return True

    def wake(self) -> None:
        """Wake the action thread (something happened)."""
        self._event.set()

    def wait(self, timeout: float) -> None:
        """Sleep until woken or ``timeout`` seconds passed."""
        self._event.wait(timeout)
        self._event.clear()

    # ------------------------------------------------------------------ events

    def record_action(self, action: Sequence[float], latency_s: float, image_age_s: float,
                      clipped: bool, now: float, loop_state: str) -> int:
        """Count one published action, queue its feedback; return the step number.

        The action that reaches ``max_steps`` ends the goal (STEP_LIMIT).
        """
        values = tuple(float(v) for v in action)
        with self._lock:
            self._steps += 1
            self._clipped += int(bool(clipped))
            self._last = (values, float(latency_s), float(image_age_s))
            step = self._steps
            self._pending.append(self._feedback(now, loop_state))
        limit = self.spec.max_steps
        if limit and step >= limit:
            self.end(EndReason.STEP_LIMIT, f'reached max_steps ({limit})', now)
        self._event.set()
        return step

    def check(self, now: float, engine_failures: int, last_error: str) -> None:
        """End the goal on its time limit, or on an engine failure since it began."""
        with self._lock:
            started, failures_at_start = self._started, self._failures_at_start
        if started is None:
            return
        timeout = self.spec.timeout_s
        if timeout and now - started >= timeout:
            self.end(EndReason.TIME_LIMIT, f'reached timeout_s ({timeout:g} s)', now)
        elif engine_failures > failures_at_start:
            self.end(EndReason.ENGINE_ERROR, 'the engine failed; zero twist sent', now,
                     error=last_error)

    # ------------------------------------------------------------------ reports

    def take_feedback(self, now: float, loop_state: str,
                      heartbeat_s: float = HEARTBEAT_S) -> list[Feedback]:
        """Return the feedback to publish now: one per new action, else a heartbeat when due."""
        with self._lock:
            if self._started is None:
                return []
            items = list(self._pending)
            self._pending.clear()
            due = (self._last_feedback is None or now - self._last_feedback >= heartbeat_s)
            if not items and due and self._reason is None:
                items = [self._feedback(now, loop_state)]
            if items:
                self._last_feedback = now
            return items

    def _feedback(self, now: float, loop_state: str) -> Feedback:
        action, latency, age = self._last
        return Feedback(step=self._steps, max_steps=self.spec.max_steps,
                        elapsed_s=self._elapsed(now), action=action, latency_s=latency,
                        image_age_s=age, clipped_steps=self._clipped, loop_state=loop_state)

    def outcome(self, now: float) -> Outcome:
        """Return the result of an ended goal (UNKNOWN while it still runs)."""
        with self._lock:
            reason = self._reason if self._reason is not None else EndReason.UNKNOWN
            steps, elapsed = self._steps, self._elapsed(now)
            message = (f'{reason.text}: {self._message} after {steps} '
                       f'step{"s" if steps != 1 else ""} in {elapsed:.1f} s')
            return Outcome(reason=reason, steps=steps, elapsed_s=elapsed,
                           clipped_steps=self._clipped, last_action=self._last[0],
                           message=message, last_error=self._error)
