# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The ``~/execute_instruction`` action: "do this task for at most N steps or T seconds".

Glue between rclpy's ``ActionServer`` and the node's inference loop; when a goal ends and what
its feedback and result say is decided in ``core/goals.py``.

How goals and the instruction topic share the node (the latest instruction wins):

- *Topic mode* (no goal ever, or after a topic message): as before goals existed, the node acts
  on the current instruction for as long as it is active.
- A goal stops the loop (one zero twist, any in-flight action discarded), sets its instruction
  and starts the loop on frames that arrive from then on. Only actions computed for the goal are
  published while it runs, and each is counted and reported.
- Every ending stops the loop, which publishes one zero twist. The node then *holds still*:
  active, engine loaded, no instruction, no command, until the next goal or the next message on
  the instruction topic (or ``instruction`` parameter), which resumes topic mode.
- A new goal preempts the running one; so does a topic message or an instruction parameter
  change (the goal ends ABORTED with reason PREEMPTED).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

# From the defining module: rclpy.action re-imports them without listing them as its exports.
from rclpy.action.server import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup

from openvla_ros.core.goals import (check_limits, ENGINE_FAILURE_COUNTERS, EndReason,
                                    Feedback, GoalError, GoalRun, GoalSpec, is_clipped)
from openvla_ros.core.inference_loop import Frame, InferenceLoop, LoopState, Outputs
from openvla_ros.core.prompt import InstructionError

try:
    from openvla_ros_interfaces.action import ExecuteInstruction
except ImportError:   # the interface package is built separately (scripts/build_interfaces.sh)
    ExecuteInstruction = None

#: The action's name, relative to the node (``/openvla_policy/execute_instruction``).
ACTION_NAME = '~/execute_instruction'
#: Longest sleep of a goal's thread between checks (time limit, cancel, loop state).
_TICK_S = 0.05


def attach(node: Any) -> 'InstructionActionServer | NoActionServer':
    """Serve the action on ``node``; a stand-in that does nothing when interfaces are missing."""
    if ExecuteInstruction is None:
        node.get_logger().warning(
            'openvla_ros_interfaces is not installed, so there is no ~/execute_instruction '
            'action (the instruction topic works): build it with scripts/build_interfaces.sh '
            '(pip install) or colcon (ROS distribution)')
        return NoActionServer()
    return InstructionActionServer(node)


class NoActionServer:
    """The node's hooks when the action interface is not installed: topic mode only."""

    def activate(self) -> None:
        """Do nothing."""

    def deactivate(self, why: str = '') -> None:
        """Do nothing."""

    def instruction_changed(self, source: str) -> None:
        """Do nothing."""

    def status(self) -> dict[str, Any]:
        """Return the topic mode."""
        return {'instruction_source': 'topic', 'goal_id': '', 'goal_steps': 0}

    def destroy(self) -> None:
        """Do nothing."""


class InstructionActionServer:
    """Serve ``ExecuteInstruction`` goals on a policy node, one at a time, newest first."""

    def __init__(self, node: Any) -> None:
        """Create the action server and route the loop's outputs through the goal gate."""
        self._node = node
        self._loop: InferenceLoop = node.loop
        self._lock = threading.RLock()
        self._enabled = False
        self._latest: GoalRun | None = None    # the newest accepted goal
        self._runs: dict[str, GoalRun] = {}    # accepted goals whose thread has not run yet
        # (owner, idle): the goal the loop acts for (None: topic mode), and whether the node
        # holds still after a goal. One tuple, replaced whole: the loop's thread reads it
        # without the lock, which is held while the loop is stopped (no lock-order cycle).
        self._mode: tuple[GoalRun | None, bool] = (None, False)
        self._loop.outputs = _GoalOutputs(self, self._loop.outputs)
        self._server = ActionServer(
            node, ExecuteInstruction, ACTION_NAME, execute_callback=self._execute,
            goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel, callback_group=ReentrantCallbackGroup())

    def destroy(self) -> None:
        """Remove the action server from the node."""
        self._server.destroy()

    # ------------------------------------------------------------------ node hooks

    def activate(self) -> None:
        """Accept goals from now on (the node became active: topic mode)."""
        with self._lock:
            self._enabled, self._mode = True, (None, False)

    def deactivate(self, why: str = 'the node was deactivated') -> None:
        """Refuse goals and end the running one (DEACTIVATED); the node then stops the loop."""
        with self._lock:
            self._enabled = False
            run, owned = self._latest, self._mode[0] is not None
            # Drop anything computed until the node's stop, and never resume the goal's task
            # at the next activation.
            self._mode = (None, True)
            if owned:
                self._loop.use_instruction('', None)
        if run is not None and run.end(EndReason.DEACTIVATED, why, self._now()):
            # The node's own stop publishes the zero twist right after this returns.
            self._node.get_logger().error(f'goal {run.goal_id} aborted: {why}')

    def instruction_changed(self, source: str) -> None:
        """Let an instruction from the topic or a parameter take over (the latest wins)."""
        with self._lock:
            run, was_idle = self._mode
            self._mode = (None, False)
            if run is not None:
                run.end(EndReason.PREEMPTED, f'preempted by the instruction {source}',
                        self._now())
            if self._enabled and (run is not None or was_idle):
                # One zero twist for the ending goal and no action computed for it after
                # this; then act on the new instruction (topic mode).
                self._loop.stop(f'goal ended: instruction {source}', join_timeout=1.0)
                self._loop.start()
        if run is not None:
            self._node.get_logger().warning(
                f'goal {run.goal_id} preempted by the instruction {source}')

    def status(self) -> dict[str, Any]:
        """Return the action's figures for diagnostics."""
        run, idle = self._mode
        mode = 'goal' if run is not None else ('idle' if idle else 'topic')
        return {'instruction_source': mode,
                'goal_id': run.goal_id if run is not None else '',
                'goal_steps': run.steps if run is not None else 0}

    # ------------------------------------------------------------------ action callbacks

    def _on_goal(self, request: Any) -> GoalResponse:
        """Accept a goal the node can act on; otherwise log why and reject it."""
        try:
            self._check(request)
        except (GoalError, InstructionError) as error:
            self._node.problem('goal', f'goal rejected: {error}', 'warning')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _check(self, request: Any) -> GoalSpec:
        with self._lock:
            enabled = self._enabled
        if not enabled or self._loop.state is LoopState.DEAD:
            raise GoalError('the node is not active: configure and activate it first '
                            '(ros2 lifecycle set <node> configure, then activate)')
        steps, seconds = check_limits(request.max_steps, request.timeout_s)
        text, _ = self._loop.check_instruction(request.instruction)
        return GoalSpec(text, steps, seconds, bool(request.dry_run))

    def _on_accepted(self, goal_handle: Any) -> None:
        """Preempt the running goal (newest wins) and schedule this one."""
        goal_id = bytes(goal_handle.goal_id.uuid).hex()[:8]
        try:
            spec = self._check(goal_handle.request)
        except (GoalError, InstructionError) as error:
            spec, failed = None, str(error)
        run = GoalRun(spec or GoalSpec('', 0, 0.0), goal_id)
        if spec is None:   # the node changed between the check and the acceptance
            run.end(EndReason.DEACTIVATED, failed, self._now())
        with self._lock:
            previous, self._latest = self._latest, run
            self._runs[goal_id] = run
        if previous is not None and previous.end(EndReason.PREEMPTED,
                                                 f'preempted by goal {goal_id}', self._now()):
            self._node.get_logger().warning(f'goal {previous.goal_id} preempted by goal '
                                            f'{goal_id}')
        goal_handle.execute()

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        """Accept every cancel and end the goal now: its thread stops the loop at once."""
        with self._lock:
            run = self._latest
        if run is not None and run.goal_id == bytes(goal_handle.goal_id.uuid).hex()[:8]:
            run.end(EndReason.CANCELLED, 'cancelled by the client', self._now())
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle: Any) -> Any:
        """Act on the goal until it ends, publishing feedback; return its result."""
        with self._lock:
            run = self._runs.pop(bytes(goal_handle.goal_id.uuid).hex()[:8])
            if not run.ended:   # else preempted (or refused) before it could start
                self._start(run)
        try:
            self._follow(run, goal_handle)
        finally:
            self._finish(run)
        return self._conclude(run, goal_handle)

    # ------------------------------------------------------------------ a goal's life

    def _start(self, run: GoalRun) -> None:
        """Stop whatever the loop did, then act on this goal's instruction (lock held)."""
        loop = self._loop
        try:
            text, ids = loop.check_instruction(run.spec.instruction)
        except InstructionError as error:   # the engine was released meanwhile
            run.end(EndReason.DEACTIVATED, str(error), self._now())
            return
        if not self._enabled:
            run.end(EndReason.DEACTIVATED, 'the node is not active', self._now())
            return
        loop.stop(f'goal {run.goal_id} starts', join_timeout=1.0)
        loop.use_instruction(text, ids)
        self._mode = (run, False)
        run.begin(self._now(), self._failures())
        loop.start()
        limits = ', '.join(part for part in (
            f'max_steps {run.spec.max_steps}' if run.spec.max_steps else '',
            f'timeout_s {run.spec.timeout_s:g}' if run.spec.timeout_s else '',
            'dry run' if run.spec.dry_run else '') if part)
        self._node.get_logger().info(f'goal {run.goal_id}: {text!r} ({limits})')

    def _follow(self, run: GoalRun, goal_handle: Any) -> None:
        """Wait for the goal's ending, publishing its feedback as actions come."""
        while True:
            now = self._now()
            state = self._loop.state
            if goal_handle.is_cancel_requested:
                run.end(EndReason.CANCELLED, 'cancelled by the client', now)
            run.check(now, self._failures(), self._loop.last_error)
            if state is LoopState.DEAD:
                run.end(EndReason.ENGINE_ERROR, 'the engine died', now,
                        error=self._loop.last_error)
            elif state is LoopState.STOPPED and run.started:
                with self._lock:
                    lost = self._mode[0] is run
                if lost:   # stopped by someone else: the node left the active state
                    run.end(EndReason.DEACTIVATED, 'the inference loop was stopped', now)
            for item in run.take_feedback(now, state.value):
                goal_handle.publish_feedback(_feedback_msg(item))
            if run.ended:
                return
            run.wait(_TICK_S)

    def _finish(self, run: GoalRun) -> None:
        """Stop acting for an ended goal: zero twist, no instruction, hold still."""
        with self._lock:
            if self._mode[0] is not run:
                return   # a newer goal or the topic took the loop over (and stopped it)
            self._mode = (None, self._enabled)
            reason = run.reason or EndReason.UNKNOWN
            self._loop.stop(f'goal {run.goal_id} ended: {reason.text}', join_timeout=1.0)
            self._loop.use_instruction('', None)

    def _conclude(self, run: GoalRun, goal_handle: Any) -> Any:
        """Set the goal's final status and return its result message."""
        outcome = run.outcome(self._now())
        log = self._node.get_logger()
        if outcome.reason.outcome == 'succeeded':
            goal_handle.succeed()
            log.info(f'goal {run.goal_id} succeeded: {outcome.message}')
        elif outcome.reason.outcome == 'canceled' and _cancel_state(goal_handle):
            goal_handle.canceled()
            log.info(f'goal {run.goal_id} canceled: {outcome.message}')
        else:
            goal_handle.abort()
            log.error(f'goal {run.goal_id} aborted: {outcome.message}'
                      + (f' ({outcome.last_error})' if outcome.last_error else ''))
        result = ExecuteInstruction.Result()
        result.reason = int(outcome.reason)
        result.reason_text = outcome.reason.text
        result.steps = outcome.steps
        result.elapsed_s = float(outcome.elapsed_s)
        result.clipped_steps = outcome.clipped_steps
        result.last_action = [float(v) for v in outcome.last_action]
        result.message = outcome.message
        result.last_error = outcome.last_error
        return result

    # ------------------------------------------------------------------ helpers

    def _now(self) -> float:
        return self._loop.clock.monotonic()

    def _failures(self) -> int:
        counts = self._loop.counts()
        return sum(counts[name] for name in ENGINE_FAILURE_COUNTERS)

    def gate(self) -> GoalRun | None | Literal[False]:
        """Return the goal an action is for, None in topic mode, False to drop the action."""
        run, idle = self._mode
        if run is not None:
            return run if run.live else False
        return False if idle else None

    def conditioning(self) -> Any:
        """Return how the node turns actions into commands now (for clipped steps)."""
        return self._node.conditioning


class _GoalOutputs:
    """The loop's outputs, passed through while a goal (or the topic) owns the loop."""

    def __init__(self, server: InstructionActionServer, inner: Outputs) -> None:
        self._server = server
        self._inner = inner

    def action(self, prediction: Any, frame: Frame) -> bool:
        run = self._server.gate()
        if run is None:
            return self._inner.action(prediction, frame)
        if run is False:
            return True   # the goal it was computed for has ended: never published
        try:
            clipped = is_clipped(self._server.conditioning(), prediction.action)
        except ValueError:
            clipped = False   # unusable: the node's own check reports it
        if not run.spec.dry_run and not self._inner.action(prediction, frame):
            return False
        loop = self._server._loop
        run.record_action(prediction.action,
                          float(prediction.timings.get('engine_s', float('nan'))),
                          loop.clock.now() - frame.stamp_s, clipped, loop.clock.monotonic(),
                          loop.state.value)
        return True

    def zero(self, reason: str) -> None:
        self._inner.zero(reason)

    def problem(self, key: str, message: str, level: str) -> None:
        self._inner.problem(key, message, level)
        run = self._server.gate()
        if run:
            run.wake()   # an engine problem may end the goal: look now, not at the next tick

    def engine_dead(self, message: str) -> None:
        run = self._server.gate()
        if run:
            run.end(EndReason.ENGINE_ERROR, 'the engine died', self._server._now(),
                    error=message)
        self._inner.engine_dead(message)


def _cancel_state(goal_handle: Any, wait_s: float = 2.0) -> bool:
    """Return whether the goal reached the canceling state (CANCELED is only valid from it).

    rclpy moves a goal there right after the cancel callback returns, while the goal's thread,
    woken by that callback, may already be stopping the loop: wait for it briefly.
    """
    deadline = time.monotonic() + wait_s
    while not goal_handle.is_cancel_requested:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _feedback_msg(item: Feedback) -> Any:
    msg = ExecuteInstruction.Feedback()
    msg.step = item.step
    msg.max_steps = item.max_steps
    msg.elapsed_s = float(item.elapsed_s)
    msg.action = [float(v) for v in item.action]
    msg.latency_s = float(item.latency_s)
    msg.image_age_s = float(item.image_age_s)
    msg.clipped_steps = item.clipped_steps
    msg.loop_state = item.loop_state
    return msg
