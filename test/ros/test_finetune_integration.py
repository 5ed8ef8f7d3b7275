# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Fine-tuned checkpoints end to end without an engine: node and policy boundary.

The engine is a recording stand-in handed to the real :class:`VllmPolicy` (``llm=``), so the
policy's own ``predict`` prepares the image and builds the request; the node runs over real
rclpy. Expected images are computed in ``affine_images`` from the geometry of the reference
crop, never with ``openvla_ros.core.preprocessing``. The command-line flags and
``prepare-image``, which need neither ROS nor an engine, are tested in
``test/unit/test_preparation_flags.py``.
"""

import hashlib
import importlib.util
import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from affine_images import (affine_image, assert_close, bilinear_centre_crop, expected_crop,
                           HEIGHT, pixel_centres, SIZE, WIDTH)
from openvla_ros.core.engine import VllmPolicy
from openvla_ros.core.preprocessing import ImagePreparation
from openvla_ros.tools.generated_checkpoint import model_config, NORM_STATS

OVERRIDE = {'lab_arm': {'action': {'q01': [-2.0] * 6 + [0.0], 'q99': [2.0] * 6 + [1.0],
                                   'mask': [True] * 6 + [False]}}}

# VllmPolicy with an injected LLM still builds vLLM's SamplingParams: the engine must be installed
# (environments without it, such as the Jazzy no-engine tiers, skip those tests). A mark, not a
# module-level importorskip: launch_testing's pytest plugin imports modules while it collects a
# directory, and a module-level skip there would skip every module of the directory.
needs_vllm = pytest.mark.skipif(importlib.util.find_spec('vllm') is None,
                                reason='vLLM (the engine) is not installed in this environment')


def canonical_hash(key, action):
    """Hash statistics as documented: sorted keys, no white space, floats and bools."""
    mask = action.get('mask', [True] * len(action['q01']))
    text = json.dumps({'unnorm_key': key, 'q01': [float(v) for v in action['q01']],
                       'q99': [float(v) for v in action['q99']],
                       'mask': [bool(v) for v in mask]},
                      sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# The policy boundary: VllmPolicy.predict prepares the image it hands to the engine


class RecordingLLM:
    """Stands in for vllm.LLM: records every request and answers 7 action tokens."""

    def __init__(self):
        self.requests = []
        self.event = threading.Event()

    def get_tokenizer(self):
        from transformers import PreTrainedTokenizerFast

        from openvla_ros.tools.generated_checkpoint import build_tokenizer
        return PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(), bos_token='<s>')

    def generate(self, requests, sampling, use_tqdm=False):
        self.requests.extend(requests)
        self.event.set()
        completion = SimpleNamespace(token_ids=[31872] * 7, finish_reason='length')
        return [SimpleNamespace(outputs=[completion], metrics=None)]


@pytest.fixture
def checkpoint(tmp_path):
    """Return a checkpoint directory holding only the test model's config.json."""
    folder = tmp_path / 'checkpoint'
    folder.mkdir()
    (folder / 'config.json').write_text(json.dumps(model_config()))
    return folder


@pytest.fixture
def statistics_file(tmp_path):
    path = tmp_path / 'lab_statistics.json'
    path.write_text(json.dumps(OVERRIDE))
    return path


@needs_vllm
def test_predict_hands_the_engine_the_centre_cropped_image(checkpoint):
    llm = RecordingLLM()
    preparation = ImagePreparation(center_crop=True, center_crop_scale=0.9)
    policy = VllmPolicy(str(checkpoint), 'bridge_orig', llm=llm, preparation=preparation)
    assert policy.preparation == preparation
    policy.predict(affine_image(), 'put the spoon on the towel')
    sent = llm.requests[0]['multi_modal_data']['image']
    assert sent.mode == 'RGB' and sent.size == (SIZE, SIZE)
    # Rounding of the input (floor) and the output (truncation) cost at most 1 level each.
    assert_close(sent, expected_crop(0.9, HEIGHT, WIDTH) - 0.5, max_abs=1.6)
    # A crop of the wrong size (side 0.9 instead of sqrt(0.9)) is far outside that tolerance.
    wrong = expected_crop(0.81, HEIGHT, WIDTH)
    assert np.abs(np.asarray(sent).astype(float) - wrong).max() > 4


@needs_vllm
def test_predict_with_training_resize_and_crop(checkpoint):
    llm = RecordingLLM()
    preparation = ImagePreparation(mode='training', center_crop=True, center_crop_scale=0.9)
    policy = VllmPolicy(str(checkpoint), 'bridge_orig', llm=llm, preparation=preparation)
    policy.predict(affine_image(), 'put the spoon on the towel')
    sent = llm.requests[0]['multi_modal_data']['image']
    assert sent.size == (SIZE, SIZE)
    # The training resize alone is checked against TensorFlow in test_preprocessing; the crop
    # that follows it is computed here.
    from openvla_ros.core.preprocessing import training_resize
    resized = training_resize(affine_image())
    assert_close(sent, bilinear_centre_crop(resized, 0.9), max_abs=1.5)
    # Roughly the closed form too (JPEG and rounding move the affine image by a few levels).
    assert_close(sent, expected_crop(0.9, SIZE, SIZE, to_source=pixel_centres), max_abs=6.0)


@needs_vllm
def test_processor_mode_hands_the_frame_unchanged(checkpoint):
    llm = RecordingLLM()
    policy = VllmPolicy(str(checkpoint), 'bridge_orig', llm=llm)
    assert policy.preparation == ImagePreparation()
    frame = affine_image()
    policy.predict(frame, 'go')
    sent = llm.requests[0]['multi_modal_data']['image']
    assert sent.size == (WIDTH, HEIGHT)
    np.testing.assert_array_equal(np.asarray(sent), frame)


@needs_vllm
def test_engine_report_and_statistics_file(checkpoint, statistics_file):
    preparation = ImagePreparation(mode='training', center_crop=True, center_crop_scale=0.8)
    policy = VllmPolicy(str(checkpoint), 'bridge_orig', llm=RecordingLLM(),
                        preparation=preparation)
    report = policy.engine_report()
    assert report.image_preprocessing == 'training+center_crop(0.8)'
    assert report.unnorm_key == 'bridge_orig'
    assert report.statistics_source == 'config.json norm_stats'
    assert report.statistics_hash == canonical_hash('bridge_orig',
                                                    NORM_STATS['bridge_orig']['action'])
    assert report.engine == 'in-process' and report.model == policy.model
    assert report.dtype == policy.dtype_choice.dtype and report.device
    assert {'dtype', 'startup_s', 'max_model_len'} <= set(report.as_dict())
    json.dumps(report.as_dict())
    policy = VllmPolicy(str(checkpoint), 'lab_arm', llm=RecordingLLM(),
                        statistics_file=str(statistics_file))
    provenance = policy.decoder.provenance()
    assert provenance['statistics_source'] == f'statistics_file {statistics_file}'
    assert provenance['statistics_hash'] == canonical_hash('lab_arm',
                                                           OVERRIDE['lab_arm']['action'])
    with pytest.raises(ValueError, match="unknown unnorm_key 'bridge_orig'"):
        VllmPolicy(str(checkpoint), 'bridge_orig', llm=RecordingLLM(),
                   statistics_file=str(statistics_file))


# --------------------------------------------------------------------------------------------
# The node: parameters -> policy factory -> real VllmPolicy (recording engine) -> diagnostics


class NodeUnderTest:
    """The policy node on a private context whose factory builds a real VllmPolicy."""

    def __init__(self, checkpoint, parameters, namespace):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from openvla_ros.node.policy_node import OpenVlaPolicyNode

        self.calls = []
        self.llm = RecordingLLM()
        outer = self

        def factory(model, unnorm_key, **kwargs):
            outer.calls.append({'model': model, 'unnorm_key': unnorm_key, **kwargs})
            return VllmPolicy(model, unnorm_key, llm=outer.llm, **kwargs)

        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        overrides = [Parameter('model', value=str(checkpoint)),
                     Parameter('max_image_age', value=30.0),
                     Parameter('diagnostics_period', value=0.2)]
        overrides += [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = OpenVlaPolicyNode(namespace=namespace, context=self.context,
                                      parameter_overrides=overrides, policy_factory=factory)
        self.peer = rclpy.create_node('camera', namespace=namespace, context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def diagnostics(self):
        return self.node.status()

    def close(self):
        import rclpy
        self.node.stop_and_release()
        self.executor.shutdown(timeout_sec=2.0)
        self.peer.destroy_node()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def ros_node(request):
    pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')
    made = []

    def make(checkpoint, parameters):
        made.append(NodeUnderTest(checkpoint, parameters, f'ft_{len(made)}_{id(made) % 9973}'))
        return made[-1]
    yield make
    for item in made:
        item.close()


@needs_vllm
def test_node_crops_at_the_engine_boundary_and_reports_provenance(checkpoint, ros_node):
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import Image as ImageMsg

    from openvla_ros.core.images import rgb_to_image_fields

    graph = ros_node(checkpoint, {'unnorm_key': 'bridge_orig',
                                  'image_preprocessing': 'training', 'center_crop': True,
                                  'center_crop_scale': 0.9,
                                  'instruction': 'put the spoon on the towel'})
    node = graph.node
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    expected = ImagePreparation(mode='training', center_crop=True, center_crop_scale=0.9)
    (call,) = graph.calls
    assert call['preparation'] == expected and call['statistics_file'] is None
    assert set(call) == {'model', 'unnorm_key', 'engine', 'preparation', 'statistics_file'}
    values = graph.diagnostics()
    assert values['statistics_hash'] == canonical_hash('bridge_orig',
                                                       NORM_STATS['bridge_orig']['action'])
    assert values['statistics_source'] == 'config.json norm_stats'
    assert values['image_preprocessing'] == 'training+center_crop(0.9)'

    camera = graph.peer.create_publisher(ImageMsg, 'image', 10)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert node.is_active
    deadline = time.monotonic() + 30.0
    while not graph.llm.event.is_set() and time.monotonic() < deadline:
        msg = ImageMsg(**rgb_to_image_fields(affine_image()))
        msg.header.stamp = graph.peer.get_clock().now().to_msg()
        camera.publish(msg)
        graph.llm.event.wait(0.2)
    assert graph.llm.requests, 'the node never called the engine'
    sent = graph.llm.requests[0]['multi_modal_data']['image']
    assert sent.size == (SIZE, SIZE)
    from openvla_ros.core.preprocessing import training_resize
    assert_close(sent, bilinear_centre_crop(training_resize(affine_image()), 0.9), max_abs=1.5)


@needs_vllm
def test_node_statistics_file_overrides_the_checkpoint(checkpoint, statistics_file, ros_node):
    from rclpy.lifecycle import TransitionCallbackReturn
    graph = ros_node(checkpoint, {'unnorm_key': 'lab_arm',
                                  'statistics_file': str(statistics_file)})
    assert graph.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert graph.calls[0]['statistics_file'] == str(statistics_file)
    values = graph.diagnostics()
    assert values['statistics_hash'] == canonical_hash('lab_arm', OVERRIDE['lab_arm']['action'])
    assert values['statistics_source'] == f'statistics_file {statistics_file}'
    assert values['image_preprocessing'] == 'processor'
    # Cleanup frees the policy: its provenance goes with it.
    assert graph.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert graph.diagnostics()['statistics_hash'] == ''


@pytest.mark.parametrize('parameters, phrase, reaches_factory', [
    ({'statistics_file': '/no/such/statistics.json'}, 'does not exist', True),
    ({'statistics_file': 'BROKEN'}, 'is not valid JSON', True),
    ({'statistics_file': 'LAYOUT'}, 'must be a non-empty list of numbers', True),
    ({'center_crop_scale': 1.5, 'center_crop': True}, 'center_crop_scale must be', False),
    ({'center_crop_scale': 0.0, 'center_crop': True}, 'center_crop_scale must be', False),
    ({'center_crop_scale': 'large'}, 'center_crop_scale must be', False),
    ({'center_crop': 'yes'}, 'center_crop must be true or false', False),
    ({'image_preprocessing': 'jpeg'}, "image_preprocessing must be one of processor, training",
     False),
])
def test_bad_values_fail_configure_and_the_node_keeps_running(
        checkpoint, tmp_path, ros_node, parameters, phrase, reaches_factory):
    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.lifecycle import TransitionCallbackReturn

    files = {'BROKEN': '{"bridge_orig": ', 'LAYOUT': json.dumps(
        {'bridge_orig': {'action': {'q01': 'low', 'q99': [1.0] * 7}}})}
    if parameters.get('statistics_file') in files:
        path = tmp_path / 'statistics.json'
        path.write_text(files[parameters['statistics_file']])
        parameters = {**parameters, 'statistics_file': str(path)}
    graph = ros_node(checkpoint, {'unnorm_key': 'bridge_orig', **parameters})
    node = graph.node
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert bool(graph.calls) == reaches_factory
    status = node.diagnostics_status()
    assert status.level == DiagnosticStatus.ERROR
    assert phrase in status.message and status.message.startswith('configure failed')
    name = next(iter(parameters))
    assert name in status.message, status.message
    # The fix travels with the error (its fix field), not found again by matching its words.
    assert ' -> ' in status.message and f'set {name}' in status.message, status.message
    # The node is alive and unconfigured: another attempt fails the same way, not worse.
    assert not node.is_active and node.configure_failed
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert graph.diagnostics()['engine_state'] == 'failed'


@needs_vllm
def test_integer_crop_scale_in_a_parameter_file_is_accepted(checkpoint, ros_node):
    from rclpy.lifecycle import TransitionCallbackReturn
    graph = ros_node(checkpoint, {'unnorm_key': 'bridge_orig', 'center_crop': True,
                                  'center_crop_scale': 1})
    assert graph.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert graph.calls[0]['preparation'] == ImagePreparation(center_crop=True,
                                                             center_crop_scale=1.0)


def test_preparation_parameters_for_tools_that_build_the_node():
    from openvla_ros.node.parameters import preparation_values
    values = preparation_values(
        ImagePreparation(mode='training', center_crop=True, center_crop_scale=0.8))
    assert values == {'image_preprocessing': 'training', 'center_crop': True,
                      'center_crop_scale': 0.8}
    assert preparation_values(None) == {'image_preprocessing': 'processor',
                                        'center_crop': False, 'center_crop_scale': 0.9}


@needs_vllm
def test_closing_an_injected_engine_leaves_other_processes_alone(checkpoint):
    """A policy without engine processes of its own must never terminate its process's others.

    The test process also holds the session's shared engine; a policy closed here once took
    it down by terminating every child process.
    """
    import subprocess
    import sys
    bystander = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        for fast in (False, True):
            policy = VllmPolicy(str(checkpoint), 'bridge_orig', llm=RecordingLLM())
            policy.close(fast=fast)
            assert bystander.poll() is None, f'close(fast={fast}) killed another process'
    finally:
        bystander.kill()
        bystander.wait()
