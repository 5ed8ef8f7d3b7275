# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's parameters, defined once: name, default, meaning, limits, read-only, checks.

The node declares its parameters from :data:`TABLE`, validates run-time changes with
:func:`check_change`, and builds its conditioning, loop settings, image preparation and engine
configuration from the values with the ``*_from`` functions. ``config/policy.yaml`` and the
README's parameter table are checked against this table by the tests; a value the YAML file
sets on purpose differently (Bridge/WidowX defaults) is recorded here as ``yaml``.

rclpy is imported only by the functions that build ROS objects, so the table itself can be
read (and tested) without a ROS installation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, TYPE_CHECKING

from openvla_ros.core.conditioning import Conditioning, OUTPUT_MODES, validate
from openvla_ros.core.engine import EngineConfig
from openvla_ros.core.errors import ParameterError
from openvla_ros.core.execution import (check_workspace, EARLY_RULES, PUBLISH_MODES,
                                        ROTATION_CONVENTIONS)
from openvla_ros.core.images import DEFAULT_MAX_PIXELS
from openvla_ros.core.inference_loop import LoopSettings
from openvla_ros.core.preprocessing import DEFAULT_CROP_SCALE, ImagePreparation
from openvla_ros.core.preprocessing import PREPROCESSING_MODES

if TYPE_CHECKING:   # at run time rclpy is imported inside the functions that use it
    from rclpy.parameter import Parameter

READ_ONLY_NOTE = 'read-only: change it in the parameter file and reconfigure the node'


@dataclass(frozen=True)
class Param:
    """One parameter: its schema, as ``ros2 param describe`` shows it."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    #: Extra check of a value: returns the problem, or ''.
    check: Callable[[Any], str] | None = None
    #: Accept any type at declaration and check at configure (a slip such as ``1`` for ``1.0``
    #: in a parameter file then fails configure with a message instead of the node's start).
    dynamic_typing: bool = False
    #: The value ``config/policy.yaml`` sets on purpose, and why (None: the default).
    yaml: Any = None
    yaml_reason: str = ''


def _not_blank(name: str, what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        return '' if str(value).strip() else f'{name} must not be empty: {what}'
    return check


def _engine_params() -> list[Param]:
    """Return ``engine.<option>`` for every :class:`EngineConfig` option (read-only)."""
    return [Param(f'engine.{option.name}', option.default, option.metadata['help'],
                  read_only=True, choices=tuple(option.metadata.get('choices') or ()),
                  range=option.metadata.get('range'))
            for option in EngineConfig.options()]


TABLE: tuple[Param, ...] = (
    Param('model', 'openvla/openvla-7b',
          'OpenVLA checkpoint: a local directory with config.json and safetensors, or a hub id '
          'such as openvla/openvla-7b', read_only=True),
    Param('unnorm_key', '',
          'dataset statistics for unnormalizing actions, e.g. bridge_orig (WidowX/Bridge) or '
          'fractal20220817_data (Google robot); required when the checkpoint has several',
          read_only=True, yaml='bridge_orig',
          yaml_reason='the file holds Bridge/WidowX defaults'),
    Param('instruction', '',
          'initial task in natural language; the instruction topic overrides it and later '
          'parameter sets replace it'),
    Param('use_compressed', False,
          'subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image',
          read_only=True),
    Param('image_preprocessing', 'processor',
          "how frames are prepared before the model's processor: 'processor' = as they are "
          "(the processor resizes, bicubic); 'training' = JPEG round trip and Lanczos3 resize "
          'to 224, as the reference evaluation of fine-tuned checkpoints does',
          read_only=True, choices=PREPROCESSING_MODES),
    Param('center_crop', False,
          'crop the centred center_crop_scale of the image area and resize back to 224 '
          '(bilinear), for checkpoints fine-tuned with random-crop augmentation',
          read_only=True, dynamic_typing=True),
    Param('center_crop_scale', DEFAULT_CROP_SCALE,
          f'area fraction kept by center_crop, in (0, 1] (the reference uses '
          f'{DEFAULT_CROP_SCALE})', read_only=True, dynamic_typing=True),
    Param('statistics_file', '',
          "unnormalization statistics in dataset_statistics.json layout; overrides the "
          "checkpoint's dataset_statistics.json and config.json norm_stats; '' = none",
          read_only=True),
    Param('frame_id', 'base_link',
          'header.frame_id of ee_delta: the frame the deltas are expressed in (for '
          'Bridge/WidowX the robot base frame)',
          check=_not_blank('frame_id', 'name the frame the deltas are expressed in')),
    Param('stamp_source', 'image',
          "header.stamp of outputs: 'image' = the stamp of the frame the action was computed "
          "from (traceable observation time); 'now' = publish time (for consumers that reject "
          'old stamps)', choices=('image', 'now')),
    Param('output_mode', 'delta',
          "'delta' = per-step end-effector deltas as the model emits them (m, rad per control "
          "step); 'velocity' = delta / control_period (m/s, rad/s)", choices=OUTPUT_MODES),
    Param('control_period', 0.2,
          'seconds per control step of the training data (Bridge/WidowX: 0.2 = 5 Hz); used by '
          "output_mode 'velocity'", range=(1e-3, 10.0)),
    Param('action_scale', [1.0] * 6,
          'per-axis scale applied before the clamps: x y z roll pitch yaw'),
    Param('max_linear', 0.05,
          'clamp on the norm of the linear part after scaling, in output units (m per step or '
          'm/s); 0 disables', range=(0.0, 100.0)),
    Param('max_angular', 0.25,
          'clamp on the norm of the angular part after scaling (rad per step or rad/s); 0 '
          'disables', range=(0.0, 100.0)),
    Param('gripper_threshold', -1.0,
          'binarize the gripper: >= threshold -> 1.0 (open), below -> 0.0 (closed); negative '
          'passes the model value through (OpenVLA: ~1 open, ~0 closed)', range=(-1.0, 1.0)),
    Param('gripper_invert', False,
          'publish 1 - gripper, for grippers whose command is 1 = closed'),
    Param('max_rate_hz', 0.0,
          'cap on the action rate; 0 = as fast as the engine allows (Bridge/WidowX runs at 5 '
          'Hz)', range=(0.0, 1000.0), yaml=5.0, yaml_reason='the Bridge/WidowX control rate'),
    Param('max_image_age', 1.0,
          'skip frames whose header stamp is older than this at inference start (s, ROS clock, '
          'so use_sim_time works with bag replay); 0 disables the check',
          range=(0.0, 3600.0), yaml=0.5,
          yaml_reason='a live WidowX camera; the default also admits slow CPU set-ups'),
    Param('command_timeout', 2.0,
          'publish one zero twist when no fresh action was published for this long (s)',
          range=(0.05, 3600.0), yaml=1.0,
          yaml_reason='5 missed steps at the Bridge rate; the default suits CPU engines'),
    Param('max_image_pixels', DEFAULT_MAX_PIXELS,
          'refuse images with more pixels than this (protects memory from absurd headers)',
          range=(1, 1 << 30)),
    Param('inference_timeout', 30.0,
          'an inference taking longer than this (s) is reported as an engine error and a zero '
          'twist is published', range=(0.1, 3600.0)),
    Param('diagnostics_period', 1.0, 'seconds between diagnostics messages', read_only=True,
          range=(0.01, 60.0)),
    # Execution on an arm (node/execution.py, core/execution.py; README "Driving a robot").
    Param('publish_mode', 'pulse',
          "'pulse' = one ee_delta per action (consumers that integrate by themselves); "
          "'stream' = delta / control_period at stream_rate_hz for one control period, then "
          'zeros, for MoveIt Servo (speed_units) and other streaming consumers',
          read_only=True, choices=PUBLISH_MODES),
    Param('stream_rate_hz', 50.0, "rate of the ee_delta stream in publish_mode 'stream' (Hz)",
          read_only=True, range=(1.0, 1000.0)),
    Param('early_action', 'blend',
          "stream: an action that arrives while the previous step is still being sent. 'blend' "
          "= the unsent rest joins it over a fresh step (closest to the model's path); 'next' "
          '= the step finishes, then the new one runs whole (later ones join the waiting one); '
          "'finish' = every step runs whole, queued; 'preempt' = the rest is dropped",
          choices=EARLY_RULES),
    Param('require_enable', False,
          'dead-man: no motion unless true arrived on the enable topic within enable_timeout '
          '(the model keeps running; outputs are zero)'),
    Param('enable_timeout', 0.5, 'seconds an enable true stays valid', range=(0.01, 60.0)),
    Param('workspace_min', [0.0, 0.0, 0.0],
          'lower corner x y z (m, in frame_id) of the workspace box; motion leaving the box is '
          'cut at it; needs ee_pose; equal corners disable the box'),
    Param('workspace_max', [0.0, 0.0, 0.0], 'upper corner x y z (m, in frame_id) of the '
          'workspace box; equal corners disable the box'),
    Param('ee_pose_timeout', 0.5,
          'an ee_pose older than this (s, receive time) is stale: no pose target, no motion '
          'inside a workspace box', range=(0.01, 60.0)),
    Param('rotation_convention', 'base',
          "how a rotation delta composes with the current orientation for pose_target: 'base' "
          "= R_delta * R_current (Bridge/WidowX reference); 'tool' = R_current * R_delta",
          choices=ROTATION_CONVENTIONS),
    Param('pose_target', False,
          'also publish pose_target (PoseStamped) = ee_pose (+) delta for Cartesian pose '
          'controllers'),
    *_engine_params(),
)

BY_NAME: dict[str, Param] = {param.name: param for param in TABLE}

#: Parameters that make up the output conditioning (checked together on every change).
CONDITIONING = tuple(f.name for f in fields(Conditioning))
#: Parameters that make up the loop settings.
LOOP = ('max_rate_hz', 'max_image_age', 'command_timeout', 'inference_timeout')
#: Parameters of execution on an arm (node/execution.py reads them).
EXECUTION = ('publish_mode', 'stream_rate_hz', 'early_action', 'require_enable', 'enable_timeout',
             'workspace_min', 'workspace_max', 'ee_pose_timeout', 'rotation_convention',
             'pose_target')


def check_value(param: Param, value: Any) -> str:
    """Return why ``value`` is not acceptable for ``param``, or ''."""
    if param.choices and value not in param.choices:
        return f'{param.name} must be one of {", ".join(param.choices)}, got {value!r}'
    if param.range is not None and isinstance(value, (int, float)):
        low, high = param.range
        if not low <= value <= high:
            return f'{param.name} must be in [{low}, {high}], got {value}'
    return param.check(value) if param.check is not None else ''


def check_change(current: dict[str, Any], changes: dict[str, Any]) -> str:
    """Return why a run-time change is refused, or '' (the whole set is taken or refused)."""
    for name, value in changes.items():
        param = BY_NAME.get(name)
        if param is not None:
            problem = check_value(param, value)
            if problem:
                return problem
    if 'workspace_min' in changes or 'workspace_max' in changes:
        merged = {**current, **changes}
        problem = check_workspace(list(merged['workspace_min']), list(merged['workspace_max']))
        if problem:
            return problem
    if any(name in CONDITIONING for name in changes):
        merged = {**current, **changes}
        return validate(merged['output_mode'], float(merged['control_period']),
                        list(merged['action_scale']), float(merged['max_linear']),
                        float(merged['max_angular']))
    return ''


def conditioning_from(values: dict[str, Any]) -> Conditioning:
    """Return the output conditioning the parameter values ask for."""
    picked = {name: values[name] for name in CONDITIONING}
    picked['action_scale'] = list(picked['action_scale'])
    return Conditioning(**picked)


def loop_settings_from(values: dict[str, Any], settings: LoopSettings | None = None
                       ) -> LoopSettings:
    """Return (or update) the inference loop settings from the parameter values."""
    settings = settings or LoopSettings()
    for name in LOOP:
        if name in values:
            setattr(settings, name, float(values[name]))
    return settings


def preparation_from(values: dict[str, Any]) -> ImagePreparation:
    """Return the image preparation, or raise a ``ValueError`` naming the bad parameter."""
    problem = check_value(BY_NAME['image_preprocessing'], values['image_preprocessing'])
    if problem:
        raise ParameterError(problem, "set image_preprocessing to 'processor' or 'training'",
                             parameter='image_preprocessing')
    scale = values['center_crop_scale']
    if isinstance(scale, int) and not isinstance(scale, bool):
        scale = float(scale)   # an integer in the parameter file (center_crop_scale: 1)
    # ImagePreparation names the parameter and the allowed values in its messages.
    return ImagePreparation(mode=values['image_preprocessing'],
                            center_crop=values['center_crop'], center_crop_scale=scale)


def engine_from(values: dict[str, Any]) -> EngineConfig:
    """Return the engine configuration of the ``engine.*`` parameter values."""
    return EngineConfig(**{option.name: values[f'engine.{option.name}']
                           for option in EngineConfig.options()})


def engine_values(engine: EngineConfig) -> dict[str, Any]:
    """Return the ``engine.*`` parameter values of an engine configuration."""
    return {f'engine.{option.name}': getattr(engine, option.name)
            for option in EngineConfig.options()}


def preparation_values(preparation: ImagePreparation | None) -> dict[str, Any]:
    """Return the parameter values that select ``preparation``."""
    preparation = preparation or ImagePreparation()
    return {'image_preprocessing': preparation.mode,
            'center_crop': bool(preparation.center_crop),
            'center_crop_scale': float(preparation.center_crop_scale)}


def overrides(values: dict[str, Any]) -> list[Parameter[Any]]:
    """Return ``rclpy.parameter.Parameter`` objects for a node's ``parameter_overrides``.

    For tools that build the node in-process (demo, benchmark, replay, tests); unknown names
    are refused so a typo cannot pass silently.
    """
    from rclpy.parameter import Parameter
    # use_sim_time is every node's own (bag replay with /clock).
    unknown = sorted(set(values) - set(BY_NAME) - {'use_sim_time'})
    if unknown:
        raise ValueError(f'unknown node parameters: {", ".join(unknown)}')
    return [Parameter(name, value=value) for name, value in values.items()]


def declare(node: Any) -> None:
    """Declare every parameter of :data:`TABLE` on ``node`` with its descriptor."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    for param in TABLE:
        description = param.description
        if param.read_only:
            description += f' ({READ_ONLY_NOTE})'
        descriptor = ParameterDescriptor(description=description, read_only=param.read_only,
                                         dynamic_typing=param.dynamic_typing)
        if param.choices:
            descriptor.additional_constraints = 'one of: ' + ', '.join(param.choices)
        if param.range is not None:
            low, high = param.range
            if isinstance(param.default, int) and not isinstance(param.default, bool):
                descriptor.integer_range = [IntegerRange(from_value=int(low),
                                                         to_value=int(high), step=1)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=float(low), to_value=float(high), step=0.0)]
        node.declare_parameter(param.name, param.default, descriptor)
