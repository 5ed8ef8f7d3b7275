# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A goal's limits, steps, feedback and ending, with plain numbers and a hand-moved clock."""

import math
import threading

import pytest

from openvla_ros.core.conditioning import Conditioning
from openvla_ros.core.goals import (check_limits, EndReason, GoalError, GoalRun, GoalSpec,
                                    is_clipped)

ACTION = (0.01, 0.02, 0.0, 0.1, 0.0, 0.0, 1.0)


def run(max_steps=0, timeout_s=0.0):
    return GoalRun(GoalSpec('put the spoon on the towel', max_steps, timeout_s), 'g1')


def test_limits_are_checked_with_the_fix_named():
    assert check_limits(40, 30) == (40, 30.0)
    assert check_limits(0, 2.5) == (0, 2.5)
    assert check_limits(3, 0) == (3, 0.0)
    for steps, seconds, phrase in ((0, 0.0, 'set max_steps'), (-1, 5.0, 'max_steps must be'),
                                   (5, float('nan'), 'timeout_s must be'),
                                   (5, -1.0, 'timeout_s must be'),
                                   (5, float('inf'), 'timeout_s must be'),
                                   ('many', 1.0, 'whole number')):
        with pytest.raises(GoalError, match=phrase):
            check_limits(steps, seconds)


def test_reasons_match_the_outcomes_and_words():
    assert [r.value for r in EndReason] == [0, 1, 2, 3, 4, 5, 6]
    assert EndReason.STEP_LIMIT.outcome == EndReason.TIME_LIMIT.outcome == 'succeeded'
    assert EndReason.CANCELLED.outcome == 'canceled'
    for reason in (EndReason.PREEMPTED, EndReason.ENGINE_ERROR, EndReason.DEACTIVATED):
        assert reason.outcome == 'aborted'
    assert EndReason.ENGINE_ERROR.text == 'engine_error'


def test_step_limit_ends_at_the_nth_action():
    goal = run(max_steps=3)
    assert not goal.live and not goal.started
    goal.begin(100.0)
    assert goal.live
    for step, now in ((1, 100.5), (2, 101.0)):
        assert goal.record_action(ACTION, 0.2, 0.05, False, now, 'running') == step
        assert goal.live
    assert goal.record_action(ACTION, 0.2, 0.05, True, 101.5, 'running') == 3
    assert not goal.live and goal.reason is EndReason.STEP_LIMIT
    result = goal.outcome(200.0)
    # Elapsed stops at the ending (101.5 - 100.0), not at the time of asking.
    assert result.steps == 3 and result.elapsed_s == pytest.approx(1.5)
    assert result.clipped_steps == 1 and result.last_action == ACTION
    assert result.message == 'step_limit: reached max_steps (3) after 3 steps in 1.5 s'
    assert result.last_error == ''


def test_time_limit_counts_from_begin():
    goal = run(timeout_s=2.0)
    goal.check(50.0, 0, '')            # not begun: no clock yet
    assert not goal.ended
    goal.begin(100.0)
    goal.check(101.99, 0, '')
    assert goal.live
    goal.check(102.0, 0, '')
    assert goal.reason is EndReason.TIME_LIMIT
    assert goal.outcome(105.0).elapsed_s == pytest.approx(2.0)


def test_engine_failures_since_begin_end_the_goal_with_the_error():
    goal = run(max_steps=10)
    goal.begin(0.0, engine_failures=4)    # failures before the goal do not count
    goal.check(1.0, 4, 'old error')
    assert goal.live
    goal.check(2.0, 5, 'engine error: RuntimeError: boom')
    result = goal.outcome(3.0)
    assert result.reason is EndReason.ENGINE_ERROR
    assert result.last_error == 'engine error: RuntimeError: boom'
    assert result.message.startswith('engine_error: ')


def test_first_ending_wins():
    goal = run(max_steps=1)
    goal.begin(0.0)
    assert goal.end(EndReason.CANCELLED, 'cancelled by the client', 1.0)
    assert not goal.end(EndReason.DEACTIVATED, 'node deactivated', 2.0)
    goal.record_action(ACTION, 0.1, 0.1, False, 1.5, 'running')   # published before the stop
    assert goal.reason is EndReason.CANCELLED and goal.steps == 1
    assert goal.outcome(9.0).message == ('cancelled: cancelled by the client after 1 step in '
                                         '1.0 s')


def test_goal_preempted_before_it_began_has_no_elapsed_time():
    goal = run(max_steps=5)
    goal.end(EndReason.PREEMPTED, 'preempted by a newer goal', 7.0)
    assert not goal.live and goal.outcome(8.0).elapsed_s == 0.0
    assert math.isnan(goal.outcome(8.0).last_action[0])


def test_feedback_once_per_action_then_heartbeats():
    goal = run(max_steps=10)
    assert goal.take_feedback(0.0, 'running') == []    # not begun: nothing to say
    goal.begin(10.0)
    first = goal.take_feedback(10.0, 'running')
    assert len(first) == 1 and first[0].step == 0 and math.isnan(first[0].latency_s)
    assert goal.take_feedback(10.5, 'running') == []   # heartbeat not due yet
    goal.record_action(ACTION, 0.25, 0.04, False, 10.6, 'running')
    goal.record_action((0.0,) * 6 + (0.0,), 0.3, 0.06, True, 10.7, 'running')
    both = goal.take_feedback(10.8, 'running')
    assert [f.step for f in both] == [1, 2]
    assert both[0].action == ACTION and both[0].latency_s == 0.25
    assert both[0].elapsed_s == pytest.approx(0.6) and both[0].max_steps == 10
    assert both[1].clipped_steps == 1 and both[1].image_age_s == 0.06
    assert goal.take_feedback(11.7, 'error') == []     # 0.9 s since the last feedback
    beat = goal.take_feedback(11.8, 'error')
    assert [(f.step, f.loop_state) for f in beat] == [(2, 'error')]


def test_wait_returns_when_woken_from_another_thread():
    goal = run(max_steps=1)
    goal.begin(0.0)
    threading.Timer(0.05, goal.record_action,
                    (ACTION, 0.1, 0.1, False, 0.1, 'running')).start()
    goal.wait(30.0)     # returns at the action, far before the deadline; hangs would fail
    assert goal.ended


def test_clipping_is_detected_against_the_same_settings_without_clamps():
    # Linear norm of (0.03, 0.04, 0) is 0.05; angular norm of (0.1, 0, 0) is 0.1.
    action = (0.03, 0.04, 0.0, 0.1, 0.0, 0.0, 1.0)
    assert not is_clipped(Conditioning(max_linear=0.05, max_angular=0.1), action)
    assert is_clipped(Conditioning(max_linear=0.049, max_angular=0.0), action)
    assert is_clipped(Conditioning(max_angular=0.09), action)
    # Velocity mode divides by the 0.2 s period first: the linear norm becomes 0.25 m/s.
    assert is_clipped(Conditioning(output_mode='velocity', max_linear=0.2), action)
    assert not is_clipped(Conditioning(output_mode='velocity', max_linear=0.25), action)
    with pytest.raises(ValueError):
        is_clipped(Conditioning(), (float('nan'),) * 7)
