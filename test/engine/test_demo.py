# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The README's main job: ``openvla-ros demo`` shows actions, tells the truth, always exits."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

pytestmark = pytest.mark.engine

ACTION = re.compile(r'action #\s*\d+: ((?:[+-]\d\.\d{4} ?){7})')


def _demo(test_model, duration):
    return [sys.executable, '-m', 'openvla_ros.cli', 'demo', '--model', str(test_model),
            '--duration', str(duration), '--camera-hz', '10']


def test_demo_prints_actions_quietly_and_counts_the_rate_from_the_first(test_model):
    # Long enough for a few actions at float32 speed on 2 AVX2 cores (~6 s each).
    done = subprocess.run(_demo(test_model, 25), capture_output=True, text=True, timeout=900,
                          env=dict(os.environ))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert 'random weights' in done.stdout and 'openvla/openvla-7b' in done.stdout
    assert re.search(r'engine ready in \d+ s; dtype (float32|bfloat16) \(', done.stdout)
    actions = ACTION.findall(done.stdout)
    assert len(actions) >= 1, output[-2000:]
    summary = re.search(r'\[demo\] (\d+) actions in [\d.]+ s; first action after ([\d.]+) s; ',
                        done.stdout)
    assert summary and int(summary.group(1)) == len(actions)
    if len(actions) >= 2:
        assert 'actions/s from the first action' in done.stdout
    # Quiet by default: vLLM's, torch's and the loader's messages went to the engine log.
    for noise in ('Loading safetensors', 'cpu_worker.py', 'EngineCore', 'FutureWarning',
                  'Triton'):
        assert noise not in output, noise
    # The node's own logs stay.
    assert 'zero twist published' in done.stderr


def test_demo_with_a_hung_engine_fails_with_the_reason_and_exits(test_model):
    duration = 12
    demo = subprocess.Popen(_demo(test_model, duration), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    lines, ready = [], threading.Event()

    def read():
        for line in demo.stdout:
            lines.append(line)
            if 'engine ready' in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stopped = []
    try:
        assert ready.wait(600), ''.join(lines)[-3000:]
        # Freeze the engine's processes: a real hang, the engine never answers again.
        for child in psutil.Process(demo.pid).children(recursive=True):
            child.send_signal(signal.SIGSTOP)
            stopped.append(child)
        frozen_at = time.monotonic()
        code = demo.wait(timeout=duration + 90)
        ended_after = time.monotonic() - frozen_at
    finally:
        for child in stopped:
            try:
                child.kill()
            except psutil.Error:
                pass
        if demo.poll() is None:
            demo.kill()
    reader.join(10)
    output = ''.join(lines)
    assert code == 1, output[-3000:]
    assert not ACTION.findall(output)
    assert 'first inference still running' in output
    failed = [line for line in output.splitlines() if line.startswith('[demo] FAILED')]
    assert len(failed) == 1 and 'no action in' in failed[0], output[-2000:]
    # It ends soon after its duration, not when the engine would have answered (never).
    assert ended_after < duration + 60, ended_after
    assert not [p for p in stopped if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
