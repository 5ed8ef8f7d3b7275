# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""make-bag -> evaluate on the real engine with the generated checkpoint, both storage formats."""

import json

import numpy as np
from PIL import Image
import pytest

from openvla_ros.tools.bags import make_bag
from openvla_ros.tools.steps import write_synthetic_steps
from openvla_ros.tools.evaluate import evaluate_bag

pytestmark = pytest.mark.engine
PNG = b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('storage, compressed', [('sqlite3', False), ('mcap', True)])
def test_round_trip_on_the_real_engine(policy, tmp_path, storage, compressed):
    steps = write_synthetic_steps(tmp_path / 'data', 4)
    bag = tmp_path / f'bag_{storage}'
    make_bag(steps, bag, rate_hz=5.0, storage=storage, compressed=compressed, progress=False)
    out = tmp_path / 'report'
    report = evaluate_bag(policy, bag, out, progress=False)

    saved = json.loads((out / 'report.json').read_text())
    frames, summary = saved['frames'], saved['summary']
    counts = summary['counts']
    assert counts['read'] == 4 == counts['evaluated'] + counts['skipped']
    assert counts['evaluated'] == len(frames) == 4
    truth = [step['action'] for step in json.loads(steps.read_text())['steps']]
    for record, expected_truth in zip(frames, truth):
        assert len(record['token_ids']) == 7
        assert all(31744 <= t <= 31999 for t in record['token_ids'])
        # The predicted action is exactly the decoder's output for the recorded tokens.
        np.testing.assert_allclose(record['predicted'], policy.decoder.decode(record['token_ids']))
        np.testing.assert_allclose(record['ground_truth'], expected_truth)
        assert record['latency_s'] > 0
    predicted = np.array([r['predicted'] for r in frames])
    ground_truth = np.array([r['ground_truth'] for r in frames])
    errors = predicted - ground_truth
    np.testing.assert_allclose(summary['mse_per_dim'], (errors ** 2).mean(axis=0))
    np.testing.assert_allclose(summary['mae_per_dim'], np.abs(errors).mean(axis=0))
    assert summary['mse'] == pytest.approx((errors ** 2).mean())
    agree = (predicted[:, 6] >= 0.5) == (ground_truth[:, 6] >= 0.5)
    assert summary['gripper_accuracy'] == pytest.approx(agree.mean())
    for name in ('actions.png', 'errors.png', 'latency.png'):
        data = (out / name).read_bytes()
        assert data[:8] == PNG
        with Image.open(out / name) as image:
            assert image.size[0] > 100
    assert (out / 'report.md').read_text().count('|') > 10
    assert report['summary']['mse'] == summary['mse']
