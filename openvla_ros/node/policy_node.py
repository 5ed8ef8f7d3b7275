# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The OpenVLA policy as a ROS 2 lifecycle node: camera + instruction in, commands out.

Glue only: the inference loop (``core/inference_loop.py``), the engine (``core/engine.py``),
image decoding, prompting and output conditioning are ROS-free and tested on their own; the
parameters are defined once in ``node/parameters.py``. This module wires them to topics,
parameters, lifecycle transitions and ``/diagnostics``.

Lifecycle: ``configure`` loads the engine (slow), ``activate`` starts the loop and arms the
outputs, ``deactivate`` stops it and publishes one zero twist, ``cleanup`` frees the engine.
Until activated the node publishes no command.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64, Float64MultiArray, MultiArrayDimension, String

from openvla_ros.core.conditioning import Command
from openvla_ros.core.decoding import ACTION_NAMES
from openvla_ros.core.factory import make_policy
from openvla_ros.core.policy import EngineReport, Policy, report_of
from openvla_ros.core.images import msg_to_pil
from openvla_ros.core.errors import OpenVlaError
from openvla_ros.core.inference_loop import (Frame, FunctionClock, InferenceLoop, LoopState,
                                             OutputFunctions)
from openvla_ros.core.processes import end_children, exit_now
from openvla_ros.core.prompt import InstructionError
from openvla_ros.core.stats import NS_PER_S, stamp_to_ns
from openvla_ros.node import action_server, diagnostics, parameters, qos
from openvla_ros.node.execution import MotionOutput

#: ``engine_health`` in diagnostics for each loop state.
_HEALTH = {LoopState.STOPPED: 'ok', LoopState.RUNNING: 'ok', LoopState.ERROR: 'error',
           LoopState.TIMEOUT: 'timeout', LoopState.UNREACHABLE: 'unreachable',
           LoopState.DEAD: 'dead', LoopState.FAULT: 'fault'}
_ACTION_LABEL = ','.join(ACTION_NAMES)
#: ``engine_state`` in diagnostics for each lifecycle state (primary or transition); the loop's
#: DEAD state and a failed configure are told apart in :meth:`OpenVlaPolicyNode.engine_state`.
_ENGINE_STATE = {'unconfigured': 'unloaded', 'configuring': 'loading', 'inactive': 'ready',
                 'activating': 'ready', 'active': 'active', 'deactivating': 'ready',
                 'cleaningup': 'unloaded', 'shuttingdown': 'unloaded',
                 'errorprocessing': 'unloaded', 'finalized': 'unloaded'}


class OpenVlaPolicyNode(LifecycleNode):
    """Lifecycle node publishing OpenVLA end-effector commands from camera frames."""

    def __init__(self, node_name: str = 'openvla_policy', *,
                 policy_factory: Callable[..., Policy] | None = None, **kwargs: Any) -> None:
        """Declare parameters and interfaces; the engine loads in ``configure``.

        ``policy_factory(model, unnorm_key, *, engine, preparation, statistics_file)`` builds
        the policy in ``configure`` (default: :func:`~openvla_ros.core.factory.make_policy`, the
        in-process vLLM engine, or the vLLM server at ``engine.url``); tests pass their own.
        """
        super().__init__(node_name, **kwargs)
        parameters.declare(self)
        self._policy_factory = policy_factory or self._make_policy
        self._values = {p.name: self.get_parameter(p.name).value for p in parameters.TABLE}
        self._conditioning = parameters.conditioning_from(self._values)
        # What the lifecycle state does not say: that the node is unconfigured because its last
        # configure failed (diagnostics 'failed', exit code 1), not because none was tried.
        self._configure_failed = False
        self._exiting = False               # set by main() on SIGINT/SIGTERM
        self._engine: dict[str, Any] = {}   # what the configured engine reports
        self._throttle = diagnostics.Throttle(period_s=5.0)
        outputs = OutputFunctions(action=self.publish_action, zero=self.publish_zero,
                                  problem=self.log_problem, engine_dead=self.engine_died)
        # Stamps on the node's ROS clock (simulated time in bag replay), timeouts monotonic.
        self.loop = InferenceLoop(outputs, self._decode, clock=FunctionClock(now=self.ros_time_s),
                                  settings=parameters.loop_settings_from(self._values))
        try:
            self.loop.set_instruction(self._values['instruction'])
        except InstructionError:
            pass   # no initial task: the instruction topic brings one

        self._twist_pub = self.create_lifecycle_publisher(TwistStamped, 'ee_delta',
                                                          qos.COMMANDS)
        self._gripper_pub = self.create_lifecycle_publisher(Float64, 'gripper', qos.COMMANDS)
        self._action_pub = self.create_lifecycle_publisher(Float64MultiArray, 'action', 10)
        # Pulse or stream, pose targets and the safety envelope (node/execution.py).
        self._motion = MotionOutput(self, self._values, self._twist_pub, self._gripper_pub)
        self.loop.pacing = self._motion.next_request_at   # streaming: requests end at step ends
        # Absolute: the diagnostic aggregator and rqt_robot_monitor read /diagnostics whatever
        # namespace a node runs in. Published in every state ("engine loading" is news too).
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        group = MutuallyExclusiveCallbackGroup()
        if self._values['use_compressed']:
            self.create_subscription(CompressedImage, 'image/compressed', self._on_image,
                                     qos.IMAGES, callback_group=group)
        else:
            self.create_subscription(Image, 'image', self._on_image, qos.IMAGES,
                                     callback_group=group)
        self.create_subscription(String, 'instruction', self._on_instruction, qos.LATCHED,
                                 callback_group=group)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._actions = action_server.attach(self)   # ~/execute_instruction (goals)
        self.create_timer(float(self._values['diagnostics_period']), self._publish_diagnostics,
                          callback_group=group)
        # The engine-death path runs on the loop's thread; its deactivation runs here, in the
        # executor, in the group of the lifecycle services (rclpy puts them in the default,
        # mutually exclusive group), so it never overlaps a change_state call.
        self._deactivate_request = self.create_guard_condition(
            self._deactivate_dead_engine, callback_group=self.default_callback_group)
        self.get_logger().info(f"ready (unconfigured); model={self._values['model']!r}, "
                               f"unnorm_key={self._values['unnorm_key']!r}")

    def _make_policy(self, *args: Any, **kwargs: Any) -> Policy:
        # A remote request's deadline is the inference timeout: a late reply is never waited for.
        return make_policy(*args, timeout_s=float(self._values['inference_timeout']), **kwargs)

    # ------------------------------------------------------------------ inputs

    def _on_image(self, msg: Any) -> None:
        # Only store: the loop decodes the frames it actually uses.
        self.loop.put_frame(msg, stamp_to_ns(msg.header.stamp) / NS_PER_S)

    def _decode(self, msg: Any) -> Any:
        return msg_to_pil(msg, max_pixels=int(self._values['max_image_pixels']))

    def _on_instruction(self, msg: String) -> None:
        try:
            changed = self.loop.set_instruction(msg.data)
        except InstructionError as error:
            self.loop.count('bad_instructions')
            self.problem('instruction', f'instruction rejected, keeping '
                         f'{self.loop.instruction[0]!r}: {error}', 'error')
            return
        if changed:
            self.get_logger().info(f'instruction (topic): {self.loop.instruction[0]!r}')
        self._actions.instruction_changed('topic')   # the latest instruction wins over a goal

    def _on_set_parameters(self, changes: list[Parameter[Any]]) -> SetParametersResult:
        """Validate run-time changes; take or refuse the whole set."""
        values = {p.name: p.value for p in changes}
        problem = parameters.check_change(self._values, values)
        instruction = None
        if not problem and 'instruction' in values:
            try:
                instruction = self.loop.check_instruction(values['instruction'])
            except InstructionError as error:
                problem = str(error)
        if problem:
            self.loop.count('bad_parameters')
            self.get_logger().warning(f'rejected parameter change: {problem}')
            return SetParametersResult(successful=False, reason=problem)
        self._values.update(values)
        if any(name in parameters.CONDITIONING for name in values):
            self._conditioning = parameters.conditioning_from(self._values)
        parameters.loop_settings_from(values, self.loop.settings)
        self._motion.update(values)
        if instruction is not None and self.loop.use_instruction(*instruction):
            self.get_logger().info(f'instruction (parameter): {instruction[0]!r}')
        if instruction is not None:
            self._actions.instruction_changed('parameter')
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the engine; fail the transition with a precise message if it cannot."""
        values = self._values
        self._engine = {}
        try:
            preparation = parameters.preparation_from(values)
            engine = parameters.engine_from(values)
        except ValueError as error:
            return self._configure_failure(error)
        if engine.remote:
            self.get_logger().info(
                f"connecting to the vLLM server at {engine.url} for {values['model']!r}; "
                f'images {preparation.describe()}, sent as {engine.image_format}')
        else:
            self.get_logger().info(
                f"loading {values['model']!r} ({engine.as_dict()}); images "
                f'{preparation.describe()}; this takes a while (about a minute on a CPU, '
                'seconds to minutes on a GPU) ...')
        started = time.monotonic()
        try:
            policy = self._policy_factory(
                values['model'], values['unnorm_key'] or None, engine=engine,
                preparation=preparation,
                statistics_file=str(values['statistics_file']).strip() or None)
        except Exception as error:  # noqa: B902 - any engine failure must fail the transition
            return self._configure_failure(error)
        self._engine = _engine_report(report_of(policy), time.monotonic() - started)
        self.loop.set_policy(policy)
        self._configure_failed = False
        info = self._engine
        if info['dtype_warning']:
            self.get_logger().warning(info['dtype_warning'])
        self.get_logger().info(
            f"engine ready in {info['startup_s']:.1f} s (unnorm_key={info['unnorm_key']!r}, "
            f"dtype {info['dtype'] or '?'}: {info['dtype_reason'] or 'not reported'})")
        self.get_logger().info(
            f"statistics {info['unnorm_key']!r} hash {info['statistics_hash']} from "
            f"{info['statistics_source']}; images {info['image_preprocessing']}")
        return super().on_configure(state)

    def _configure_failure(self, error: BaseException) -> TransitionCallbackReturn:
        if self._exiting:
            # main() ended the engine's processes under a loading configure: not a failure.
            self.get_logger().info('configure interrupted: the process is exiting')
            return TransitionCallbackReturn.FAILURE
        self._configure_failed = True
        message = f'configure failed: {type(error).__name__}: '
        if isinstance(error, OpenVlaError):
            message += error.what + (f' -> {error.fix}' if error.fix else '')
        else:
            message += str(error)
        self.problem('configure', message, 'error')
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Arm the outputs and start the inference loop."""
        result = super().on_activate(state)
        self.loop.start()
        self._actions.activate()
        self.get_logger().info('active: publishing actions')
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the loop and leave the robot with a zero twist."""
        self._actions.deactivate('the node was deactivated')
        self._stop_loop('deactivate')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the engine."""
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop, publish a zero twist if armed, free the engine."""
        self.stop_and_release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free what was loaded so a new configure starts clean."""
        self.stop_and_release()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Remove the action server, stop the command stream thread, then destroy the node."""
        self._actions.destroy()
        self._motion.close()
        super().destroy_node()

    @property
    def is_active(self) -> bool:
        """Return whether the inference loop is running (the node is active)."""
        return self.loop.running

    @property
    def trace(self) -> Any:
        """Return the last actions' timing records (see :attr:`InferenceLoop.trace`)."""
        return self.loop.trace

    @property
    def conditioning(self) -> Any:
        """Return how actions currently become commands: scale, clamps, gripper."""
        return self._conditioning

    @property
    def configure_failed(self) -> bool:
        """Return whether the last configure failed (the process then exits non-zero)."""
        return self._configure_failed

    def stop_and_release(self, fast: bool = False) -> None:
        """Send a last zero twist when active, stop the loop and free the engine.

        ``fast`` (process exit only) terminates the engine's processes instead of waiting for
        vLLM's graceful shutdown; see :meth:`VllmPolicy.close`.
        """
        self._actions.deactivate('the node is shutting down')
        self._stop_loop('shutdown', join=not fast)
        self._release(fast=fast)

    def _stop_loop(self, reason: str, join: bool = True) -> None:
        timeout = float(self._values['inference_timeout']) + 5.0 if join else None
        self.loop.stop(reason, join_timeout=timeout)

    def _release(self, fast: bool = False) -> None:
        policy = self.loop.release()
        self._engine = {}
        if policy is None:
            return
        started = time.monotonic()
        try:
            policy.close(fast=fast)
            self.get_logger().info(f'engine released in {time.monotonic() - started:.1f} s')
        except Exception as error:  # noqa: B902 - cleanup must not fail the transition
            self.get_logger().warning(f'engine shutdown raised {error!r}')

    def engine_died(self, message: str) -> None:
        """Deactivate on the executor's thread: the loop reports the engine gone (its output)."""
        # Leave the active state on our own: an inactive node cannot command the robot. The
        # loop already sent the zero twist and stopped acting; the transition follows in the
        # executor (see _deactivate_dead_engine).
        self._deactivate_request.trigger()

    def _deactivate_dead_engine(self) -> None:
        # Serialized with lifecycle service calls: one may have run since the engine died
        # (deactivate, or even cleanup + configure + activate with a new engine), so act only
        # if the node is still active on the dead engine.
        if self.loop.state is LoopState.DEAD and self._state_machine.current_state[1] == 'active':
            self.trigger_deactivate()

    # ------------------------------------------------------------------ outputs

    def ros_time_s(self) -> float:
        """Return the node's ROS clock in seconds (the loop's stamp clock)."""
        return self.get_clock().now().nanoseconds / NS_PER_S

    def publish_action(self, prediction: Any, frame: Frame) -> bool:
        """Publish one action (the loop's output); return False when it is unusable."""
        try:
            command = self._conditioning.apply(prediction.action)
        except ValueError as error:
            self.problem('engine', f'unusable action: {error}', 'error')
            return False
        if self._values['stamp_source'] == 'now':
            stamp = self.get_clock().now().to_msg()
        else:
            stamp = frame.msg.header.stamp   # the image's own stamp: it must match to the ns
        self._motion.act(command, stamp)
        raw = Float64MultiArray(data=[float(v) for v in prediction.action])
        raw.layout.dim = [MultiArrayDimension(label=_ACTION_LABEL, size=len(ACTION_NAMES),
                                              stride=len(ACTION_NAMES))]
        self._action_pub.publish(raw)
        return True

    def _publish_command(self, command: Command, stamp: Any) -> None:
        twist = TwistStamped()
        twist.header.stamp = stamp
        twist.header.frame_id = self._values['frame_id']
        twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = (
            float(v) for v in command.linear)
        twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = (
            float(v) for v in command.angular)
        self._twist_pub.publish(twist)
        if not math.isnan(command.gripper):
            self._gripper_pub.publish(Float64(data=float(command.gripper)))

    def publish_zero(self, reason: str) -> None:
        """Publish one zero twist (the gripper is left where it is); the loop's output."""
        self._motion.stop()   # a stream drops its step and goes on with zeros
        if self._twist_pub.is_activated:
            self._publish_command(Command.zero(), self.get_clock().now().to_msg())
            self.get_logger().info(f'zero twist published ({reason})')

    def problem(self, key: str, message: str, level: str) -> None:
        """Report a problem: the loop records it (diagnostics' last_error), then it is logged."""
        self.loop.report_problem(key, message, level)

    def _problem(self, key: str, message: str, level: str) -> None:
        # Kept for the callers that use this name (node/execution.py, the action server).
        self.problem(key, message, level)

    def log_problem(self, key: str, message: str, level: str) -> None:
        """Log a problem, throttled per ``key`` (the loop's output; it recorded it already)."""
        allowed, held = self._throttle.allow(key)
        if not allowed:
            return
        if held:
            message += f' ({held} similar messages suppressed)'
        # rclpy ties a severity to each call site, hence two calls rather than one.
        if level == 'error':
            self.get_logger().error(message)
        else:
            self.get_logger().warning(message)

    # ------------------------------------------------------------------ diagnostics

    def stream_step_starts(self) -> list[float]:
        """Return when each streamed step began (monotonic s): for measuring an arm's steps."""
        return self._motion.step_starts()

    def status(self) -> dict[str, Any]:
        """Return the node's figures as numbers and words (diagnostics formats them)."""
        loop = self.loop.status()
        state = self.loop.state
        values: dict[str, Any] = {
            'engine_state': self.engine_state(state), 'engine_health': _HEALTH[state],
            'engine_startup_s': self._engine.get('startup_s', float('nan')),
            'engine_dtype': self._engine.get('dtype', ''),
            'engine_dtype_reason': self._engine.get('dtype_reason', ''),
            'image_preprocessing': self._engine.get('image_preprocessing', ''),
            'statistics_source': self._engine.get('statistics_source', ''),
            'statistics_hash': self._engine.get('statistics_hash', '')}
        values.update(loop)
        values.pop('loop_state')
        values.update(self._motion.status())
        values.update(self._actions.status())
        return values

    def engine_state(self, loop_state: LoopState | None = None) -> str:
        """Return unloaded, loading, ready, active, failed or dead (diagnostics' engine_state).

        The lifecycle state says it, except for a dead engine (the loop knows) and a failed
        configure (unconfigured again, with ``configure_failed`` set).
        """
        if (loop_state or self.loop.state) is LoopState.DEAD:
            return 'dead'
        label = self._state_machine.current_state[1]
        if label in ('unconfigured', 'finalized') and self._configure_failed:
            return 'failed'
        return _ENGINE_STATE.get(label, 'unloaded')

    def diagnostics_status(self) -> DiagnosticStatus:
        """Return the node's current health as one DiagnosticStatus named after the node."""
        return diagnostics.to_status(f'{self.get_fully_qualified_name()}: OpenVLA policy',
                                     str(self._values['model']), self.status())

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(diagnostics.to_array(self.get_clock().now().to_msg(),
                                                    [self.diagnostics_status()]))


def _engine_report(report: EngineReport, startup_s: float) -> dict[str, Any]:
    """Return dtype, statistics provenance and image preparation of a configured policy.

    ``startup_s`` is the node's own measure (the whole configure), not the engine's.
    """
    return {'startup_s': startup_s,
            'dtype': report.dtype,
            'dtype_reason': report.dtype_reason,
            'dtype_warning': report.dtype_warning,
            'unnorm_key': str(report.unnorm_key),
            'statistics_source': report.statistics_source,
            'statistics_hash': report.statistics_hash,
            'image_preprocessing': report.image_preprocessing}


def _spin(executor: Any, stop: threading.Event) -> None:
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.set()


def main(args: list[str] | None = None) -> None:
    """Run the node until SIGINT/SIGTERM; publish a zero twist on the way out.

    Exit code 0, or 1 when the last configure failed (the engine never loaded).
    """
    # Own signal handling: rclpy's default handler shuts the context down first, and a
    # shut-down context can no longer publish the final zero twist.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # Handlers first: a signal while the node is being built must still end in a clean exit.
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = OpenVlaPolicyNode()
    # A configure that loads the engine for a minute must not stop diagnostics, and a running
    # goal holds one thread (two while one goal preempts another).
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    threading.Thread(target=_spin, args=(executor, stop), name='ros-executor',
                     daemon=True).start()
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stopping = time.monotonic()
        # Decided now: a configure still loading when the signal came is interrupted, not failed.
        code = 1 if node.configure_failed else 0
        node._exiting = True
        node.stop_and_release(fast=True)
        # A configure may still be loading an engine (its processes started, the policy not yet
        # handed to the loop, so stop_and_release cannot close it): end every process this
        # one started, whatever state it is in.
        left = end_children(timeout=2.0)
        if left:
            node.get_logger().error(f'engine processes still alive after SIGKILL: {left}')
            code = 1
        # Not waiting for the executor's threads: one may be inside that configure.
        _shutdown_executor(executor)
        node.get_logger().info(f'stopped in {time.monotonic() - stopping:.1f} s')
        node.destroy_node()
        rclpy.try_shutdown()
    # The engine-call thread may still be blocked inside a request to the engine processes just
    # terminated, and a configure thread inside vLLM's start-up; a normal interpreter exit would
    # wait for them. Everything that matters (zero twist, engine processes, ROS context) is
    # done, so leave now.
    exit_now(code)


def _shutdown_executor(executor: Any) -> None:
    try:
        executor.shutdown(timeout_sec=1.0, wait_for_threads=False)
    except TypeError:
        # rclpy without wait_for_threads (Jazzy): its shutdown does not join the threads.
        executor.shutdown(timeout_sec=1.0)


if __name__ == '__main__':
    main()
