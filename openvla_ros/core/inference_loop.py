"""The node's inference loop, free of ROS: newest frame in, one action out, no backlog.

The engine serves one request at a time and takes far longer than a camera period, so the loop
never queues frames: the camera callback only replaces the frame in a one-slot mailbox, and the
worker, whenever the engine is free, takes the newest frame that arrived after its previous
inference began. The action rate is then 1 / engine latency (or ``max_rate_hz``), no frame is
used twice, and a frame's age at inference start is at most one camera period plus the time
spent waking up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import threading
import time
from typing import Any, Callable

import numpy as np


@dataclass
class Frame:
    """A received camera message, kept raw: only frames the engine uses are ever decoded."""

    msg: Any
    stamp_s: float       # the image's header stamp (observation time), ROS clock seconds
    received_s: float    # ROS clock seconds when the callback stored it
    seq: int             # arrival number, 1-based


class FrameSlot:
    """A one-frame mailbox: ``put`` replaces, ``take`` waits for a frame newer than the last."""

    def __init__(self) -> None:
        """Create an empty slot."""
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._seq = 0
        self.received = 0
        self.superseded = 0   # replaced before the worker took them (the camera outran us)
        self._closed = False

    def put(self, msg: Any, stamp_s: float, received_s: float) -> None:
        """Store a new frame, replacing (and counting) one the worker has not taken."""
        with self._cond:
            self._seq += 1
            self.received += 1
            if self._frame is not None:
                self.superseded += 1
            self._frame = Frame(msg, stamp_s, received_s, self._seq)
            self._cond.notify_all()

    def take(self, timeout: float) -> Frame | None:
        """Return the newest untaken frame, waiting up to ``timeout`` seconds; else None."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def clear(self) -> None:
        """Drop a waiting frame (on deactivate: frames from before must not be acted on)."""
        with self._cond:
            self._frame = None

    def close(self) -> None:
        """Wake a waiting worker for good (shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Allow waiting again after :meth:`close`."""
        with self._cond:
            self._closed = False


class RollingStats:
    """Latency percentiles and action rate over the last ``window`` actions."""

    def __init__(self, window: int = 200) -> None:
        """Keep the last ``window`` samples."""
        self._latencies: deque[float] = deque(maxlen=window)
        self._times: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, latency_s: float, at_s: float) -> None:
        """Record one action's engine latency and the monotonic time it was published."""
        with self._lock:
            self._latencies.append(latency_s)
            self._times.append(at_s)

    def summary(self) -> dict[str, float]:
        """Return p50/p95 latency (s) and the action rate (Hz) over the window."""
        with self._lock:
            latencies = list(self._latencies)
            times = list(self._times)
        result = {'latency_p50_s': float('nan'), 'latency_p95_s': float('nan'),
                  'action_rate_hz': 0.0}
        if latencies:
            result['latency_p50_s'] = float(np.percentile(latencies, 50))
            result['latency_p95_s'] = float(np.percentile(latencies, 95))
        if len(times) >= 2 and times[-1] > times[0]:
            result['action_rate_hz'] = (len(times) - 1) / (times[-1] - times[0])
        return result

    def reset(self) -> None:
        """Forget every sample."""
        with self._lock:
            self._latencies.clear()
            self._times.clear()


class Throttle:
    """Let a message through at most once per ``period_s`` for each key (log throttling)."""

    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        """Throttle to one message per key per ``period_s``."""
        self.period_s = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        """Return whether a message for ``key`` may be emitted now."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        return True


class Counters:
    """Thread-safe event counters reported in diagnostics."""

    NAMES = ('frames_used', 'frames_stale', 'bad_images', 'bad_instructions', 'no_instruction',
             'engine_errors', 'engine_timeouts', 'actions', 'zero_commands', 'bad_parameters')

    def __init__(self) -> None:
        """Start every counter at zero."""
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str, amount: int = 1) -> None:
        """Increase counter ``name``."""
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> dict[str, int]:
        """Return a copy of every counter."""
        with self._lock:
            return dict(self._values)
