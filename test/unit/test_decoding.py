# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Exactness of the action decoder against the reference OpenVLA decoding."""

import json

import numpy as np
import pytest

from openvla_ros.core.decoding import ACTION_NAMES, ActionDecoder, load_model_config
from openvla_ros.tools.generated_checkpoint import model_config, NORM_STATS

BRIDGE = NORM_STATS['bridge_orig']['action']


@pytest.fixture
def decoder():
    return ActionDecoder.from_model_config(model_config(), 'bridge_orig')


def reference_decode(token_ids, q01, q99, mask):
    """Decode as the reference predict_action does, written out independently."""
    vocab_size = 32064 - 64
    bins = np.linspace(-1, 1, 256)
    centers = (bins[:-1] + bins[1:]) / 2.0
    normalized = centers[np.clip(vocab_size - np.asarray(token_ids) - 1, 0, 254)]
    q01, q99 = np.asarray(q01), np.asarray(q99)
    return np.where(mask, 0.5 * (normalized + 1) * (q99 - q01) + q01, normalized)


def test_action_token_ids_are_the_top_256_base_ids(decoder):
    ids = decoder.action_token_ids
    assert ids[0] == 31744 and ids[-1] == 31999 and len(ids) == 256
    assert decoder.vocab_size == 32000  # 32064 - pad_to_multiple_of, not 32064


@pytest.mark.parametrize('token, expected', [
    (31872, 0.0), (31744, 0.99607843), (31745, 0.99607843), (31999, -0.99607843)])
def test_anchor_tokens(decoder, token, expected):
    normalized = decoder.normalized([token] * 7)
    np.testing.assert_allclose(normalized, expected, atol=5e-9)


def test_gripper_is_passed_through_unnormalized(decoder):
    action = decoder.decode([31744] * 7)
    assert action[6] == pytest.approx(0.99607843, abs=5e-9)  # mask false: stays normalized
    action = decoder.decode([31999] * 7)
    assert action[6] == pytest.approx(-0.99607843, abs=5e-9)


def test_out_of_range_ids_are_clipped_like_the_reference(decoder):
    low = decoder.decode([100] * 7)           # far below the action range -> top bin
    high = decoder.decode([32050] * 7)        # padding rows -> bottom bin
    np.testing.assert_array_equal(low, decoder.decode([31744] * 7))
    np.testing.assert_array_equal(high, decoder.decode([31999] * 7))


def test_full_vectors_with_bridge_statistics(decoder):
    rng = np.random.default_rng(7)
    for _ in range(50):
        tokens = rng.integers(31744, 32000, size=7)
        expected = reference_decode(tokens, BRIDGE['q01'], BRIDGE['q99'], BRIDGE['mask'])
        actual = decoder.decode(tokens)
        assert actual.shape == (7,) and actual.dtype == np.float64
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-15)
    # One vector by hand: token 31872 is normalized 0, the middle of [q01, q99].
    mid = decoder.decode([31872] * 7)
    expected = [(lo + hi) / 2 for lo, hi in zip(BRIDGE['q01'][:6], BRIDGE['q99'][:6])] + [0.0]
    np.testing.assert_allclose(mid, expected, atol=1e-12)


def test_bounds_cover_every_decodable_action(decoder):
    lo, hi = decoder.bounds()
    for token in (31744, 31800, 31872, 31999):
        action = decoder.decode([token] * 7)
        assert np.all(action >= lo - 1e-12) and np.all(action <= hi + 1e-12)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError) as info:
        ActionDecoder.from_model_config(model_config(), 'widowx_typo')
    assert 'bridge_orig' in str(info.value) and 'fractal20220817_data' in str(info.value)


def test_missing_key_is_required_when_several_datasets():
    with pytest.raises(ValueError, match='unnorm_key is required.*bridge_orig'):
        ActionDecoder.from_model_config(model_config(), None)


def test_single_dataset_needs_no_key():
    config = model_config()
    config['norm_stats'] = {'only': NORM_STATS['bridge_orig']}
    assert ActionDecoder.from_model_config(config, None).unnorm_key == 'only'


def test_mask_defaults_to_all_true():
    config = model_config()
    stats = {'q01': BRIDGE['q01'], 'q99': BRIDGE['q99']}
    config['norm_stats'] = {'nomask': {'action': stats}}
    action = ActionDecoder.from_model_config(config, 'nomask').decode([31999] * 7)
    expected = reference_decode([31999] * 7, BRIDGE['q01'], BRIDGE['q99'], [True] * 7)
    np.testing.assert_allclose(action, expected)


def test_dataset_statistics_json_takes_precedence(tmp_path):
    (tmp_path / 'config.json').write_text(json.dumps(model_config()))
    finetuned = {'my_robot': {'action': {'q01': [-1.0] * 6 + [0.0], 'q99': [1.0] * 6 + [1.0],
                                         'mask': [True] * 6 + [False]}}}
    (tmp_path / 'dataset_statistics.json').write_text(json.dumps(finetuned))
    for source in (tmp_path, tmp_path / 'config.json'):
        decoder = ActionDecoder.from_model_config(source, 'my_robot')
        np.testing.assert_allclose(decoder.decode([31872] * 7), 0.0, atol=1e-12)
        with pytest.raises(ValueError, match='my_robot'):
            ActionDecoder.from_model_config(source, 'bridge_orig')
    assert set(load_model_config(tmp_path)['norm_stats']) == {'my_robot'}


def test_missing_config_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='config.json'):
        ActionDecoder.from_model_config(tmp_path, 'bridge_orig')


def test_wrong_token_count_is_rejected(decoder):
    with pytest.raises(ValueError, match='expected 7 action token ids'):
        decoder.decode([31872] * 6)
    assert len(ACTION_NAMES) == 7
