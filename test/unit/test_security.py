# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Security defaults: no remote code unless asked, only real checkpoints, read-only stays so."""

import json

import pytest

from openvla_ros.core.engine import EngineConfig, ModelNotFoundError, resolve_model
from openvla_ros.tools.generated_checkpoint import model_config


@pytest.fixture
def checkpoint(tmp_path):
    (tmp_path / 'config.json').write_text(json.dumps(model_config()))
    return tmp_path


def test_engine_options_trust_remote_code_only_when_asked():
    # What VllmPolicy hands vLLM (the engine tier checks the policy passes these on).
    assert EngineConfig().llm_options()['trust_remote_code'] is False
    assert EngineConfig().llm_options()['max_num_seqs'] == 1
    options = EngineConfig(trust_remote_code=True).llm_options()
    assert options['trust_remote_code'] is True and options['max_num_seqs'] == 1


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
