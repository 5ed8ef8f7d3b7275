# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The policy contract: what the node and every tool need from an engine, and how one is made.

:class:`Policy` is what the inference loop calls (prompt ids, predict, liveness, close) plus
the two descriptions every report reads (the statistics' ``decoder`` and the image
``preparation``). :class:`ReportingPolicy` adds :meth:`~ReportingPolicy.engine_report`, the
typed :class:`EngineReport` of what the engine runs with; :func:`report_of` gives that report
for any policy, built from the decoder and preparation alone for a stand-in that has none (a
synthetic engine, a test double), so no caller probes a policy for optional attributes.

Two implementations: :class:`~openvla_ros.core.engine.VllmPolicy` (vLLM in this process) and
:class:`~openvla_ros.core.remote.RemotePolicy` (vLLM's OpenAI-compatible server elsewhere);
both import this contract, and :func:`openvla_ros.core.factory.make_policy` chooses one. This
module imports neither (nor vLLM, nor torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Mapping, Protocol, runtime_checkable, Sequence
import urllib.parse

import numpy as np

from openvla_ros.core.decoding import ACTION_NAMES, ActionDecoder
from openvla_ros.core.preprocessing import ImagePreparation


@dataclass
class Prediction:
    """One action with its provenance: the generated token ids and where the time went."""

    action: np.ndarray
    token_ids: list[int]
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (the ``predict`` command's output)."""
        return {
            'action': [float(v) for v in self.action],
            'names': list(ACTION_NAMES),
            'token_ids': [int(t) for t in self.token_ids],
            'timings': {k: float(v) for k, v in self.timings.items()},
        }


#: ``EngineReport.engine`` of each kind of engine.
IN_PROCESS = 'in-process'
REMOTE = 'remote'
#: ``EngineReport.engine`` of a policy that does not describe its engine (a stand-in).
NOT_REPORTED = 'not reported'


def _json_scalars(values: Mapping[str, Any]) -> dict[str, Any]:
    # Engine options may one day hold objects; a report stays JSON-ready whatever they hold.
    return {k: v for k, v in values.items()
            if isinstance(v, (str, int, float, bool)) or v is None}


@dataclass(frozen=True)
class RemoteReport:
    """What a remote engine's client knows of its server and its traffic (never the API key)."""

    url: str                  # scheme://host:port/prefix only: no user info, no query
    served_model: str         # the model name the server answers to
    server_root: str          # the checkpoint the server says it loaded
    model_identity: str       # how the served checkpoint was recognised
    template_check: str       # what the start-up check of the chat template found
    image_format: str         # png (lossless) or jpeg
    jpeg_quality: int | None  # None unless image_format is jpeg
    timeout_s: float          # the deadline of every request
    api_key_env: str          # the variable the key is read from (its name, never its value)
    api_key_set: bool
    requests: int = 0
    request_bytes_total: int = 0
    request_bytes_last: int = 0

    def __post_init__(self) -> None:
        """Refuse a url that could carry a secret: reports are logged and written to disk."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError('a remote engine report holds the url without user info, query '
                             'or fragment (a secret there would end up in logs)')

    @property
    def bit_exact_images(self) -> bool:
        """Return whether images reach the server unchanged (lossless PNG)."""
        return self.image_format == 'png'

    @property
    def request_bytes_mean(self) -> float:
        """Return the mean request size in bytes (0 before the first request)."""
        return self.request_bytes_total / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (the keys of :meth:`EngineReport.as_dict` for a remote)."""
        found: dict[str, Any] = {
            'url': self.url, 'served_model': self.served_model,
            'server_root': self.server_root, 'model_identity': self.model_identity,
            'template_check': self.template_check, 'image_format': self.image_format,
            'bit_exact_images': self.bit_exact_images, 'requests': self.requests,
            'request_bytes_total': self.request_bytes_total,
            'request_bytes_last': self.request_bytes_last,
            'request_bytes_mean': self.request_bytes_mean, 'timeout_s': self.timeout_s,
            'api_key_env': self.api_key_env, 'api_key_set': self.api_key_set}
        if self.jpeg_quality is not None:
            found['jpeg_quality'] = self.jpeg_quality
        return found


@dataclass(frozen=True)
class EngineReport:
    """What a policy's engine runs with: the one description the node and the tools read.

    The statistics' provenance and the image preparation are always known; the rest is what
    the engine can tell (empty or None where it cannot: a remote engine's dtype is the
    server's, a stand-in reports no engine at all).
    """

    model: str                       # checkpoint directory or hub id ('' when not reported)
    unnorm_key: str | None
    statistics_source: str           # where the unnormalization statistics came from
    statistics_hash: str
    image_preprocessing: str         # ImagePreparation.describe()
    engine: str = NOT_REPORTED       # IN_PROCESS, REMOTE or NOT_REPORTED
    statistics_file: str | None = None   # the override file, when one was given
    startup_s: float | None = None   # engine start-up (remote: the server checks)
    device: str = ''                 # 'cpu', 'cuda', 'rocm', ... ('' when not known here)
    dtype: str = ''
    dtype_requested: str = ''
    dtype_reason: str = ''
    dtype_warning: str = ''
    max_model_len: int | None = None
    enforce_eager: bool | None = None    # None: not decided here (remote, stand-in)
    engine_options: Mapping[str, Any] = field(default_factory=dict)   # what vllm.LLM got
    cpu_settings: Mapping[str, str] = field(default_factory=dict)     # engine environment
    remote: RemoteReport | None = None

    @classmethod
    def describing(cls, decoder: ActionDecoder, preparation: ImagePreparation,
                   **known: Any) -> EngineReport:
        """Return the report of an engine using ``decoder`` and ``preparation``.

        The statistics' key, source and hash come from ``decoder.provenance()``; ``known``
        holds the other fields the engine can fill in.
        """
        found = decoder.provenance()
        return cls(unnorm_key=found.get('unnorm_key', decoder.unnorm_key),
                   statistics_source=str(found.get('statistics_source') or 'not reported'),
                   statistics_hash=str(found.get('statistics_hash') or ''),
                   image_preprocessing=preparation.describe(), **known)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (``predict``'s ``engine``, the benchmark's ``engine``).

        A remote engine's fields are at the top level, next to the common ones.
        """
        found: dict[str, Any] = {
            'engine': self.engine, 'model': self.model, 'device': self.device,
            'dtype': self.dtype, 'dtype_requested': self.dtype_requested,
            'dtype_reason': self.dtype_reason, 'dtype_warning': self.dtype_warning,
            'startup_s': (self.startup_s if self.startup_s is not None
                          and math.isfinite(self.startup_s) else None),
            'max_model_len': self.max_model_len, 'enforce_eager': self.enforce_eager,
            'engine_options': _json_scalars(self.engine_options),
            'cpu_settings': dict(self.cpu_settings),
            'image_preprocessing': self.image_preprocessing, 'unnorm_key': self.unnorm_key,
            'statistics_source': self.statistics_source,
            'statistics_hash': self.statistics_hash, 'statistics_file': self.statistics_file}
        if self.remote is not None:
            found.update(self.remote.as_dict())
        return found


@runtime_checkable
class Policy(Protocol):
    """What the inference loop and the tools need from an engine (in-process or remote).

    ``decoder`` holds the unnormalization statistics (``unnorm_key``, ``provenance()``),
    ``preparation`` how every image is prepared before the engine.
    """

    decoder: ActionDecoder
    preparation: ImagePreparation

    def prompt_ids(self, instruction: str) -> list[int]:
        """Return the prompt ids, or raise ``InstructionError`` for unusable text."""

    def predict(self, image: Any, instruction: str,
                prompt_ids: Sequence[int] | None = None) -> Prediction:
        """Return the action for one RGB image (ids reused when given)."""

    def is_alive(self) -> bool:
        """Return whether the engine can still answer."""

    def close(self, fast: bool = False) -> None:
        """Release the engine."""


@runtime_checkable
class ReportingPolicy(Policy, Protocol):
    """A :class:`Policy` that describes its engine (both real engines do)."""

    def engine_report(self) -> EngineReport:
        """Return what the engine runs with now (model, dtype, device, statistics, ...)."""


def report_of(policy: Policy) -> EngineReport:
    """Return the policy's :class:`EngineReport`.

    A policy without :meth:`ReportingPolicy.engine_report` (a synthetic engine, a test double)
    gets the report its decoder and preparation give, with the engine ``not reported``.
    """
    if isinstance(policy, ReportingPolicy):
        return policy.engine_report()
    return EngineReport.describing(policy.decoder, policy.preparation, model='')
