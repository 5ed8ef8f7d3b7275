# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What the inference loop needs from an engine, and the engine the configuration asks for.

Two implementations: :class:`~openvla_ros.core.engine.VllmPolicy` (vLLM in this process) and
:class:`~openvla_ros.core.remote.RemotePolicy` (vLLM's OpenAI-compatible server elsewhere).
Each is imported only when chosen: a robot with a remote engine never imports vLLM or torch.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, Sequence

from openvla_ros.core.decoding import ActionDecoder
from openvla_ros.core.engine import EngineConfig, Prediction
from openvla_ros.core.preprocessing import ImagePreparation


class Policy(Protocol):
    """What the inference loop needs from an engine (in-process or remote)."""

    decoder: ActionDecoder
    preparation: ImagePreparation

    def prompt_ids(self, instruction: str) -> list[int]:
        """Return the prompt ids, or raise ``InstructionError`` for unusable text."""

    def predict(self, image: Any, instruction: str,
                prompt_ids: Sequence[int] | None = None) -> 'Prediction':
        """Return the action for one RGB image (ids reused when given)."""

    def is_alive(self) -> bool:
        """Return whether the engine can still answer."""

    def close(self, fast: bool = False) -> None:
        """Release the engine."""


def make_policy(model: str, unnorm_key: str | None, *, engine: EngineConfig | None = None,
                preparation: ImagePreparation | None = None,
                statistics_file: str | os.PathLike | None = None,
                timeout_s: float = 30.0) -> Any:
    """Return the policy ``engine`` asks for: in-process vLLM, or the remote server at its url.

    ``timeout_s`` is a remote request's deadline (the node passes ``inference_timeout``).
    """
    engine = engine or EngineConfig()
    if engine.remote:
        # Imported here: the remote client needs neither vLLM nor torch, and vice versa.
        from openvla_ros.core.remote import RemotePolicy
        return RemotePolicy(model, unnorm_key, url=engine.url.strip(),
                            api_key_env=engine.api_key_env, image_format=engine.image_format,
                            jpeg_quality=engine.jpeg_quality, timeout_s=timeout_s,
                            preparation=preparation, statistics_file=statistics_file,
                            ca_file=engine.ca_file.strip() or None,
                            allow_insecure_http=engine.allow_insecure_http)
    from openvla_ros.core.engine import VllmPolicy
    return VllmPolicy(model, unnorm_key, engine=engine, preparation=preparation,
                      statistics_file=statistics_file)
