# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Online replay: a bag published into a live policy node, its outputs recorded and scored."""

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from rosbags.rosbag2 import Reader  # noqa: E402

from openvla_ros.tools.bags import make_bag, read_bag  # noqa: E402
from openvla_ros.tools.steps import write_synthetic_steps  # noqa: E402
from openvla_ros.cli import main  # noqa: E402
from openvla_ros.core.engine import Prediction  # noqa: E402
from openvla_ros.core.preprocessing import ImagePreparation  # noqa: E402
from openvla_ros.tools.harness import NodeRunner  # noqa: E402
from openvla_ros.tools.replay import replay_bag, ReplayError  # noqa: E402
from ros_harness import SharedPolicy  # noqa: E402

STEPS = 6


class SlowFakePolicy:
    """A deterministic stand-in slower than the bag's frame period, like a real engine."""

    class decoder:  # noqa: N801 - mimics the attribute of VllmPolicy
        unnorm_key = 'bridge_orig'

        @staticmethod
        def provenance():
            return {'unnorm_key': 'bridge_orig', 'statistics_source': 'fake',
                    'statistics_hash': ''}

    def predict(self, image, instruction, prompt_ids=None):
        time.sleep(0.7)
        level = float(np.asarray(image).mean()) / 255.0
        return Prediction(np.full(7, level), [31744] * 7, {'e2e_s': 0.7})

    preparation = ImagePreparation()

    def prompt_ids(self, instruction):
        return [1]

    def is_alive(self):
        return True

    def close(self, fast=False):
        pass


@pytest.fixture(scope='module')
def bag_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp('replay')
    steps = write_synthetic_steps(folder / 'steps', STEPS, size=96, seed=3)
    make_bag(steps, folder / 'bag', rate_hz=2.0, progress=False)
    return folder / 'bag'


class NodeInProcess:
    """The policy node on a private context, spinning in the background."""

    def __init__(self, policy, namespace, model='injected', activate=True):
        self.runner = NodeRunner(
            {'model': model, 'unnorm_key': 'bridge_orig', 'use_sim_time': True,
             'max_image_age': 30.0}, namespace=namespace, context=rclpy.Context(),
            policy_factory=lambda *args, **kwargs: policy)
        self.node = self.runner.node
        self.context = self.runner.context
        assert self.runner.configure()
        if activate:
            assert self.runner.activate()

    def close(self):
        self.runner.close()


def _check_bookkeeping(report, bag_path, out):
    bag = read_bag(bag_path)
    stamps = {frame.stamp_s for frame in bag.frames}
    counts = report['summary']['counts']
    assert counts['read'] == STEPS == counts['evaluated'] + counts['skipped']
    assert counts['evaluated'] >= 1
    assert set(counts['skip_reasons']) <= {'not_acted_on', 'no_ground_truth'}
    indices = sorted([r['index'] for r in report['frames']]
                     + [s['index'] for s in report['skipped']])
    assert indices == list(range(STEPS)), 'every frame exactly once'
    for record in report['frames']:
        assert record['stamp'] in stamps, 'evaluated frame without a bag stamp'
        frame = bag.frames[record['index']]
        assert (record['stamp_sec'], record['stamp_nanosec']) == (
            frame.msg.header.stamp.sec, frame.msg.header.stamp.nanosec)
        assert record['latency_s'] > 0
    replay = report['metadata']['replay']
    assert replay['frames_published'] == STEPS
    assert replay['actions_attributed'] == counts['evaluated']
    assert replay['unattributed_actions'] == 0
    for name in ('report.json', 'report.md', 'actions.png', 'errors.png', 'latency.png'):
        assert (out / name).is_file(), name
    assert 'OpenVLA online replay' in (out / 'report.md').read_text()
    with Reader(out / 'recording') as reader:
        topics = {c.topic: c.msgcount for c in reader.connections}
    return bag, topics


def test_replay_with_a_slow_policy(tmp_path, bag_path):
    namespace = 'replay_fake'
    graph = NodeInProcess(SlowFakePolicy(), namespace)
    try:
        report = replay_bag(bag_path, tmp_path / 'out', namespace=namespace,
                            context=graph.context, settle_s=2.5, progress=False)
    finally:
        graph.close()
    bag, topics = _check_bookkeeping(report, bag_path, tmp_path / 'out')
    # The engine (0.7 s) is slower than the camera (0.5 s): some frames are not acted on.
    assert report['summary']['counts']['skip_reasons'].get('not_acted_on', 0) >= 1
    for record in report['frames']:
        level = float(bag.frames[record['index']].rgb().mean()) / 255.0
        assert record['predicted'] == pytest.approx([level] * 7)
    assert topics[f'/{namespace}/action'] == report['metadata']['replay']['actions_received']
    assert topics[f'/{namespace}/ee_delta'] >= topics[f'/{namespace}/action']
    params = report['metadata']['node_parameters']
    assert params['use_sim_time'] is True and params['stamp_source'] == 'image'
    assert params['image_preprocessing'] == 'processor' and params['center_crop'] is False
    assert params['center_crop_scale'] == pytest.approx(0.9) and params['statistics_file'] == ''
    # What the node prepared images with, from its diagnostics (recorded in the bag too).
    assert report['metadata']['image_preprocessing'] == 'processor'
    assert report['metadata']['node_diagnostics']['image_preprocessing'] == 'processor'
    assert 'statistics_hash' in report['metadata']


def test_replay_refuses_a_node_with_other_image_settings(tmp_path, bag_path, capsys):
    namespace = 'replay_settings'
    graph = NodeInProcess(SlowFakePolicy(), namespace)
    try:
        code = main(['replay', str(bag_path), '--out', str(tmp_path / 'out'), '--namespace',
                     namespace, '--wait', '10', '--no-progress', '--image-preprocessing',
                     'training', '--center-crop'])
    finally:
        graph.close()
    assert code == 2
    err = capsys.readouterr().err
    assert "image_preprocessing is 'processor', not 'training'" in err
    assert 'center_crop is False, not True' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'out' / 'recording').exists()


def test_replay_refuses_an_inactive_node(tmp_path, bag_path):
    graph = NodeInProcess(SlowFakePolicy(), 'replay_inactive', activate=False)
    try:
        with pytest.raises(ReplayError, match='is inactive'):
            replay_bag(bag_path, tmp_path / 'out', namespace='replay_inactive',
                       context=graph.context, progress=False, wait_for_node_s=10.0)
    finally:
        graph.close()


def test_replay_without_a_node_is_a_one_line_error(tmp_path, bag_path, capsys):
    code = main(['replay', str(bag_path), '--out', str(tmp_path / 'out'), '--namespace',
                 'nobody_here', '--wait', '1', '--no-progress'])
    assert code == 2
    assert 'no policy node found' in capsys.readouterr().err


@pytest.mark.engine
def test_replay_on_the_real_engine(policy, test_model, tmp_path, bag_path):
    namespace = 'replay_engine'
    graph = NodeInProcess(SharedPolicy(policy), namespace, model=str(test_model))
    try:
        report = replay_bag(bag_path, tmp_path / 'out', namespace=namespace,
                            context=graph.context, settle_s=5.0, progress=False)
    finally:
        graph.close()
    bag, topics = _check_bookkeeping(report, bag_path, tmp_path / 'out')
    # The recorded action is the engine's answer for exactly the frame its stamp names.
    first = report['frames'][0]
    instruction = bag.instruction_at(bag.frames[first['index']].bag_time_ns)
    expected = policy.predict(bag.frames[first['index']].rgb(), instruction).action
    np.testing.assert_allclose(first['predicted'], expected)
    assert topics[f'/{namespace}/action'] >= report['summary']['counts']['evaluated']
    assert report['metadata']['model'] == str(test_model)
    assert report['summary']['mse'] is not None
    assert report['metadata']['statistics_hash'] == policy.decoder.statistics_hash
    assert report['metadata']['image_preprocessing'] == 'processor'
    assert report['metadata']['statistics_source'] == policy.decoder.statistics_source
