# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""HTTP(S) to an OpenVLA server with one deadline per request and bounded replies.

The standard library's ``http.client`` (``https`` through ``ssl``): one keep-alive connection,
a watchdog that ends a request when its overall deadline passes (a socket timeout alone is
re-armed by every byte), replies capped in size, and every failure turned into the project's
typed remote errors with their fix.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import os
from typing import Any, Mapping
import urllib.parse

from openvla_ros.core.errors import (EngineUnavailableError, RemoteAuthError,
                                     RemoteEndpointMissingError, RemoteError, RemoteMismatchError,
                                     RemoteRequestError)
from openvla_ros.core.security import (ApiKeyError, InsecureTransportError, printable,
                                       read_api_key, redact, require_secure_transport)

#: Characters of a reply kept in an error message: enough to read the server's reason.
ERROR_BODY_CHARS = 300
#: Largest reply read from a server: a chat completion with its prompt ids is a few KB, a
#: model list or an error page less; anything near this is not an OpenVLA server.
MAX_REPLY_BYTES = 1 << 20


class _Watchdog:
    """One thread that runs a callback when the armed deadline passes (one deadline at a time).

    Long-lived, so arming it costs a notify (under a microsecond) instead of a new thread per
    request (~0.3-0.9 ms measured for ``threading.Timer`` on a loaded 2-core machine).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._task: tuple[float, Any] | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def arm(self, deadline: float, callback: Any) -> None:
        """Run ``callback`` at ``deadline`` (``time.monotonic``) unless disarmed before."""
        with self._cond:
            self._task = (deadline, callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name='openvla-ros-deadline',
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> None:
        """Cancel the armed callback (returns after it ran, if it was running)."""
        with self._cond:
            self._task = None

    def stop(self) -> None:
        """End the thread."""
        with self._cond:
            self._stopped = True
            self._task = None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._task is None:
                    self._cond.wait()
                    continue
                deadline, callback = self._task
                left = deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._task = None
                callback()


class HttpTransport:
    """One keep-alive HTTP(S) connection with one deadline per whole request (thread-safe).

    The deadline covers connecting, sending, the status line, the headers and the body: a
    watchdog shuts the socket down when it passes, because a socket timeout alone is re-armed
    by every byte and a server trickling its reply would hold the caller for ever. Replies are
    capped at :data:`MAX_REPLY_BYTES` (``Content-Length`` is checked before any body byte is
    read). The API key is validated when the client is built and before every request, and
    no exception leaving this class carries a header value.
    """

    def __init__(self, url: str, api_key_env: str, ca_file: str | None = None,
                 allow_insecure_http: bool = False):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise ValueError(f'url {url!r} must look like http://HOST:PORT or https://HOST:PORT')
        if parsed.username or parsed.password:
            raise ValueError('put the API key in the environment variable '
                             f'{api_key_env}, not in the url')
        self.scheme = parsed.scheme
        self.host = parsed.hostname
        self.port = parsed.port or (443 if parsed.scheme == 'https' else 80)
        self.prefix = parsed.path.rstrip('/')
        host = f'[{self.host}]' if ':' in self.host else self.host
        #: The url as shown in messages and reports.
        self.url = f'{self.scheme}://{host}:{self.port}{self.prefix}'
        self.api_key_env = api_key_env
        self.allow_insecure_http = bool(allow_insecure_http)
        # Validated now, so a bad key fails configure with a message naming the variable.
        self._key()
        self._ssl = None
        if ca_file and self.scheme != 'https':
            raise ValueError(f'ca_file is only used with an https:// url, got {self.url}')
        if self.scheme == 'https':
            try:
                self._ssl = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as error:
                raise ValueError(
                    f'cannot read the CA file {ca_file!r} ({type(error).__name__}: '
                    f'{printable(error)}): give the PEM file of the CA that signed the '
                    'server certificate') from None
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._watchdog = _Watchdog()

    def _key(self) -> str | None:
        """Return the validated API key (or None), refusing clear text over the network."""
        try:
            key = read_api_key(self.api_key_env)
            require_secure_transport(self.scheme, self.host, key is not None,
                                     self.allow_insecure_http, self.api_key_env)
        except ApiKeyError as error:
            raise RemoteAuthError(str(error)) from None
        except InsecureTransportError as error:
            raise RemoteAuthError(str(error)) from None
        return key

    def _headers(self, body: bytes | None, request_id: str | None) -> dict[str, str]:
        headers = {'Accept': 'application/json', 'User-Agent': 'openvla-ros'}
        if body is not None:
            headers['Content-Type'] = 'application/json'
        if request_id:
            headers['X-Request-Id'] = request_id
        # Read on every request: a key rotated in the environment is picked up; never stored.
        key = self._key()
        if key:
            headers['Authorization'] = f'Bearer {key}'
        return headers

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._ssl is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self._ssl)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def stop(self) -> None:
        """Close the connection and end the deadline thread (the client is done)."""
        self.close()
        self._watchdog.stop()

    def request(self, method: str, path: str, payload: Any = None, *, timeout_s: float,
                request_id: str | None = None) -> tuple[int, bytes, int]:
        """Return ``(status, body, bytes sent)``; raise EngineUnavailableError when unreachable.

        Nothing is returned after the deadline: a reply that comes later is dropped with its
        connection.
        """
        body = None if payload is None else json.dumps(payload).encode('utf-8')
        deadline = time.monotonic() + timeout_s
        with self._lock:
            for attempt in (0, 1):
                reused = self._connection is not None
                expired = threading.Event()
                self._watchdog.arm(deadline, lambda: self._expire(expired))
                try:
                    return self._exchange(method, path, body, deadline, request_id)
                except RemoteError:
                    self.close()
                    raise
                except Exception as error:  # noqa: BLE001 - every failure is mapped below
                    self.close()
                    if expired.is_set() or isinstance(error, (socket.timeout, TimeoutError)):
                        raise self._unavailable(
                            f'no complete reply within the deadline of {timeout_s:g} s',
                            timeout=True) from None
                    retry = (reused and attempt == 0 and time.monotonic() < deadline
                             and isinstance(error, (http.client.RemoteDisconnected,
                                                    ConnectionResetError, BrokenPipeError)))
                    if retry:
                        # A keep-alive connection the server closed while idle fails on first
                        # use: one new connection, once; a fresh one failing is a real failure.
                        continue
                    raise self._failure(error) from None
                finally:
                    self._watchdog.disarm()
            raise AssertionError('unreachable')

    def _expire(self, expired: threading.Event) -> None:
        """Cut the connection of a request whose deadline passed (runs on the watchdog)."""
        expired.set()
        connection = self._connection
        sock = getattr(connection, 'sock', None)
        if sock is not None:
            try:
                # The plain socket's shutdown, also for TLS: the reader blocked in recv wakes
                # with EOF, without touching the TLS object it is using.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def _failure(self, error: BaseException) -> RemoteError:
        """Return the client's exception for a transport failure, without any header value."""
        if isinstance(error, ssl.SSLCertVerificationError):
            return RemoteAuthError(
                f'the TLS certificate of {self.url} is not trusted '
                f'({printable(error.verify_message or error.reason)}): pass the PEM file of '
                'the CA that signed it (engine.ca_file / --ca-file) or fix the url')
        if isinstance(error, (http.client.RemoteDisconnected, ConnectionResetError,
                              BrokenPipeError)):
            return self._unavailable(f'the connection was closed ({type(error).__name__})')
        if isinstance(error, ConnectionRefusedError):
            return self._unavailable('connection refused')
        if isinstance(error, socket.gaierror):
            return self._unavailable(f'cannot resolve {self.host!r} ({printable(error)})')
        if isinstance(error, (OSError, http.client.HTTPException)):
            text = redact(printable(error, ERROR_BODY_CHARS), [self._raw_key()])
            return self._unavailable(f'{type(error).__name__}: {text}')
        # Anything else (a ValueError from http.client about a header, say) may quote a header
        # value, the key included: name its type only.
        return RemoteRequestError(
            f'the request to {self.url} failed before it was sent ({type(error).__name__}; '
            'details withheld as they may quote a header): check the API key variable '
            f'{self.api_key_env} and the url')

    def _raw_key(self) -> str | None:
        return os.environ.get(self.api_key_env)

    def _exchange(self, method: str, path: str, body: bytes | None, deadline: float,
                  request_id: str | None) -> tuple[int, bytes, int]:
        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout('deadline passed')
            return left
        headers = self._headers(body, request_id)
        if self._connection is None:
            self._connection = self._connect(remaining())
        connection = self._connection
        connection.timeout = remaining()
        if connection.sock is not None:
            connection.sock.settimeout(remaining())
        connection.request(method, self.prefix + path, body=body, headers=headers)
        sent = len(body or b'') + sum(len(k) + len(v) + 4 for k, v in headers.items())
        connection.sock.settimeout(remaining())
        response = connection.getresponse()
        announced = response.getheader('Content-Length')
        if announced is not None:
            try:
                size = int(announced)
            except ValueError:
                size = -1
            if size < 0 or size > MAX_REPLY_BYTES:
                raise RemoteMismatchError(
                    f'{self.url}{path} announced a reply of {printable(announced, 40)} bytes, '
                    f'over the limit of {MAX_REPLY_BYTES} (real replies are a few KB): the url '
                    'is not an OpenVLA server started with `openvla-ros serve`')
        chunks = []
        received = 0
        while True:
            if connection.sock is not None:
                connection.sock.settimeout(remaining())
            chunk = response.read1(1 << 16)
            if not chunk:
                break
            received += len(chunk)
            if received > MAX_REPLY_BYTES:
                raise RemoteMismatchError(
                    f'{self.url}{path} sent a reply over the limit of {MAX_REPLY_BYTES} bytes '
                    '(real replies are a few KB): the url is not an OpenVLA server started '
                    'with `openvla-ros serve`')
            chunks.append(chunk)
        # read1 stops at the announced length without marking the reply done (read() would):
        # close it so the keep-alive connection takes the next request.
        response.close()
        remaining()
        if response.will_close:
            self.close()
        return response.status, b''.join(chunks), sent

    def _unavailable(self, what: str, timeout: bool = False) -> EngineUnavailableError:
        fix = ('the server is busy or too slow for timeout_s: raise timeout_s, or run fewer '
               'clients per server' if timeout else
               'start it on the server machine with `openvla-ros serve --model MODEL --host '
               'ADDRESS --port PORT`, or fix the url')
        return EngineUnavailableError(f'OpenVLA server {self.url} unavailable: {what}', fix,
                                      parameter='engine.url')


def excerpt(body: bytes) -> str:
    text = body[:4 * ERROR_BODY_CHARS].decode('utf-8', errors='replace').strip()
    return printable(' '.join(text.split()), ERROR_BODY_CHARS) or 'empty body'


def client_error(status: int, reply: Any, body: bytes, url: str, path: str) -> RemoteError:
    """Return the exception for an HTTP 4xx reply (other than 401/403/408/429)."""
    message = ''
    if isinstance(reply, Mapping):
        error = reply.get('error', reply)
        if isinstance(error, Mapping):
            message = str(error.get('message') or error.get('detail') or '')
        elif isinstance(error, str):
            message = error
        detail = reply.get('detail')
        if not message and detail:
            message = str(detail)
    message = printable(message, ERROR_BODY_CHARS) if message else excerpt(body)
    if status == 404:
        # vLLM answers 404 both for a path it lacks and for a model it does not serve; only its
        # reason tells them apart (a server's text, read once here, where it arrives).
        if 'does not exist' in message:
            return RemoteMismatchError(
                f'{url} does not serve the model this client asked for ({message})', 'the '
                'server was restarted with another model; reconfigure the node', status=status)
        return RemoteEndpointMissingError(
            f'{url}{path} not found (HTTP 404)', 'the url is not a vLLM OpenAI-compatible '
            'server, or its path prefix is wrong; start one with `openvla-ros serve`',
            parameter='engine.url', status=status)
    return RemoteRequestError(f'{url} rejected {path} (HTTP {status}): {message}',
                              status=status)
