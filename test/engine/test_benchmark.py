# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmark: engine statistics per mode and the node figure, on the real engine."""

import json
import math

import pytest

from openvla_ros.cli import main
from openvla_ros.tools.benchmark import (CPU_GRAPH_REASON, format_tables, REFERENCE,
                                         run_benchmark, stats_ms)
from openvla_ros.tools.synthetic import unique_image

STAT_KEYS = {'n', 'mean', 'p50', 'p95', 'min', 'max'}


def _strict(path):
    def refuse(value):
        raise ValueError(f'non-strict JSON constant {value}')
    return json.loads(path.read_text(), parse_constant=refuse)


def _positive_stats(stats, n=None):
    assert set(stats) == STAT_KEYS
    if n is not None:
        assert stats['n'] == n
    for key in STAT_KEYS - {'n'}:
        assert math.isfinite(stats[key]) and stats[key] > 0, (key, stats)
    assert stats['min'] <= stats['p50'] <= stats['p95'] <= stats['max']


def test_images_are_distinct_across_indices_and_runs():
    seen = {unique_image(i, salt).tobytes() for i in range(250) for salt in (0, 1)}
    assert len(seen) == 500
    assert unique_image(3, 7).shape == (224, 224, 3)


def test_stats_ms():
    assert stats_ms([0.1, 0.2, 0.3])['mean'] == pytest.approx(200.0)
    assert stats_ms([])['mean'] is None and stats_ms([float('nan')])['n'] == 0


@pytest.mark.parametrize('flags, phrase', [
    (['--modes', 'turbo'], 'modes must be'),
    (['--images', '0'], 'images must be'),
    (['--camera-hz', '0'], 'camera rate'),
])
def test_bad_options_fail_before_the_engine(tmp_path, capsys, flags, phrase):
    code = main(['benchmark', '--model', str(tmp_path / 'missing'), *flags,
                 '--out', str(tmp_path / 'b.json')])
    assert code == 2
    assert phrase in capsys.readouterr().err
    assert not (tmp_path / 'b.json').exists()


@pytest.mark.engine
def test_benchmark_on_the_shared_engine(policy, tmp_path):
    pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')
    out = tmp_path / 'benchmark.json'
    report = run_benchmark(policy=policy, images=3, warmup=1, camera_hz=10.0,
                           node_seconds=6.0, out=out, progress=False)
    on_disk = _strict(out)
    assert on_disk['wall_time_s'] == pytest.approx(report['wall_time_s'])
    for key in ('model', 'unnorm_key', 'images', 'warmup', 'instruction', 'modes', 'node',
                'engine_settings', 'hardware', 'software', 'reference', 'timestamp',
                'wall_time_s'):
        assert key in on_disk, key
    assert on_disk['images'] == 3 and on_disk['warmup'] == 1 and on_disk['wall_time_s'] > 0
    hardware = on_disk['hardware']
    for key in ('cpu_model', 'cpu_cores', 'memory_total_gib', 'gpu', 'platform'):
        assert key in hardware, key
    assert hardware['cpu_cores'] >= 1 and hardware['memory_total_gib'] > 0
    assert hardware['platform'] == 'cpu' and hardware['gpu'] is None
    for key in ('vllm', 'torch', 'python'):
        assert on_disk['software'][key], key
    assert on_disk['engine_settings']['options']['enforce_eager'] is True
    assert on_disk['engine_settings']['options']['max_num_seqs'] == 1
    assert on_disk['reference']['e2e_ms'] == REFERENCE['e2e_ms'] == 590.0

    modes = {entry['mode']: entry for entry in on_disk['modes']}
    assert modes['graph'] == {'mode': 'graph', 'status': 'skipped', 'reason': CPU_GRAPH_REASON}
    eager = modes['eager']
    assert eager['status'] == 'measured'
    for key in ('ttft_ms', 'tpot_ms', 'e2e_ms', 'engine_ms'):
        _positive_stats(eager[key], n=3)
    assert eager['ttft_ms']['mean'] < eager['e2e_ms']['mean']
    assert eager['actions_per_s'] == pytest.approx(1000.0 / eager['e2e_ms']['mean'])
    assert [s['image'] for s in eager['samples']] == [1, 2, 3]

    node = on_disk['node']
    assert node['engine_mode'] == 'eager' and node['frames_published'] == 60
    assert node['actions'] >= 2
    assert 0 < node['action_rate_hz'] <= node['inverse_engine_latency_hz'] * 1.2
    assert node['inverse_engine_latency_hz'] > 0
    _positive_stats(node['cycle_ms'], n=node['actions'] - 1)
    _positive_stats(node['engine_ms'], n=node['actions'])
    # Ages cover the inferences begun while the camera ran: all but at most the last one.
    _positive_stats(node['image_age_at_engine_start_ms'])
    assert node['actions'] - 1 <= node['image_age_at_engine_start_ms']['n'] <= node['actions']
    _positive_stats(node['camera_to_command_ms'], n=node['image_age_at_engine_start_ms']['n'])
    # The worker takes the newest frame: outside start-up, younger than a camera period plus
    # scheduling slack.
    assert node['image_age_at_engine_start_ms']['p50'] < 1000.0 / 10.0 + 100.0
    assert all(math.isfinite(node['overhead_ms'][k]) for k in ('mean', 'p50', 'p95'))
    # Every cycle is at least the engine time of its action, give or take clock resolution.
    assert node['overhead_ms']['min'] > -1.0
    diagnostics = node['diagnostics']
    assert diagnostics['frames_received'] >= node['actions']
    assert diagnostics['frames_used'] == node['actions']
    assert diagnostics['latency_p50_s'] > 0
    # Image preparation and statistics provenance, from the engine and from the node.
    assert on_disk['image_preprocessing'] == 'processor'
    assert on_disk['statistics_hash'] == policy.decoder.statistics_hash
    assert on_disk['statistics_source'] == policy.decoder.statistics_source
    assert diagnostics['statistics_hash'] == policy.decoder.statistics_hash
    assert diagnostics['image_preprocessing'] == 'processor'

    table = format_tables(report)
    assert f'skipped: {CPU_GRAPH_REASON}' in table and 'action rate' in table
