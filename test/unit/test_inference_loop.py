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
        self.messages = []        # (key, full message) of every problem reported
        self.action_error = None  # raised by action() when set: a broken output callback

    def action(self, prediction, frame):
        if self.action_error is not None:
            raise self.action_error
        self.events.append(('action', frame.msg))
        return True

    def zero(self, reason):
        self.events.append(('zero', reason))

    def problem(self, key, message, level):
        self.events.append(('problem', key))
        self.messages.append((key, message))

    def engine_dead(self, message):
        self.events.append(('dead', message))

    def actions(self):
        return [msg for kind, msg in self.events if kind == 'action']

    def kinds(self):
        return [kind for kind, _ in self.events]


def decode(msg):
    if msg == 'bad':
        raise ImageError('broken')
    if msg == 'huge':
        raise MemoryError('cannot allocate 286 MiB for the pixels')
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


# ---------------------------------------------------------------- unexpected errors (issue 16)

def tracebacks(out):
    return [message for _, message in out.messages if 'Traceback (most recent call last)' in
            message]


def test_memory_error_decoding_a_frame_zero_at_once_then_the_next_good_frame_acts(rig):
    loop, clock, policy, out = rig
    loop.put_frame(1, clock.now())
    settle(loop, lambda: out.actions() == [1])   # the robot has a command to stop
    loop.put_frame('huge', clock.now())
    loop.step()
    assert out.kinds() == ['action', 'zero', 'problem']   # at once, not after command_timeout
    assert loop.state is LoopState.ERROR and loop.running
    status = loop.status()
    assert status['loop_state'] == 'error' and status['loop_errors'] == 1
    assert 'MemoryError' in status['last_error']
    assert 'cannot allocate 286 MiB for the pixels' in status['last_error']
    assert 'Traceback' not in status['last_error']    # diagnostics: type and message only
    [logged] = tracebacks(out)
    assert 'MemoryError: cannot allocate 286 MiB' in logged and 'in decode' in logged
    for _ in range(3):                           # the same bad frame again: no new traceback
        loop.put_frame('huge', clock.now())
        loop.step()
    assert len(tracebacks(out)) == 1 and loop.status()['loop_errors'] == 4
    loop.put_frame(2, clock.now())               # the next good frame: acting again
    settle(loop, lambda: out.actions() == [1, 2])
    assert loop.state is LoopState.RUNNING


def test_output_callback_error_zero_fault_no_action_until_stop_and_start(rig):
    loop, clock, policy, out = rig
    loop.put_frame(1, clock.now())
    settle(loop, lambda: out.actions() == [1])
    out.action_error = RuntimeError('publisher handle is invalid')
    loop.put_frame(2, clock.now())
    settle(loop, lambda: loop.state is LoopState.FAULT)
    assert out.kinds() == ['action', 'zero', 'problem'] and not loop.running
    status = loop.status()
    assert status['loop_state'] == 'fault'
    assert 'RuntimeError: publisher handle is invalid' in status['last_error']
    assert 'deactivated and activated again' in status['last_error']
    [logged] = tracebacks(out)
    assert 'in action' in logged                 # the traceback points at the callback
    out.action_error = None                      # fixed, but not acted on by itself:
    for number in (3, 4):
        loop.put_frame(number, clock.now())
        for _ in range(5):
            loop.step()
    clock.t += 10.0                              # nor does the command timeout fire again
    loop.step()
    assert len(policy.calls) == 2 and out.kinds().count('zero') == 1
    assert len(tracebacks(out)) == 1             # logged once
    loop.stop('deactivate')                      # a lifecycle transition re-arms it
    assert loop.state is LoopState.STOPPED and out.kinds()[-1] == 'zero'
    loop.start(thread=False)
    loop.put_frame(5, clock.now())
    settle(loop, lambda: out.actions() == [1, 5])
    assert loop.state is LoopState.RUNNING


def test_a_failing_zero_command_is_still_reported_and_faults():
    class BrokenZero(Recorder):
        def zero(self, reason):
            raise OSError('the zero twist publisher is gone')
    clock, policy, out = FakeClock(), FakePolicy(), BrokenZero()
    loop = InferenceLoop(out, decode, clock=clock, settings=LoopSettings(command_timeout=2.0))
    loop.set_policy(policy)
    loop.set_instruction('go')
    loop.start(thread=False)
    loop.put_frame(1, clock.now())
    settle(loop, lambda: out.actions() == [1])
    clock.t += 2.5                               # the command timeout's zero raises
    loop.step()
    assert loop.state is LoopState.FAULT
    last_error = loop.status()['last_error']
    assert 'OSError: the zero twist publisher is gone' in last_error
    assert 'could not be published either' in last_error
    loop.release()


def test_the_loop_thread_survives_and_reports_an_unexpected_error():
    out, policy = Recorder(), FakePolicy()
    loop = InferenceLoop(out, decode, settings=LoopSettings(command_timeout=60.0))
    loop.set_policy(policy)
    loop.set_instruction('go')
    loop.start()
    thread = loop._thread
    try:
        loop.put_frame(1, time.time())
        deadline = time.monotonic() + 5
        while out.actions() != [1] and time.monotonic() < deadline:
            time.sleep(0.01)
        loop.put_frame('huge', time.time())
        while loop.state is not LoopState.ERROR and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.state is LoopState.ERROR and 'zero' in out.kinds()
        assert thread.is_alive()                 # still serving frames
        loop.put_frame(2, time.time())
        while out.actions() != [1, 2] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert out.actions() == [1, 2] and loop.state is LoopState.RUNNING
    finally:
        loop.stop('shutdown', join_timeout=5)
        loop.release()


def test_the_thread_reports_even_an_exit_request():
    """SystemExit from a callback is not an Exception: the thread ends, but never silently."""
    class Exiting(Recorder):
        def action(self, prediction, frame):
            raise SystemExit(3)
    out, policy = Exiting(), FakePolicy()
    loop = InferenceLoop(out, decode)
    loop.set_policy(policy)
    loop.set_instruction('go')
    loop.start()
    thread = loop._thread
    loop.put_frame(1, time.time())
    thread.join(5)
    assert not thread.is_alive()
    assert loop.state is LoopState.FAULT and out.kinds() == ['zero', 'problem']
    assert 'SystemExit: 3' in loop.status()['last_error']
    loop.stop()
    loop.release()


def test_max_rate_changed_to_0_between_two_reads_is_read_once(rig):
    """The node changes settings from another thread: a step must not read one value twice."""
    loop, clock, policy, out = rig

    class Changing(LoopSettings):
        """max_rate_hz is 2.0 at its first read in each step and 0 afterwards (a set_parameters
        call landing between two reads)."""

        reads = 0

        @property
        def max_rate_hz(self):
            Changing.reads += 1
            return 2.0 if Changing.reads % 2 else 0.0

        @max_rate_hz.setter
        def max_rate_hz(self, value):
            pass

    loop.settings = Changing(max_image_age=1.0, command_timeout=2.0, inference_timeout=5.0)
    loop.put_frame(1, clock.now())
    loop.step()                                  # was: ZeroDivisionError out of the step
    assert loop.state is LoopState.RUNNING and loop.status()['loop_errors'] == 0
    settle(loop, lambda: out.actions() == [1])


def test_a_request_from_before_a_stop_is_not_published_after_the_next_start(rig):
    loop, clock, policy, out = rig
    policy.gate = threading.Event()
    loop.put_frame(1, clock.now())
    loop.step()
    loop.stop('deactivate')
    loop.start(thread=False)
    policy.gate.set()
    settle(loop, lambda: loop.status()['late_replies'] == 1)
    assert out.actions() == []
    policy.gate = None
    loop.put_frame(2, clock.now())
    settle(loop, lambda: out.actions() == [2])


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


def test_pacing_holds_the_newest_frame_until_the_time_it_names(rig):
    loop, clock, policy, out = rig
    asked = []

    def pacing(now, expected_s):
        asked.append(expected_s)
        return 1000.5          # e.g. the step in progress ends at 1000.6, p95 0.1 s

    loop.pacing = pacing
    loop.put_frame(1, clock.now())
    assert loop.step() == pytest.approx(0.05)     # waits, at most 50 ms a sleep
    loop.put_frame(2, clock.now())                # a fresher frame arrives meanwhile
    loop.step()
    assert policy.calls == [] and asked == [0.0, 0.0]   # nothing measured yet: 0 s
    clock.t = 1000.5
    settle(loop, lambda: [call[0] for call in policy.calls] == [2])   # the freshest frame
    clock.t = 1000.58                             # the engine answers 0.08 s later
    settle(loop, lambda: out.actions() == [2])
    # What a request took (submit to result, 1000.58 - 1000.5 by hand) is what the next
    # pacing call is given.
    assert loop.expected_request_s == pytest.approx(0.08)
    loop.put_frame(3, clock.now())
    loop.step()
    assert asked[-1] == pytest.approx(0.08)
