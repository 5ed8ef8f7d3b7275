# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros serve`` protection without vLLM: the key middleware, bind and TLS rules, env.

The middleware is driven through the ASGI protocol itself (scope, receive, send), as uvicorn
drives it inside vLLM; ``test/engine/test_serve_security.py`` checks it in the real server.
"""

import asyncio
import os
from pathlib import Path
import subprocess
import sys

import pytest

from openvla_ros.tools import serve
from openvla_ros.tools.serve_auth import middleware_path, RequireApiKey

ROOT = Path(__file__).resolve().parents[2]
KEY = 'middleware-key-42'


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, '-m', 'openvla_ros.cli', *args], capture_output=True,
                          text=True, timeout=120,
                          env=dict(env or os.environ, PYTHONPATH=str(ROOT)))


def asgi(middleware, scope):
    """Run one request through ``middleware``; return (reached the app, messages sent)."""
    reached = []
    sent = []

    async def app(scope, receive, send):
        reached.append(scope['path'])
        await send({'type': 'http.response.start', 'status': 200, 'headers': []})

    async def receive():
        return {'type': 'http.request', 'body': b''}

    async def send(message):
        sent.append(message)
    wrapped = RequireApiKey(app, key=KEY) if middleware is None else middleware(app)
    asyncio.run(wrapped(scope, receive, send))
    return bool(reached), sent


def http_scope(path, method='POST', key=None, scheme='Bearer', root_path=''):
    headers = [(b'host', b'server'), (b'content-type', b'application/json')]
    if key is not None:
        headers.append((b'authorization', f'{scheme} {key}'.encode('latin-1')))
    return {'type': 'http', 'method': method, 'path': path, 'root_path': root_path,
            'headers': headers}


@pytest.mark.parametrize('path', ['/invocations', '/tokenize', '/detokenize', '/metrics',
                                  '/load', '/version', '/v1/chat/completions', '/ping',
                                  '/server_info', '/health/', '//health', '/HEALTH', '/'])
@pytest.mark.parametrize('method', ['GET', 'POST'])
def test_every_path_but_health_needs_the_key(path, method):
    for key in (None, 'wrong', KEY + ' ', KEY.upper()):
        reached, sent = asgi(None, http_scope(path, method, key))
        assert not reached, (path, method, key)
        assert sent[0]['status'] == 401
    reached, _ = asgi(None, http_scope(path, method, KEY))
    assert reached
    reached, _ = asgi(None, http_scope(path, method, KEY, scheme='bearer'))
    assert reached   # the scheme is case-insensitive (RFC 7235)
    reached, _ = asgi(None, http_scope(path, method, KEY, scheme='Basic'))
    assert not reached


def test_health_is_open_for_get_and_head_only():
    for method in ('GET', 'HEAD'):
        assert asgi(None, http_scope('/health', method))[0]
    assert not asgi(None, http_scope('/health', 'POST'))[0]
    # Behind a path prefix (vLLM's --root-path), the same rule after the prefix.
    assert asgi(None, http_scope('/api/health', 'GET', root_path='/api'))[0]
    assert not asgi(None, http_scope('/api/tokenize', 'POST', root_path='/api'))[0]


def test_websockets_need_the_key_and_lifespan_passes():
    scope = {'type': 'websocket', 'path': '/v1/realtime', 'headers': []}
    reached, sent = asgi(None, scope)
    assert not reached and sent == [{'type': 'websocket.close', 'code': 1008}]
    scope['headers'] = [(b'authorization', f'Bearer {KEY}'.encode())]
    assert asgi(None, scope)[0]
    assert asgi(None, {'type': 'lifespan', 'path': ''})[0]


def test_the_middleware_reads_vllms_variable_and_refuses_to_run_open(monkeypatch):
    monkeypatch.setenv('VLLM_API_KEY', KEY)
    assert asgi(RequireApiKey, http_scope('/tokenize', key=KEY))[0]
    assert not asgi(RequireApiKey, http_scope('/tokenize', key='other'))[0]
    monkeypatch.delenv('VLLM_API_KEY')
    with pytest.raises(RuntimeError, match='VLLM_API_KEY'):
        RequireApiKey(lambda *a: None)


def test_the_middleware_is_importable_by_its_path_alone():
    """vLLM imports ``--middleware`` by name in the server process: check it the same way."""
    module, name = middleware_path().rsplit('.', 1)
    code = (f'import importlib, inspect; cls = getattr(importlib.import_module({module!r}), '
            f'{name!r}); assert inspect.isclass(cls); print("ok")')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert done.stdout.strip() == 'ok', done.stderr


def test_server_command_adds_the_middleware_and_tls(test_model):
    argv = serve.server_command(str(test_model), console=False, guard_all_paths=True,
                                ssl_certfile='/c.pem', ssl_keyfile='/k.pem')
    assert argv[argv.index('--middleware') + 1] == 'openvla_ros.tools.serve_auth.RequireApiKey'
    assert argv[argv.index('--ssl-certfile') + 1] == '/c.pem'
    assert argv[argv.index('--ssl-keyfile') + 1] == '/k.pem'
    plain = serve.server_command(str(test_model), console=False)
    assert '--middleware' not in plain and '--ssl-certfile' not in plain


def test_non_loopback_bind_without_key_refuses(test_model):
    env = dict(os.environ)
    env.pop('OPENVLA_ROS_API_KEY', None)
    done = run_cli('serve', '--model', str(test_model), '--host', '0.0.0.0', '--port', '1',
                   env=env)
    assert done.returncode == 2, done.stderr
    assert 'refusing to bind 0.0.0.0 without an API key' in done.stderr
    assert '--insecure-no-api-key' in done.stderr and 'Traceback' not in done.stderr


def test_half_tls_and_bad_keys_are_refused(test_model, tmp_path):
    env = dict(os.environ, OPENVLA_ROS_API_KEY='secret-x\n')
    done = run_cli('serve', '--model', str(test_model), '--ssl-certfile', str(tmp_path / 'c'),
                   env=env)
    assert done.returncode == 2 and 'both --ssl-certfile and --ssl-keyfile' in done.stderr
    env['OPENVLA_ROS_API_KEY'] = 'secret-x\nsecond-line'
    done = run_cli('serve', '--model', str(test_model), env=env)
    assert done.returncode == 2 and 'OPENVLA_ROS_API_KEY' in done.stderr
    assert 'secret-x' not in done.stderr + done.stdout


def test_dev_mode_environment_is_dropped_unless_asked(monkeypatch):
    monkeypatch.setenv('VLLM_SERVER_DEV_MODE', '1')
    monkeypatch.setenv('VLLM_DEBUG_LOG_API_SERVER_RESPONSE', 'true')
    monkeypatch.setenv('VLLM_API_KEY', 'stale-outside-key')
    monkeypatch.setenv('MY_KEY', 'k-123\n')
    env = serve.server_environment('MY_KEY', 'gpu')
    assert 'VLLM_SERVER_DEV_MODE' not in env and 'VLLM_DEBUG_LOG_API_SERVER_RESPONSE' not in env
    assert env['VLLM_API_KEY'] == 'k-123'   # the validated key, its newline stripped
    asked = serve.server_environment('MY_KEY', 'gpu', dev_env=True)
    assert asked['VLLM_SERVER_DEV_MODE'] == '1'
    monkeypatch.delenv('MY_KEY')
    assert 'VLLM_API_KEY' not in serve.server_environment('MY_KEY', 'gpu')
