# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Fine-tuned checkpoints end to end without an engine: flags, node, policy boundary, tools.

The engine is a recording stand-in handed to the real :class:`VllmPolicy` (``llm=``), so the
policy's own ``predict`` prepares the image and builds the request; the node runs over real
rclpy. Expected images are computed here from the geometry of the reference crop, never with
``openvla_ros.core.preprocessing``.
"""

import hashlib
import importlib.util
import json
import math
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
from PIL import Image
import pytest

from openvla_ros.cli import build_parser, main
from openvla_ros.cli.common import preparation_from_args, statistics_file_from_args
from openvla_ros.core.engine import VllmPolicy
from openvla_ros.core.preprocessing import ImagePreparation
from openvla_ros.tools.generated_checkpoint import model_config, NORM_STATS

OVERRIDE = {'lab_arm': {'action': {'q01': [-2.0] * 6 + [0.0], 'q99': [2.0] * 6 + [1.0],
                                   'mask': [True] * 6 + [False]}}}
SIZE = 224

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


# An affine image: bilinear interpolation reproduces it exactly, so the crop's output is known
# in closed form from the crop geometry alone (up to the uint8 rounding of the input).
HEIGHT, WIDTH = 480, 640
SLOPES = ((0.0, 0.39), (0.5, 0.0), (0.2, 0.2))   # per channel: (per row, per column)
OFFSETS = (2.0, 3.0, 1.0)


def affine_image(height=HEIGHT, width=WIDTH):
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [np.floor(o + a * y + b * x) for o, (a, b) in zip(OFFSETS, SLOPES)]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def affine_value(y, x):
    """Return the (unrounded) affine image at float positions, shape (len(y), len(x), 3)."""
    y, x = np.asarray(y)[:, None], np.asarray(x)[None, :]
    return np.stack([o + a * y + b * x for o, (a, b) in zip(OFFSETS, SLOPES)], axis=-1)


def expected_crop(scale, height, width, to_source=None):
    """Return the closed-form centre crop of the affine image (reference geometry).

    The crop keeps the centred ``scale`` of the area (side fraction sqrt(scale)) and samples it
    corner-aligned: row i at (off + i * side / 223) * (H - 1). ``to_source`` maps positions
    of an intermediate image back to the original (for a crop after a resize).
    """
    side = math.sqrt(scale)
    offset = (1.0 - side) / 2.0
    steps = np.arange(SIZE) * side / (SIZE - 1)
    rows = (offset + steps) * (height - 1)
    cols = (offset + steps) * (width - 1)
    if to_source is not None:
        rows, cols = to_source(rows, HEIGHT, height), to_source(cols, WIDTH, width)
    return affine_value(rows, cols)


def bilinear_centre_crop(rgb, scale):
    """Return the reference centre crop of any image in float (0-255 units), written here.

    Corner-aligned bilinear sampling of the centred box whose sides are sqrt(scale), as
    ``tf.image.crop_and_resize``; the result is not rounded (the module truncates after
    scaling by 255.5 / 255, which moves it by at most 1.5 levels).
    """
    image = np.asarray(rgb).astype(np.float64)
    side = math.sqrt(scale)
    offset = (1.0 - side) / 2.0
    steps = offset + np.arange(SIZE) * side / (SIZE - 1)

    def sample(axis_size):
        position = steps * (axis_size - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, axis_size - 1)
        return low, high, position - low
    top, bottom, fy = sample(image.shape[0])
    left, right, fx = sample(image.shape[1])
    fy, fx = fy[:, None, None], fx[None, :, None]
    upper = image[top][:, left] * (1 - fx) + image[top][:, right] * fx
    lower = image[bottom][:, left] * (1 - fx) + image[bottom][:, right] * fx
    return upper * (1 - fy) + lower * fy


def pixel_centres(position, source_size, resized_size):
    """Map a position in a resized image to the source (pixel-centre convention)."""
    return (position + 0.5) * source_size / resized_size - 0.5


def assert_close(image, expected, max_abs, interior=0):
    got = np.asarray(image).astype(np.float64)
    if interior:
        got = got[interior:-interior, interior:-interior]
        expected = expected[interior:-interior, interior:-interior]
    diff = np.abs(got - expected)
    assert diff.max() <= max_abs, f'max abs difference {diff.max():.2f} > {max_abs}'


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
# Command-line flags: one argparse group, the same ImagePreparation in every subcommand

REQUIRED = {
    'predict': ['predict', '--model', 'm', '--image', 'i.png', '--instruction', 'go'],
    'evaluate': ['evaluate', 'bag', '--model', 'm', '--out', 'o'],
    'benchmark': ['benchmark', '--model', 'm'],
    'demo': ['demo'],
    'replay': ['replay', 'bag', '--out', 'o'],
    'prepare-image': ['prepare-image', 'in.png', 'out.png'],
}
FLAGS = ['--image-preprocessing', 'training', '--center-crop', '--center-crop-scale', '0.8']


@pytest.mark.parametrize('command', sorted(REQUIRED))
def test_flags_parse_into_the_same_preparation(command):
    parser = build_parser()
    args = parser.parse_args(REQUIRED[command])
    assert preparation_from_args(args) == ImagePreparation()
    assert statistics_file_from_args(args) is None
    statistics = [] if command == 'prepare-image' else ['--statistics-file', 'lab.json']
    args = parser.parse_args(REQUIRED[command] + FLAGS + statistics)
    assert preparation_from_args(args) == ImagePreparation(
        mode='training', center_crop=True, center_crop_scale=0.8)
    assert statistics_file_from_args(args) == ('lab.json' if statistics else None)


def test_bad_flag_values():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(REQUIRED['predict'] + ['--image-preprocessing', 'jpeg'])
    args = parser.parse_args(REQUIRED['predict'] + ['--center-crop-scale', '1.5'])
    with pytest.raises(ValueError, match=r'center_crop_scale must be an area fraction'):
        preparation_from_args(args)


def test_replay_flags_are_checked_against_the_node():
    from openvla_ros.cli.replay import expected_settings_from_args
    from openvla_ros.tools.replay import check_node_settings, ReplayError
    parser = build_parser()
    unasked = expected_settings_from_args(parser.parse_args(REQUIRED['replay']))
    assert set(unasked.values()) == {None}
    node = {'image_preprocessing': 'processor', 'center_crop': False, 'center_crop_scale': 0.9,
            'statistics_file': ''}
    check_node_settings(node, unasked, '/policy')   # nothing asked, nothing checked
    asked = expected_settings_from_args(parser.parse_args(REQUIRED['replay'] + FLAGS))
    with pytest.raises(ReplayError) as caught:
        check_node_settings(node, asked, '/policy')
    message = str(caught.value)
    assert "image_preprocessing is 'processor', not 'training'" in message
    assert 'center_crop is False, not True' in message and 'center_crop_scale' in message
    check_node_settings({**node, 'image_preprocessing': 'training', 'center_crop': True,
                         'center_crop_scale': 0.8}, asked, '/policy')


# --------------------------------------------------------------------------------------------
# prepare-image


@pytest.fixture
def frame_file(tmp_path):
    path = tmp_path / 'frame.png'
    Image.fromarray(affine_image()).save(path)
    return path


def test_prepare_image_processor_mode_is_the_processor_resize(tmp_path, frame_file, capsys):
    out = tmp_path / 'seen.png'
    assert main(['prepare-image', str(frame_file), str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1 and 'processor' in line and '224x224' in line
    with Image.open(out) as seen, Image.open(frame_file) as original:
        assert seen.mode == 'RGB' and seen.size == (SIZE, SIZE)
        expected = original.convert('RGB').resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        np.testing.assert_array_equal(np.asarray(seen), np.asarray(expected))


@pytest.mark.parametrize('scale', [0.9, 0.5])
def test_prepare_image_centre_crop(tmp_path, frame_file, capsys, scale):
    out = tmp_path / 'seen.png'
    assert main(['prepare-image', str(frame_file), str(out), '--center-crop',
                 '--center-crop-scale', str(scale)]) == 0
    assert f'center_crop({scale:g})' in capsys.readouterr().out
    with Image.open(out) as seen:
        assert seen.mode == 'RGB' and seen.size == (SIZE, SIZE)
        assert_close(seen, expected_crop(scale, HEIGHT, WIDTH) - 0.5, max_abs=1.6)


def test_prepare_image_training_mode(tmp_path, frame_file):
    out = tmp_path / 'seen.png'
    assert main(['prepare-image', str(frame_file), str(out), '--image-preprocessing',
                 'training']) == 0
    with Image.open(out) as seen:
        assert seen.mode == 'RGB' and seen.size == (SIZE, SIZE)
        rows = pixel_centres(np.arange(SIZE), HEIGHT, SIZE)
        cols = pixel_centres(np.arange(SIZE), WIDTH, SIZE)
        # JPEG and rounding move the affine image by a few levels; the geometry is exact.
        assert_close(seen, affine_value(rows, cols), max_abs=6.0)


def test_prepare_image_bad_input_exit_2_one_line(tmp_path, capsys):
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not an image')
    for path, phrase in ((broken, 'cannot read image'), (tmp_path / 'none.png', 'does not exist')):
        assert main(['prepare-image', str(path), str(tmp_path / 'out.png')]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and phrase in err, err
    assert not (tmp_path / 'out.png').exists()


def test_prepare_image_needs_no_engine(tmp_path, frame_file):
    code = ('import sys; from openvla_ros.cli import main; '
            f'code = main(["prepare-image", {str(frame_file)!r}, {str(tmp_path / "o.png")!r}]); '
            'print(sorted(m for m in ("vllm", "torch") if m in sys.modules)); sys.exit(code)')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == '[]'


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

    from openvla_ros.node.policy_node import configure_hint
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
    hint = configure_hint(ValueError(status.message.split(': ', 1)[1]))
    assert f'set the {name} parameter' in hint, hint
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
