# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Send one ``ExecuteInstruction`` goal to a running policy node and follow it to its end.

``openvla-ros run "put the spoon on the towel" --steps 40 --timeout 30`` prints a line per
feedback, cancels the goal on Ctrl-C (the node then publishes a zero twist) and prints the
result. Exit code 0 when the goal ended by its own limits (SUCCEEDED), 1 otherwise (rejected,
cancelled, preempted, aborted, node gone).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import os
import signal
import threading
import time
from typing import Any, Callable, TextIO

from openvla_ros.core.goals import check_limits
from openvla_ros.core.prompt import clean_instruction

#: Seconds to wait for the node's action server before giving up.
SERVER_WAIT_S = 10.0
#: Seconds without the action server (node gone) before the client gives up on a result.
SERVER_LOST_S = 5.0


class GoalClientError(ValueError):
    """The goal could not be sent; the message names the problem and the fix."""


@dataclass(frozen=True)
class GoalOutcome:
    """What happened to the goal: its status word and result (None when never accepted)."""

    status: str              # succeeded | canceled | aborted | rejected | lost
    result: Any = None
    exit_code: int = 1


def action_name(node: str) -> str:
    """Return the action's full name for a node name (``/openvla_policy``)."""
    node = '/' + node.strip().strip('/')
    if node == '/':
        raise GoalClientError('--node must name the policy node, e.g. /openvla_policy')
    return f'{node}/execute_instruction'


def format_feedback(feedback: Any) -> str:
    """Return one line for one feedback message."""
    steps = f'{feedback.step}/{feedback.max_steps}' if feedback.max_steps else str(feedback.step)
    line = f'step {steps:>7}  t={feedback.elapsed_s:6.2f} s'
    if not math.isnan(feedback.action[0]):
        motion = ' '.join(f'{v:+.4f}' for v in feedback.action[:6])
        line += (f'  action {motion} grip {feedback.action[6]:.2f}  latency '
                 f'{feedback.latency_s * 1000:.0f} ms  image age '
                 f'{feedback.image_age_s * 1000:.0f} ms')
    if feedback.clipped_steps:
        line += f'  clipped {feedback.clipped_steps}'
    return line + f'  [{feedback.loop_state}]'


def format_result(status: str, result: Any) -> str:
    """Return the closing line for a goal's status and result."""
    line = f'{status}: {result.message}'
    if result.clipped_steps:
        line += f'; {result.clipped_steps} step(s) clipped'
    if result.last_error:
        line += f'; last error: {result.last_error}'
    return line


def run_goal(instruction: str, max_steps: int, timeout_s: float, *, node: str = '/openvla_policy',
             dry_run: bool = False, out: Callable[[str], None] = print,
             interrupted: threading.Event | None = None, err: TextIO | None = None) -> GoalOutcome:
    """Send the goal, print its feedback, cancel it on Ctrl-C; return how it ended.

    ``interrupted`` set from elsewhere cancels the goal as Ctrl-C does (tests, embedding).
    Raises :class:`GoalClientError` (or ``ValueError``) for what the user must fix first.
    """
    text = clean_instruction(instruction)
    steps, seconds = check_limits(max_steps, timeout_s)
    lock = threading.Lock()
    say = out

    def out(line: str) -> None:   # feedback comes on the spinner thread: one line at a time
        with lock:
            say(line)

    name = action_name(node)
    try:
        from openvla_ros_interfaces.action import ExecuteInstruction
    except ImportError:
        raise GoalClientError('openvla_ros_interfaces is not installed here: build it with '
                              'scripts/build_interfaces.sh (pip install) or colcon') from None
    import rclpy
    from rclpy.action import ActionClient
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    context = rclpy.Context()
    # Ctrl-C must cancel the goal, which needs a live context: no rclpy signal handler.
    rclpy.init(args=[], context=context, signal_handler_options=SignalHandlerOptions.NO)
    client_node = rclpy.create_node('openvla_ros_run', context=context)
    # The client before the spinning: rclpy's ActionClient registers itself with its node
    # before it has finished initialising (see tools/harness.NodeRunner.add_peer).
    client = ActionClient(client_node, ExecuteInstruction, name)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    interrupted = interrupted or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C only raises a flag: the goal is then cancelled and its result still awaited.
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        if not client.wait_for_server(timeout_sec=SERVER_WAIT_S):
            raise GoalClientError(
                f'no action server {name} within {SERVER_WAIT_S:g} s: is the policy node '
                'running (and built with openvla_ros_interfaces)? Check the name with '
                '`ros2 action list`, or pass --node')
        goal = ExecuteInstruction.Goal(instruction=text, max_steps=steps, timeout_s=seconds,
                                       dry_run=dry_run)
        parts = (f'max {steps} steps' if steps else '', f'max {seconds:g} s' if seconds else '',
                 'dry run' if dry_run else '')
        limits = ', '.join(part for part in parts if part)
        out(f'sending {text!r} to {node} ({limits})')
        handle = _wait(client.send_goal_async(
            goal, feedback_callback=lambda msg: out(format_feedback(msg.feedback))))
        if handle is None:
            out(f'no answer from {node} to the goal request')
            return GoalOutcome('lost')
        if not handle.accepted:
            out(f'rejected by {node}: {_rejection_reason(client_node, node)}')
            return GoalOutcome('rejected')
        out('goal accepted')   # feedback lines may come first: they run on another thread
        return _follow(handle, client, interrupted, out)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        client.destroy()
        executor.shutdown(timeout_sec=1.0)
        client_node.destroy_node()
        rclpy.try_shutdown(context=context)


def _follow(handle: Any, client: Any, interrupted: threading.Event,
            out: Callable[[str], None]) -> GoalOutcome:
    from action_msgs.msg import GoalStatus

    future = handle.get_result_async()
    cancelled = False
    lost_since: float | None = None
    while not future.done():
        if interrupted.wait(0.05):
            interrupted.clear()
            if cancelled:
                out('interrupted again: not waiting for the result')
                return GoalOutcome('canceled')
            out('cancelling the goal (the node stops with a zero twist) ...')
            handle.cancel_goal_async()
            cancelled = True
        # A node that died never answers: give up when its server has been gone a while.
        if client.server_is_ready():
            lost_since = None
        elif lost_since is None:
            lost_since = time.monotonic()
        elif time.monotonic() - lost_since > SERVER_LOST_S:
            out(f'the action server vanished for {SERVER_LOST_S:g} s: the node is gone')
            return GoalOutcome('lost')
    wrapped = future.result()
    status = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_CANCELED: 'canceled',
              GoalStatus.STATUS_ABORTED: 'aborted'}.get(wrapped.status, 'aborted')
    out(format_result(status, wrapped.result))
    return GoalOutcome(status, wrapped.result, 0 if status == 'succeeded' else 1)


def _wait(future: Any, timeout_s: float = 30.0) -> Any:
    """Wait for an rclpy future; None when it did not complete in time."""
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return future.result()


def _rejection_reason(client_node: Any, node: str) -> str:
    """Return why a goal was likely refused: the node's lifecycle state, or where to look."""
    from lifecycle_msgs.srv import GetState

    client = client_node.create_client(GetState, f'/{node.strip("/")}/get_state')
    try:
        if client.wait_for_service(timeout_sec=2.0):
            future = client.call_async(GetState.Request())
            deadline = time.monotonic() + 2.0
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            if future.done():
                label = future.result().current_state.label
                if label != 'active':
                    return (f'the node is {label}, not active: configure and activate it '
                            f'(ros2 lifecycle set {node} configure, then activate)')
    finally:
        client_node.destroy_client(client)
    return ('the node refused the instruction or the limits; its log and /diagnostics '
            '(last_error) say why')
