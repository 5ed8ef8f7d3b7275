# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Security defaults: no remote code unless asked, only real checkpoints, read-only stays so."""

import json

import pytest

from openvla_ros.core.engine import (EngineConfig, ModelNotFoundError, resolve_model,
                                     VllmPolicy)
from openvla_ros.tools.generated_checkpoint import model_config


class FakeLLM:
    """Stands in for vllm.LLM to inspect what the policy would hand the engine."""

    def get_tokenizer(self):
        from transformers import PreTrainedTokenizerFast

        from openvla_ros.tools.generated_checkpoint import build_tokenizer
        return PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(), bos_token='<s>')


@pytest.fixture
def checkpoint(tmp_path):
    (tmp_path / 'config.json').write_text(json.dumps(model_config()))
    return tmp_path


def test_trust_remote_code_is_off_unless_asked(checkpoint):
    policy = VllmPolicy(str(checkpoint), 'bridge_orig', llm=FakeLLM())
    assert policy.engine_options['trust_remote_code'] is False
    assert policy.engine_options['max_num_seqs'] == 1
    policy = VllmPolicy(str(checkpoint), 'bridge_orig', llm=FakeLLM(),
                        engine=EngineConfig(trust_remote_code=True))
    assert policy.engine_options['trust_remote_code'] is True   # only when asked
    assert policy.engine_options['max_num_seqs'] == 1           # never batched


@pytest.mark.parametrize('model, phrase', [
    ('', 'no model given'),
    ('./missing-dir', 'does not exist'),
    ('/no/such/checkpoint', 'does not exist'),
    ('owner/name/extra', 'does not exist'),
    ('..', 'no config.json'),
])
def test_models_that_are_neither_directory_nor_hub_id_are_refused(model, phrase):
    with pytest.raises(ModelNotFoundError, match=phrase):
        resolve_model(model)


def test_a_file_is_not_a_checkpoint(checkpoint):
    with pytest.raises(ModelNotFoundError, match='is a file'):
        resolve_model(str(checkpoint / 'config.json'))


def test_hub_ids_and_checkpoint_directories_are_accepted(checkpoint):
    assert resolve_model('openvla/openvla-7b') == ('openvla/openvla-7b', False)
    path, local = resolve_model(str(checkpoint))
    assert local and path == str(checkpoint.resolve())


READ_ONLY = ['model', 'unnorm_key', 'use_compressed', 'diagnostics_period', 'engine.dtype',
             'engine.max_model_len', 'engine.gpu_memory_utilization', 'engine.enforce_eager',
             'engine.quantization', 'engine.seed', 'engine.trust_remote_code',
             'image_preprocessing', 'center_crop', 'center_crop_scale', 'statistics_file']


def test_read_only_parameters_are_read_only_at_run_time():
    rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')
    from rclpy.parameter import Parameter

    from openvla_ros.node.policy_node import OpenVlaPolicyNode
    rclpy.init()
    try:
        node = OpenVlaPolicyNode(node_name='read_only_probe')
        for name in READ_ONLY:
            descriptor = node.describe_parameter(name)
            assert descriptor.read_only, name
            assert descriptor.description, name
            current = node.get_parameter(name).value
            new = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v + 0.5,
                   str: lambda v: v + 'x'}[type(current)](current)
            result = node.set_parameters([Parameter(name, value=new)])[0]
            assert not result.successful, name
            assert node.get_parameter(name).value == current
        assert node.get_parameter('engine.trust_remote_code').value is False
        # Every parameter the node declares has a description.
        for name in node._parameters:
            if name != 'use_sim_time':
                assert node.describe_parameter(name).description, name
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
