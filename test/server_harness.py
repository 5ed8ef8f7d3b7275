# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A vLLM server started through ``openvla-ros serve`` for the remote-engine tests (loopback)."""

import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = 'OPENVLA_ROS_TEST_SERVER_KEY'
START_TIMEOUT_S = 400.0


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class Server:
    """One server process, its ready line and its log; stopped by SIGTERM, then SIGKILL."""

    def __init__(self, argv, env, log, url):
        self.url = url
        self.log = log
        self.lines = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if 'ready at' in line:
                self.ready.set()

    def wait_ready(self, health_only=False):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f'server exited with {self.process.returncode}: '
                            f'{self.lines[-5:]} (log {self.log})')
            if health_only:
                try:
                    with urllib.request.urlopen(self.url + '/health', timeout=2) as reply:
                        if reply.status == 200:
                            return
                except OSError:
                    pass
            elif self.ready.is_set():
                return
            time.sleep(0.5)
        self.stop()
        pytest.fail(f'server not ready within {START_TIMEOUT_S} s (log {self.log})')

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def base_env(log):
    env = dict(os.environ, PYTHONPATH=str(ROOT), VLLM_CPU_KVCACHE_SPACE='1',
               OPENVLA_ROS_ENGINE_LOG=str(log))
    env.pop(KEY_ENV, None)
    env.pop('VLLM_API_KEY', None)
    return env


def serve_argv(test_model, port, *extra):
    """Return the command line of ``openvla-ros serve`` on 127.0.0.1:``port``."""
    return [sys.executable, '-m', 'openvla_ros.cli', 'serve', '--model', str(test_model),
            '--host', '127.0.0.1', '--port', str(port), '--dtype', 'float32', *extra]
