# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The real vLLM engine on the generated checkpoint: tokens, decoding, determinism."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from openvla_ros.core.decoding import ActionDecoder
from openvla_ros.tools.synthetic import scene_image

pytestmark = pytest.mark.engine
INSTRUCTION = 'put the spoon on the towel'


def test_predict_returns_seven_action_tokens(policy):
    prediction = policy.predict(scene_image(0), INSTRUCTION)
    assert len(prediction.token_ids) == 7
    assert all(31744 <= t <= 31999 for t in prediction.token_ids)
    assert prediction.action.shape == (7,) and np.all(np.isfinite(prediction.action))
    lo, hi = policy.decoder.bounds()
    assert np.all(prediction.action >= lo) and np.all(prediction.action <= hi)
    # The action is exactly the decoder's output for the returned tokens.
    np.testing.assert_array_equal(prediction.action, policy.decoder.decode(prediction.token_ids))
    assert prediction.timings['e2e_s'] > 0 and prediction.timings['engine_s'] > 0
    assert 'ttft_s' in prediction.timings


def test_same_input_same_action(policy):
    first = policy.predict(scene_image(1), INSTRUCTION)
    second = policy.predict(scene_image(1).copy(), INSTRUCTION)
    assert first.token_ids == second.token_ids


def test_different_images_give_different_actions(policy):
    tokens = {tuple(policy.predict(scene_image(i), INSTRUCTION).token_ids) for i in range(4)}
    assert len(tokens) >= 2, tokens


def test_pil_and_array_inputs_agree(policy):
    array = scene_image(2)
    from_array = policy.predict(array, INSTRUCTION)
    from_pil = policy.predict(Image.fromarray(array), INSTRUCTION)
    assert from_array.token_ids == from_pil.token_ids


def test_unnorm_key_changes_only_the_scaling(policy, test_model):
    prediction = policy.predict(scene_image(3), INSTRUCTION)
    fractal = ActionDecoder.from_model_config(test_model, 'fractal20220817_data')
    np.testing.assert_array_equal(policy.decoder.normalized(prediction.token_ids),
                                  fractal.normalized(prediction.token_ids))


def test_predict_command_end_to_end(test_model, tmp_path):
    image = tmp_path / 'frame.png'
    Image.fromarray(scene_image(4)).save(image)
    command = [sys.executable, '-m', 'openvla_ros.cli', 'predict', '--model', str(test_model),
               '--unnorm-key', 'bridge_orig', '--image', str(image), '--instruction',
               INSTRUCTION, '--image-preprocessing', 'training', '--center-crop']
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result['names'] == ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper']
    assert len(result['action']) == 7 and len(result['token_ids']) == 7
    assert all(31744 <= t <= 31999 for t in result['token_ids'])
    decoder = ActionDecoder.from_model_config(test_model, 'bridge_orig')
    np.testing.assert_allclose(result['action'], decoder.decode(result['token_ids']))
    assert {'e2e_s', 'startup_s'} <= set(result['timings'])
    engine = result['engine']
    assert engine['image_preprocessing'] == 'training+center_crop(0.9)'
    assert engine['unnorm_key'] == 'bridge_orig'
    assert engine['statistics_hash'] == decoder.statistics_hash
    assert engine['statistics_source'] == decoder.statistics_source


def test_preparation_is_applied_inside_predict(policy):
    from openvla_ros.core.preprocessing import ImagePreparation, prepare
    frame = scene_image(5)
    crop = ImagePreparation(mode='training', center_crop=True)
    assert policy.preparation == ImagePreparation()
    assert policy.engine_report().image_preprocessing == 'processor'
    # The same engine: a cropping policy on the frame answers as the plain policy does on
    # the frame cropped beforehand.
    expected = policy.predict(prepare(frame, crop), INSTRUCTION)
    policy.preparation = crop
    try:
        cropped = policy.predict(frame, INSTRUCTION)
        assert policy.engine_report().image_preprocessing == 'training+center_crop(0.9)'
    finally:
        policy.preparation = ImagePreparation()
    assert cropped.token_ids == expected.token_ids
