"""The OpenVLA policy as a ROS 2 lifecycle node: camera + instruction in, commands out.

Thin glue: prompting, image conversion, decoding, output conditioning and the frame mailbox
are ROS-free modules with their own tests; this node wires them to topics, parameters,
lifecycle transitions and diagnostics.

Lifecycle: ``configure`` loads the engine (slow), ``activate`` arms the outputs and starts the
inference worker, ``deactivate`` stops it and publishes one zero twist, ``cleanup`` frees the
engine. Until activated the node publishes no command.
"""

from __future__ import annotations

from collections import deque
import concurrent.futures
import math
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TwistStamped
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, qos_profile_sensor_data,
                       ReliabilityPolicy)
from rclpy.signals import SignalHandlerOptions
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64, Float64MultiArray, MultiArrayDimension, String

from openvla_ros.core.decoding import ACTION_NAMES
from openvla_ros.core.conditioning import Command, Conditioning, validate
from openvla_ros.core.images import ImageError, msg_to_rgb
from openvla_ros.core.inference_loop import Counters, FrameSlot, RollingStats, Throttle
from openvla_ros.core.preprocessing import DEFAULT_CROP_SCALE, ImagePreparation, PREPROCESSING_MODES
from openvla_ros.core.prompt import clean_instruction, InstructionError

_READ_ONLY = 'read-only: change it in the parameter file and reconfigure the node'


def _stamp_seconds(stamp: Any) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


class OpenVlaPolicyNode(LifecycleNode):
    """Lifecycle node publishing OpenVLA end-effector commands from camera frames."""

    #: Builds the policy in ``on_configure``; a documented hook for tests and fault drills,
    #: called as ``policy_factory(model, unnorm_key, trust_remote_code=..., engine_options=...,
    #: preparation=..., statistics_file=...)`` like :class:`~openvla_ros.core.engine.VllmPolicy`.
    policy_factory: Callable[..., Any] | None = None

    def __init__(self, node_name: str = 'openvla_policy', **kwargs: Any) -> None:
        """Declare parameters and interfaces; the engine loads in ``configure``."""
        super().__init__(node_name, **kwargs)
        self._declare_parameters()
        self._conditioning = self._conditioning_from_parameters()
        self._instruction = self._initial_instruction()
        self._instruction_lock = threading.Lock()
        self._policy: Any = None
        self._policy_lock = threading.Lock()
        self._slot = FrameSlot()
        self._stats = RollingStats()
        self._counters = Counters()
        self._throttle = Throttle(period_s=5.0)
        self._worker: threading.Thread | None = None
        self._running = threading.Event()
        self._stopping = threading.Event()   # set to wake the worker from a rate-cap sleep
        self._publish_lock = threading.Lock()  # orders the last action before the final zero
        self._last_error = ''
        self._engine_state = 'unloaded'
        self._startup_s = float('nan')
        self._engine_dtype = ('', '')        # (resolved dtype, why), once configured
        # What the configured policy prepares images with and unnormalizes with.
        self._provenance = {'image_preprocessing': '', 'statistics_source': '',
                            'statistics_hash': ''}
        self._last_command_time: float | None = None   # monotonic, last non-zero command
        self._zero_sent = True
        self._last_frame_age_s = float('nan')
        self._engine_health = 'ok'            # ok | error | timeout | dead
        self._engine_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: concurrent.futures.Future | None = None
        #: The last actions with their timing (image stamp, frame age when inference started,
        #: engine time, cycle time): read by tests and the benchmark in the same process.
        self.trace: deque[dict] = deque(maxlen=1000)
        self._last_publish_mono: float | None = None

        # Commands are reliable so a zero twist is never lost to the best-effort mode a camera
        # uses; depth 1 because an old command is worse than none.
        command_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 history=HistoryPolicy.KEEP_LAST)
        self._twist_pub = self.create_lifecycle_publisher(TwistStamped, 'ee_delta', command_qos)
        self._gripper_pub = self.create_lifecycle_publisher(Float64, 'gripper', command_qos)
        self._action_pub = self.create_lifecycle_publisher(Float64MultiArray, 'action', 10)
        # Diagnostics flow in every state: "engine loading" and "inactive" are worth reporting.
        self._diag_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)

        # Camera: sensor-data QoS (best effort, keep last) so a slow node never back-pressures
        # the camera; the mailbox keeps only the newest frame anyway.
        self._io_group = MutuallyExclusiveCallbackGroup()
        image_qos = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                               history=HistoryPolicy.KEEP_LAST,
                               durability=qos_profile_sensor_data.durability)
        if self.get_parameter('use_compressed').value:
            self._image_sub = self.create_subscription(
                CompressedImage, 'image/compressed', self._on_image, image_qos,
                callback_group=self._io_group)
        else:
            self._image_sub = self.create_subscription(
                Image, 'image', self._on_image, image_qos, callback_group=self._io_group)
        # Instruction: reliable + transient local, so a node started late still gets the task.
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._instruction_sub = self.create_subscription(
            String, 'instruction', self._on_instruction, latched, callback_group=self._io_group)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        period = float(self.get_parameter('diagnostics_period').value)
        self._diag_timer = self.create_timer(period, self._publish_diagnostics,
                                             callback_group=self._io_group)
        self.get_logger().info(
            f'ready (unconfigured); model={self.get_parameter("model").value!r}, '
            f'unnorm_key={self.get_parameter("unnorm_key").value!r}')

    # ------------------------------------------------------------------ parameters

    def _declare_parameters(self) -> None:
        def read_only(description: str) -> ParameterDescriptor:
            return ParameterDescriptor(description=f'{description} ({_READ_ONLY})',
                                       read_only=True)

        def ranged(description: str, low: float, high: float) -> ParameterDescriptor:
            return ParameterDescriptor(description=description, floating_point_range=[
                FloatingPointRange(from_value=low, to_value=high, step=0.0)])

        declare = self.declare_parameter
        declare('model', 'openvla/openvla-7b', read_only(
            'OpenVLA checkpoint: a local directory with config.json and safetensors, or a hub '
            'id such as openvla/openvla-7b'))
        declare('unnorm_key', '', read_only(
            'dataset statistics for unnormalizing actions, e.g. bridge_orig (WidowX/Bridge) or '
            'fractal20220817_data (Google robot); required when the checkpoint has several'))
        declare('image_preprocessing', 'processor', read_only(
            "how frames are prepared before the model's processor: 'processor' = as they are "
            "(the processor resizes, bicubic); 'training' = JPEG round trip and Lanczos3 resize "
            'to 224, as the reference evaluation of fine-tuned checkpoints does'))
        # Typed loosely (dynamic_typing) so that a slip such as center_crop_scale: 1 in a
        # parameter file fails configure with a message instead of the node's construction.
        declare('center_crop', False, ParameterDescriptor(
            description='crop the centred center_crop_scale of the image area and resize back '
                        'to 224 (bilinear), for checkpoints fine-tuned with random-crop '
                        f'augmentation ({_READ_ONLY})',
            read_only=True, dynamic_typing=True, additional_constraints='true or false'))
        declare('center_crop_scale', DEFAULT_CROP_SCALE, ParameterDescriptor(
            description=f'area fraction kept by center_crop (the reference uses '
                        f'{DEFAULT_CROP_SCALE}) ({_READ_ONLY})',
            read_only=True, dynamic_typing=True,
            additional_constraints='a number in (0, 1]; checked at configure'))
        declare('statistics_file', '', read_only(
            "unnormalization statistics in dataset_statistics.json layout; overrides the "
            "checkpoint's dataset_statistics.json and config.json norm_stats; '' = none"))
        declare('instruction', '', ParameterDescriptor(
            description='initial task in natural language; the instruction topic overrides it '
                        'and later parameter sets replace it'))
        declare('use_compressed', False, read_only(
            'subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image'))
        declare('frame_id', 'base_link', ParameterDescriptor(
            description='header.frame_id of ee_delta: the frame the deltas are expressed in '
                        '(for Bridge/WidowX the robot base frame)'))
        declare('stamp_source', 'image', ParameterDescriptor(
            description="header.stamp of outputs: 'image' = the stamp of the frame the action "
                        "was computed from (traceable observation time); 'now' = publish time "
                        '(for consumers that reject old stamps)'))
        declare('output_mode', 'delta', ParameterDescriptor(
            description="'delta' = per-step end-effector deltas as the model emits them (m, rad "
                        "per control step); 'velocity' = delta / control_period (m/s, rad/s)"))
        declare('control_period', 0.2, ranged(
            'seconds per control step of the training data (Bridge/WidowX: 0.2 = 5 Hz); used '
            "by output_mode 'velocity'", 1e-3, 10.0))
        declare('action_scale', [1.0] * 6, ParameterDescriptor(
            description='per-axis scale applied before the clamps: x y z roll pitch yaw'))
        declare('max_linear', 0.05, ranged(
            'clamp on the norm of the linear part after scaling, in output units (m per step or '
            'm/s); 0 disables', 0.0, 100.0))
        declare('max_angular', 0.25, ranged(
            'clamp on the norm of the angular part after scaling (rad per step or rad/s); 0 '
            'disables', 0.0, 100.0))
        declare('gripper_threshold', -1.0, ranged(
            'binarize the gripper: >= threshold -> 1.0 (open), below -> 0.0 (closed); negative '
            'passes the model value through (OpenVLA: ~1 open, ~0 closed)', -1.0, 1.0))
        declare('gripper_invert', False, ParameterDescriptor(
            description='publish 1 - gripper, for grippers whose command is 1 = closed'))
        declare('max_rate_hz', 0.0, ranged(
            'cap on the action rate; 0 = as fast as the engine allows (Bridge/WidowX runs at 5 '
            'Hz)', 0.0, 1000.0))
        declare('max_image_age', 1.0, ranged(
            'skip frames whose header stamp is older than this at inference start (s, ROS '
            'clock, so use_sim_time works with bag replay); 0 disables the check', 0.0, 3600.0))
        declare('command_timeout', 2.0, ranged(
            'publish one zero twist when no fresh action was published for this long (s)',
            0.05, 3600.0))
        declare('max_image_pixels', 4096 * 4096, ParameterDescriptor(
            description='refuse images with more pixels than this (protects memory from '
                        'absurd headers)',
            integer_range=[IntegerRange(from_value=1, to_value=1 << 30, step=1)]))
        declare('inference_timeout', 30.0, ranged(
            'an inference taking longer than this (s) is reported as an engine error and a '
            'zero twist is published', 0.1, 3600.0))
        declare('diagnostics_period', 1.0, read_only('seconds between diagnostics messages'))
        declare('engine.dtype', 'auto', read_only(
            'vLLM dtype: auto (bfloat16 on a GPU or a CPU with native bf16, float32 on other '
            'CPUs, where bfloat16 is emulated and very slow), bfloat16, float16 or float32'))
        declare('engine.max_model_len', 512, read_only(
            'vLLM context length in tokens (256 image + prompt + 7 action tokens)'))
        declare('engine.gpu_memory_utilization', 0.0, read_only(
            'share of accelerator memory vLLM may reserve; 0 = vLLM default (0.3 on CPU)'))
        declare('engine.enforce_eager', False, read_only(
            'disable CUDA graphs (faster start-up, slower actions); always on for CPU'))
        declare('engine.quantization', '', read_only(
            "vLLM quantization method, '' for none (e.g. fp8)"))
        declare('engine.seed', 0, read_only('vLLM seed'))
        declare('engine.trust_remote_code', False, read_only(
            'let the checkpoint run its own Python code; not needed: vLLM implements OpenVLA'))

    def _conditioning_from_parameters(self, overrides: dict | None = None) -> Conditioning:
        values = {name: self.get_parameter(name).value for name in (
            'output_mode', 'control_period', 'action_scale', 'max_linear', 'max_angular',
            'gripper_threshold', 'gripper_invert')}
        values.update(overrides or {})
        values['action_scale'] = list(values['action_scale'])
        return Conditioning(**values)

    def _initial_instruction(self) -> str:
        text = self.get_parameter('instruction').value
        try:
            return clean_instruction(text) if text.strip() else ''
        except InstructionError:
            return ''

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate run-time changes; reject the whole set if one value is bad."""
        changes = {p.name: p.value for p in parameters}
        conditioning_names = ('output_mode', 'control_period', 'action_scale', 'max_linear',
                              'max_angular', 'gripper_threshold', 'gripper_invert')
        current = {n: self.get_parameter(n).value for n in conditioning_names}
        current.update({n: v for n, v in changes.items() if n in conditioning_names})
        problem = validate(current['output_mode'], float(current['control_period']),
                           list(current['action_scale']), float(current['max_linear']),
                           float(current['max_angular']))
        if 'stamp_source' in changes and changes['stamp_source'] not in ('image', 'now'):
            problem = f"stamp_source must be 'image' or 'now', got {changes['stamp_source']!r}"
        if 'frame_id' in changes and not str(changes['frame_id']).strip():
            problem = 'frame_id must not be empty: name the frame the deltas are expressed in'
        instruction = None
        if 'instruction' in changes:
            try:
                instruction = self._checked_instruction(changes['instruction'])
            except InstructionError as error:
                problem = str(error)
        if problem:
            self._counters.add('bad_parameters')
            self.get_logger().warning(f'rejected parameter change: {problem}')
            return SetParametersResult(successful=False, reason=problem)
        if any(n in conditioning_names for n in changes):
            self._conditioning = Conditioning(**{**current,
                                                 'action_scale': list(current['action_scale'])})
        if instruction is not None:
            self._set_instruction(instruction, 'parameter')
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ inputs

    def _checked_instruction(self, text: Any) -> str:
        cleaned = clean_instruction(text)
        policy = self._policy
        if policy is not None:
            policy.prompt_ids(cleaned)   # raises InstructionError when over-long
        return cleaned

    def _set_instruction(self, text: str, source: str) -> None:
        with self._instruction_lock:
            changed = text != self._instruction
            self._instruction = text
        if changed:
            self.get_logger().info(f'instruction ({source}): {text!r}')

    def _on_instruction(self, msg: String) -> None:
        try:
            text = self._checked_instruction(msg.data)
        except InstructionError as error:
            self._counters.add('bad_instructions')
            self._record_error(f'instruction rejected, keeping {self._instruction!r}: {error}',
                               key='instruction')
            return
        self._set_instruction(text, 'topic')

    def _on_image(self, msg: Any) -> None:
        # Only store: decoding happens in the worker for the frames it actually uses.
        now = self.get_clock().now().nanoseconds * 1e-9
        self._slot.put(msg, _stamp_seconds(msg.header.stamp), now)

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the engine; fail the transition with a precise message if it cannot."""
        model = self.get_parameter('model').value
        unnorm_key = self.get_parameter('unnorm_key').value or None
        options = self._engine_options()
        factory = self.policy_factory
        if factory is None:
            from openvla_ros.core.engine import VllmPolicy
            factory = VllmPolicy
        self._engine_state = 'loading'
        self._provenance = dict.fromkeys(self._provenance, '')
        statistics_file = str(self.get_parameter('statistics_file').value or '').strip() or None
        try:
            preparation = self._preparation_from_parameters()
        except ValueError as error:
            return self._configure_failed(error)
        self.get_logger().info(
            f'loading {model!r} on vLLM ({options}); images {preparation.describe()}; this '
            'takes a while (about a minute on a CPU, seconds to minutes on a GPU) ...')
        started = time.monotonic()
        trust = bool(self.get_parameter('engine.trust_remote_code').value)
        try:
            policy = factory(model, unnorm_key, trust_remote_code=trust, engine_options=options,
                             preparation=preparation, statistics_file=statistics_file)
        except Exception as error:  # noqa: B902 - any engine failure must fail the transition
            return self._configure_failed(error)
        with self._policy_lock:
            self._policy = policy
        self._startup_s = time.monotonic() - started
        self._engine_state = 'ready'
        if self._instruction:
            try:
                self._checked_instruction(self._instruction)
            except InstructionError as error:
                self._record_error(f'initial instruction rejected: {error}', key='instruction')
                self._instruction = ''
        choice = getattr(policy, 'dtype_choice', None)
        self._engine_dtype = (choice.dtype, choice.reason) if choice is not None else ('', '')
        if choice is not None and choice.warning:
            self.get_logger().warning(choice.warning)
        provenance = _policy_provenance(policy, preparation)
        self._provenance = {key: provenance[key] for key in self._provenance}
        self.get_logger().info(
            f'engine ready in {self._startup_s:.1f} s (unnorm_key={policy.decoder.unnorm_key!r}, '
            f'dtype {self._engine_dtype[0] or "?"}: {self._engine_dtype[1] or "not reported"})')
        self.get_logger().info(
            f"statistics {provenance['unnorm_key']!r} hash {provenance['statistics_hash']} from "
            f"{provenance['statistics_source']}; images {provenance['image_preprocessing']}")
        return super().on_configure(state)

    def _configure_failed(self, error: BaseException) -> TransitionCallbackReturn:
        """Record and log why configure failed, with the fix; fail the transition."""
        self._engine_state = 'failed'
        self._last_error = f'configure failed: {type(error).__name__}: {error}'
        hint = _configure_hint(error)
        self.get_logger().error(f'{self._last_error}{hint}')
        return TransitionCallbackReturn.FAILURE

    def _preparation_from_parameters(self) -> ImagePreparation:
        """Return the image preparation the parameters ask for, or raise a precise ValueError."""
        get = self.get_parameter
        mode = get('image_preprocessing').value
        crop = get('center_crop').value
        scale = get('center_crop_scale').value
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f'image_preprocessing must be one of '
                             f'{", ".join(PREPROCESSING_MODES)}, got {mode!r}')
        if isinstance(scale, int) and not isinstance(scale, bool):
            scale = float(scale)   # an integer in the parameter file (center_crop_scale: 1)
        # ImagePreparation names the parameter and the allowed values in its messages.
        return ImagePreparation(mode=mode, center_crop=crop, center_crop_scale=scale)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Arm the outputs and start the inference worker."""
        result = super().on_activate(state)
        self._slot.clear()          # frames from before activation are not acted on
        self._slot.reopen()
        self._stats.reset()
        self._stopping.clear()
        self._running.set()
        self._last_command_time = None
        self._last_publish_mono = None
        self._zero_sent = True
        self._engine_health = 'ok'
        if self._engine_pool is None:
            # Engine calls run on their own thread so a hung engine can be timed out.
            self._engine_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix='openvla-engine')
        self._worker = threading.Thread(target=self._run_worker, name='openvla-inference',
                                        daemon=True)
        self._worker.start()
        self._engine_state = 'active'
        self.get_logger().info('active: publishing actions')
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker and leave the robot with a zero twist."""
        self._stop_worker('deactivate')
        if self._engine_state != 'dead':
            self._engine_state = 'ready'
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the engine."""
        self._release_policy()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop, publish a zero twist if armed, free the engine."""
        self.stop_and_release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free what was loaded so a new configure starts clean."""
        self._stop_worker()
        self._release_policy()
        return TransitionCallbackReturn.SUCCESS

    @property
    def is_active(self) -> bool:
        """Return whether the inference worker is running (the node is active)."""
        return self._running.is_set()

    def stop_and_release(self, fast: bool = False) -> None:
        """Send a last zero twist when active, stop the worker and free the engine.

        ``fast`` (process exit only) terminates the engine's processes instead of waiting for
        vLLM's graceful shutdown; see :meth:`VllmPolicy.close`.
        """
        self._stop_worker('shutdown', join=not fast)
        self._release_policy(fast=fast)

    def _stop_worker(self, reason: str = '', join: bool = True) -> None:
        # Disarm and publish the zero under the publish lock, before waiting for an in-flight
        # inference: its late result must never reach the robot after the zero twist.
        with self._publish_lock:
            was_running = self._running.is_set()
            self._running.clear()
            if was_running and reason:
                self._publish_zero(reason)
        self._stopping.set()
        self._slot.close()
        worker, self._worker = self._worker, None
        if join and worker is not None and worker is not threading.current_thread():
            worker.join(timeout=float(self.get_parameter('inference_timeout').value) + 5.0)

    def _release_policy(self, fast: bool = False) -> None:
        with self._policy_lock:
            policy, self._policy = self._policy, None
        pool, self._engine_pool = self._engine_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._pending = None
        self._provenance = dict.fromkeys(self._provenance, '')
        if policy is not None:
            started = time.monotonic()
            try:
                policy.close(fast=True) if fast else policy.close()
                self.get_logger().info(f'engine released in {time.monotonic() - started:.1f} s')
            except Exception as error:  # noqa: B902 - cleanup must not fail the transition
                self.get_logger().warning(f'engine shutdown raised {error!r}')
        self._engine_state = 'unloaded'

    def _engine_options(self) -> dict[str, Any]:
        get = self.get_parameter
        options: dict[str, Any] = {
            'dtype': get('engine.dtype').value,
            'max_model_len': int(get('engine.max_model_len').value),
            'seed': int(get('engine.seed').value),
        }
        if get('engine.gpu_memory_utilization').value > 0.0:
            options['gpu_memory_utilization'] = float(get('engine.gpu_memory_utilization').value)
        if get('engine.enforce_eager').value:
            options['enforce_eager'] = True
        if get('engine.quantization').value:
            options['quantization'] = get('engine.quantization').value
        return options

    # ------------------------------------------------------------------ inference worker

    def _run_worker(self) -> None:
        """Run inference whenever the engine is free, on the newest fresh frame."""
        while self._running.is_set():
            pending = self._pending
            if pending is not None and not pending.done():
                # A timed-out request still holds the engine (one request at a time): wait for
                # it rather than queue another; newer frames simply replace older ones.
                concurrent.futures.wait([pending], timeout=0.05)
                self._check_command_timeout()
                if not self._engine_alive():
                    self._on_engine_failure(EngineDiedError(
                        'the engine processes exited while a request was pending'))
                continue
            frame = self._slot.take(timeout=0.05)
            self._check_command_timeout()
            if frame is None or not self._running.is_set():
                continue
            cycle_start = time.monotonic()
            self._infer(frame, cycle_start)
            cap = float(self.get_parameter('max_rate_hz').value)
            if cap > 0.0:
                remaining = 1.0 / cap - (time.monotonic() - cycle_start)
                if remaining > 0.0:
                    self._stopping.wait(remaining)

    def _infer(self, frame: Any, cycle_start: float) -> None:
        now_s = self.get_clock().now().nanoseconds * 1e-9
        age = now_s - frame.stamp_s
        self._last_frame_age_s = age
        max_age = float(self.get_parameter('max_image_age').value)
        if max_age > 0.0 and age > max_age:
            self._counters.add('frames_stale')
            self._record_error(
                f'skipping a frame {age:.2f} s old (max_image_age {max_age} s): the camera '
                'stamps are old or the clocks differ (use_sim_time with bag replay?)',
                key='stale', level='warning')
            return
        with self._instruction_lock:
            instruction = self._instruction
        if not instruction:
            self._counters.add('no_instruction')
            self._record_error('no instruction yet: publish one on the instruction topic',
                               key='no_instruction', level='warning')
            return
        try:
            rgb = msg_to_rgb(frame.msg, max_pixels=int(self.get_parameter(
                'max_image_pixels').value))
        except ImageError as error:
            self._counters.add('bad_images')
            self._record_error(f'bad image: {error}', key='image')
            return
        policy = self._policy
        if policy is None:
            return
        self._counters.add('frames_used')
        timeout = float(self.get_parameter('inference_timeout').value)
        pool = self._engine_pool
        if pool is None:
            return
        self._pending = pool.submit(policy.predict, rgb, instruction)
        try:
            prediction = self._pending.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            if not self._engine_alive():
                self._on_engine_failure(EngineDiedError(
                    f'no answer within {timeout} s and the engine processes are gone'))
                return
            self._counters.add('engine_timeouts')
            self._engine_health = 'timeout'
            self._record_error(
                f'engine timeout: no action within inference_timeout ({timeout} s); zero twist '
                'sent, waiting for the engine', key='engine')
            self._publish_zero('engine timeout')
            return
        except InstructionError as error:
            self._counters.add('bad_instructions')
            self._record_error(f'instruction rejected: {error}', key='instruction')
            return
        except Exception as error:  # noqa: B902 - an engine failure must not end the loop
            self._on_engine_failure(error)
            return
        self._engine_health = 'ok'
        with self._publish_lock:
            if not self._running.is_set():
                return  # stopped while the engine ran: the zero twist was the last word
            self._publish_action(prediction, frame)
        published = time.monotonic()
        self.trace.append({
            'stamp_s': frame.stamp_s, 'age_at_start_s': age,
            'engine_s': float(prediction.timings.get('engine_s', float('nan'))),
            'cycle_s': (published - self._last_publish_mono
                        if self._last_publish_mono is not None else float('nan')),
            'busy_s': published - cycle_start})
        self._last_publish_mono = published

    def _engine_alive(self) -> bool:
        policy = self._policy
        check = getattr(policy, 'is_alive', None)
        return policy is not None and (check is None or check())

    def _on_engine_failure(self, error: BaseException) -> None:
        if self._engine_state == 'dead':
            return
        self._counters.add('engine_errors')
        self._publish_zero('engine error')
        if _engine_is_dead(error) or not self._engine_alive():
            self._engine_health = 'dead'
            self._engine_state = 'dead'
            self._record_error(
                f'engine died ({type(error).__name__}: {error}); the node deactivates itself: '
                'run cleanup then configure to start a new engine', key='engine')
            # Leave the active state on our own: an inactive node cannot command the robot.
            threading.Thread(target=self._deactivate_after_death, daemon=True).start()
            return
        self._engine_health = 'error'
        self._record_error(f'engine error: {type(error).__name__}: {error}', key='engine')

    def _deactivate_after_death(self) -> None:
        self.trigger_deactivate()
        self._engine_state = 'dead'

    def _publish_action(self, prediction: Any, frame: Any) -> None:
        try:
            command = self._conditioning.apply(prediction.action)
        except ValueError as error:
            self._counters.add('engine_errors')
            self._record_error(f'unusable action: {error}', key='engine')
            self._publish_zero('unusable action')
            return
        stamp = self._output_stamp(frame)
        self._publish_command(command, stamp)
        raw = Float64MultiArray()
        raw.layout.dim = [MultiArrayDimension(label='dx,dy,dz,droll,dpitch,dyaw,gripper',
                                              size=len(ACTION_NAMES), stride=len(ACTION_NAMES))]
        raw.data = [float(v) for v in prediction.action]
        self._action_pub.publish(raw)
        self._counters.add('actions')
        self._stats.add(prediction.timings.get('engine_s', float('nan')), time.monotonic())
        self._last_command_time = time.monotonic()
        self._zero_sent = False

    def _output_stamp(self, frame: Any) -> Any:
        if self.get_parameter('stamp_source').value == 'now':
            return self.get_clock().now().to_msg()
        # The image's own stamp message, not a float round trip: it must match to the ns.
        return frame.msg.header.stamp

    def _publish_command(self, command: Command, stamp: Any) -> None:
        twist = TwistStamped()
        twist.header.stamp = stamp
        twist.header.frame_id = self.get_parameter('frame_id').value
        twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = (
            float(v) for v in command.linear)
        twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = (
            float(v) for v in command.angular)
        self._twist_pub.publish(twist)
        if not math.isnan(command.gripper):
            self._gripper_pub.publish(Float64(data=float(command.gripper)))

    def _publish_zero(self, reason: str) -> None:
        """Publish one zero twist (the gripper is left where it is)."""
        if not self._twist_pub.is_activated:
            return
        self._publish_command(Command.zero(), self.get_clock().now().to_msg())
        self._counters.add('zero_commands')
        self._zero_sent = True
        self.get_logger().info(f'zero twist published ({reason})')

    def _check_command_timeout(self) -> None:
        if self._zero_sent or self._last_command_time is None:
            return
        timeout = float(self.get_parameter('command_timeout').value)
        if time.monotonic() - self._last_command_time > timeout:
            self._publish_zero(f'no fresh action for {timeout} s')

    # ------------------------------------------------------------------ diagnostics

    def _record_error(self, message: str, key: str, level: str = 'error') -> None:
        self._last_error = message
        if not self._throttle.allow(key):
            return
        suppressed = self._throttle.suppressed.pop(key, 0)
        if suppressed:
            message += f' ({suppressed} similar messages suppressed)'
        # rclpy ties a severity to each call site, hence two calls rather than one.
        if level == 'error':
            self.get_logger().error(message)
        else:
            self.get_logger().warning(message)

    def diagnostics_status(self) -> DiagnosticStatus:
        """Return the node's current health as one DiagnosticStatus."""
        counters = self._counters.snapshot()
        stats = self._stats.summary()
        status = DiagnosticStatus()
        status.name = f'{self.get_name()}: OpenVLA policy'
        status.hardware_id = str(self.get_parameter('model').value)
        state = self._engine_state
        if state == 'failed':
            status.level, status.message = DiagnosticStatus.ERROR, self._last_error
        elif state == 'dead' or (state == 'active' and self._engine_health != 'ok'):
            status.level, status.message = DiagnosticStatus.ERROR, self._last_error
        elif state != 'active':
            status.level, status.message = DiagnosticStatus.OK, f'engine {state}'
        elif not counters['actions']:
            status.level, status.message = DiagnosticStatus.WARN, 'active, no action yet'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'active'
        with self._instruction_lock:
            instruction = self._instruction
        ages = [record['age_at_start_s'] for record in list(self.trace)]
        values = {
            'engine_state': state,
            'engine_health': self._engine_health,
            'engine_startup_s': f'{self._startup_s:.2f}',
            'engine_dtype': self._engine_dtype[0],
            'engine_dtype_reason': self._engine_dtype[1],
            'image_preprocessing': self._provenance['image_preprocessing'],
            'statistics_source': self._provenance['statistics_source'],
            'statistics_hash': self._provenance['statistics_hash'],
            'latency_p50_s': f'{stats["latency_p50_s"]:.4f}',
            'latency_p95_s': f'{stats["latency_p95_s"]:.4f}',
            'action_rate_hz': f'{stats["action_rate_hz"]:.3f}',
            'frames_received': str(self._slot.received),
            'frames_superseded': str(self._slot.superseded),
            'last_frame_age_s': f'{self._last_frame_age_s:.3f}',
            'frame_age_p95_s': f'{_percentile(ages, 95):.4f}',
            'instruction': instruction,
            'last_error': self._last_error,
        }
        values.update({name: str(value) for name, value in counters.items()})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return status

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self.diagnostics_status()]
        self._diag_pub.publish(array)


class EngineDiedError(RuntimeError):
    """The engine's processes are gone; a new configure must start another."""

    engine_dead = True


def _percentile(values: list, q: float) -> float:
    import numpy as np
    return float(np.percentile(values, q)) if values else float('nan')


def _engine_is_dead(error: BaseException) -> bool:
    """Return whether an engine exception means its process is gone (vLLM EngineDeadError)."""
    return 'EngineDead' in type(error).__name__ or getattr(error, 'engine_dead', False)


def preparation_parameters(preparation: ImagePreparation | None,
                           statistics_file: str | None = None) -> list[Parameter]:
    """Return the node parameters that select ``preparation`` and ``statistics_file``.

    For tools that build the node themselves (demo, benchmark) from command-line flags.
    """
    preparation = preparation or ImagePreparation()
    return [Parameter('image_preprocessing', value=preparation.mode),
            Parameter('center_crop', value=bool(preparation.center_crop)),
            Parameter('center_crop_scale', value=float(preparation.center_crop_scale)),
            Parameter('statistics_file', value=str(statistics_file or ''))]


def _policy_provenance(policy: Any, preparation: ImagePreparation) -> dict[str, str]:
    """Return key, statistics source and hash, and image preparation of a configured policy."""
    decoder = getattr(policy, 'decoder', None)
    provenance = getattr(decoder, 'provenance', None)
    found = dict(provenance()) if callable(provenance) else {}
    used = getattr(policy, 'preparation', None) or preparation
    return {'unnorm_key': str(found.get('unnorm_key', getattr(decoder, 'unnorm_key', ''))),
            'statistics_source': str(found.get('statistics_source') or 'not reported'),
            'statistics_hash': str(found.get('statistics_hash') or ''),
            'image_preprocessing': used.describe()}


def _configure_hint(error: BaseException) -> str:
    text = str(error).lower()
    if 'unnorm_key' in text:
        return ' -> set the unnorm_key parameter to one of the listed keys'
    if 'statistics_file' in text:
        return (" -> set the statistics_file parameter to a readable JSON file in "
                "dataset_statistics.json layout, or to '' to use the checkpoint's statistics")
    if 'center_crop_scale' in text:
        return (f' -> set the center_crop_scale parameter to an area fraction in (0, 1], e.g. '
                f'{DEFAULT_CROP_SCALE}')
    if 'center_crop' in text:
        return ' -> set the center_crop parameter to true or false'
    if 'image_preprocessing' in text or 'preprocessing mode' in text:
        return " -> set the image_preprocessing parameter to 'processor' or 'training'"
    if isinstance(error, FileNotFoundError) or 'does not exist' in text:
        return ' -> set the model parameter to a checkpoint directory or hub id'
    if 'memory' in text:
        return (' -> lower engine.gpu_memory_utilization / engine.max_model_len, or free '
                'accelerator memory')
    return ''


def _spin(executor: Any, stop: threading.Event) -> None:
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.set()


def main(args: list[str] | None = None) -> None:
    """Run the node until SIGINT/SIGTERM; publish a zero twist on the way out."""
    # Own signal handling: rclpy's default handler shuts the context down first, and a
    # shut-down context can no longer publish the final zero twist.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # Handlers first: a signal while the node is being built must still end in a clean exit.
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = OpenVlaPolicyNode()
    # Two threads: a configure that loads the engine for a minute must not stop diagnostics.
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=_spin, args=(executor, stop), name='ros-executor',
                               daemon=True)
    spinner.start()
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stopping = time.monotonic()
        node.stop_and_release(fast=True)
        executor.shutdown(timeout_sec=1.0)
        node.get_logger().info(f'stopped in {time.monotonic() - stopping:.1f} s')
        node.destroy_node()
        rclpy.try_shutdown()
    # The engine-call thread may still be blocked inside a request to the engine processes just
    # terminated; a normal interpreter exit would wait for it forever. Everything that matters
    # (zero twist, engine processes, ROS context) is done, so leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == '__main__':
    main()
