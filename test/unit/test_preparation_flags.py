# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Image preparation flags of every command and ``prepare-image``: no ROS, no engine needed.

Expected images are computed in ``affine_images`` from the geometry of the reference crop,
never with ``openvla_ros.core.preprocessing``.
"""

import subprocess
import sys

from affine_images import (affine_image, affine_value, assert_close, expected_crop, HEIGHT,
                           pixel_centres, SIZE, WIDTH)
import numpy as np
from PIL import Image
import pytest

from openvla_ros.cli import build_parser, main
from openvla_ros.cli.common import preparation_from_args, statistics_file_from_args
from openvla_ros.core.preprocessing import ImagePreparation


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
