# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The inference loop, free of ROS: newest frame in, one action out, no backlog.

The engine serves one request at a time and takes far longer than a camera period, so the loop
never queues frames: a new frame replaces the one waiting in a one-slot mailbox, and whenever
the engine is free the loop takes the newest frame that arrived after its previous request
began. The action rate is then 1 / engine latency (or ``max_rate_hz``), no frame is used twice,
and a frame's age when its request starts is at most one camera period plus a wake-up.

Everything around the engine call is here too, so it is tested with a fake policy and a fake
clock: the stale-frame check, the rate cap, the command timeout (one zero command when no fresh
action came for ``command_timeout``), the inference timeout (an engine that does not answer is
reported and a zero command sent, while the request keeps the engine), engine death, an
unreachable remote engine (zero command, retried with backoff, resumes by itself), statistics,
and the rule that after :meth:`InferenceLoop.stop` the zero command is the last output.

No exception ends the loop quietly. Anything unexpected (not an ``ImageError``, not an engine
error, which have their own handling) publishes a zero command at once, is logged once with its
traceback and shows as the error state in diagnostics with its type and message. What comes next
depends on where it came from:

- from decoding a frame (a ``MemoryError`` on a huge image, a codec failure): the cause is that
  frame's bytes, and the next frame is a fresh test of it. State ``ERROR``; the next good frame
  acts again, as after an engine error.
- from anywhere else (an output callback, the loop's own code): nothing says the next frame
  would not hit it again, and an output path that raised may have published half a command.
  State ``FAULT``: no action until a lifecycle transition (:meth:`InferenceLoop.stop` then
  :meth:`InferenceLoop.start`, i.e. deactivate and activate), a deliberate act by someone who
  saw the error.

The loop owns no thread of ROS and publishes nothing itself: the node hands it the policy, a
clock, a function that turns a received message into the engine's image, and an
:class:`Outputs` object that publishes.
"""

from __future__ import annotations

from collections import deque
import concurrent.futures
import dataclasses
from dataclasses import dataclass
import enum
import logging
import threading
import time
import traceback
from typing import Any, Callable, Protocol, TYPE_CHECKING

from openvla_ros.core.images import ImageError
from openvla_ros.core.prompt import clean_instruction, InstructionError
from openvla_ros.core.stats import percentile

if TYPE_CHECKING:   # for annotations only: the loop needs no engine module at run time
    from openvla_ros.core.policy import Policy

_LOG = logging.getLogger(__name__)   # only when the outputs cannot report (see _report_safely)


#: How a remote engine's request time splits (image encoding, network and queueing, the
#: server's own time) and its size; reported for the last action.
REQUEST_SPLIT = ('encode_s', 'network_s', 'server_s', 'request_bytes')


class LoopState(enum.Enum):
    """What the loop is doing; one value at a time."""

    STOPPED = 'stopped'          # not started, or stopped (node inactive)
    RUNNING = 'running'          # requests flow (or wait for a frame / an instruction)
    ERROR = 'error'              # the last request or frame failed; the next frame is tried
    FAULT = 'fault'              # an unexpected error, not a frame's: idle until stop/start
    TIMEOUT = 'timeout'          # a request exceeded inference_timeout and still holds the engine
    UNREACHABLE = 'unreachable'  # a remote engine does not answer; retried with backoff
    DEAD = 'dead'                # the engine is gone; only a new policy helps


@dataclass
class Frame:
    """A received camera message, kept as it came: only frames the engine uses are decoded."""

    msg: Any
    stamp_s: float       # the image's header stamp (observation time), clock seconds


@dataclass
class LoopSettings:
    """The loop's run-time settings (the node updates them on parameter changes)."""

    max_rate_hz: float = 0.0        # 0: as fast as the engine answers
    max_image_age: float = 1.0      # s; 0 disables the stale check
    command_timeout: float = 2.0    # s without a fresh action -> one zero command
    inference_timeout: float = 30.0  # s per request before it is reported as a timeout
    retry_backoff_max: float = 5.0  # s, longest wait between attempts on an unreachable engine


_SETTING_NAMES = tuple(field.name for field in dataclasses.fields(LoopSettings))


class Clock(Protocol):
    """Time sources: ``now`` is the stamp clock (ROS time, simulated during bag replay)."""

    def now(self) -> float:
        """Return the stamp clock in seconds (compared with image stamps)."""

    def monotonic(self) -> float:
        """Return a monotonic clock in seconds (timeouts, rates)."""


class SystemClock:
    """Wall clock for both; the node passes its ROS clock instead."""

    def now(self) -> float:
        """Return the wall time in seconds."""
        return time.time()

    def monotonic(self) -> float:
        """Return the monotonic time in seconds."""
        return time.monotonic()


@dataclass(frozen=True)
class FunctionClock:
    """A :class:`Clock` made of two functions (the node gives its ROS time as ``now``)."""

    now: Callable[[], float]
    monotonic: Callable[[], float] = time.monotonic


class Outputs(Protocol):
    """Where results go; the node publishes them."""

    def action(self, prediction: Any, frame: Frame) -> bool:
        """Publish one action; return False when it was unusable (then a zero follows)."""

    def zero(self, reason: str) -> None:
        """Publish one zero command."""

    def problem(self, key: str, message: str, level: str) -> None:
        """Log trouble the loop already recorded as its last error.

        ``key`` groups repeats for throttling; ``level`` is error or warning.
        """

    def engine_dead(self, message: str) -> None:
        """Leave the active state: the engine is gone (the loop reported it already)."""


@dataclass
class OutputFunctions:
    """:class:`Outputs` made of four functions: the node passes its own publishing methods."""

    action: Callable[[Any, Frame], bool]
    zero: Callable[[str], None]
    problem: Callable[[str, str, str], None]
    engine_dead: Callable[[str], None]


class Counters:
    """Thread-safe event counters reported in diagnostics."""

    NAMES = ('frames_used', 'frames_stale', 'bad_images', 'bad_instructions', 'no_instruction',
             'engine_errors', 'engine_timeouts', 'engine_unreachable', 'late_replies',
             'actions', 'zero_commands', 'bad_parameters', 'loop_errors')

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


class FrameSlot:
    """A one-frame mailbox: ``put`` replaces, ``take`` returns the newest untaken frame."""

    def __init__(self, wake: threading.Event | None = None) -> None:
        """Create an empty slot; ``wake`` is set on every put."""
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._wake = wake
        self.received = 0
        self.superseded = 0   # replaced before the loop took them (the camera outran the engine)

    def put(self, frame: Frame) -> None:
        """Store a new frame, replacing (and counting) one the loop has not taken."""
        with self._lock:
            self.received += 1
            if self._frame is not None:
                self.superseded += 1
            self._frame = frame
        if self._wake is not None:
            self._wake.set()

    def take(self) -> Frame | None:
        """Return the newest untaken frame and empty the slot; None when there is none."""
        with self._lock:
            frame, self._frame = self._frame, None
            return frame

    def clear(self) -> None:
        """Drop a waiting frame (frames from before a start must not be acted on)."""
        self.take()


class RollingStats:
    """Engine latency percentiles and the action rate over the last ``window`` actions."""

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
            latencies, times = list(self._latencies), list(self._times)
        rate = 0.0
        if len(times) >= 2 and times[-1] > times[0]:
            rate = (len(times) - 1) / (times[-1] - times[0])
        return {'latency_p50_s': percentile(latencies, 50),
                'latency_p95_s': percentile(latencies, 95), 'action_rate_hz': rate}

    def reset(self) -> None:
        """Forget every sample."""
        with self._lock:
            self._latencies.clear()
            self._times.clear()


@dataclass
class _Request:
    """One request in flight on the engine thread."""

    number: int
    frame: Frame
    age_s: float
    started: float               # monotonic
    future: concurrent.futures.Future[Any]
    timed_out: bool = False


def is_dead_engine_error(error: BaseException) -> bool:
    """Return whether an engine exception means its process is gone (vLLM EngineDeadError)."""
    return 'EngineDead' in type(error).__name__ or bool(getattr(error, 'engine_dead', False))


def is_retryable_error(error: BaseException) -> bool:
    """Return whether an engine exception is worth retrying by itself (network, server busy)."""
    return bool(getattr(error, 'retryable', False))


class InferenceLoop:
    """Turn the newest camera frame and the current instruction into actions, one at a time.

    ``decode(msg)`` turns a received message into the image the policy takes (raising
    :class:`ImageError` for a bad one). Call :meth:`start` and :meth:`stop`; :meth:`step` runs
    one iteration without blocking (the worker thread calls it; tests call it directly with a
    fake clock).
    """

    def __init__(self, outputs: Outputs, decode: Callable[[Any], Any],
                 clock: Clock | None = None, settings: LoopSettings | None = None,
                 trace_length: int = 1000) -> None:
        """Create a stopped loop with no policy."""
        self.outputs = outputs
        self.decode = decode
        self.clock = clock or SystemClock()
        self.settings = settings or LoopSettings()
        self._counters = Counters()
        self.stats = RollingStats()
        self._wake = threading.Event()
        self.slot = FrameSlot(self._wake)
        #: The last actions with their timing: image stamp, frame age when the request started,
        #: engine time, cycle time (between published actions), busy time (take to publish).
        self.trace: deque[dict[str, Any]] = deque(maxlen=trace_length)
        self._state = LoopState.STOPPED
        self._state_lock = threading.Lock()
        self._publish_lock = threading.Lock()   # orders the last action before the final zero
        self._policy: Policy | None = None
        self._instruction: tuple[str, list[int] | None] = ('', None)
        self._instruction_lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._request: _Request | None = None
        self._requests = 0
        self._thread: threading.Thread | None = None
        self._next_attempt = 0.0          # monotonic: rate cap and retry backoff
        self._backoff = 0.0
        self._last_action_time: float | None = None
        self._last_publish: float | None = None
        self._zero_sent = True
        self._logged_unexpected: tuple[str, str] | None = None   # its traceback was logged
        #: When the next request may start, ``pacing(now, expected_request_s) -> time``; None:
        #: as soon as a frame is there. The node's stream output sets it so that an action
        #: arrives as the previous step ends (see core/execution.next_request_at).
        self.pacing: Callable[[float, float], float] | None = None
        self._request_times: deque[float] = deque(maxlen=20)
        self.expected_request_s = 0.0   # p95 of the last requests' submit-to-result times
        self._last_error = ''   # written only by report_problem and the loop's own reports
        self.last_frame_age_s = float('nan')
        #: Where the last action's time went, for remote engines (see REQUEST_SPLIT).
        self.last_split: dict[str, float] = {}

    # ------------------------------------------------------------------ inputs

    @property
    def state(self) -> LoopState:
        """Return the loop's state."""
        with self._state_lock:
            return self._state

    def _set_state(self, state: LoopState) -> None:
        # DEAD stays until another policy is set or this one released; FAULT until stop().
        with self._state_lock:
            if self._state not in (LoopState.DEAD, LoopState.FAULT):
                self._state = state

    def set_policy(self, policy: Policy | None) -> None:
        """Use ``policy`` for the next requests (None: none); recomputes the prompt ids."""
        self._policy = policy
        with self._state_lock:
            if self._state is LoopState.DEAD:
                self._state = LoopState.STOPPED
        text, _ = self.instruction
        if policy is None or not text:
            self.use_instruction(text, None)
            return
        try:
            self.set_instruction(text)
        except InstructionError as error:
            self.use_instruction('', None)
            self.report_problem('instruction', f'initial instruction rejected: {error}',
                                'error')

    @property
    def instruction(self) -> tuple[str, list[int] | None]:
        """Return the current instruction and its prompt ids (None until a policy is set)."""
        with self._instruction_lock:
            return self._instruction

    def check_instruction(self, text: Any) -> tuple[str, list[int] | None]:
        """Return the cleaned instruction and its prompt ids; raise ``InstructionError``."""
        cleaned = clean_instruction(text)
        policy = self._policy
        return cleaned, (list(policy.prompt_ids(cleaned)) if policy is not None else None)

    def set_instruction(self, text: Any) -> bool:
        """Replace the instruction (ids computed once, here); return whether it changed.

        Raises ``InstructionError`` (empty, not text, too long) and keeps the old one then.
        """
        return self.use_instruction(*self.check_instruction(text))

    def use_instruction(self, text: str, ids: list[int] | None) -> bool:
        """Use an instruction already checked by :meth:`check_instruction`; return if changed."""
        with self._instruction_lock:
            changed = text != self._instruction[0]
            self._instruction = (text, ids)
        return changed

    def put_frame(self, msg: Any, stamp_s: float) -> None:
        """Offer a received frame (called from the camera callback: it only stores)."""
        self.slot.put(Frame(msg, stamp_s))

    # ------------------------------------------------------------------ start / stop

    def start(self, thread: bool = True) -> None:
        """Start acting on frames that arrive from now on (``thread`` False: call step())."""
        self.slot.clear()
        self.stats.reset()
        self._last_action_time = self._last_publish = None
        self._zero_sent = True
        self._next_attempt = 0.0
        self._backoff = 0.0
        self._logged_unexpected = None
        if self._request is not None:
            # Still in the engine from before a stop: its frame predates this start, so its
            # result is discarded like a late reply, never published.
            self._request.timed_out = True
        if self._pool is None:
            # The engine call runs on its own thread so a hung engine can be timed out.
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix='openvla-engine')
        with self._state_lock:
            self._state = LoopState.RUNNING
        if thread:
            self._thread = threading.Thread(target=self._run, name='openvla-inference',
                                            daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Return whether the loop acts on frames (started, not stopped, not dead or faulty)."""
        return self.state not in (LoopState.STOPPED, LoopState.DEAD, LoopState.FAULT)

    def stop(self, reason: str = '', join_timeout: float | None = None) -> None:
        """Stop acting; publish one zero command (if ``reason``) that no action will follow.

        A request still in the engine is abandoned: its result is never published.
        """
        with self._publish_lock:
            with self._state_lock:
                was_running = self._state is not LoopState.STOPPED
                if self._state is not LoopState.DEAD:
                    self._state = LoopState.STOPPED
            if was_running and reason:
                self._zero(reason)
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread() and join_timeout:
            thread.join(join_timeout)

    def release(self) -> Policy | None:
        """Stop using the policy and the engine thread; return the policy (to close it)."""
        policy, self._policy = self._policy, None
        with self._state_lock:
            self._state = LoopState.STOPPED
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._request = None
        return policy

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            while self.running:
                self._wake.clear()
                delay = self.step()
                if self.running:
                    self._wake.wait(delay)
        except BaseException as error:  # noqa: B902 - the thread must never end unreported
            # step() handles every Exception itself; this is SystemExit and the like.
            self._unexpected(error, frame_caused=False)

    def step(self) -> float:
        """Run one iteration; return how long the worker may sleep before the next one."""
        try:
            return self._step()
        except Exception as error:  # noqa: B902 - anything unexpected: zero, report, FAULT
            self._unexpected(error, frame_caused=False)
            return 0.05

    def _settings_now(self) -> LoopSettings:
        """Return a copy of the settings: each is read once per step, whatever changes them."""
        # The node changes them from its parameter callback on another thread; two reads of one
        # value in a step could disagree (max_rate_hz > 0, then 1 / max_rate_hz after it is 0).
        source = self.settings
        return LoopSettings(**{name: getattr(source, name)
                               for name in _SETTING_NAMES})

    def _step(self) -> float:
        if not self.running:
            return 0.05
        settings = self._settings_now()
        now = self.clock.monotonic()
        self._check_command_timeout(now, settings)
        request = self._request
        if request is not None:
            return self._watch(request, now, settings)
        if now < self._next_attempt:
            return min(self._next_attempt - now, 0.05)
        pacing = self.pacing
        if pacing is not None:
            start_at = pacing(now, self.expected_request_s)
            if now < start_at:
                return min(start_at - now, 0.05)   # the newest frame waits in the slot
        frame = self.slot.take()
        if frame is not None:
            self._submit(frame, now, settings)
        return 0.05

    def _submit(self, frame: Frame, now: float, settings: LoopSettings) -> None:
        age = self.clock.now() - frame.stamp_s
        self.last_frame_age_s = age
        max_age = settings.max_image_age
        if max_age > 0.0 and age > max_age:
            self._counters.add('frames_stale')
            self.report_problem(
                'stale', f'skipping a frame {age:.2f} s old (max_image_age {max_age} s): the '
                'camera stamps are old or the clocks differ (use_sim_time with bag replay?)',
                'warning')
            return
        text, ids = self.instruction
        if not text:
            self._counters.add('no_instruction')
            self.report_problem('no_instruction', 'no instruction yet: publish one on the '
                                'instruction topic', 'warning')
            return
        policy, pool = self._policy, self._pool
        if policy is None or pool is None:
            return
        try:
            image = self.decode(frame.msg)
        except ImageError as error:
            self._counters.add('bad_images')
            self.report_problem('image', f'bad image: {error}', 'error')
            return
        except Exception as error:  # noqa: B902 - caused by this frame: the next one may work
            self._unexpected(error, frame_caused=True)
            return
        self._counters.add('frames_used')
        self._requests += 1
        future = pool.submit(policy.predict, image, text, ids)
        future.add_done_callback(lambda _: self._wake.set())
        self._request = _Request(self._requests, frame, age, now, future)
        if settings.max_rate_hz > 0.0:
            self._next_attempt = now + 1.0 / settings.max_rate_hz

    def _watch(self, request: _Request, now: float, settings: LoopSettings) -> float:
        """Handle the request in flight: its result, its timeout, or the engine's death."""
        if request.future.done():
            self._request = None
            self._finish(request, now, settings)
            return 0.0
        timeout = settings.inference_timeout
        if not self._engine_alive():
            self._request = None
            self._engine_failed(RuntimeError(
                'the engine processes exited while a request was pending'), settings, dead=True)
            return 0.05
        if not request.timed_out and now - request.started > timeout:
            # One request at a time: a timed-out request still holds the engine, so wait for
            # it rather than queue another; its late result is discarded, never published.
            request.timed_out = True
            self._counters.add('engine_timeouts')
            self._set_state(LoopState.TIMEOUT)
            self.report_problem('engine', f'engine timeout: no action within inference_timeout '
                                f'({timeout} s); zero twist sent, waiting for the engine',
                                'error')
            self._publish_zero('engine timeout')
        return 0.05

    def _finish(self, request: _Request, now: float, settings: LoopSettings) -> None:
        try:
            prediction = request.future.result()
        except concurrent.futures.CancelledError:
            return
        except InstructionError as error:
            self._counters.add('bad_instructions')
            self.report_problem('instruction', f'instruction rejected: {error}', 'error')
            return
        except Exception as error:  # noqa: B902 - an engine failure must not end the loop
            self._engine_failed(error, settings)
            return
        if request.timed_out:
            self._counters.add('late_replies')
            self._set_state(LoopState.RUNNING)
            return   # its deadline passed and a zero was sent: a late action never moves the arm
        self._backoff = 0.0
        with self._publish_lock:
            if not self.running:
                return   # stopped while the engine ran: the zero command was the last word
            self._set_state(LoopState.RUNNING)
            if not self.outputs.action(prediction, request.frame):
                self._counters.add('engine_errors')
                self._publish_zero('unusable action')
                return
            published = self.clock.monotonic()
            self._counters.add('actions')
            engine_s = float(prediction.timings.get('engine_s', float('nan')))
            self.stats.add(engine_s, published)
            self.trace.append({
                'stamp_s': request.frame.stamp_s, 'age_at_start_s': request.age_s,
                'engine_s': engine_s,
                'cycle_s': (published - self._last_publish if self._last_publish is not None
                            else float('nan')),
                'busy_s': published - request.started})
            self._last_publish = self._last_action_time = published
            self._request_times.append(published - request.started)
            self.expected_request_s = percentile(list(self._request_times), 95)
            self._zero_sent = False
            self._logged_unexpected = None   # recovered: a new episode logs its traceback again
            self.last_split = {key: float(prediction.timings[key]) for key in REQUEST_SPLIT
                               if key in prediction.timings}

    def _engine_alive(self) -> bool:
        policy = self._policy
        return policy is not None and bool(policy.is_alive())

    def _engine_failed(self, error: BaseException, settings: LoopSettings,
                       dead: bool = False) -> None:
        if self.state is LoopState.DEAD:
            return
        self._counters.add('engine_errors')
        self._publish_zero('engine error')
        if dead or is_dead_engine_error(error) or not self._engine_alive():
            self._set_state(LoopState.DEAD)
            message = (f'engine died ({type(error).__name__}: {error}); the node deactivates '
                       'itself: run cleanup then configure to start a new engine')
            # Recorded, then the outputs told of the death (a goal ends with this message)
            # before the report is logged: the log's wake-up must not end the goal first.
            self._last_error = message
            self.outputs.engine_dead(message)
            self.outputs.problem('engine', message, 'error')
            return
        if is_retryable_error(error):
            # A remote engine that does not answer: retry by itself, backing off, so actions
            # resume without a lifecycle transition when the server is back.
            self._counters.add('engine_unreachable')
            self._backoff = min(max(2.0 * self._backoff, 0.5), settings.retry_backoff_max)
            self._next_attempt = self.clock.monotonic() + self._backoff
            self._set_state(LoopState.UNREACHABLE)
            self.report_problem('engine', f'engine unreachable: {error}; retrying in '
                                f'{self._backoff:.1f} s', 'error')
            return
        self._set_state(LoopState.ERROR)
        self.report_problem('engine', f'engine error: {type(error).__name__}: {error}', 'error')

    def _unexpected(self, error: BaseException, frame_caused: bool) -> None:
        """Zero command, ERROR (frame-caused) or FAULT state, one report with the traceback.

        Every output call is guarded: this runs because something already failed, and one
        failing output (the zero itself, say) must not keep the others from happening.
        """
        self._counters.add('loop_errors')
        what = f'{type(error).__name__}: {error}'
        with self._publish_lock:
            with self._state_lock:
                was_running = self._state not in (LoopState.STOPPED, LoopState.DEAD,
                                                  LoopState.FAULT)
                if was_running:
                    self._state = LoopState.ERROR if frame_caused else LoopState.FAULT
            zero_note = ''
            if was_running:
                try:
                    self._zero('unexpected error')
                except Exception as zero_error:  # noqa: B902 - reported below, then FAULT
                    zero_note = (f'; the zero twist could not be published either '
                                 f'({type(zero_error).__name__}: {zero_error})')
                    with self._state_lock:
                        if self._state is LoopState.ERROR:
                            self._state = LoopState.FAULT
        if frame_caused and not zero_note:
            message = (f'unexpected error decoding a frame ({what}); zero twist sent, the next '
                       'frame is tried')
        else:
            message = (f'unexpected error in the inference loop ({what}){zero_note}; zero twist '
                       'sent, no action until the node is deactivated and activated again')
        # The traceback once per distinct error: a camera sending the same bad frame 30 times a
        # second gives one traceback, then throttled one-line reports.
        signature = (type(error).__name__, str(error))
        detail = ''
        if signature != self._logged_unexpected:
            self._logged_unexpected = signature
            detail = '\n' + ''.join(traceback.format_exception(error)).rstrip()
        self._report_safely('frame_error' if frame_caused else 'loop_fault', message + detail)
        self._last_error = message   # diagnostics: type and message, not the traceback

    def _report_safely(self, key: str, message: str) -> None:
        try:
            self.outputs.problem(key, message, 'error')
        except Exception:  # noqa: B902 - the report itself failed: the process log is left
            _LOG.exception('the inference loop could not report: %s', message)

    # ------------------------------------------------------------------ outputs

    def _publish_zero(self, reason: str) -> None:
        with self._publish_lock:
            if self.running:
                self._zero(reason)

    def _zero(self, reason: str) -> None:
        """Publish one zero command (the caller holds the publish lock)."""
        self.outputs.zero(reason)
        self._counters.add('zero_commands')
        self._zero_sent = True

    def _check_command_timeout(self, now: float, settings: LoopSettings) -> None:
        if self._zero_sent or self._last_action_time is None:
            return
        timeout = settings.command_timeout
        if now - self._last_action_time > timeout:
            self._publish_zero(f'no fresh action for {timeout} s')

    def report_problem(self, key: str, message: str, level: str) -> None:
        """Record ``message`` as the last error (diagnostics) and pass it to the outputs' log.

        The one way a problem reaches ``last_error``: the loop's own and the node's (a rejected
        instruction, a failed configure, an output's trouble). ``key`` groups repeats for
        throttling; ``level`` is error or warning.
        """
        self._last_error = message
        self.outputs.problem(key, message, level)

    def count(self, name: str, amount: int = 1) -> None:
        """Count one event ``name`` (one of :attr:`Counters.NAMES`) for diagnostics."""
        self._counters.add(name, amount)

    def counts(self) -> dict[str, int]:
        """Return a copy of every event counter."""
        return self._counters.snapshot()

    @property
    def last_error(self) -> str:
        """Return the last problem reported ('' until one is)."""
        return self._last_error

    def status(self) -> dict[str, Any]:
        """Return the loop's figures as numbers (formatted only at the message boundary)."""
        values: dict[str, Any] = {'loop_state': self.state.value}
        values.update(self.stats.summary())
        values.update({
            'frames_received': self.slot.received, 'frames_superseded': self.slot.superseded,
            'last_frame_age_s': self.last_frame_age_s,
            'frame_age_p95_s': percentile([r['age_at_start_s'] for r in list(self.trace)], 95),
            'instruction': self.instruction[0], 'last_error': self._last_error})
        values.update({f'last_{key}': self.last_split.get(key, float('nan'))
                       for key in REQUEST_SPLIT})
        values.update(self._counters.snapshot())
        return values
