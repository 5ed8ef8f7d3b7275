"""The README's main job: ``openvla-ros demo`` runs the node end to end and exits cleanly."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.engine


def test_demo_prints_actions_and_rate(test_model):
    command = [sys.executable, '-m', 'openvla_ros.cli', 'demo', '--model', str(test_model),
               '--duration', '8', '--camera-hz', '15']
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'random weights' in done.stdout and 'openvla/openvla-7b' in done.stdout
    actions = re.findall(r'action #\s*\d+: ((?:[+-]\d\.\d{4} ?){7})', done.stdout)
    assert len(actions) >= 2, done.stdout[-2000:]
    summary = re.search(r'(\d+) actions in [\d.]+ s: ([\d.]+) actions/s', done.stdout)
    assert summary and int(summary.group(1)) == len(actions)
    assert 'zero twist published (deactivate)' in done.stderr
