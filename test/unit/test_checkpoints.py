# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The one rule telling a checkpoint directory from a hub id, and the callers that use it."""

import inspect

import pytest

from openvla_ros.core import checkpoints, decoding, engine, remote
from openvla_ros.core.checkpoints import is_hub_id, is_local_checkpoint
from openvla_ros.core.engine import ModelNotFoundError, resolve_model


def test_an_existing_directory_is_local_even_when_shaped_like_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / 'org' / 'name').mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert is_local_checkpoint(str(tmp_path)) and is_local_checkpoint('org/name')
    assert is_local_checkpoint('./org') and is_local_checkpoint(' org/name ')


@pytest.mark.parametrize('missing', ['./x', '../x/y', '/x', '/no/such/dir', '~/x',
                                     '~/no-such-openvla-checkpoint', 'a/b/c', 'org//name',
                                     'name', 'openvla-7b', 'org/config.json', ''])
def test_a_missing_path_that_is_not_owner_slash_name_is_local(missing, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not is_hub_id(missing)
    assert is_local_checkpoint(missing)


@pytest.mark.parametrize('hub_id', ['openvla/openvla-7b', 'org/name', 'Org_1/my.model-v2'])
def test_owner_slash_name_that_does_not_exist_here_is_a_hub_id(hub_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_hub_id(hub_id)
    assert not is_local_checkpoint(hub_id)


def test_the_engine_keeps_its_messages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_model('openvla/openvla-7b') == ('openvla/openvla-7b', False)
    for missing in ('./x', '/no/such/openvla', '~/no-such-openvla', 'name'):
        with pytest.raises(ModelNotFoundError, match='does not exist'):
            resolve_model(missing)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ModelNotFoundError, match='has no config.json'):
        resolve_model('empty')
    (tmp_path / 'ckpt').mkdir()
    (tmp_path / 'ckpt' / 'config.json').write_text('{}')
    assert resolve_model('ckpt') == (str((tmp_path / 'ckpt').resolve()), True)


def test_every_caller_asks_the_one_rule():
    from openvla_ros.tools import serve
    for function in (engine.resolve_model, decoding._config_path, serve._config_path):
        assert 'is_local_checkpoint(' in inspect.getsource(function), function
    # The remote client resolves through the engine's resolve_model, so through the rule too.
    assert 'resolve_model(' in inspect.getsource(remote.model_files)
    assert not hasattr(decoding, '_HUB_ID')
    assert checkpoints.__all__ == ['is_hub_id', 'is_local_checkpoint']


def test_serve_finds_a_local_config_and_skips_the_hub_for_a_path(tmp_path, monkeypatch):
    from openvla_ros.tools import serve
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path / 'cache'))
    (tmp_path / 'ckpt').mkdir()
    (tmp_path / 'ckpt' / 'config.json').write_text('{}')
    assert serve._config_path(str(tmp_path / 'ckpt')) == tmp_path / 'ckpt' / 'config.json'
    assert serve._config_path(str(tmp_path / 'missing')) is None
    assert serve._config_path('org/not-downloaded') is None
