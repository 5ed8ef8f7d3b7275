# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Stream scheduler, pose composition and safety envelope on a fake clock (hand arithmetic)."""

import math

import numpy as np
import pytest

from openvla_ros.core.execution import (compare_early_rules, compose_pose, next_request_at,
                                        quat_from_rpy, SafetyEnvelope, StreamScheduler)

H = math.sqrt(0.5)


def run(scheduler, times, pushes=()):
    """Tick at ``times``; push (time, delta) before the first tick at or after that time."""
    pushes = list(pushes)
    out = []
    for t in times:
        while pushes and pushes[0][0] <= t + 1e-12:
            scheduler.push(pushes.pop(0)[1])
        out.append(scheduler.tick(t))
    return np.array(out)


def zoh_integral(out, times, last_interval):
    """Integrate a zero-order-hold consumer over real tick intervals."""
    intervals = np.diff(list(times) + [times[-1] + last_interval])
    return (out * intervals[:, None]).sum(axis=0)


def test_one_step_is_delta_over_period_for_exactly_one_period_then_zeros():
    s = StreamScheduler(control_period=0.2, rate_hz=50.0)
    times = [k * 0.02 for k in range(30)]
    out = run(s, times, [(0.0, [0.01, 0.0, -0.004, 0.0, 0.0, 0.1])])
    # 0.01 m / 0.2 s = 0.05 m/s; -0.004 / 0.2 = -0.02; 0.1 rad / 0.2 s = 0.5 rad/s: 10 ticks.
    for k in range(10):
        assert out[k] == pytest.approx([0.05, 0.0, -0.02, 0.0, 0.0, 0.5], abs=1e-12)
    assert np.all(out[10:] == 0.0)
    # 10 ticks x 0.02 s x 0.05 m/s = 0.01 m.
    assert zoh_integral(out, times, 0.02)[0] == pytest.approx(0.01, abs=1e-12)


def test_last_partial_tick_carries_only_the_remainder():
    s = StreamScheduler(control_period=0.25, rate_hz=50.0)   # 12.5 ticks per step
    times = [k * 0.02 for k in range(20)]
    out = run(s, times, [(0.0, [0.01, 0, 0, 0, 0, 0])])
    # 0.01 / 0.25 = 0.04 m/s for 12 ticks (0.0096 m), then 0.0004 m in one tick = 0.02 m/s.
    assert out[:12, 0] == pytest.approx([0.04] * 12, abs=1e-12)
    assert out[12, 0] == pytest.approx(0.02, abs=1e-12)
    assert np.all(out[13:] == 0.0)
    assert zoh_integral(out, times, 0.02)[0] == pytest.approx(0.01, abs=1e-12)


def test_a_late_tick_is_compensated_so_the_integral_stays_exact():
    s = StreamScheduler(control_period=0.2, rate_hz=50.0)
    times = [0.0, 0.02, 0.05] + [0.05 + 0.02 * k for k in range(1, 12)]
    out = run(s, times, [(0.0, [0.01, 0, 0, 0, 0, 0])])
    # Held 0.05 m/s over 0.02 s and 0.03 s: 0.0025 sent at t=0.05; the aim at 0.07 is
    # 0.01 * 0.35 = 0.0035, so 0.05 m/s again; the tick at 0.19 sends 0.01 - 0.05 * 0.19.
    assert out[2, 0] == pytest.approx(0.05, abs=1e-12)
    final = times.index(0.05 + 0.02 * 7)
    assert out[final, 0] == pytest.approx((0.01 - 0.0095) / 0.02, abs=1e-9)
    assert np.all(out[final + 1:] == 0.0)
    assert zoh_integral(out, times, 0.02)[0] == pytest.approx(0.01, abs=1e-12)


def test_early_action_blends_the_unsent_remainder_into_the_new_step():
    s = StreamScheduler(control_period=0.2, rate_hz=50.0)
    times = [k * 0.02 for k in range(25)]
    out = run(s, times, [(0.0, [0.01, 0, 0, 0, 0, 0]), (0.1, [0.02, 0, 0, 0, 0, 0])])
    # 5 ticks at 0.05 m/s sent 0.005 m; 0.005 left + 0.02 new = 0.025 m over 0.2 s = 0.125.
    assert out[:5, 0] == pytest.approx([0.05] * 5, abs=1e-12)
    assert out[5:15, 0] == pytest.approx([0.125] * 10, abs=1e-12)
    assert np.all(out[15:] == 0.0)
    assert zoh_integral(out, times, 0.02)[0] == pytest.approx(0.03, abs=1e-12)
    assert s.early == 1


def test_an_action_arriving_at_the_last_tick_waits_one_tick_instead_of_blending():
    s = StreamScheduler(control_period=0.2, rate_hz=50.0)
    times = [k * 0.02 for k in range(25)]
    out = run(s, times, [(0.0, [0.01, 0, 0, 0, 0, 0]), (0.17, [0.02, 0, 0, 0, 0, 0])])
    # The push lands before the tick at 0.18, whose aim (0.18 + 0.02) is the step's end: that
    # tick sends the first step's last 0.001 m (0.05 m/s), the new step starts at 0.20 with
    # 0.02 / 0.2 = 0.1 m/s for 10 ticks, and nothing of one action moves into the other.
    assert out[:10, 0] == pytest.approx([0.05] * 10, abs=1e-12)
    assert out[10:20, 0] == pytest.approx([0.1] * 10, abs=1e-12)
    assert np.all(out[20:] == 0.0)
    assert list(s.step_starts) == pytest.approx([0.0, 0.2])
    assert s.early == 0


def test_next_finishes_the_step_then_sends_the_waiting_actions_merged():
    s = StreamScheduler(control_period=0.2, rate_hz=50.0, early_rule='next')
    times = [k * 0.02 for k in range(30)]
    pushes = [(0.0, [0.01, 0, 0, 0, 0, 0]), (0.1, [0.02, 0, 0, 0, 0, 0]),
              (0.12, [0.01, 0, 0, 0, 0, 0])]
    out = run(s, times, pushes)
    # The first step whole (0.05 m/s x 10 ticks), then the two waiting actions as one step:
    # 0.02 + 0.01 = 0.03 m over 0.2 s = 0.15 m/s from 0.2 s.
    assert out[:10, 0] == pytest.approx([0.05] * 10, abs=1e-12)
    assert out[10:20, 0] == pytest.approx([0.15] * 10, abs=1e-12)
    assert np.all(out[20:] == 0.0)
    assert list(s.step_starts) == pytest.approx([0.0, 0.2])


def test_queued_motion_ends_after_the_step_in_progress():
    s = StreamScheduler(control_period=0.2, rate_hz=50.0, early_rule='next')
    run(s, [0.0, 0.02], [(0.0, [0.01, 0, 0, 0, 0, 0])])
    s.push([0.01, 0, 0, 0, 0, 0])
    # Step 1 started at 0.0 and ends at 0.2; the waiting one then runs to 0.4.
    assert s.motion_ends_at(0.05) == pytest.approx(0.4)


def test_other_rules_preempt_drops_and_finish_queues():
    times = [k * 0.02 for k in range(30)]
    pushes = [(0.0, [0.01, 0, 0, 0, 0, 0]), (0.1, [0.02, 0, 0, 0, 0, 0])]
    preempt = run(StreamScheduler(0.2, 50.0, 'preempt'), times, pushes)
    # 0.005 m sent, the rest dropped, then 0.02 m at 0.1 m/s.
    assert preempt[5:15, 0] == pytest.approx([0.1] * 10, abs=1e-12)
    assert zoh_integral(preempt, times, 0.02)[0] == pytest.approx(0.025, abs=1e-12)
    finish = run(StreamScheduler(0.2, 50.0, 'finish'), times, pushes)
    assert finish[:10, 0] == pytest.approx([0.05] * 10, abs=1e-12)
    assert finish[10:20, 0] == pytest.approx([0.1] * 10, abs=1e-12)


def test_blend_keeps_closest_to_the_models_path():
    figures = compare_early_rules(action_period=0.15)
    assert figures['blend']['end_error'] < 1e-9
    assert figures['preempt']['end_error'] > 1e-3         # remainders lost
    assert figures['blend']['max_lag'] < figures['finish']['max_lag']
    assert figures['blend']['max_lag'] < figures['preempt']['max_lag']


def test_slow_engine_gets_zeros_and_idle_fraction():
    s = StreamScheduler(control_period=0.2, rate_hz=50.0)
    times = [k * 0.02 for k in range(51)]
    out = run(s, times, [(0.0, [0.01, 0, 0, 0, 0, 0])])
    assert np.all(out[10:] == 0.0)     # no extrapolation of the last action
    # Over 1.0 s: 0.2 s moving, 0.8 s zeros.
    assert s.idle_fraction() == pytest.approx(0.8, abs=1e-9)


def test_clear_stops_mid_step():
    s = StreamScheduler(control_period=0.2, rate_hz=50.0)
    out = run(s, [0.0, 0.02], [(0.0, [0.01, 0, 0, 0, 0, 0])])
    assert out[1, 0] == pytest.approx(0.05)
    s.clear()
    assert np.all(s.tick(0.04) == 0.0)


def test_bad_settings_and_deltas_are_refused():
    with pytest.raises(ValueError, match='stream_rate_hz'):
        StreamScheduler(0.2, 0.0)
    with pytest.raises(ValueError, match='6 finite'):
        StreamScheduler(0.2, 50.0).push([0.0, float('nan'), 0, 0, 0, 0])


# -------------------------------------------------------------------- pose composition

def test_rpy_order_is_rz_ry_rx():
    # Rz(90) * Rx(90): (0, 0, h, h) * (h, 0, 0, h) = (1/2, 1/2, 1/2, 1/2) by hand; the other
    # order would give (1/2, -1/2, 1/2, 1/2).
    assert quat_from_rpy(math.pi / 2, 0.0, math.pi / 2) == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert quat_from_rpy(0.0, 0.0, 0.3) == pytest.approx([0, 0, math.sin(0.15),
                                                          math.cos(0.15)])


def test_pose_composition_base_convention_is_bridges():
    # Current: 90 deg about z = (0, 0, h, h). Delta: roll 90 deg = (h, 0, 0, h).
    # Base (Bridge): q_d * q_c = (1/2, -1/2, 1/2, 1/2); R = Rx(90) Rz(90) maps x to z.
    position, q = compose_pose([0.3, 0.0, 0.15], [0, 0, H, H],
                               [0.01, -0.02, 0.03, math.pi / 2, 0.0, 0.0], 'base')
    assert position == pytest.approx([0.31, -0.02, 0.18])
    assert q == pytest.approx([0.5, -0.5, 0.5, 0.5])


def test_pose_composition_tool_convention():
    # Tool: q_c * q_d = (0, 0, h, h) * (h, 0, 0, h) = (1/2, 1/2, 1/2, 1/2).
    position, q = compose_pose([0.3, 0.0, 0.15], [0, 0, H, H],
                               [0.0, 0.0, 0.0, math.pi / 2, 0.0, 0.0], 'tool')
    assert position == pytest.approx([0.3, 0.0, 0.15])
    assert q == pytest.approx([0.5, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match='rotation_convention'):
        compose_pose([0, 0, 0], [0, 0, 0, 1], [0] * 6, 'world')


# -------------------------------------------------------------------- safety envelope

def test_enable_timeout_and_false_withdraws():
    env = SafetyEnvelope(require_enable=True, enable_timeout=0.5)
    assert 'not enabled' in env.why_not(0.0)
    env.on_enable(True, 1.0)
    assert env.why_not(1.4) == ''
    assert env.why_not(1.5) == ''
    assert 'timed out' in env.why_not(1.51)
    env.on_enable(True, 2.0)
    env.on_enable(False, 2.1)
    assert 'not enabled' in env.why_not(2.2)
    assert SafetyEnvelope(require_enable=False).why_not(0.0) == ''


def test_workspace_cuts_at_the_box_and_counts():
    env = SafetyEnvelope(workspace_min=[0.0, 0.0, 0.0], workspace_max=[1.0, 1.0, 1.0],
                         ee_pose_timeout=0.5)
    assert 'ee_pose' in env.why_not(0.0)             # box without a pose: no motion
    env.on_pose([0.95, 0.5, 0.5], [0, 0, 0, 1], 0.0)
    assert env.why_not(0.1) == ''
    delta, cut = env.cut_delta([0.1, 0.02, -0.6, 0.1, 0.0, 0.0], 0.1)
    # x: 0.95 + 0.1 -> 1.0 (0.05); y inside; z: 0.5 - 0.6 -> 0.0 (-0.5); rotation untouched.
    assert cut and delta == pytest.approx([0.05, 0.02, -0.5, 0.1, 0.0, 0.0])
    delta, cut = env.cut_delta([0.01, 0.0, 0.0, 0, 0, 0], 0.1)
    assert not cut and delta == pytest.approx([0.01, 0, 0, 0, 0, 0])
    assert env.cuts == 1
    # Per tick: 0.5 m/s for 0.2 s would reach x = 1.05: stopped; y may move.
    assert env.cut_velocity([0.5, 0.5, 0, 0, 0, 0], 0.2, 0.1) == pytest.approx(
        [0.0, 0.5, 0, 0, 0, 0])
    assert 'ee_pose' in env.why_not(0.6)             # stale pose: no motion


def test_stale_pose_gives_no_target():
    env = SafetyEnvelope(ee_pose_timeout=0.5)
    assert env.target([0.01, 0, 0, 0, 0, 0], 'base', 0.0) is None
    env.on_pose([0.3, 0.0, 0.15], [0, 0, 0, 1], 1.0)
    position, q = env.target([0.01, 0, 0, 0, 0, 0], 'base', 1.2)
    assert position == pytest.approx([0.31, 0.0, 0.15])
    assert env.target([0.01, 0, 0, 0, 0, 0], 'base', 1.6) is None


def test_bad_workspace_is_refused():
    with pytest.raises(ValueError, match='below workspace_max'):
        SafetyEnvelope(workspace_min=[0, 0, 1], workspace_max=[1, 1, 0])


def test_parameter_change_with_a_bad_box_is_refused():
    from openvla_ros.node.parameters import BY_NAME, check_change
    current = {name: param.default for name, param in BY_NAME.items()}
    assert 'workspace_min must be below' in check_change(
        current, {'workspace_min': [0.0, 0.0, 0.5], 'workspace_max': [1.0, 1.0, 0.2]})
    assert check_change(current, {'workspace_min': [0.0, -0.2, 0.0],
                                  'workspace_max': [0.5, 0.2, 0.4]}) == ''
    assert 'publish_mode must be one of' in check_change(current, {'publish_mode': 'burst'})


def test_rotvec_round_trip_by_hand():
    from openvla_ros.core.execution import quat_from_rotvec, quat_to_rotvec
    # 0.3 rad about z: (0, 0, sin .15, cos .15) and back.
    assert quat_from_rotvec([0, 0, 0.3]) == pytest.approx([0, 0, math.sin(0.15),
                                                           math.cos(0.15)])
    assert quat_to_rotvec([0, 0, math.sin(0.15), math.cos(0.15)]) == pytest.approx([0, 0, 0.3])


def test_rpy_to_rotvec_by_hand():
    from openvla_ros.core.execution import rpy_to_rotvec
    # Rz(90) Rx(90) = (1/2, 1/2, 1/2, 1/2): 120 deg about (1, 1, 1) / sqrt(3).
    each = 2 * math.pi / 3 / math.sqrt(3)
    assert rpy_to_rotvec(math.pi / 2, 0.0, math.pi / 2) == pytest.approx([each] * 3)
    assert rpy_to_rotvec(0.0, 0.0, 0.1) == pytest.approx([0, 0, 0.1])


def test_motion_end_and_the_next_request_time_by_hand():
    scheduler = StreamScheduler(0.2, 50.0)
    assert scheduler.motion_ends_at(10.0) is None                  # idle: nothing to wait for
    assert next_request_at(10.0, None, 0.05) == 10.0
    scheduler.push([0.01, 0, 0, 0, 0, 0])
    assert scheduler.motion_ends_at(10.0) == pytest.approx(10.2)   # queued: starts next tick
    scheduler.tick(10.01)                                          # the step starts at 10.01
    assert scheduler.motion_ends_at(10.05) == pytest.approx(10.21)
    # An engine taking 0.05 s (p95) starts 0.05 s before the step ends: 10.21 - 0.05.
    assert next_request_at(10.05, 10.21, 0.05) == pytest.approx(10.16)
    # Slower than the step: start now (the result is late either way).
    assert next_request_at(10.05, 10.21, 0.5) == pytest.approx(9.71)
    for k in range(1, 11):
        scheduler.tick(10.01 + 0.02 * k)                           # the step is sent
    assert scheduler.motion_ends_at(10.25) is None
