# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""VllmPolicy hands vLLM no remote code unless asked and one sequence at a time.

In the engine tier: building a VllmPolicy imports vLLM (its sampling parameters), even with an
engine stand-in.
"""

import json

import pytest

from openvla_ros.core.engine import EngineConfig, VllmPolicy
from openvla_ros.core.policy import ReportingPolicy
from openvla_ros.core.remote import LocalTokenizer
from openvla_ros.tools.generated_checkpoint import model_config, write_tokenizer_files

pytestmark = pytest.mark.engine


class FakeLLM:
    """Stands in for vllm.LLM to inspect what the policy would hand the engine."""

    def __init__(self, folder):
        self.folder = folder

    def get_tokenizer(self):
        # The generated checkpoint's tokenizer, torch-free (transformers would import torch).
        return LocalTokenizer(write_tokenizer_files(self.folder))


@pytest.fixture
def checkpoint(tmp_path):
    (tmp_path / 'config.json').write_text(json.dumps(model_config()))
    return tmp_path


def test_trust_remote_code_is_off_unless_asked(checkpoint):
    policy = VllmPolicy(str(checkpoint), 'bridge_orig', llm=FakeLLM(checkpoint / 'tokenizer'))
    assert isinstance(policy, ReportingPolicy)   # the node's and the tools' contract
    assert policy.engine_options['trust_remote_code'] is False
    assert policy.engine_options['max_num_seqs'] == 1
    policy = VllmPolicy(str(checkpoint), 'bridge_orig', llm=FakeLLM(checkpoint / 'tokenizer'),
                        engine=EngineConfig(trust_remote_code=True))
    assert policy.engine_options['trust_remote_code'] is True   # only when asked
    assert policy.engine_options['max_num_seqs'] == 1           # never batched
