# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The arm benchmark's side-by-side run: pulse halts and does half of each step, stream does not.

Real node, real simulated arm over DDS, a synthetic engine at GPU speed (0.1 s per action).
The expected figures follow from Servo's semantics by hand: a pulse is held for the 0.1 s
timeout of a 0.2 s step (50 %, one halt per action); a stream is held for the whole step.
"""

import pytest

pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from openvla_ros.tools.arm_demo import benchmark_arm, benchmark_table  # noqa: E402


def test_pulse_and_stream_side_by_side():
    rows = benchmark_arm(duration=4.0, engines=[('GPU-speed (0.1 s)', 0.1)],
                         progress=lambda line: None)
    pulse, stream = rows
    assert (pulse['mode'], stream['mode']) == ('pulse', 'stream')
    assert not pulse['reason'] and not stream['reason']
    # ~5 actions a second for 4 s in both.
    assert pulse['actions'] >= 10 and stream['actions'] >= 10
    assert pulse['translation_error_median_pct'] == pytest.approx(50.0, abs=5.0)
    assert pulse['halts_per_min'] > 100
    if stream['max_gap_s'] > 0.1:
        pytest.skip(f"machine overloaded: stream gap {stream['max_gap_s']:.3f} s")
    assert stream['halts_per_min'] == 0
    assert stream['translation_error_median_pct'] < 2.0
    assert stream['sent_error_median_pct'] < 2.0
    table = benchmark_table(rows)
    assert table.count('\n') == 3 and '| stream |' in table and '| pulse |' in table
