# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros serve`` without vLLM: command lines, template, supervision of a stand-in."""

import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time

import jinja2
import pytest

from openvla_ros.tools import serve

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, '-m', 'openvla_ros.cli', *args], capture_output=True,
                          text=True, timeout=120,
                          env=dict(env or os.environ, PYTHONPATH=str(ROOT)))


def test_template_renders_the_reference_prompt():
    path = serve.template_path()
    assert path.is_file() and path.suffix == '.jinja'
    template = jinja2.Environment().from_string(path.read_text())
    text = 'In: What action should the robot take to lift the cup?\nOut: '
    for content in (text, [{'type': 'image_url', 'image_url': {'url': 'data:'}},
                           {'type': 'text', 'text': text}]):
        rendered = template.render(bos_token='<s>', add_generation_prompt=True,
                                   messages=[{'role': 'user', 'content': content}])
        assert rendered == '<s>' + text


def test_print_template_and_command(test_model):
    done = run_cli('serve', '--print-template')
    assert done.returncode == 0 and Path(done.stdout.strip()) == serve.template_path()
    env = dict(os.environ, OPENVLA_ROS_API_KEY='secret-value-123')
    done = run_cli('serve', '--model', str(test_model), '--print-command', env=env)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith('VLLM_API_KEY="$OPENVLA_ROS_API_KEY" vllm serve ')
    for flag in ('--chat-template', '--limit-mm-per-prompt \'{"image":1}\'', '--max-num-seqs 1',
                 '--max-model-len 512', '--host 127.0.0.1', '--served-model-name',
                 'openvla-config-', '--enable-per-request-metrics'):
        assert flag in line, flag
    assert 'secret-value-123' not in line


def test_server_command_without_console_script(test_model):
    argv = serve.server_command(str(test_model), console=False, dtype='float32',
                                gpu_memory_utilization=0.3, enforce_eager=True)
    assert argv[1:5] == ['-m', 'vllm.entrypoints.openai.api_server', '--model', str(test_model)]
    assert '--enforce-eager' in argv and argv[argv.index('--dtype') + 1] == 'float32'
    assert not any('api-key' in arg for arg in argv)


def test_api_key_goes_through_the_environment(monkeypatch):
    monkeypatch.setenv('MY_KEY', 'k-123')
    assert serve.server_environment('MY_KEY', 'gpu')['VLLM_API_KEY'] == 'k-123'
    monkeypatch.delenv('MY_KEY')
    monkeypatch.delenv('VLLM_API_KEY', raising=False)
    env = serve.server_environment('MY_KEY', 'cpu')
    assert 'VLLM_API_KEY' not in env and env['VLLM_CPU_KVCACHE_SPACE']


def test_port_in_use_is_a_one_line_error(test_model):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli('serve', '--model', str(test_model), '--port', str(port))
    assert done.returncode == 2
    assert f'port {port} on 127.0.0.1 is in use' in done.stderr


# A stand-in for the vLLM server: /health answers 200; SIGTERM ends it with code 7.
_FAKE_SERVER = '''
import http.server, signal, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a):
        pass
signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
'''

_SUPERVISOR = '''
import os, sys
from openvla_ros.tools.serve import supervise
argv = [sys.executable, '-c', sys.argv[1], sys.argv[2]]
url = 'http://127.0.0.1:' + sys.argv[2]
sys.exit(supervise(argv, dict(os.environ), None, url, url, 60, 'stand-in'))
'''


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def test_supervision_forwards_sigterm_and_returns_the_server_code():
    port = str(free_port())
    launcher = subprocess.Popen([sys.executable, '-c', _SUPERVISOR, _FAKE_SERVER, port],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = launcher.stdout.readline()
    assert line.strip() == f'[serve] OpenVLA server ready at http://127.0.0.1:{port} (stand-in)'
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(30) == 7


def test_server_dying_at_start_up_is_one_line():
    dying = 'import sys; print("ValueError: no such model"); sys.exit(3)'
    started = time.monotonic()
    done = subprocess.run([sys.executable, '-c', _SUPERVISOR, dying, str(free_port())],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 3 and time.monotonic() - started < 30
    errors = [line for line in done.stderr.splitlines() if line.startswith('[serve] error')]
    assert errors == ['[serve] error: the vLLM server exited with code 3 during start-up'], \
        done.stderr


@pytest.mark.parametrize('host,loopback', [('127.0.0.1', True), ('::1', True),
                                           ('localhost', True), ('0.0.0.0', False)])
def test_loopback(host, loopback):
    assert serve.is_loopback(host) is loopback
