# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""make-bag -> read_bag round trips (sqlite3 and mcap, raw and compressed) and every error."""

import json
from pathlib import Path

import numpy as np
from PIL import Image
import pytest
from rosbags.rosbag2 import Writer

from openvla_ros.cli import main
from openvla_ros.core.images import ImageError
from openvla_ros.tools import bags
from openvla_ros.tools.bags import (BagError, COMPRESSED_IMAGE_TOPIC, IMAGE_TOPIC, make_bag,
                                    read_bag)
from openvla_ros.tools.steps import DEFAULT_T0_S, StepsError, write_synthetic_steps
from openvla_ros.tools.synthetic import DEFAULT_INSTRUCTION

N = 6
SIZE = 32


@pytest.fixture(scope='module')
def steps_json(tmp_path_factory):
    """Write a synthetic STEPS.json shared by the module."""
    return write_synthetic_steps(tmp_path_factory.mktemp('steps'), N, size=SIZE, seed=3)


def _steps(path):
    """Return the steps list of a STEPS.json."""
    return json.loads(Path(path).read_text())['steps']


def _write_steps(folder, steps):
    """Write a STEPS.json holding ``steps``."""
    path = Path(folder) / 'STEPS.json'
    path.write_text(json.dumps({'steps': steps}))
    return path


def _png(folder, name, value=0, size=SIZE):
    """Write a uniform PNG and return its name."""
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(Path(folder) / name)
    return name


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
@pytest.mark.parametrize('compressed', [False, True])
def test_round_trip(tmp_path, steps_json, storage, compressed):
    """Read back what make_bag wrote."""
    out = tmp_path / 'bag'
    summary = make_bag(steps_json, out, storage=storage, compressed=compressed, progress=False)
    assert summary['frames'] == N
    assert summary['duration_s'] == pytest.approx((N - 1) / 5.0)
    data = read_bag(out)
    assert data.storage == storage
    assert data.image_topic == (COMPRESSED_IMAGE_TOPIC if compressed else IMAGE_TOPIC)
    assert len(data.frames) == N
    assert [f.index for f in data.frames] == list(range(N))
    stamps = [f.stamp_s for f in data.frames]
    assert stamps == pytest.approx([DEFAULT_T0_S + i / 5.0 for i in range(N)], abs=1e-6)
    assert [f.bag_time_ns for f in data.frames] == [
        int(DEFAULT_T0_S) * 10 ** 9 + i * 200_000_000 for i in range(N)]
    assert [r.text for r in data.instructions] == [DEFAULT_INSTRUCTION]
    assert data.instruction_at(data.frames[0].bag_time_ns) == DEFAULT_INSTRUCTION
    assert data.instruction_at(data.frames[0].bag_time_ns - 1) is None
    expected = [s['action'] for s in _steps(steps_json)]
    assert len(data.ground_truth) == N
    for gt, action, stamp in zip(data.ground_truth, expected, stamps):
        assert gt.values.tolist() == pytest.approx(action)
        assert gt.stamp_s == pytest.approx(stamp)
    assert data.gt_time_base == 'header'
    assert data.notes == []
    original = np.asarray(Image.open(steps_json.parent / 'frame_0002.png').convert('RGB'))
    decoded = data.frames[2].rgb()
    assert decoded.shape == (SIZE, SIZE, 3) and decoded.dtype == np.uint8
    if compressed:
        # JPEG at quality 95 (4:2:0 chroma, lossy at the sharp colour edges of a tiny frame):
        # close to the original, not equal.
        error = np.abs(decoded.astype(int) - original)
        assert error.mean() < 10.0 and np.median(error) <= 3
    else:
        assert np.array_equal(decoded, original)


def test_png_compressed_is_exact(tmp_path, steps_json):
    """Keep frames bit-exact with PNG compression."""
    out = tmp_path / 'bag'
    make_bag(steps_json, out, compressed=True, compressed_format='png', progress=False)
    data = read_bag(out)
    original = np.asarray(Image.open(steps_json.parent / 'frame_0001.png').convert('RGB'))
    assert np.array_equal(data.frames[1].rgb(), original)
    assert data.frames[1].msg.format == 'png'


def test_custom_stamps_and_instruction_changes(tmp_path):
    """Keep given stamps; write instructions on change."""
    names = [_png(tmp_path, f'{i}.png', 40 * i) for i in range(4)]
    stamps = [100.0, 100.23, 100.38, 100.61]
    texts = ['pick up the cup', 'pick up the cup', 'open the drawer', 'open the drawer']
    steps = [{'image': n, 'instruction': t, 'action': [0.1 * i] * 7, 'stamp': s}
             for i, (n, t, s) in enumerate(zip(names, texts, stamps))]
    out = tmp_path / 'bag'
    summary = make_bag(_write_steps(tmp_path, steps), out, storage='mcap', progress=False)
    assert summary['instructions'] == 2
    data = read_bag(out)
    assert [f.stamp_s for f in data.frames] == pytest.approx(stamps)
    assert [r.text for r in data.instructions] == ['pick up the cup', 'open the drawer']
    assert [data.instruction_at(f.bag_time_ns) for f in data.frames] == texts
    assert data.frames[3].rgb()[0, 0].tolist() == [120, 120, 120]


def test_synthetic_steps(tmp_path):
    """Generate structured, deterministic frames and actions."""
    path = write_synthetic_steps(tmp_path, 4, size=48, seed=1)
    steps = _steps(path)
    assert len(steps) == 4
    frames = [np.asarray(Image.open(tmp_path / s['image'])) for s in steps]
    assert all(f.shape == (48, 48, 3) for f in frames)
    # Structured content that changes from frame to frame, not noise and not constant.
    for a, b in zip(frames, frames[1:]):
        assert (a != b).any(axis=2).mean() > 0.01
    assert len(np.unique(frames[0].reshape(-1, 3), axis=0)) < 200
    actions = np.array([s['action'] for s in steps])
    assert actions.shape == (4, 7) and np.isfinite(actions).all()
    assert actions[:2, 6].tolist() == [1.0, 1.0] and actions[2:, 6].tolist() == [0.0, 0.0]
    assert {s['instruction'] for s in steps} == {DEFAULT_INSTRUCTION}
    # Deterministic for a seed.
    again = write_synthetic_steps(tmp_path / 'again', 4, size=48, seed=1)
    assert _steps(again) == steps
    assert np.array_equal(np.asarray(Image.open(again.parent / steps[3]['image'])), frames[3])
    with pytest.raises(ValueError):
        write_synthetic_steps(tmp_path / 'none', 0)


# -------------------------------------------------------------------------------------------
# make-bag validation


def _good_step(folder, **changes):
    """Return a valid step, with ``changes`` applied."""
    step = {'image': _png(folder, 'ok.png'), 'instruction': 'do it', 'action': [0.0] * 7}
    step.update(changes)
    return step


@pytest.mark.parametrize('change, match', [
    ({'image': 'missing.png'}, r"step 1: image 'missing.png' not found"),
    ({'image': None}, 'step 1 has no "image"'),
    ({'instruction': '  '}, 'step 1 has no "instruction"'),
    ({'instruction': None}, 'step 1 has no "instruction"'),
    ({'action': [0.0] * 6}, r'step 1: "action" must be a list of 7 numbers'),
    ({'action': 'forward'}, r'step 1: "action" must be a list of 7 numbers'),
    ({'action': [0.0] * 6 + ['x']}, 'numbers only'),
    ({'action': [0.0] * 6 + [True]}, 'numbers only'),
    ({'action': [0.0] * 6 + [float('nan')]}, 'non-finite'),
    ({'action': [float('inf')] + [0.0] * 6}, 'non-finite'),
    ({'stamp': 5.0}, 'step 1 has "stamp" but step 0 has none'),
])
def test_step_errors_name_the_step(tmp_path, change, match):
    """Name the bad step in each validation error."""
    steps = [_good_step(tmp_path), _good_step(tmp_path, **change)]
    out = tmp_path / 'bag'
    with pytest.raises(StepsError, match=match):
        make_bag(_write_steps(tmp_path, steps), out, progress=False)
    assert not out.exists()


def test_stamps_must_increase(tmp_path):
    """Refuse non-increasing and negative stamps."""
    steps = [_good_step(tmp_path, stamp=10.0), _good_step(tmp_path, stamp=10.0)]
    with pytest.raises(StepsError, match='step 1: stamp .* must increase strictly'):
        make_bag(_write_steps(tmp_path, steps), tmp_path / 'bag', progress=False)
    steps[1]['stamp'] = -1.0
    with pytest.raises(StepsError, match='step 1: "stamp" must be seconds'):
        make_bag(_write_steps(tmp_path, steps), tmp_path / 'bag', progress=False)


def test_unreadable_image_removes_partial_bag(tmp_path):
    """Remove the half-written bag after a bad image."""
    (tmp_path / 'broken.png').write_bytes(b'not a png at all')
    steps = [_good_step(tmp_path), _good_step(tmp_path, image='broken.png')]
    out = tmp_path / 'bag'
    with pytest.raises(StepsError, match="step 1: cannot read image 'broken.png'"):
        make_bag(_write_steps(tmp_path, steps), out, progress=False)
    assert not out.exists()


def test_file_level_errors(tmp_path, steps_json):
    """Refuse bad files, options and existing outputs."""
    with pytest.raises(StepsError, match='no steps'):
        make_bag(_write_steps(tmp_path, []), tmp_path / 'a', progress=False)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"steps": [')
    with pytest.raises(StepsError, match='not valid JSON'):
        make_bag(bad, tmp_path / 'b', progress=False)
    bad.write_text('[1, 2]')
    with pytest.raises(StepsError, match='"steps" list'):
        make_bag(bad, tmp_path / 'c', progress=False)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        make_bag(tmp_path / 'nope.json', tmp_path / 'd', progress=False)
    with pytest.raises(StepsError, match='rate'):
        make_bag(steps_json, tmp_path / 'e', rate_hz=0.0, progress=False)
    with pytest.raises(BagError, match='storage'):
        make_bag(steps_json, tmp_path / 'f', storage='rosbag1', progress=False)
    existing = tmp_path / 'exists'
    existing.mkdir()
    with pytest.raises(BagError, match='already exists'):
        make_bag(steps_json, existing, progress=False)
    assert list(existing.iterdir()) == []


def test_make_bag_command(tmp_path, steps_json, capsys):
    """Print one summary line; exit 2 on errors."""
    out = tmp_path / 'bag'
    code = main(['make-bag', str(steps_json), str(out), '--storage', 'mcap', '--compressed',
                 '--rate', '10', '--no-progress'])
    captured = capsys.readouterr()
    assert code == 0
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1
    assert f'{N} frames' in lines[0] and 'mcap' in lines[0] and 'jpeg' in lines[0]
    data = read_bag(out)
    assert data.frames[1].stamp_s - data.frames[0].stamp_s == pytest.approx(0.1)
    assert main(['make-bag', str(steps_json), str(out), '--no-progress']) == 2
    assert 'already exists' in capsys.readouterr().err


# -------------------------------------------------------------------------------------------
# read_bag on bags written by hand


def _write_bag(path, messages, storage='sqlite3'):
    """Write ``(topic, msgtype, bag_ns, msg)`` messages to a new bag."""
    store = bags.typestore()
    connections = {}
    with Writer(path, version=8, storage_plugin=bags.storage_plugin(storage)) as writer:
        for topic, msgtype, ns, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(connections[topic], ns, store.serialize_cdr(msg, msgtype))
    return path


def _image_msg(ns, value=0, size=4):
    """Return a uniform rgb8 Image stamped ``ns``."""
    store = bags.typestore()
    rgb = np.full((size, size, 3), value, dtype=np.uint8)
    return store.types[bags.IMAGE_TYPE](
        header=bags.make_header(store, ns, 'camera'), height=size, width=size, encoding='rgb8',
        is_bigendian=0, step=size * 3, data=rgb.reshape(-1))


def _msg(msgtype, **fields):
    """Return a message of ``msgtype``."""
    return bags.typestore().types[msgtype](**fields)


def test_topic_errors_list_the_bag_topics(tmp_path, steps_json):
    """List the bag topics when a topic is missing."""
    out = tmp_path / 'bag'
    make_bag(steps_json, out, progress=False)
    with pytest.raises(BagError, match=r"no image topic '/cam'.*/camera/image_raw \["):
        read_bag(out, image_topic='/cam')
    with pytest.raises(BagError, match='expected sensor_msgs/msg/Image or'):
        read_bag(out, image_topic='/instruction')
    with pytest.raises(BagError, match=r"no instruction topic '/task'.*--instruction"):
        read_bag(out, instruction_topic='/task')
    assert read_bag(out, instruction_topic=None).instructions == []
    with pytest.raises(BagError, match="no ground-truth twist topic '/gt'"):
        read_bag(out, gt_twist_topic='/gt')
    with pytest.raises(BagError, match="no ground-truth array topic '/gt'"):
        read_bag(out, gt_array_topic='/gt')
    with pytest.raises(FileNotFoundError, match='make-bag'):
        read_bag(tmp_path / 'nothing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='cannot open'):
        read_bag(tmp_path / 'empty')


def test_image_topic_detection(tmp_path):
    """Refuse ambiguous or missing image topics."""
    t = 10 ** 9
    both = _write_bag(tmp_path / 'both', [
        (IMAGE_TOPIC, bags.IMAGE_TYPE, t, _image_msg(t)),
        (COMPRESSED_IMAGE_TOPIC, bags.IMAGE_TYPE, t, _image_msg(t)),
    ])
    with pytest.raises(BagError, match='both'):
        read_bag(both, instruction_topic=None)
    neither = _write_bag(tmp_path / 'neither', [
        ('/front/image', bags.IMAGE_TYPE, t, _image_msg(t)),
    ])
    with pytest.raises(BagError, match=r'neither.*image topics here: /front/image'):
        read_bag(neither, instruction_topic=None)


def test_array_ground_truth_and_unstamped_frames(tmp_path):
    """Read array ground truth; stamp unstamped frames with bag time."""
    layout = _msg('std_msgs/msg/MultiArrayLayout', dim=[], data_offset=0)
    messages = []
    for i in range(3):
        ns = 5 * 10 ** 9 + i * 100_000_000
        image = _image_msg(0, value=i)  # zero header stamp: the reader must use bag time
        messages.append((IMAGE_TOPIC, bags.IMAGE_TYPE, ns, image))
        messages.append(('/action', bags.ARRAY_TYPE, ns + 1000,
                         _msg(bags.ARRAY_TYPE, layout=layout,
                              data=np.arange(7, dtype=np.float64) + i)))
    # A malformed array (3 values) is skipped with a note, not fatal.
    messages.append(('/action', bags.ARRAY_TYPE, 6 * 10 ** 9,
                     _msg(bags.ARRAY_TYPE, layout=layout, data=np.zeros(3))))
    path = _write_bag(tmp_path / 'bag', messages, storage='mcap')
    data = read_bag(path, instruction_topic=None, gt_array_topic='/action')
    assert data.gt_time_base == 'bag'
    assert [f.stamp_s for f in data.frames] == pytest.approx([5.0, 5.1, 5.2])
    assert [g.values.tolist() for g in data.ground_truth] == [
        list(np.arange(7.0) + i) for i in range(3)]
    assert data.ground_truth[1].stamp_s == pytest.approx(5.1 + 1e-6)
    assert len(data.notes) == 1 and '3 values' in data.notes[0]


def test_twist_gripper_pairing_with_missing_gripper(tmp_path):
    """Pair twists with grippers; drop unpaired ones."""
    store = bags.typestore()
    vector = store.types['geometry_msgs/msg/Vector3']
    messages = []
    for i in range(4):
        ns = 10 ** 9 + i * 200_000_000
        messages.append((IMAGE_TOPIC, bags.IMAGE_TYPE, ns, _image_msg(ns)))
        twist = _msg(bags.TWIST_STAMPED_TYPE, header=bags.make_header(store, ns - 5_000_000, 'ee'),
                     twist=_msg(bags.TWIST_TYPE, linear=vector(i, 0.0, 0.0),
                                angular=vector(0.0, 0.0, 0.5)))
        messages.append((bags.GT_TWIST_TOPIC, bags.TWIST_STAMPED_TYPE, ns, twist))
        if i != 2:  # the gripper message of step 2 was lost
            messages.append((bags.GT_GRIPPER_TOPIC, bags.FLOAT64_TYPE, ns + 20_000_000,
                             _msg(bags.FLOAT64_TYPE, data=float(i % 2))))
    data = read_bag(_write_bag(tmp_path / 'bag', messages), instruction_topic=None)
    assert [g.values[0] for g in data.ground_truth] == [0.0, 1.0, 3.0]
    assert [g.values[6] for g in data.ground_truth] == [0.0, 1.0, 1.0]
    # Header stamps (5 ms before bag time) are the ground truth's stamps.
    assert data.ground_truth[0].stamp_s == pytest.approx(1.0 - 0.005)
    assert len(data.notes) == 1 and '1 ground-truth twist' in data.notes[0]


def _gt_messages(ns):
    """Return one zero twist and gripper message at ``ns``."""
    store = bags.typestore()
    vector = store.types['geometry_msgs/msg/Vector3']
    twist = _msg(bags.TWIST_STAMPED_TYPE, header=bags.make_header(store, ns, 'ee'),
                 twist=_msg(bags.TWIST_TYPE, linear=vector(0.0, 0.0, 0.0),
                            angular=vector(0.0, 0.0, 0.0)))
    return [(bags.GT_TWIST_TOPIC, bags.TWIST_STAMPED_TYPE, ns, twist),
            (bags.GT_GRIPPER_TOPIC, bags.FLOAT64_TYPE, ns, _msg(bags.FLOAT64_TYPE, data=1.0))]


def test_bad_image_message_is_kept_and_raises_image_error(tmp_path):
    """Keep a corrupt frame; fail only when it is decoded."""
    t = 10 ** 9
    store = bags.typestore()
    broken = store.types[bags.COMPRESSED_IMAGE_TYPE](
        header=bags.make_header(store, t, 'camera'), format='jpeg',
        data=np.frombuffer(b'garbage', dtype=np.uint8))
    path = _write_bag(tmp_path / 'bag', [
        (COMPRESSED_IMAGE_TOPIC, bags.COMPRESSED_IMAGE_TYPE, t, broken), *_gt_messages(t)])
    data = read_bag(path, instruction_topic=None)
    assert data.image_topic == COMPRESSED_IMAGE_TOPIC
    assert len(data.frames) == 1
    with pytest.raises(ImageError, match='not a valid JPEG/PNG'):
        data.frames[0].rgb()
