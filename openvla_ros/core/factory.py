# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Make the policy a configuration asks for: in-process vLLM or a remote server.

Above both implementations and the contract they share (:mod:`openvla_ros.core.policy`). Each
engine is imported only when chosen: a robot with a remote engine never imports vLLM or torch.
"""

from __future__ import annotations

import os

from openvla_ros.core.engine import EngineConfig
from openvla_ros.core.policy import ReportingPolicy
from openvla_ros.core.preprocessing import ImagePreparation


def make_policy(model: str, unnorm_key: str | None, *, engine: EngineConfig | None = None,
                preparation: ImagePreparation | None = None,
                statistics_file: str | os.PathLike[str] | None = None,
                timeout_s: float = 30.0,
                engine_log: str | os.PathLike[str] | None = None) -> ReportingPolicy:
    """Return the policy ``engine`` asks for: in-process vLLM, or the remote server at its url.

    ``timeout_s`` is a remote request's deadline (the node passes ``inference_timeout``);
    ``engine_log`` the file an in-process engine prints to (see :class:`VllmPolicy`).
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
                      statistics_file=statistics_file, engine_log=engine_log)
