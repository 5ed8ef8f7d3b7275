# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Where the unnormalization statistics come from, and the hash that identifies them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from openvla_ros.core.decoding import ActionDecoder, load_model_config
from openvla_ros.tools.generated_checkpoint import model_config, NORM_STATS

BRIDGE = NORM_STATS['bridge_orig']['action']
FINETUNED = {'my_robot': {'action': {'q01': [-1.0] * 6 + [0.0], 'q99': [1.0] * 6 + [1.0],
                                     'mask': [True] * 6 + [False]}}}
OVERRIDE = {'lab_arm': {'action': {'q01': [-2.0] * 7, 'q99': [2.0] * 7}}}
REPO = 'some-lab/openvla-7b-finetuned'
REVISION = 'a' * 40


def expected_hash(key: str, q01: list, q99: list, mask: list) -> str:
    """Hash the statistics as documented: sorted keys, no white space, floats and bools."""
    text = json.dumps({'unnorm_key': key, 'q01': [float(v) for v in q01],
                       'q99': [float(v) for v in q99], 'mask': [bool(v) for v in mask]},
                      sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """Return a local checkpoint directory holding only config.json."""
    write(tmp_path / 'ckpt' / 'config.json', model_config())
    return tmp_path / 'ckpt'


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HF_HUB_CACHE at an empty directory (and away from the real cache)."""
    cache = tmp_path / 'hub'
    cache.mkdir()
    for name in ('HUGGINGFACE_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HF_HUB_CACHE', str(cache))
    return cache


def cache_snapshot(cache: Path, revision: str, files: dict, ref: bool = True) -> Path:
    """Lay out a hub cache entry as huggingface_hub does: blobs linked from a snapshot."""
    repo = cache / ('models--' + REPO.replace('/', '--'))
    snapshot = repo / 'snapshots' / revision
    for name, data in files.items():
        blob = write(repo / 'blobs' / f'{revision[:8]}-{name}', data)
        snapshot.mkdir(parents=True, exist_ok=True)
        try:
            (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
        except OSError:
            write(snapshot / name, data)  # no symlinks on this file system
    if ref:
        (repo / 'refs').mkdir(exist_ok=True)
        (repo / 'refs' / 'main').write_text(revision)
    return snapshot


def test_config_norm_stats_when_alone(checkpoint: Path) -> None:
    decoder = ActionDecoder.from_model_config(checkpoint, 'bridge_orig')
    assert decoder.statistics_source == 'config.json norm_stats'
    np.testing.assert_array_equal(decoder.q99, BRIDGE['q99'])


def test_dataset_statistics_json_beats_config(checkpoint: Path) -> None:
    write(checkpoint / 'dataset_statistics.json', FINETUNED)
    for source in (checkpoint, checkpoint / 'config.json', str(checkpoint)):
        decoder = ActionDecoder.from_model_config(source, None)  # the single key is chosen
        assert decoder.unnorm_key == 'my_robot'
        assert decoder.statistics_source == 'dataset_statistics.json'
    assert set(load_model_config(checkpoint)['norm_stats']) == {'my_robot'}


def test_statistics_file_overrides_both(checkpoint: Path, tmp_path: Path) -> None:
    write(checkpoint / 'dataset_statistics.json', FINETUNED)
    override = write(tmp_path / 'elsewhere' / 'stats.json', OVERRIDE)
    decoder = ActionDecoder.from_model_config(checkpoint, None, statistics_file=override)
    assert decoder.unnorm_key == 'lab_arm'
    assert decoder.statistics_source == f'statistics_file {override}'
    np.testing.assert_allclose(decoder.decode([31744] * 7), 2.0 * 0.99607843, atol=1e-8)
    assert set(load_model_config(checkpoint, override)['norm_stats']) == {'lab_arm'}
    # Also over a config given as a dict.
    from_dict = ActionDecoder.from_model_config(model_config(), 'lab_arm', override)
    assert from_dict.statistics_hash == decoder.statistics_hash


def test_single_key_auto_selected_and_several_listed(checkpoint: Path, tmp_path: Path) -> None:
    one = write(tmp_path / 'one.json', {'only': NORM_STATS['bridge_orig']})
    assert ActionDecoder.from_model_config(checkpoint, '', one).unnorm_key == 'only'
    with pytest.raises(ValueError, match='unnorm_key is required.*bridge_orig, '
                                         'fractal20220817_data'):
        ActionDecoder.from_model_config(checkpoint, None)
    two = write(tmp_path / 'two.json', {**FINETUNED, **OVERRIDE})
    with pytest.raises(ValueError, match=r'lab_arm, my_robot \(statistics from statistics_file'):
        ActionDecoder.from_model_config(checkpoint, None, two)
    with pytest.raises(ValueError, match="unknown unnorm_key 'bridge_orig'.*lab_arm, my_robot"):
        ActionDecoder.from_model_config(checkpoint, 'bridge_orig', two)


@pytest.mark.parametrize('content, phrase', [
    ('{not json', 'is not valid JSON'),
    ('[]', 'non-empty JSON object'),
    ('{}', 'non-empty JSON object'),
    ('{"k": {"proprio": {}}}', "entry 'k' has no \"action\" object"),
    ('{"k": {"action": {"q01": [0.0], "q99": "high"}}}', "'k' action q99 must be a non-empty"),
    ('{"k": {"action": {"q01": [0.0, 1.0], "q99": [1.0]}}}', 'different lengths'),
], ids=['syntax', 'list', 'empty', 'no_action', 'q99_text', 'lengths'])
def test_malformed_statistics_file(checkpoint: Path, tmp_path: Path, content: str,
                                   phrase: str) -> None:
    bad = tmp_path / 'bad.json'
    bad.write_text(content)
    with pytest.raises(ValueError, match=phrase) as info:
        ActionDecoder.from_model_config(checkpoint, None, bad)
    assert str(bad) in str(info.value)


def test_missing_or_unreadable_statistics_file(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='nope.json does not exist'):
        ActionDecoder.from_model_config(checkpoint, None, tmp_path / 'nope.json')
    (tmp_path / 'binary.json').write_bytes(b'\xff\xfe\x00garbage')
    with pytest.raises(ValueError, match='binary.json'):
        ActionDecoder.from_model_config(checkpoint, None, tmp_path / 'binary.json')


def test_malformed_dataset_statistics_json_names_the_file(checkpoint: Path) -> None:
    (checkpoint / 'dataset_statistics.json').write_text('{"k": 3}')
    with pytest.raises(ValueError, match="dataset_statistics.json: entry 'k'"):
        ActionDecoder.from_model_config(checkpoint, None)


def test_hash_value_and_stability(checkpoint: Path, tmp_path: Path) -> None:
    decoder = ActionDecoder.from_model_config(checkpoint, 'bridge_orig')
    expected = expected_hash('bridge_orig', BRIDGE['q01'], BRIDGE['q99'], BRIDGE['mask'])
    assert decoder.statistics_hash == expected and len(expected) == 12
    assert decoder.provenance() == {'unnorm_key': 'bridge_orig',
                                    'statistics_source': 'config.json norm_stats',
                                    'statistics_hash': expected}
    # The same numbers from another file, written differently (ints, indentation), or a dict.
    same = {'bridge_orig': {'action': {'q01': BRIDGE['q01'][:6] + [0], 'q99': BRIDGE['q99'][:6]
                                       + [1], 'mask': BRIDGE['mask'], 'mean': [0.0] * 7}}}
    (tmp_path / 'same.json').write_text(json.dumps(same))
    again = ActionDecoder.from_model_config(model_config(), 'bridge_orig', tmp_path / 'same.json')
    assert again.statistics_source != decoder.statistics_source
    assert again.statistics_hash == expected
    changed = json.loads(json.dumps(same))
    changed['bridge_orig']['action']['q99'][0] += 1e-9
    write(tmp_path / 'changed.json', changed)
    other = ActionDecoder.from_model_config(checkpoint, 'bridge_orig', tmp_path / 'changed.json')
    assert other.statistics_hash != expected


def test_hash_covers_key_and_default_mask() -> None:
    stats = {'q01': BRIDGE['q01'], 'q99': BRIDGE['q99']}
    config = model_config()
    config['norm_stats'] = {'a': {'action': stats}, 'b': {'action': stats}}
    a = ActionDecoder.from_model_config(config, 'a')
    b = ActionDecoder.from_model_config(config, 'b')
    assert a.statistics_hash != b.statistics_hash
    assert a.statistics_hash == expected_hash('a', BRIDGE['q01'], BRIDGE['q99'], [True] * 7)
    assert a.statistics_source == 'norm_stats (config dict)'


def test_hub_id_from_cache(hub_cache: Path) -> None:
    snapshot = cache_snapshot(hub_cache, REVISION, {'config.json': model_config(),
                                                    'dataset_statistics.json': FINETUNED})
    decoder = ActionDecoder.from_model_config(REPO, None)
    assert decoder.unnorm_key == 'my_robot'
    assert decoder.statistics_source == 'dataset_statistics.json'
    local = ActionDecoder.from_model_config(snapshot, None)
    assert local.statistics_hash == decoder.statistics_hash


def test_hub_cache_follows_refs_main(hub_cache: Path) -> None:
    old = {'config.json': model_config(), 'dataset_statistics.json': OVERRIDE}
    cache_snapshot(hub_cache, 'b' * 40, old, ref=False)
    cache_snapshot(hub_cache, REVISION, {'config.json': model_config()})
    assert ActionDecoder.from_model_config(REPO, 'bridge_orig').statistics_source == \
        'config.json norm_stats'


def test_hub_cache_without_refs_takes_latest_snapshot(hub_cache: Path) -> None:
    older = cache_snapshot(hub_cache, 'b' * 40, {'config.json': model_config(),
                                                 'dataset_statistics.json': OVERRIDE}, ref=False)
    cache_snapshot(hub_cache, 'c' * 40, {'config.json': model_config(),
                                         'dataset_statistics.json': FINETUNED}, ref=False)
    os.utime(older, (1_000_000, 1_000_000))
    assert ActionDecoder.from_model_config(REPO, None).unnorm_key == 'my_robot'


def test_hub_cache_via_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ('HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'XDG_CACHE_HOME'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf'))
    cache_snapshot(tmp_path / 'hf' / 'hub', REVISION, {'config.json': model_config()})
    assert ActionDecoder.from_model_config(REPO, 'bridge_orig').unnorm_key == 'bridge_orig'


def test_hub_walk_equals_hub_client(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_snapshot(hub_cache, REVISION, {'config.json': model_config(),
                                         'dataset_statistics.json': FINETUNED})
    with_client = ActionDecoder.from_model_config(REPO, None).provenance()
    import builtins
    real_import = builtins.__import__

    def no_hub(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith('huggingface_hub'):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, '__import__', no_hub)
    assert ActionDecoder.from_model_config(REPO, None).provenance() == with_client


def test_hub_id_missing_names_the_fix(hub_cache: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        ActionDecoder.from_model_config(REPO, 'bridge_orig')
    text = str(info.value)
    assert f'huggingface-cli download {REPO} config.json dataset_statistics.json' in text
    assert str(hub_cache) in text and 'local checkpoint directory' in text
