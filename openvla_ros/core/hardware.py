# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What this machine is, and the engine dtype that runs fast on it (``dtype: auto``).

OpenVLA-7B ships in bfloat16, the right choice on a GPU. On a CPU, bfloat16 is only fast when
the CPU computes it natively (x86 ``avx512_bf16`` or AMX, Arm ``bf16``): elsewhere torch
emulates it, and a 256x1024 @ 1024x4096 matmul measured 5.8 s in bfloat16 against 15 ms in
float32 on an AVX2-only EPYC (~380x). A robot computer is very often such a CPU, so ``auto``
picks float32 there and says why. Detection reads ``/proc/cpuinfo`` only: it imports nothing
heavy and is injected as a plain value in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import platform as _platform

#: Values accepted for the engine dtype (vLLM's names; ``auto`` is resolved here, not by vLLM,
#: because vLLM's own ``auto`` takes the checkpoint's bfloat16 even where it is emulated).
DTYPE_CHOICES = ('auto', 'bfloat16', 'float16', 'float32')
_ALIASES = {'half': 'float16', 'float': 'float32', 'bf16': 'bfloat16', 'fp16': 'float16',
            'fp32': 'float32'}
#: CPU flags (``/proc/cpuinfo``) meaning the CPU computes bfloat16 natively.
NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16', 'bf16')
#: Measured emulated-bf16 slowdown on an AVX2-only CPU, quoted in the warning.
EMULATED_BF16_SLOWDOWN = '~380x slower matmuls measured on an AVX2-only CPU'


@dataclass(frozen=True)
class Machine:
    """The facts the dtype choice depends on."""

    device: str                      # 'cuda', 'rocm', 'xpu', 'tpu' or 'cpu'
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    cpu_model: str = ''
    architecture: str = ''

    @property
    def native_bf16_flags(self) -> list[str]:
        """Return the CPU flags that give native bfloat16 (empty when it is emulated)."""
        return [flag for flag in NATIVE_BF16_FLAGS if flag in self.cpu_flags]

    @property
    def cpu_kind(self) -> str:
        """Return a short name of the CPU's vector level: AMX, AVX-512, AVX2, NEON or baseline."""
        flags = self.cpu_flags
        if 'amx_bf16' in flags or 'amx_tile' in flags:
            return 'AMX'
        if 'avx512f' in flags:
            return 'AVX-512' + (' with bf16' if 'avx512_bf16' in flags else ' without bf16')
        if 'avx2' in flags:
            return 'AVX2 (no AVX-512)'
        if 'asimd' in flags:
            return 'Arm NEON' + (' with bf16' if 'bf16' in flags else '')
        return 'baseline (no AVX2)'


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype the engine runs with, why, and a warning when the choice will be slow."""

    requested: str
    dtype: str
    reason: str
    warning: str = ''


def read_cpu_info(path: str = '/proc/cpuinfo') -> tuple[frozenset[str], str]:
    """Return the CPU's feature flags and model name (empty when the file is unreadable)."""
    flags: set[str] = set()
    model = ''
    try:
        with open(path, encoding='utf-8', errors='replace') as stream:
            for line in stream:
                key, _, value = line.partition(':')
                key = key.strip().lower()
                if key in ('flags', 'features') and not flags:
                    flags = set(value.split())
                elif key in ('model name', 'cpu model') and not model:
                    model = value.strip()
                if flags and model:
                    break
    except OSError:
        pass
    return frozenset(flags), model


def read_memory_gib(path: str = '/proc/meminfo') -> dict[str, float]:
    """Return ``{'total', 'available'}`` memory in GiB (only those the file has; {} unreadable)."""
    found: dict[str, float] = {}
    names = {'MemTotal': 'total', 'MemAvailable': 'available'}
    try:
        with open(path, encoding='utf-8', errors='replace') as stream:
            for line in stream:
                key, _, rest = line.partition(':')
                if key in names and rest.split() and rest.split()[0].isdigit():
                    found[names[key]] = int(rest.split()[0]) / 2 ** 20   # kB -> GiB
    except OSError:
        return {}
    return found


def detect_machine(device: str | None = None) -> Machine:
    """Return this machine's facts; ``device`` names the accelerator when already known."""
    flags, model = read_cpu_info()
    if device is None:
        device = detect_device()
    return Machine(device=device, cpu_flags=flags, cpu_model=model,
                   architecture=_platform.machine())


def detect_device() -> str:
    """Return the accelerator vLLM will run on, without starting an engine.

    vLLM's own platform detection is authoritative; it is only imported when vLLM is
    installed (a robot-side install without the engine has no accelerator to use anyway).
    """
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return 'cpu'
    if current_platform.is_cpu():
        return 'cpu'
    return str(getattr(current_platform, 'device_type', '') or 'gpu')


def normalize_dtype(requested: str | None) -> str:
    """Return the canonical dtype name, or raise ``ValueError`` naming the valid ones."""
    name = (requested or 'auto').strip().lower()
    name = _ALIASES.get(name, name)
    if name not in DTYPE_CHOICES:
        raise ValueError(
            f'unknown engine dtype {requested!r}: use one of {", ".join(DTYPE_CHOICES)} '
            '(auto picks bfloat16 on a GPU or a CPU with native bf16, float32 otherwise)')
    return name


def resolve_dtype(requested: str | None, machine: Machine) -> DtypeChoice:
    """Return the dtype for ``requested`` (``auto`` or an explicit name) on ``machine``."""
    name = normalize_dtype(requested)
    on_cpu = machine.device == 'cpu'
    native = machine.native_bf16_flags
    if name != 'auto':
        warning = ''
        if name == 'bfloat16' and on_cpu and not native:
            warning = (
                f'engine.dtype bfloat16 on a CPU without native bf16 ({machine.cpu_kind}): '
                f'torch emulates it ({EMULATED_BF16_SLOWDOWN}); one action may take minutes. '
                'Use dtype auto or float32')
        return DtypeChoice(name, name, f'set explicitly to {name}', warning)
    if not on_cpu:
        return DtypeChoice('auto', 'bfloat16',
                           f'{machine.device} accelerator: bfloat16, as OpenVLA-7B ships')
    if native:
        return DtypeChoice('auto', 'bfloat16',
                           f'CPU with native bf16 ({", ".join(native)}): bfloat16, as '
                           'OpenVLA-7B ships')
    return DtypeChoice('auto', 'float32',
                       f'CPU without native bf16 ({machine.cpu_kind}): float32, because '
                       f'bfloat16 would be emulated ({EMULATED_BF16_SLOWDOWN})')


def expected_action_time(machine: Machine, dtype: str) -> str:
    """Return the per-action latency class to expect here, for messages and ``doctor``.

    The figures were measured on 2-core machines of this project's CI kind with the generated
    test checkpoint (full-size vision towers, 2-layer language model), and on published GPU
    runs of OpenVLA-7B; they are orders of magnitude, not promises.
    """
    if machine.device != 'cpu':
        return ('tens to hundreds of ms per action for OpenVLA-7B on a GPU (H100 ~30 ms floor, '
                'Strix Halo iGPU ~590 ms)')
    if dtype == 'bfloat16' and not machine.native_bf16_flags:
        return ('minutes per action: bfloat16 is emulated on this CPU (the test checkpoint took '
                'over 40 s on 2 AVX2 cores); use dtype auto')
    if dtype == 'bfloat16':
        return ('~0.75 s per action of the test checkpoint on 2 cores with native bf16; '
                'OpenVLA-7B on a CPU takes far longer (its language model is 7B parameters)')
    return ('~4-5 s per action of the test checkpoint on 2 AVX2 cores in float32; '
            'OpenVLA-7B on a CPU takes far longer (its language model is 7B parameters)')
