# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros demo``: the policy node on a generated camera, end to end, for a bounded time.

Runs the real lifecycle node (it loads the model through vLLM in ``configure``), a camera
publisher of synthetic frames and a listener that prints every action, all over real DDS in
one process. Without ``--model`` it uses the generated random-weight test checkpoint, whose
actions are meaningless: the demo shows the plumbing, the rate and the latency, not skill.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from openvla_ros.core.engine import EngineConfig
from openvla_ros.core.preprocessing import ImagePreparation

DISCLAIMER = (
    'NOTE: the generated test checkpoint has random weights, so these actions are meaningless; '
    'they show that images flow in and commands flow out at the engine\'s rate.\n'
    'For the real model on a GPU machine: openvla-ros demo --model openvla/openvla-7b '
    '--unnorm-key bridge_orig (or ros2 launch openvla_ros policy.launch.py '
    'model:=openvla/openvla-7b unnorm_key:=bridge_orig with your camera).')


def check_options(duration: float, camera_hz: float) -> None:
    """Raise ``ValueError`` unless the run time and the camera rate are positive."""
    if duration <= 0 or camera_hz <= 0:
        raise ValueError('--duration and --camera-hz must be positive')


def demo_model(model: str | None) -> str:
    """Return ``model``, or the generated test checkpoint (built and cached on first use)."""
    if model is not None:
        return model
    from openvla_ros.tools.generated_checkpoint import cached_test_model
    print('[demo] preparing the generated test checkpoint (built once, then cached) ...',
          flush=True)
    return str(cached_test_model())


def failure_line(result: dict, duration: float) -> str:
    """Return the line printed when the demo saw no action."""
    return (f"[demo] FAILED: no action in {result.get('seconds', duration):.0f} s: "
            f"{result.get('reason', 'see the messages above')}")


#: Seconds the demo's clean-up may take before the process leaves anyway (a hung engine).
CLEANUP_DEADLINE_S = 15.0
#: Seconds between "still waiting for the first action" messages.
WAITING_REPORT_S = 10.0


def run_demo(model: str, unnorm_key: str, instruction: str, duration: float,
             camera_hz: float, engine: EngineConfig | None = None,
             preparation: ImagePreparation | None = None,
             statistics_file: str | None = None) -> dict:
    """Run node + camera + listener for ``duration`` seconds once active; return a summary.

    ``engine`` becomes the node's ``engine.*`` parameters (every option, see
    :func:`~openvla_ros.node.parameters.engine_values`); ``preparation`` and
    ``statistics_file`` its image preparation and statistics parameters.

    The summary has ``actions`` (0 when none came, with ``reason`` saying why), the time to the
    first action, the rate counted from the first action, and the engine figures.
    """
    from rclpy.action import ActionClient
    from std_msgs.msg import Float64MultiArray, String

    from openvla_ros.node.parameters import engine_values, preparation_values
    from openvla_ros.node.qos import LATCHED
    from openvla_ros.tools.harness import NodeRunner
    from openvla_ros.tools.synthetic_camera import SyntheticCamera

    goals = _goal_interface()
    # The demo's camera and node live in this process: NodeRunner keeps DDS on loopback.
    # With the action interface installed the task goes as a goal (ExecuteInstruction) with
    # the demo's duration as its time limit; without it, on the instruction topic.
    runner = NodeRunner({'model': model, 'unnorm_key': unnorm_key,
                         'instruction': '' if goals else instruction,
                         'statistics_file': statistics_file or '',
                         **preparation_values(preparation),
                         **engine_values(engine or EngineConfig())})
    node = runner.node
    peer = runner.add_peer('openvla_demo', spin=False)
    camera = SyntheticCamera(peer)
    if goals is None:
        peer.create_publisher(String, 'instruction', LATCHED).publish(String(data=instruction))
    else:
        client = ActionClient(peer, goals, 'openvla_policy/execute_instruction')
    received: list[float] = []
    started = [0.0]

    def on_action(msg: Float64MultiArray) -> None:
        now = time.monotonic()
        received.append(now)
        values = ' '.join(f'{v:+.4f}' for v in msg.data)
        first = (f' (first action {now - started[0]:.1f} s after activation)'
                 if len(received) == 1 else '')
        print(f'[demo] t={now - started[0]:6.2f}s action #{len(received):3d}: {values}{first}',
              flush=True)

    peer.create_subscription(Float64MultiArray, 'action', on_action, 10)
    runner.spin_peer(peer)   # after the action client exists (see NodeRunner.add_peer)
    # Every frame differs: vLLM reuses its cache for an identical image and prompt, which
    # would make repeated frames look faster than a real camera's.
    camera.start(camera_hz)
    summary: dict = {'actions': 0, 'seconds': 0.0, 'reason': 'the node did not start'}
    try:
        print('[demo] configuring the node (loads the engine; about a minute on a CPU) ...',
              flush=True)
        if not runner.configure():
            summary['reason'] = f"configure failed: {node.status()['last_error']}"
            return summary
        status = node.status()
        _print_engine(status)
        runner.activate()
        started[0] = time.monotonic()
        result = _send_goal(client, goals, instruction, duration) if goals else None
        superseded_before = node.status()['frames_superseded']
        _wait(duration, started[0], received, _waiting_note(status['engine_dtype']))
        summary = _summary(node, received, started[0], camera.count, superseded_before)
        if result is not None:
            summary['goal'] = _goal_line(result)
            print(f"[demo] goal (ExecuteInstruction): {summary['goal']}", flush=True)
        if summary['actions']:
            _print_summary(summary, camera_hz)
        else:
            summary['reason'] = _no_action_reason(node.status(), duration)
    except KeyboardInterrupt:
        print('[demo] interrupted', flush=True)
    finally:
        _close_in_time(runner, exit_code=0 if summary.get('actions') else 1)
    return summary


def _print_engine(status: dict[str, Any]) -> None:
    engine = (f"dtype {status['engine_dtype']} ({status['engine_dtype_reason']})"
              if status['engine_dtype'] else 'remote engine')
    print(f"[demo] engine ready in {status['engine_startup_s']:.0f} s; {engine}; images "
          f"{status['image_preprocessing']}; statistics hash {status['statistics_hash']} "
          f"from {status['statistics_source']}", flush=True)


def _close_in_time(runner: Any, exit_code: int) -> None:
    """Close the node; a hung engine must not keep the demo from ending (bounded clean-up)."""
    from openvla_ros.core.processes import exit_now
    deadline = threading.Timer(CLEANUP_DEADLINE_S, exit_now, args=(exit_code,))
    deadline.daemon = True
    deadline.start()
    # The zero twist goes out first; the engine's processes are terminated, not awaited.
    runner.close(fast=True)
    deadline.cancel()


def _goal_interface() -> Any:
    """Return the ExecuteInstruction action type, or None when it is not installed."""
    try:
        from openvla_ros_interfaces.action import ExecuteInstruction
    except ImportError:
        return None
    return ExecuteInstruction


def _send_goal(client: Any, action: Any, instruction: str, duration: float) -> Any:
    """Send the demo's task as a goal limited to ``duration`` s; return its result future."""
    if not client.wait_for_server(timeout_sec=10.0):
        print('[demo] the node serves no ExecuteInstruction action', flush=True)
        return None
    sent = client.send_goal_async(action.Goal(instruction=instruction,
                                              timeout_s=float(duration)))
    deadline = time.monotonic() + 10.0
    while not sent.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    handle = sent.result() if sent.done() else None
    if handle is None or not handle.accepted:
        print(f"[demo] the goal was refused: {'no answer' if handle is None else 'rejected'}",
              flush=True)
        return None
    print(f'[demo] goal accepted: {instruction!r} for {duration:g} s', flush=True)
    return handle.get_result_async()


def _goal_line(result: Any, wait_s: float = 5.0) -> str:
    """Return how the demo's goal ended (it ends by its time limit as the demo does)."""
    deadline = time.monotonic() + wait_s
    while not result.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not result.done():
        return f'no result within {wait_s:g} s of the end'
    from action_msgs.msg import GoalStatus

    statuses = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_CANCELED: 'canceled',
                GoalStatus.STATUS_ABORTED: 'aborted'}
    wrapped = result.result()
    return f"{statuses.get(wrapped.status, 'unknown')}: {wrapped.result.message}"


def _waiting_note(dtype: str) -> str:
    from openvla_ros.core.hardware import detect_machine, expected_action_time
    return expected_action_time(detect_machine(), dtype)


def _wait(duration: float, start: float, received: list, note: str) -> None:
    """Sleep through the run, saying so while the first inference is still running."""
    end = start + duration
    next_report = start + WAITING_REPORT_S
    while True:
        now = time.monotonic()
        if now >= end:
            return
        if not received and now >= next_report:
            print(f'[demo] first inference still running ({now - start:.0f} s so far; '
                  f'expect {note})', flush=True)
            next_report += WAITING_REPORT_S
        time.sleep(min(0.2, end - now))


def _summary(node: Any, received: list, start: float, frames: int,
             superseded_before: int) -> dict:
    status = node.status()
    rate = ((len(received) - 1) / (received[-1] - received[0])
            if len(received) >= 2 else 0.0)
    return {
        'actions': len(received), 'seconds': time.monotonic() - start,
        'first_action_s': (received[0] - start) if received else None,
        'action_rate_hz': rate,
        'camera_frames': frames,
        'engine_latency_p50_s': status['latency_p50_s'],
        'frames_superseded': status['frames_superseded'] - superseded_before,
        'engine_startup_s': status['engine_startup_s'],
        'engine_dtype': status['engine_dtype'],
    }


def _print_summary(summary: dict, camera_hz: float) -> None:
    latency = summary['engine_latency_p50_s']
    rate = (f"{summary['action_rate_hz']:.2f} actions/s from the first action"
            if summary['actions'] >= 2 else 'one action, no rate yet')
    print(f"[demo] {summary['actions']} actions in {summary['seconds']:.1f} s; first action "
          f"after {summary['first_action_s']:.1f} s; {rate}; engine p50 {latency * 1000:.0f} ms "
          f"(1/latency = {(1 / latency if latency > 0 else 0):.2f} Hz, "
          f"{summary['engine_dtype']}); camera {camera_hz:g} Hz, "
          f"{summary['frames_superseded']} frames superseded while the engine was busy; "
          f"engine start-up {summary['engine_startup_s']:.0f} s", flush=True)


def _no_action_reason(status: dict[str, Any], duration: float) -> str:
    """Return one line saying why the node published nothing."""
    if status.get('last_error'):
        return f"the node reports: {status['last_error']}"
    if not status.get('frames_received'):
        return 'no camera frame reached the node (DDS discovery? see ROS_DOMAIN_ID)'
    return (f"the first inference did not finish within {duration:g} s "
            f"(engine dtype {status.get('engine_dtype') or '?'}): run longer (--duration) or "
            'check `openvla-ros doctor` for what this machine can do')
