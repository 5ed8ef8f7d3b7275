# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The inference loop with a fake policy and a fake clock: no ROS, no engine, no waiting."""

import threading
import time

import numpy as np
import pytest

from openvla_ros.core.engine import Prediction
from openvla_ros.core.images import ImageError
from openvla_ros.core.inference_loop import InferenceLoop, LoopSettings, LoopState
from openvla_ros.core.prompt import InstructionError


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def now(self):
        return self.t

    def monotonic(self):
        return self.t


class FakePolicy:
    """Answers with the frame's number as the action; can hang, fail or die on request."""

    def __init__(self):
        self.calls = []
        self.gate = None          # a threading.Event to hold requests until set
        self.error = None
        self.alive = True

    def prompt_ids(self, instruction):
        if len(instruction) > 50:
            raise InstructionError('too long')
        return [1, len(instruction), 29871]

    def predict(self, image, instruction, prompt_ids=None):
        self.calls.append((image, instruction, prompt_ids))
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return Prediction(np.full(7, float(image)), [31744] * 7, {'engine_s': 0.5})

    def is_alive(self):
        return self.alive


class Recorder:
    def __init__(self):
        self.events = []

    def action(self, prediction, frame):
        self.events.append(('action', frame.msg))
        return True

    def zero(self, reason):
        self.events.append(('zero', reason))

    def problem(self, key, message, level):
        self.events.append(('problem', key))

    def engine_dead(self, message):
        self.events.append(('dead', message))

    def actions(self):
        return [msg for kind, msg in self.events if kind == 'action']

    def kinds(self):
        return [kind for kind, _ in self.events]


def decode(msg):
    if msg == 'bad':
        raise ImageError('broken')
    return msg


@pytest.fixture
def rig():
    clock, policy, out = FakeClock(), FakePolicy(), Recorder()
    loop = InferenceLoop(out, decode, clock=clock, settings=LoopSettings(
        max_image_age=1.0, command_timeout=2.0, inference_timeout=5.0))
    loop.set_policy(policy)
    loop.set_instruction('pick up the cup')
    loop.start(thread=False)
    yield loop, clock, policy, out
    if policy.gate is not None:
        policy.gate.set()
    loop.stop()
    loop.release()


def settle(loop, until, seconds=5.0):
    """Step the loop (real time only for the engine thread) until ``until()`` holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        loop.step()
        if until():
            return
        time.sleep(0.001)
    raise AssertionError('condition not reached')


def test_newest_frame_wins_and_none_is_used_twice(rig):
    loop, clock, policy, out = rig
    for number in (1, 2, 3):
        loop.put_frame(number, clock.now())
    settle(loop, lambda: len(out.actions()) == 1)
    assert out.actions() == [3]
    assert loop.status()['frames_superseded'] == 2
    for _ in range(20):
        loop.step()
    assert len(policy.calls) == 1            # frame 3 is not used again
    loop.put_frame(4, clock.now())
    settle(loop, lambda: len(out.actions()) == 2)
    assert out.actions() == [3, 4]


def test_prompt_ids_are_computed_once_per_instruction(rig):
    loop, clock, policy, out = rig
    for number in (1, 2):
        loop.put_frame(number, clock.now())
        settle(loop, lambda: len(out.actions()) == number)
    assert [ids for _, _, ids in policy.calls] == [[1, 15, 29871]] * 2
    with pytest.raises(InstructionError):
        loop.set_instruction('x' * 60)
    assert loop.instruction == ('pick up the cup', [1, 15, 29871])   # the old one is kept


def test_stale_frames_are_skipped(rig):
    loop, clock, policy, out = rig
    loop.put_frame(1, clock.now() - 1.5)
    loop.step()
    assert policy.calls == [] and loop.status()['frames_stale'] == 1
    assert ('problem', 'stale') in out.events


def test_bad_image_and_missing_instruction_are_counted_not_sent(rig):
    loop, clock, policy, out = rig
    loop.put_frame('bad', clock.now())
    loop.step()
    loop.use_instruction('', None)
    loop.put_frame(1, clock.now())
    loop.step()
    status = loop.status()
    assert policy.calls == []
    assert (status['bad_images'], status['no_instruction']) == (1, 1)


def test_command_timeout_sends_one_zero(rig):
    loop, clock, policy, out = rig
    loop.put_frame(1, clock.now())
    settle(loop, lambda: out.actions())
    clock.t += 1.9
    loop.step()
    assert 'zero' not in out.kinds()
    clock.t += 0.2
    loop.step()
    loop.step()
    assert out.kinds().count('zero') == 1


def test_hung_engine_times_out_and_its_late_answer_is_never_published(rig):
    loop, clock, policy, out = rig
    policy.gate = threading.Event()
    loop.put_frame(1, clock.now())
    loop.step()
    clock.t += 5.5
    loop.step()
    assert loop.state is LoopState.TIMEOUT
    assert out.kinds() == ['problem', 'zero']
    loop.put_frame(2, clock.now())
    loop.step()
    assert len(policy.calls) == 1            # the engine is still busy: nothing queued
    policy.gate.set()
    settle(loop, lambda: loop.status()['late_replies'] == 1)
    assert out.actions() == []
    policy.gate = None
    settle(loop, lambda: out.actions() == [2])  # the next fresh frame flows again
    assert loop.state is LoopState.RUNNING


def test_dead_engine_stops_the_loop(rig):
    loop, clock, policy, out = rig
    policy.gate = threading.Event()
    loop.put_frame(1, clock.now())
    loop.step()
    policy.alive = False
    loop.step()
    assert loop.state is LoopState.DEAD and not loop.running
    assert out.kinds()[:2] == ['zero', 'dead']
    loop.put_frame(2, clock.now())
    loop.step()
    assert len(policy.calls) == 1


def test_engine_error_marked_dead_by_the_engine():
    class EngineDeadError(RuntimeError):
        pass
    clock, policy, out = FakeClock(), FakePolicy(), Recorder()
    loop = InferenceLoop(out, decode, clock=clock)
    loop.set_policy(policy)
    loop.set_instruction('go')
    loop.start(thread=False)
    policy.error = EngineDeadError('gone')
    loop.put_frame(1, clock.now())
    settle(loop, lambda: loop.state is LoopState.DEAD)
    assert 'dead' in out.kinds()
    loop.set_policy(FakePolicy())             # a new engine: usable again
    assert loop.state is LoopState.STOPPED
    loop.release()


def test_unreachable_engine_retries_with_backoff_and_resumes(rig):
    loop, clock, policy, out = rig

    class Unreachable(RuntimeError):
        retryable = True
    policy.error = Unreachable('connection refused')
    loop.put_frame(1, clock.now())
    settle(loop, lambda: loop.state is LoopState.UNREACHABLE)
    assert 'zero' in out.kinds()
    loop.put_frame(2, clock.now())
    loop.step()
    assert len(policy.calls) == 1            # backing off: no request yet
    clock.t += 0.6
    settle(loop, lambda: len(policy.calls) == 2)
    settle(loop, lambda: loop.status()['engine_unreachable'] == 2)
    policy.error = None                      # the server is back
    clock.t += 1.1
    loop.put_frame(3, clock.now())
    settle(loop, lambda: out.actions() == [3])
    assert loop.state is LoopState.RUNNING


def test_rate_cap(rig):
    loop, clock, policy, out = rig
    loop.settings.max_rate_hz = 2.0
    loop.put_frame(1, clock.now())
    settle(loop, lambda: len(out.actions()) == 1)
    loop.put_frame(2, clock.now())
    for _ in range(5):
        loop.step()
    assert len(policy.calls) == 1            # within 0.5 s of the previous request
    clock.t += 0.5
    settle(loop, lambda: len(out.actions()) == 2)


def test_the_zero_is_the_last_output_after_stop(rig):
    loop, clock, policy, out = rig
    policy.gate = threading.Event()
    loop.put_frame(1, clock.now())
    loop.step()
    loop.stop('deactivate')
    policy.gate.set()
    time.sleep(0.05)
    for _ in range(5):
        loop.step()
    assert out.kinds() == ['zero'] and out.actions() == []


def test_running_in_its_own_thread():
    out, policy = Recorder(), FakePolicy()
    loop = InferenceLoop(out, decode)           # the system clock
    loop.set_policy(policy)
    loop.set_instruction('go')
    loop.start()
    loop.put_frame(7, time.time())
    deadline = time.monotonic() + 5
    while not out.actions() and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop('shutdown', join_timeout=5)
    assert out.actions() == [7] and out.kinds()[-1] == 'zero'
    status = loop.status()
    assert status['actions'] == 1 and status['latency_p50_s'] == 0.5
    loop.release()


def test_a_request_from_before_a_stop_is_never_published_after_a_restart(rig):
    loop, clock, policy, out = rig
    policy.gate = threading.Event()
    loop.put_frame(1, clock.now())
    loop.step()                               # frame 1 is in the engine
    assert [call[0] for call in policy.calls] == [1]
    loop.stop('new goal')
    loop.set_instruction('open the drawer')
    loop.start(thread=False)
    policy.gate.set()                         # frame 1's answer comes after the restart
    loop.put_frame(2, clock.now())
    settle(loop, lambda: len(out.actions()) == 1)
    assert out.actions() == [2]
    assert policy.calls[-1][1] == 'open the drawer'
