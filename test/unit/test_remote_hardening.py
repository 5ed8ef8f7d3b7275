# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The remote client against hostile or broken servers: keys, deadlines, floods, log forgery.

The servers here are a few lines of raw sockets on loopback, so each can misbehave exactly
(trickle bytes, announce 400 MiB, nest JSON, inject control characters).
"""

import json
import socket
import threading
import time
import traceback

import pytest

from openvla_ros.core import errors, remote, transport
from openvla_ros.core.security import (ApiKeyError, InsecureTransportError, is_loopback,
                                       printable, read_api_key, require_secure_transport)

KEY_ENV = 'OPENVLA_ROS_TEST_HARDENING_KEY'
SECRET = 'hardening-secret-0123456789'
UNNORM_KEY = 'bridge_orig'


class ScriptedServer:
    """Accept connections on loopback and hand each request to ``script(conn, request)``."""

    def __init__(self, script):
        self.script = script
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(8)
        self.url = f'http://127.0.0.1:{self.listener.getsockname()[1]}'
        self.requests = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(20)
            try:
                while not self.stop.is_set():
                    data = b''
                    while b'\r\n\r\n' not in data:
                        more = conn.recv(65536)
                        if not more:
                            return
                        data += more
                    head, _, body = data.partition(b'\r\n\r\n')
                    lines = head.decode('latin-1').split('\r\n')
                    headers = dict(line.split(': ', 1) for line in lines[1:])
                    length = int(headers.get('Content-Length', 0))
                    while len(body) < length:
                        body += conn.recv(65536)
                    request = {'line': lines[0], 'path': lines[0].split()[1],
                               'headers': headers, 'body': body}
                    self.requests.append(request)
                    if self.script(conn, request) == 'close':
                        return
            except OSError:
                return

    def close(self):
        self.stop.set()
        self.listener.close()


def reply(conn, status, payload, extra=''):
    """Send one JSON reply (``payload`` bytes are sent as they are)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    conn.sendall(f'HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n'
                 f'Content-Length: {len(body)}\r\n{extra}\r\n'.encode() + body)


@pytest.fixture
def server():
    servers = []

    def start(script):
        servers.append(ScriptedServer(script))
        return servers[-1]
    yield start
    for one in servers:
        one.close()


# --- the API key -----------------------------------------------------------------------------

def test_one_trailing_newline_is_stripped_and_the_key_is_sent(server, monkeypatch):
    """A key mounted from a file (ending in a newline) works: the newline is not sent."""
    def script(conn, request):
        reply(conn, 200, {'authorization': request['headers'].get('Authorization')})
    fake = server(script)
    monkeypatch.setenv(KEY_ENV, SECRET + '\n')
    status, body, _ = transport.HttpTransport(fake.url, KEY_ENV).request('GET', '/x', timeout_s=5)
    assert status == 200
    assert json.loads(body) == {'authorization': f'Bearer {SECRET}'}
    monkeypatch.setenv(KEY_ENV, SECRET + '\r\n')
    assert read_api_key(KEY_ENV) == SECRET


@pytest.mark.parametrize('value', [
    SECRET + '\nX-Injected: 1', 'line1\r\n' + SECRET, SECRET + '\n\n', SECRET + '\x1b[0m',
    SECRET + '\u00e9\u20ac', '\u202e' + SECRET, '\n'])
def test_bad_keys_are_refused_naming_the_variable_not_the_value(server, monkeypatch, value):
    fake = server(lambda conn, request: reply(conn, 200, {}))
    monkeypatch.setenv(KEY_ENV, value)
    with pytest.raises(ApiKeyError) as direct:
        read_api_key(KEY_ENV)
    with pytest.raises(remote.RemoteAuthError) as caught:
        transport.HttpTransport(fake.url, KEY_ENV)
    for error in (direct.value, caught.value):
        text = ''.join(traceback.format_exception(error))
        assert KEY_ENV in str(error)
        assert SECRET not in text and 'line1' not in text
    assert fake.requests == []   # refused before anything was sent


def test_a_bad_key_set_after_construction_is_refused_before_sending(server, monkeypatch):
    fake = server(lambda conn, request: reply(conn, 200, {}))
    http = transport.HttpTransport(fake.url, KEY_ENV)
    monkeypatch.setenv(KEY_ENV, SECRET + '\nX-Injected: 1')
    with pytest.raises(remote.RemoteAuthError) as caught:
        http.request('GET', '/x', timeout_s=5)
    assert SECRET not in ''.join(traceback.format_exception(caught.value))
    assert fake.requests == []


def test_no_exception_text_carries_a_header_value(server, monkeypatch):
    """Whatever http.client raises about a header, the key does not reach the message."""
    import http.client
    fake = server(lambda conn, request: reply(conn, 200, {}))
    monkeypatch.setenv(KEY_ENV, SECRET)

    def leaky_putheader(self, header, *values):
        raise ValueError(f'Invalid header value {values!r} for {header}')
    monkeypatch.setattr(http.client.HTTPConnection, 'putheader', leaky_putheader)
    with pytest.raises(errors.RemoteError) as caught:
        transport.HttpTransport(fake.url, KEY_ENV).request('GET', '/x', timeout_s=5)
    assert SECRET not in ''.join(traceback.format_exception(caught.value))

    def leaky_oserror(self, header, *values):
        raise OSError(f'cannot send {values!r}')
    monkeypatch.setattr(http.client.HTTPConnection, 'putheader', leaky_oserror)
    with pytest.raises(remote.EngineUnavailableError) as caught:
        transport.HttpTransport(fake.url, KEY_ENV).request('GET', '/x', timeout_s=5)
    assert SECRET not in ''.join(traceback.format_exception(caught.value))


@pytest.mark.parametrize('url', ['http://192.0.2.10:8000', 'http://robot-server.lan:8000',
                                 'http://[2001:db8::1]:8000', 'http://10.0.0.5'])
def test_a_key_over_plain_http_to_another_machine_is_refused(monkeypatch, url):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with pytest.raises(remote.RemoteAuthError, match='allow_insecure_http') as caught:
        transport.HttpTransport(url, KEY_ENV)
    assert 'https://' in str(caught.value) and SECRET not in str(caught.value)
    # The explicit opt-in, or no key at all, or https: accepted (no connection is made here).
    transport.HttpTransport(url, KEY_ENV, allow_insecure_http=True)
    transport.HttpTransport(url.replace('http://', 'https://'), KEY_ENV)
    monkeypatch.delenv(KEY_ENV)
    transport.HttpTransport(url, KEY_ENV)


@pytest.mark.parametrize('host', ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'])
def test_loopback_needs_no_tls(host):
    assert is_loopback(host)
    require_secure_transport('http', host, True, False, KEY_ENV)


def test_secure_transport_rules():
    with pytest.raises(InsecureTransportError):
        require_secure_transport('http', '192.168.1.2', True, False, KEY_ENV)
    assert not is_loopback('localhost.example.com') and not is_loopback('0.0.0.0')


def test_engine_config_has_the_ca_file_and_insecure_opt_in(tmp_path):
    from openvla_ros.core.engine import EngineConfig
    ca = tmp_path / 'ca.pem'
    ca.write_text('not read here')
    config = EngineConfig(url='https://server:8000', ca_file=str(ca))
    assert config.ca_file == str(ca) and config.allow_insecure_http is False
    with pytest.raises(ValueError, match='not a file'):
        EngineConfig(url='https://server:8000', ca_file=str(tmp_path / 'missing.pem'))
    with pytest.raises(ValueError, match='https'):
        EngineConfig(url='http://server:8000', ca_file=str(ca))
    assert EngineConfig(url='http://server:8000', allow_insecure_http=True).allow_insecure_http


def test_a_wrong_ca_file_is_a_clear_error(tmp_path):
    bad = tmp_path / 'ca.pem'
    bad.write_text('-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n')
    with pytest.raises(ValueError, match='CA file'):
        transport.HttpTransport('https://127.0.0.1:1', KEY_ENV, ca_file=str(bad))


# --- deadline ---------------------------------------------------------------------------------

def trickle(conn, data, period=0.5, seconds=8.0):
    """Send ``data`` one byte every ``period`` s, for at most ``seconds``."""
    started = time.monotonic()
    for byte in data:
        if time.monotonic() - started > seconds:
            return 'close'
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            return 'close'
        time.sleep(period)
    return 'close'


@pytest.mark.parametrize('where', ['headers', 'body'])
def test_a_trickling_server_cannot_defeat_the_deadline(server, where):
    body = json.dumps({'pad': 'x' * 100}).encode()
    head = (f'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
            f'Content-Length: {len(body)}\r\n\r\n').encode()

    def script(conn, request):
        if where == 'headers':
            return trickle(conn, head + body)
        conn.sendall(head)
        return trickle(conn, body)
    fake = server(script)
    started = time.monotonic()
    with pytest.raises(remote.EngineUnavailableError, match='deadline of 1 s') as caught:
        transport.HttpTransport(fake.url, KEY_ENV).request('GET', '/x', timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert caught.value.retryable
    # A hang guard, not a speed claim: the trickle would last 8 s without the deadline.
    assert elapsed < 4.0, elapsed


# --- floods -----------------------------------------------------------------------------------

def test_an_announced_huge_reply_is_refused_before_reading(server):
    def script(conn, request):
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                     b'Content-Length: 419430400\r\n\r\n{"a": "')
        time.sleep(3)
        return 'close'
    fake = server(script)
    started = time.monotonic()
    with pytest.raises(remote.RemoteMismatchError, match='over the limit') as caught:
        transport.HttpTransport(fake.url, KEY_ENV).request('GET', '/x', timeout_s=10.0)
    assert '419430400' in str(caught.value)
    assert time.monotonic() - started < 2.5   # refused on the header, not after the body


def test_an_unannounced_flood_is_cut_at_the_cap(server):
    chunk = b'x' * 65536

    def script(conn, request):
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                     b'Transfer-Encoding: chunked\r\n\r\n')
        try:
            for _ in range(64):   # 4 MiB, four times the cap
                conn.sendall(b'10000\r\n' + chunk + b'\r\n')
            conn.sendall(b'0\r\n\r\n')
        except OSError:
            pass
        return 'close'
    fake = server(script)
    with pytest.raises(remote.RemoteMismatchError, match='over the limit'):
        transport.HttpTransport(fake.url, KEY_ENV).request('GET', '/x', timeout_s=10.0)


def test_a_reply_under_the_cap_is_read_whole(server):
    payload = {'pad': 'y' * (transport.MAX_REPLY_BYTES // 2)}
    fake = server(lambda conn, request: reply(conn, 200, payload))
    http = transport.HttpTransport(fake.url, KEY_ENV)
    for _ in range(2):   # and the keep-alive connection takes the next request
        status, body, _ = http.request('GET', '/x', timeout_s=10.0)
        assert status == 200 and json.loads(body) == payload
    assert len(fake.requests) == 2


def health_then(models_reply):
    """Return a script answering /health 200 and /v1/models with ``models_reply``."""
    def script(conn, request):
        if request['path'] == '/health':
            return reply(conn, 200, b'')
        status, payload = models_reply
        return reply(conn, status, payload)
    return script


def test_deeply_nested_json_is_a_remote_error(server, test_model):
    fake = server(health_then((200, b'[' * 200_000 + b']' * 200_000)))
    with pytest.raises(remote.RemoteMismatchError, match='nested too deeply'):
        remote.RemotePolicy(str(test_model), UNNORM_KEY, url=fake.url, api_key_env=KEY_ENV,
                            timeout_s=10)


# --- server text in messages -----------------------------------------------------------------

FORGED = 'oops\x1b[2J\x1b[31m\r\n[ERROR] [policy_node]: forged line\u202e\x07'


@pytest.mark.parametrize('status, payload', [
    (400, {'error': {'message': FORGED}}),
    (422, {'detail': FORGED}),
    (500, FORGED.encode()),
    (200, FORGED.encode()),
])
def test_server_text_in_errors_has_no_control_characters(server, test_model, status, payload):
    fake = server(health_then((status, payload)))
    with pytest.raises(errors.RemoteError) as caught:
        remote.RemotePolicy(str(test_model), UNNORM_KEY, url=fake.url, api_key_env=KEY_ENV,
                            timeout_s=10)
    text = str(caught.value)
    assert 'forged line' in text   # the server's reason is still shown ...
    assert not any(ch in text for ch in '\x1b\r\n\u202e\x07'), repr(text)   # ... defanged


def test_printable_keeps_ordinary_text():
    assert printable('café: 3 blocks (ok)') == 'café: 3 blocks (ok)'
    assert printable('a\tb\nc\x1bd\u200be') == 'a?b?c?d?e'
    assert printable('x' * 50, 10) == 'x' * 10 + '...'
