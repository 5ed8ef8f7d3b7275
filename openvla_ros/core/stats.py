# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Percentiles and time constants, defined once for the node, the tools and the reports."""

from __future__ import annotations

from typing import Iterable, Protocol

import numpy as np

#: Nanoseconds per second (ROS stamps and clocks count nanoseconds).
NS_PER_S = 1_000_000_000


def percentile(values: Iterable[float], q: float) -> float:
    """Return the ``q``-th percentile of ``values``, interpolated linearly; NaN if empty.

    Linear interpolation is numpy's default, so every figure here agrees with ``np.percentile``.
    """
    data = [float(v) for v in values]
    return float(np.percentile(data, q)) if data else float('nan')


class Stamp(Protocol):
    """A ROS ``builtin_interfaces/Time``, or any other message with its two fields."""

    @property
    def sec(self) -> int: ...

    @property
    def nanosec(self) -> int: ...


def stamp_to_ns(stamp: Stamp) -> int:
    """Return a ROS ``builtin_interfaces/Time`` (anything with sec, nanosec) in nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp_fields(ns: int) -> dict[str, int]:
    """Return ``{'sec', 'nanosec'}`` for a time in nanoseconds (for ``Time(**fields)``)."""
    return {'sec': int(ns) // NS_PER_S, 'nanosec': int(ns) % NS_PER_S}
