# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""One-line errors and non-zero exits for what a user can get wrong (no engine needed)."""

import subprocess
import sys

from PIL import Image
import pytest

from openvla_ros.tools.synthetic import scene_image


def run(*args):
    return subprocess.run([sys.executable, '-m', 'openvla_ros.cli', *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'frame.png'
    Image.fromarray(scene_image(0)).save(path)
    return path


def assert_one_line_error(done, *phrases):
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_missing_model(tmp_path, image):
    done = run('predict', '--model', str(tmp_path / 'nope'), '--unnorm-key', 'bridge_orig',
               '--image', str(image), '--instruction', 'go')
    assert_one_line_error(done, 'does not exist')


def test_model_directory_without_config(tmp_path, image):
    done = run('predict', '--model', str(tmp_path), '--unnorm-key', 'bridge_orig',
               '--image', str(image), '--instruction', 'go')
    assert_one_line_error(done, 'has no config.json')


def test_bad_unnorm_key_fails_before_the_engine(test_model, image):
    done = run('predict', '--model', str(test_model), '--unnorm-key', 'bridge',
               '--image', str(image), '--instruction', 'go')
    assert_one_line_error(done, "unknown unnorm_key 'bridge'", 'bridge_orig')


def test_unreadable_image(test_model, tmp_path):
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'not an image at all')
    done = run('predict', '--model', str(test_model), '--unnorm-key', 'bridge_orig',
               '--image', str(bad), '--instruction', 'go')
    assert_one_line_error(done, 'cannot read image')
    done = run('predict', '--model', str(test_model), '--unnorm-key', 'bridge_orig',
               '--image', str(tmp_path / 'missing.png'), '--instruction', 'go')
    assert_one_line_error(done, 'does not exist')


def test_empty_instruction(test_model, image):
    done = run('predict', '--model', str(test_model), '--unnorm-key', 'bridge_orig',
               '--image', str(image), '--instruction', '  ')
    assert_one_line_error(done, 'instruction is empty')


def test_sim_arm_refuses_a_slow_servo_loop_and_a_short_benchmark():
    # Checked before any ROS import: no ROS needed.
    assert_one_line_error(run('sim-arm', '--rate-hz', '50'), '--rate-hz must be >= 100')
    assert_one_line_error(run('sim-arm', '--benchmark', '--seconds', '1'),
                          '--seconds must be at least 2')


def test_benchmark_refuses_a_short_arm_run():
    # Checked before the engine or ROS is touched.
    assert_one_line_error(run('benchmark', '--model', 'synthetic', '--arm', '1'),
                          '--arm must be at least 2 s per run')
