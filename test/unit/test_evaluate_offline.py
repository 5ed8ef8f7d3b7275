# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""evaluate_bag with a fake policy: bookkeeping, metrics, reports, plots, the CLI."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image
import pytest
from rosbags.rosbag2 import Writer

from openvla_ros.cli import main
from openvla_ros.core import engine as policy_module
from openvla_ros.core.decoding import ActionDecoder
from openvla_ros.core.engine import Prediction
from openvla_ros.core.policy import EngineReport
from openvla_ros.core.preprocessing import ImagePreparation
from openvla_ros.tools import bags, report
from openvla_ros.tools.bags import make_bag, read_bag
from openvla_ros.tools.steps import write_synthetic_steps
from openvla_ros.tools.synthetic import DEFAULT_INSTRUCTION
from openvla_ros.tools.evaluate import EvaluationError, evaluate_bag

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
N = 8


class FakePolicy:
    """Deterministic stand-in for VllmPolicy: the action is a function of the image mean."""

    model = 'fake/openvla'
    engine_options = {'dtype': 'float32'}
    statistics_file = None

    def __init__(self, fail_on=(), nan_on=()):
        """Fail or return NaN on the given call numbers."""
        self.calls = []
        self.fail_on = set(fail_on)
        self.nan_on = set(nan_on)
        self.decoder = SimpleNamespace(unnorm_key='bridge_orig', provenance=lambda: {
            'unnorm_key': 'bridge_orig', 'statistics_source': 'fake', 'statistics_hash': ''})
        self.preparation = ImagePreparation()

    def prompt_ids(self, instruction):
        """Return placeholder ids (the fake reads no prompt)."""
        return [1, 29871]

    def is_alive(self):
        """Return True: nothing to die."""
        return True

    def close(self, fast=False):
        """Free nothing."""

    def engine_report(self):
        """Describe the fake engine as VllmPolicy describes its own."""
        return EngineReport.describing(self.decoder, self.preparation, engine='fake',
                                       model=self.model, engine_options=self.engine_options,
                                       statistics_file=self.statistics_file)

    def predict(self, image, instruction, prompt_ids=None):
        """Return an action computed from the image mean."""
        rgb = np.asarray(image)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        call = len(self.calls)
        self.calls.append(instruction)
        if call in self.fail_on:
            raise RuntimeError('engine died')
        level = float(rgb.mean()) / 255.0
        action = np.array([0.01 * level * (k + 1) for k in range(6)] + [level],
                          dtype=np.float64)
        if call in self.nan_on:
            action[0] = np.nan
        return Prediction(action=action, token_ids=[31744 + int(level * 255)] * 7,
                          timings={'e2e_s': 0.001})


def _expected_action(rgb):
    """Return the action FakePolicy gives for ``rgb``."""
    level = float(np.asarray(rgb).mean()) / 255.0
    return [0.01 * level * (k + 1) for k in range(6)] + [level]


@pytest.fixture(scope='module')
def synthetic_bag(tmp_path_factory):
    """Write a synthetic bag shared by the module."""
    folder = tmp_path_factory.mktemp('synthetic')
    steps = write_synthetic_steps(folder / 'steps', N, size=32, seed=5)
    make_bag(steps, folder / 'bag', progress=False)
    return folder / 'bag'


def _load_strict(path):
    """Load JSON, refusing NaN and infinity."""
    def refuse(value):
        """Reject a non-standard JSON constant."""
        raise ValueError(f'non-strict JSON constant {value}')
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def _check_png(path):
    """Check the PNG signature and that Pillow opens the file."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.size[0] > 100 and img.size[1] > 100


def test_full_run_accounts_for_every_frame(tmp_path, synthetic_bag):
    """Evaluate every frame; recompute the metrics."""
    fake = FakePolicy()
    report = evaluate_bag(fake, synthetic_bag, tmp_path / 'out', warmup=2, progress=False)
    counts = report['summary']['counts']
    assert counts == {'read': N, 'evaluated': N, 'skipped': 0, 'skip_reasons': {}}
    assert len(fake.calls) == N
    assert set(fake.calls) == {DEFAULT_INSTRUCTION}

    on_disk = _load_strict(tmp_path / 'out' / 'report.json')
    assert on_disk['summary'] == report['summary']  # floats round-trip exactly
    frames = on_disk['frames']
    data = read_bag(synthetic_bag)
    steps = json.loads((synthetic_bag.parent / 'steps' / 'STEPS.json').read_text())['steps']
    for record, frame, step in zip(frames, data.frames, steps):
        assert record['stamp'] == pytest.approx(frame.stamp_s)
        assert record['instruction'] == DEFAULT_INSTRUCTION
        assert record['predicted'] == pytest.approx(_expected_action(frame.rgb()))
        assert record['ground_truth'] == pytest.approx(step['action'])
        assert len(record['token_ids']) == 7 and record['latency_s'] > 0

    # The summary recomputed from the per-frame records.
    pred = np.array([r['predicted'] for r in frames])
    truth = np.array([r['ground_truth'] for r in frames])
    summary = on_disk['summary']
    # Recomputed here with numpy, not with the metrics module under test.
    assert summary['mse_per_dim'] == pytest.approx(list(np.mean((pred - truth) ** 2, axis=0)))
    assert summary['mae_per_dim'] == pytest.approx(list(np.mean(np.abs(pred - truth), axis=0)))
    assert summary['mse'] == pytest.approx(float(np.mean((pred - truth) ** 2)))
    # Open at or above 0.5 on both sides.
    assert summary['gripper_accuracy'] == pytest.approx(
        float(np.mean((pred[:, 6] >= 0.5) == (truth[:, 6] >= 0.5))))
    latencies = np.array([r['latency_s'] for r in frames])[2:]
    assert summary['latency'] == pytest.approx({
        'mean': float(np.mean(latencies)), 'p50': float(np.percentile(latencies, 50)),
        'p95': float(np.percentile(latencies, 95)), 'p99': float(np.percentile(latencies, 99))})

    meta = on_disk['metadata']
    assert meta['model'] == 'fake/openvla'
    assert meta['options']['warmup'] == 2
    assert meta['wall_time_s'] > 0 and meta['timestamp']
    for name in ('actions.png', 'errors.png', 'latency.png'):
        _check_png(tmp_path / 'out' / name)
    markdown = (tmp_path / 'out' / 'report.md').read_text()
    for text in ('](actions.png)', '](errors.png)', '](latency.png)', '| dyaw | rad |',
                 '| gripper |', 'Gripper accuracy', '| read | evaluated | skipped |'):
        assert text in markdown


def test_stride_and_limit(tmp_path, synthetic_bag):
    """Skip by stride, then by limit."""
    fake = FakePolicy()
    report = evaluate_bag(fake, synthetic_bag, tmp_path, stride=3, limit=2, warmup=0,
                          progress=False)
    counts = report['summary']['counts']
    assert counts['read'] == counts['evaluated'] + counts['skipped'] == N
    assert [r['index'] for r in report['frames']] == [0, 3]
    reasons = {s['index']: s['reason'] for s in report['skipped']}
    assert reasons == {1: 'stride', 2: 'stride', 4: 'stride', 5: 'stride', 6: 'limit',
                       7: 'stride'}
    assert counts['skip_reasons'] == {'stride': 5, 'limit': 1}
    assert len(fake.calls) == 2


def test_instruction_override(tmp_path, synthetic_bag):
    """Use the given instruction for every frame."""
    fake = FakePolicy()
    data = read_bag(synthetic_bag, instruction_topic=None)
    report = evaluate_bag(fake, data, tmp_path, instruction='wave hello', progress=False,
                          write_plots=False)
    assert set(fake.calls) == {'wave hello'}
    assert report['summary']['counts']['evaluated'] == N
    assert report['metadata']['options']['instruction'] == 'wave hello'
    assert not (tmp_path / 'actions.png').exists()
    with pytest.raises(EvaluationError, match='empty'):
        evaluate_bag(fake, data, tmp_path, instruction='  ', progress=False)


def test_engine_errors_are_recorded(tmp_path, synthetic_bag):
    """Record engine errors and unusable actions."""
    fake = FakePolicy(fail_on={1}, nan_on={3})
    report = evaluate_bag(fake, synthetic_bag, tmp_path, progress=False)
    counts = report['summary']['counts']
    assert counts['skip_reasons'] == {'engine_error': 2}
    assert counts['evaluated'] == N - 2
    messages = {s['index']: s['message'] for s in report['skipped']}
    assert 'RuntimeError: engine died' in messages[1]
    assert 'non-finite' in messages[3]


def _write_bag(path, messages):
    """Write ``(topic, msgtype, bag_ns, msg)`` messages to a new bag."""
    store = bags.typestore()
    connections = {}
    with Writer(path, version=8) as writer:
        for topic, msgtype, ns, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(connections[topic], ns, store.serialize_cdr(msg, msgtype))
    return path


def test_skip_reasons_from_a_hand_made_bag(tmp_path):
    """Frame 0: before any instruction; 2: corrupt image; 4: ground truth lost."""
    store = bags.typestore()
    types = store.types
    vector = types['geometry_msgs/msg/Vector3']
    messages = []
    for i in range(6):
        ns = 2_000_000_000 + i * 200_000_000
        # Stamps jittered against the 5 Hz grid, as from a real camera.
        jitter = (-1) ** i * 15_000_000
        header = bags.make_header(store, ns + jitter, 'camera')
        rgb = np.full((8, 8, 3), 30 * i, dtype=np.uint8).reshape(-1)
        step = 23 if i == 2 else 24  # frame 2: step smaller than a row
        messages.append((bags.IMAGE_TOPIC, bags.IMAGE_TYPE, ns, types[bags.IMAGE_TYPE](
            header=header, height=8, width=8, encoding='rgb8', is_bigendian=0, step=step,
            data=rgb)))
        if i == 1:
            messages.append((bags.INSTRUCTION_TOPIC, bags.STRING_TYPE, ns - 1,
                             types[bags.STRING_TYPE](data='stack the cups')))
        if i == 3:
            messages.append((bags.INSTRUCTION_TOPIC, bags.STRING_TYPE, ns,
                             types[bags.STRING_TYPE](data='unstack the cups')))
        if i != 4:
            twist = types[bags.TWIST_STAMPED_TYPE](
                header=bags.make_header(store, ns, 'ee'),
                twist=types[bags.TWIST_TYPE](linear=vector(0.01 * i, 0.0, 0.0),
                                             angular=vector(0.0, 0.0, 0.0)))
            messages.append((bags.GT_TWIST_TOPIC, bags.TWIST_STAMPED_TYPE, ns, twist))
            messages.append((bags.GT_GRIPPER_TOPIC, bags.FLOAT64_TYPE, ns,
                             types[bags.FLOAT64_TYPE](data=1.0)))
    path = _write_bag(tmp_path / 'bag', messages)
    fake = FakePolicy()
    report = evaluate_bag(fake, path, tmp_path / 'out', progress=False)
    counts = report['summary']['counts']
    assert counts['read'] == 6 == counts['evaluated'] + counts['skipped']
    reasons = {s['index']: s['reason'] for s in report['skipped']}
    assert reasons == {0: 'no_instruction', 2: 'bad_image', 4: 'no_ground_truth'}
    bad = next(s for s in report['skipped'] if s['reason'] == 'bad_image')
    assert 'step 23 is smaller than one row' in bad['message']
    assert [r['index'] for r in report['frames']] == [1, 3, 5]
    assert [r['instruction'] for r in report['frames']] == [
        'stack the cups', 'unstack the cups', 'unstack the cups']
    assert [r['ground_truth'][0] for r in report['frames']] == pytest.approx([0.01, 0.03, 0.05])
    markdown = (tmp_path / 'out' / 'report.md').read_text()
    assert '| bad_image | 1 |' in markdown


def test_nothing_evaluated_still_writes_a_report(tmp_path, synthetic_bag):
    """Write a valid report when nothing is evaluated."""
    report = evaluate_bag(FakePolicy(fail_on=set(range(N))), synthetic_bag, tmp_path,
                          progress=False)
    assert report['summary']['mse'] is None
    assert report['summary']['counts']['skip_reasons'] == {'engine_error': N}
    _load_strict(tmp_path / 'report.json')
    for name in ('actions.png', 'errors.png', 'latency.png'):
        _check_png(tmp_path / name)


@pytest.mark.parametrize('options', [{'stride': 0}, {'limit': 0}, {'warmup': -1},
                                     {'stride': 1.5}])
def test_bad_options(tmp_path, synthetic_bag, options):
    """Refuse impossible options."""
    with pytest.raises(EvaluationError):
        evaluate_bag(FakePolicy(), synthetic_bag, tmp_path, progress=False, **options)


# -------------------------------------------------------------------------------------------
# The command line, with VllmPolicy replaced by the fake


@pytest.fixture
def checkpoint(tmp_path):
    """Write a config-only checkpoint with two datasets."""
    folder = tmp_path / 'checkpoint'
    folder.mkdir()
    stats = {'action': {'q01': [-1.0] * 7, 'q99': [1.0] * 7}}
    (folder / 'config.json').write_text(json.dumps(
        {'norm_stats': {'bridge_orig': stats, 'fractal': stats}}))
    return folder


@pytest.fixture
def fake_engine(monkeypatch):
    """Replace VllmPolicy with the fake; return the instances built."""
    built = []

    class FakeVllmPolicy(FakePolicy):
        def __init__(self, model, unnorm_key, *, engine=None, llm=None, preparation=None,
                     statistics_file=None, engine_log=None):
            """Record what the command built the engine with."""
            super().__init__()
            self.model, self.unnorm_key = model, unnorm_key
            self.engine_options = engine.llm_options()
            self.preparation, self.statistics_file = preparation, statistics_file
            # The real decoder, as VllmPolicy builds it: statistics provenance for the report.
            self.decoder = ActionDecoder.from_model_config(model, unnorm_key, statistics_file)
            self.closed = False
            built.append(self)

        def close(self, fast=False):
            self.closed = True

    monkeypatch.setattr(policy_module, 'VllmPolicy', FakeVllmPolicy)
    return built


def test_evaluate_command_json(tmp_path, synthetic_bag, checkpoint, fake_engine, capsys):
    """Print only the JSON summary with --json."""
    out = tmp_path / 'out'
    code = main(['evaluate', str(synthetic_bag), '--model', str(checkpoint), '--unnorm-key',
                 'bridge_orig', '--out', str(out), '--stride', '2', '--json', '--no-progress',
                 '--dtype', 'float32', '--enforce-eager'])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)  # nothing else on stdout
    assert summary['counts']['evaluated'] == N // 2
    assert fake_engine[0].closed
    options = fake_engine[0].engine_options
    assert options['dtype'] == 'float32' and options['enforce_eager'] is True
    command = _load_strict(out / 'report.json')['metadata']['command']
    assert command['stride'] == 2 and command['unnorm_key'] == 'bridge_orig'


def test_evaluate_command_image_preparation_and_statistics(tmp_path, synthetic_bag, checkpoint,
                                                           fake_engine, capsys):
    """Pass the preparation flags and the statistics file; report where statistics came from."""
    stats = tmp_path / 'lab_statistics.json'
    stats.write_text(json.dumps({'lab_arm': {'action': {'q01': [-2.0] * 7, 'q99': [2.0] * 7}}}))
    out = tmp_path / 'out'
    base = ['evaluate', str(synthetic_bag), '--model', str(checkpoint), '--out', str(out),
            '--limit', '2', '--no-progress', '--json']
    # A statistics file without the key fails before the engine, naming the file.
    assert main(base + ['--unnorm-key', 'bridge_orig', '--statistics-file', str(stats)]) == 2
    err = capsys.readouterr().err
    assert "unknown unnorm_key 'bridge_orig'" in err and str(stats) in err
    assert fake_engine == []
    code = main(base + ['--unnorm-key', 'lab_arm', '--statistics-file', str(stats),
                        '--image-preprocessing', 'training', '--center-crop',
                        '--center-crop-scale', '0.8'])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    built = fake_engine[0]
    assert built.preparation == ImagePreparation(mode='training', center_crop=True,
                                                 center_crop_scale=0.8)
    assert built.statistics_file == str(stats)
    meta = _load_strict(out / 'report.json')['metadata']
    assert meta['image_preprocessing'] == 'training+center_crop(0.8)'
    assert meta['statistics_source'] == f'statistics_file {stats}'
    assert meta['statistics_hash'] == built.decoder.statistics_hash
    assert len(meta['statistics_hash']) == 12
    markdown = (out / 'report.md').read_text()
    assert meta['statistics_hash'] in markdown and 'training+center_crop(0.8)' in markdown


def test_evaluate_command_table(tmp_path, synthetic_bag, checkpoint, fake_engine, capsys):
    """Print a table; pass the instruction and limit."""
    code = main(['evaluate', str(synthetic_bag), '--model', str(checkpoint), '--unnorm-key',
                 'fractal', '--out', str(tmp_path / 'out'), '--instruction', 'go left',
                 '--limit', '3', '--no-progress'])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert 'evaluated 3 of 8 frames' in captured.out
    assert 'dpitch' in captured.out and 'overall MSE' in captured.out
    assert set(fake_engine[0].calls) == {'go left'}


def test_evaluate_command_fails_before_the_engine(tmp_path, synthetic_bag, checkpoint,
                                                  fake_engine, capsys):
    """Fail on bad keys and topics before building the engine."""
    base = ['evaluate', str(synthetic_bag), '--model', str(checkpoint), '--out',
            str(tmp_path / 'out'), '--no-progress']
    assert main(base + ['--unnorm-key', 'nope']) == 2
    assert "unknown unnorm_key 'nope'" in capsys.readouterr().err
    assert main(base) == 2
    assert 'unnorm_key is required' in capsys.readouterr().err
    assert main(base + ['--unnorm-key', 'fractal', '--image-topic', '/nope']) == 2
    assert "no image topic '/nope'" in capsys.readouterr().err
    assert main(base + ['--unnorm-key', 'fractal', '--gt-array-topic', '/a',
                        '--gt-twist-topic', '/b']) == 2
    assert 'not both' in capsys.readouterr().err
    assert fake_engine == []
    assert report.REPORT_JSON == 'report.json'
