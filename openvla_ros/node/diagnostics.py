# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's health as one ``diagnostic_msgs/DiagnosticStatus``, and throttled problem logs.

Inside the program the figures stay numbers (``OpenVlaPolicyNode.status()``); they become the
strings of ``KeyValue`` only here, at the message boundary.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

#: Decimal places of the float figures in diagnostics (seconds to 0.1 ms, rates to mHz).
_DECIMALS = {'engine_startup_s': 2, 'latency_p50_s': 4, 'latency_p95_s': 4,
             'action_rate_hz': 3, 'last_frame_age_s': 3, 'frame_age_p95_s': 4,
             'ee_pose_age_s': 3, 'stream_idle_fraction': 3}


def level_and_message(status: dict[str, Any]) -> tuple[int, str]:
    """Return the diagnostic level and one-line message for a node status."""
    state, health = status['engine_state'], status['engine_health']
    if state in ('failed', 'dead') or (state == 'active' and health != 'ok'):
        return DiagnosticStatus.ERROR, str(status['last_error'])
    if state != 'active':
        return DiagnosticStatus.OK, f'engine {state}'
    if not status['actions']:
        return DiagnosticStatus.WARN, 'active, no action yet'
    if status.get('motion_warning'):
        return DiagnosticStatus.WARN, str(status['motion_warning'])
    return DiagnosticStatus.OK, 'active'


def format_value(key: str, value: Any) -> str:
    """Return the text of one figure as diagnostics shows it."""
    if isinstance(value, float):
        if math.isnan(value):
            return 'nan'
        return f'{value:.{_DECIMALS.get(key, 4)}f}'
    return str(value)


def to_status(name: str, hardware_id: str, status: dict[str, Any]) -> DiagnosticStatus:
    """Return the ``DiagnosticStatus`` of a node status dict."""
    message = DiagnosticStatus(name=name, hardware_id=hardware_id)
    message.level, message.message = level_and_message(status)
    message.values = [KeyValue(key=key, value=format_value(key, value))
                      for key, value in status.items()]
    return message


def to_array(stamp: Any, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    """Return a ``DiagnosticArray`` for ``/diagnostics``."""
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = statuses
    return array


class Throttle:
    """Let a message through at most once per ``period_s`` for each key (log throttling)."""

    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        """Throttle to one message per key per ``period_s``."""
        self.period_s = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        """Return whether a message for ``key`` may be emitted now, and how many were held."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        self._last[key] = now
        return True, self._suppressed.pop(key, 0)
