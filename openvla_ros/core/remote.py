# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Run OpenVLA on a remote vLLM server: the robot sends images, the server sends token ids.

:class:`RemotePolicy` has the interface of :class:`~openvla_ros.core.engine.VllmPolicy`, so
the node can use either. The robot keeps everything that decides what an action *means* (the
tokenizer that builds the prompt ids, the image resize, the exact
:class:`~openvla_ros.core.decoding.ActionDecoder` and its statistics) and the server only runs
the model through vLLM's OpenAI-compatible API (``openvla-ros serve``). Every reply is checked
against the robot's own prompt ids before its 7 action ids are decoded, so a server with
another template, tokenizer or model is refused instead of moving the robot.

This module imports neither vLLM nor torch (a robot installs the package without the engine):
HTTP is the standard library's ``http.client`` (``https`` through ``ssl``), the tokenizer is
the ``tokenizers`` library reading the checkpoint's ``tokenizer.json``, images are Pillow's.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import math
import os
from pathlib import Path
import socket
import ssl
import threading
import time
from typing import Any, Mapping, Sequence
import urllib.parse
import uuid

from openvla_ros.core.decoding import ActionDecoder, resolve_hub_config
from openvla_ros.core.engine import (check_image_format, check_jpeg_quality, DEFAULT_API_KEY_ENV,
                                     IMAGE_FORMATS, resolve_model)
from openvla_ros.core.errors import OpenVlaError
from openvla_ros.core.images import encode_compressed
from openvla_ros.core.policy import EngineReport, Prediction, REMOTE, RemoteReport
from openvla_ros.core.preprocessing import ImagePreparation, prepare, processor_resize
from openvla_ros.core.prompt import (build_prompt, GENERATED_TOKENS, IMAGE_TOKENS,
                                     prompt_token_ids, SPACE_TOKEN_ID)
from openvla_ros.core.security import (ApiKeyError, InsecureTransportError, printable,
                                       read_api_key, redact, require_secure_transport)

__all__ = [
    'CONFIG_ALIAS_PREFIX',
    'DEFAULT_API_KEY_ENV',
    'EngineUnavailableError',
    'IMAGE_FORMATS',
    'LocalTokenizer',
    'NO_TEMPLATE_FIX',
    'RemoteAuthError',
    'RemoteError',
    'RemoteMismatchError',
    'RemotePolicy',
    'RemoteRequestError',
    'check_reply',
    'config_fingerprint',
    'encode_image',
]

#: ``openvla-ros serve`` also serves the model under this prefix + the config fingerprint, so a
#: client can tell that the server runs the checkpoint whose config.json it holds.
CONFIG_ALIAS_PREFIX = 'openvla-config-'
#: The fix for a server whose chat template does not render OpenVLA's prompt.
NO_TEMPLATE_FIX = ('server has no OpenVLA chat template: start it with `openvla-ros serve` or '
                   'pass --chat-template <path printed by openvla-ros serve --print-template>')
#: Probe texts tokenized on both sides at start-up: prompt-like text, digits, punctuation and
#: non-ASCII characters, where two tokenizers of different checkpoints disagree first.
TOKENIZER_PROBES = (
    'In: What action should the robot take to put the spoon on the towel?\nOut:',
    'Pick up the 3 red blocks, then stack them (carefully!) on the café table.',
)
# Bytes of a reply kept in an error message: enough to read the server's reason.
_ERROR_BODY_CHARS = 300
#: Largest reply read from a server: a chat completion with its prompt ids is a few KB, a
#: model list or an error page less; anything near this is not an OpenVLA server.
MAX_REPLY_BYTES = 1 << 20


class RemoteError(OpenVlaError):
    """A remote-engine failure; ``retryable`` says whether the next request may succeed.

    ``engine_dead`` True tells the node to stop commanding (it deactivates itself): the
    failure needs a person (a wrong server, template or key), not another attempt. ``status``
    is the HTTP status the server answered with (None when no reply came or it was not the
    cause).
    """

    retryable = False
    engine_dead = True

    def __init__(self, what: str, fix: str = '', parameter: str | None = None,
                 status: int | None = None) -> None:
        """Keep the fields: what failed, the fix, and the HTTP status when one caused it."""
        super().__init__(what, fix, parameter)
        self.status = status


class EngineUnavailableError(RemoteError, RuntimeError):
    """The server cannot answer now (down, refused, timed out, HTTP 5xx): try again later."""

    retryable = True
    engine_dead = False


class RemoteAuthError(RemoteError, PermissionError):
    """The server refused the API key (HTTP 401/403), or none was set."""


class RemoteMismatchError(RemoteError, ValueError):
    """The server is not serving this model the way OpenVLA needs (template, tokenizer, model)."""


class RemoteEndpointMissingError(RemoteMismatchError):
    """The server has no such path (HTTP 404): not a vLLM server, a wrong prefix, or a proxy."""


class RemoteRequestError(RemoteError, ValueError):
    """The server rejected one request (HTTP 4xx other than auth): this request cannot succeed."""

    engine_dead = False


def config_fingerprint(config_path: str | os.PathLike[str]) -> str:
    """Return 16 hex digits of the SHA-256 of ``config.json``'s canonical JSON.

    Canonical (sorted keys, no white space) so that a copy of the file re-indented on the
    robot still matches the server's.
    """
    with open(config_path, encoding='utf-8') as stream:
        loaded = json.load(stream)
    text = json.dumps(loaded, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def model_files(model: str) -> tuple[str, Path]:
    """Return ``(model, config_path)`` for a checkpoint directory or a hub id in the cache.

    Only the small files are needed (config.json, tokenizer.json, tokenizer_config.json,
    dataset_statistics.json when fine-tuned): the weights stay on the server.
    """
    model, is_local = resolve_model(model)
    config = Path(model) / 'config.json' if is_local else resolve_hub_config(model)
    return model, config


class LocalTokenizer:
    """The checkpoint's tokenizer read from ``tokenizer.json`` with the ``tokenizers`` library.

    Transformers' tokenizer classes may import torch; this reads the same file the server's
    fast tokenizer is built from, and :class:`RemotePolicy` checks at start-up that both give
    the same ids. Callable like a Hugging Face tokenizer for :func:`prompt_token_ids`.
    """

    def __init__(self, directory: str | os.PathLike[str]):
        """Load ``tokenizer.json`` (and the BOS token from ``tokenizer_config.json``)."""
        directory = Path(directory)
        path = directory / 'tokenizer.json'
        if not path.is_file():
            raise FileNotFoundError(
                f'no tokenizer.json in {directory}: copy tokenizer.json and '
                'tokenizer_config.json from the checkpoint the server runs next to its '
                'config.json on the robot')
        from tokenizers import Tokenizer
        self.path = path
        self._tokenizer = Tokenizer.from_file(str(path))
        bos = _special_token(directory, 'bos_token') or '<s>'
        self.bos_token = bos
        self.bos_token_id = self._tokenizer.token_to_id(bos)
        if self.bos_token_id is None:
            raise ValueError(f'{path} has no BOS token {bos!r}; OpenVLA prompts start with BOS')

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Return the token ids of ``text`` (BOS first with ``add_special_tokens``)."""
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def __call__(self, text: str) -> dict[str, list[int]]:
        """Tokenize like a Hugging Face tokenizer: ``{'input_ids': [...]}``, BOS included."""
        return {'input_ids': self.encode(text)}

    def decode(self, ids: list[int]) -> str:
        """Return the text of token ``ids`` (special tokens dropped)."""
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))


def _special_token(directory: Path, name: str) -> str | None:
    for file_name in ('tokenizer_config.json', 'special_tokens_map.json'):
        path = directory / file_name
        if not path.is_file():
            continue
        try:
            value = json.loads(path.read_text(encoding='utf-8')).get(name)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, Mapping):
            value = value.get('content')
        if isinstance(value, str) and value:
            return value
    return None


def encode_image(image: Any, preparation: ImagePreparation | None = None,
                 image_format: str = 'png', jpeg_quality: int = 90) -> tuple[bytes, str]:
    """Return the request's image bytes and MIME type: prepared, resized to 224, encoded.

    PNG is lossless and bit-exact with the in-process engine; JPEG is for thin links and is
    not (its artefacts change pixels, and so possibly the action). Resizing here as the
    processor does makes the server's own resize a no-op, and the request carries 224 x 224
    instead of the camera's size.
    """
    check_image_format(image_format)
    resized = processor_resize(prepare(image, preparation))
    return (encode_compressed(resized, image_format, quality=jpeg_quality),
            f'image/{image_format}')


def check_reply(reply: Any, expected_prompt_ids: Sequence[int], *, image_token_id: int,
                action_token_ids: Sequence[int], url: str = 'the server') -> list[int]:
    """Return the 7 action ids of a chat-completion reply after checking every token id.

    The server's prompt ids must be the robot's own ids with the 256 image tokens right after
    BOS (what the in-process engine runs), and the completion exactly 7 ids from the action
    range. Any difference raises :class:`RemoteMismatchError` naming the cause and the fix: an
    action decoded from another prompt would look plausible and be wrong.
    """
    if not isinstance(reply, Mapping):
        raise RemoteMismatchError(f'{url} replied with {type(reply).__name__}, not a JSON object '
                                  'of a chat completion: is the url an OpenAI-compatible server?')
    choices = reply.get('choices')
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], Mapping):
        raise RemoteMismatchError(f'{url} replied without exactly one choice: not a vLLM chat '
                                  'completion (start the server with `openvla-ros serve`)')
    completion = choices[0].get('token_ids')
    prompt = reply.get('prompt_token_ids')
    if not isinstance(completion, list) or not isinstance(prompt, list):
        raise RemoteMismatchError(
            f'{url} returned no token ids (return_token_ids is ignored): the server is not a '
            'vLLM OpenAI-compatible server recent enough; start it with `openvla-ros serve`')
    expected = [int(t) for t in expected_prompt_ids]
    bos = expected[0]
    if not prompt or prompt[0] != bos:
        raise RemoteMismatchError(
            f'{url} built a prompt that does not start with BOS ({bos}), so OpenVLA\'s image '
            f'tokens were not inserted: {NO_TEMPLATE_FIX}')
    images = prompt[1:1 + IMAGE_TOKENS]
    if len(images) != IMAGE_TOKENS or any(t != image_token_id for t in images):
        found = sum(1 for t in prompt if t == image_token_id)
        raise RemoteMismatchError(
            f'{url} built a prompt without the {IMAGE_TOKENS} image tokens ({image_token_id}) '
            f'right after BOS ({found} found): the image did not reach the model as OpenVLA '
            f'needs; {NO_TEMPLATE_FIX}')
    text = prompt[1 + IMAGE_TOKENS:]
    if not text or text[-1] != SPACE_TOKEN_ID:
        raise RemoteMismatchError(
            f'{url} built a prompt that does not end with {SPACE_TOKEN_ID} (the space after '
            f'"Out:" the model was trained with): {NO_TEMPLATE_FIX}')
    if text != expected[1:]:
        raise RemoteMismatchError(
            f'{url} tokenized the instruction differently from the robot ({len(text)} ids vs '
            f'{len(expected) - 1}, first difference at position '
            f'{_first_difference(text, expected[1:])}): the server runs another tokenizer or '
            'template; serve the checkpoint whose tokenizer files the robot has, with '
            '`openvla-ros serve`')
    if len(completion) != GENERATED_TOKENS:
        raise RemoteMismatchError(
            f'{url} generated {len(completion)} tokens instead of {GENERATED_TOKENS} (finish '
            f'reason {choices[0].get("finish_reason")!r}): it ignored min_tokens/max_tokens; '
            'use a vLLM server started with `openvla-ros serve`')
    allowed = set(int(t) for t in action_token_ids)
    outside = [t for t in completion if not isinstance(t, int) or t not in allowed]
    if outside:
        raise RemoteMismatchError(
            f'{url} generated token ids outside the action range '
            f'{min(allowed)}..{max(allowed)}: {printable(repr(outside[:3]), 120)} (it ignored '
            'allowed_token_ids); '
            'use a vLLM server started with `openvla-ros serve`')
    return [int(t) for t in completion]


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return min(len(a), len(b))


def _server_seconds(metrics: Any) -> dict[str, float]:
    """Return server-side times from vLLM's per-request metrics (``--enable-per-request-metrics``).

    ``server_s`` is queue + time to first token + decode: from the request entering the engine
    to its last token. The API server's own work (JSON, image decode, the processor) is not in
    it and so lands in ``network_s``.
    """
    if not isinstance(metrics, Mapping):
        return {}

    def finite(value: Any) -> bool:
        # JSON integers are unbounded: 10**400 would overflow math.isfinite.
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and -1e12 < value < 1e12)
    parts: list[Any] = [metrics.get(name) for name in
                        ('queue_time_ms', 'time_to_first_token_ms', 'generation_time_ms')]
    found: dict[str, float] = {}
    if all(finite(v) for v in parts):
        found['server_s'] = sum(float(v) for v in parts) / 1000.0
    ttft: Any = metrics.get('time_to_first_token_ms')
    if finite(ttft):
        found['ttft_s'] = float(ttft) / 1000.0
    itl: Any = metrics.get('mean_itl_ms')
    if finite(itl):
        found['tpot_s'] = float(itl) / 1000.0
    return found


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


class _Http:
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
            text = redact(printable(error, _ERROR_BODY_CHARS), [self._raw_key()])
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


class RemotePolicy:
    """OpenVLA on a vLLM server, with the interface of :class:`~.engine.VllmPolicy`.

    Construction checks the server (``/health``, ``/v1/models``, its tokenizer and chat
    template) and raises a precise exception naming the fix; ``predict`` checks every reply.
    Exceptions: :class:`EngineUnavailableError` (``retryable``: server down, refused, timed
    out, HTTP 5xx), :class:`RemoteAuthError` (API key), :class:`RemoteMismatchError` (another
    model, tokenizer or template), :class:`RemoteRequestError` (the server rejected one
    request), :class:`~openvla_ros.core.prompt.InstructionError` (empty or over-long instruction).
    Implements :class:`~openvla_ros.core.policy.ReportingPolicy`.
    """

    #: The robot's own unnormalization statistics (the server only returns token ids).
    decoder: ActionDecoder
    #: How every image is prepared on the robot before it is sent.
    preparation: ImagePreparation

    def __init__(self, model: str, unnorm_key: str | None, *, url: str,
                 api_key_env: str = DEFAULT_API_KEY_ENV, image_format: str = 'png',
                 jpeg_quality: int = 90, timeout_s: float = 30.0,
                 preparation: ImagePreparation | None = None,
                 statistics_file: str | os.PathLike[str] | None = None,
                 ca_file: str | None = None, allow_insecure_http: bool = False):
        """Read the checkpoint's small files here and check the server at ``url``.

        ``model`` is a directory holding config.json and the tokenizer files (no weights), or a
        hub id in the local cache. ``api_key_env`` names the environment variable holding the
        key (sent as a bearer token, never logged). ``image_format`` ``png`` is lossless and
        bit-exact with the in-process engine; ``jpeg`` (at ``jpeg_quality``) is for thin links
        and is not bit-exact. ``timeout_s`` is the deadline of every request. ``ca_file``
        trusts a private CA for https. A key is never sent over plain http to another machine
        unless ``allow_insecure_http`` (the user's explicit opt-in).
        """
        started = time.perf_counter()
        self.startup_s: float | None = None   # set once the server checks passed
        check_image_format(image_format)
        check_jpeg_quality(jpeg_quality)
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s)
                and timeout_s > 0):
            raise ValueError(f'timeout_s must be a positive number of seconds, got {timeout_s!r}')
        if not isinstance(api_key_env, str) or not api_key_env.strip():
            raise ValueError('api_key_env must name an environment variable')
        if preparation is None:
            preparation = ImagePreparation()
        if not isinstance(preparation, ImagePreparation):
            raise TypeError(f'preparation must be an ImagePreparation, got {preparation!r}')
        self.preparation = preparation
        self.image_format = image_format
        self.jpeg_quality = int(jpeg_quality)
        self.timeout_s = float(timeout_s)
        self.api_key_env = api_key_env.strip()
        self.statistics_file = str(statistics_file) if statistics_file else None
        self.model, self.config_path = model_files(model)
        self.decoder = ActionDecoder.from_model_config(self.config_path, unnorm_key,
                                                       self.statistics_file)
        self.tokenizer = LocalTokenizer(self.config_path.parent)
        with open(self.config_path, encoding='utf-8') as stream:
            config = json.load(stream)
        self.image_token_id = int(config.get('image_token_index', 32000))
        self.fingerprint = config_fingerprint(self.config_path)
        self._http = _Http(url, self.api_key_env, ca_file, allow_insecure_http)
        self.url = self._http.url
        self._closed = False
        self._stats_lock = threading.Lock()
        self.requests = 0
        self.request_bytes_total = 0
        self.last_request_bytes = 0
        self.last_request_id: str | None = None
        self.max_model_len = 512
        self.served_model = ''
        self.server_root = ''
        self.identity = ''
        self.template_check = ''
        try:
            self._check_server()
        except BaseException:
            self._http.stop()  # a refused configuration leaves no connection or thread
            raise
        self.startup_s = time.perf_counter() - started

    def __repr__(self) -> str:
        """Show the model and url (never the key)."""
        return f'RemotePolicy(model={self.model!r}, url={self.url!r})'

    # --- start-up checks ---

    def _call(self, method: str, path: str, payload: Any = None,
              request_id: str | None = None) -> tuple[Any, int]:
        """Return the JSON reply and the bytes sent; raise the error an HTTP status means."""
        status, body, sent = self._http.request(method, path, payload, timeout_s=self.timeout_s,
                                                request_id=request_id)
        if status in (401, 403):
            if os.environ.get(self.api_key_env):
                raise RemoteAuthError(
                    f'{self.url} refused the API key in the environment variable '
                    f'{self.api_key_env} (HTTP {status})', 'set it to the key the server was '
                    'started with', parameter='engine.api_key_env', status=status)
            raise RemoteAuthError(
                f'{self.url} requires an API key (HTTP {status})', 'set the environment '
                f'variable {self.api_key_env} to the key the server was started with',
                parameter='engine.api_key_env', status=status)
        if status >= 500 or status in (408, 429):
            raise EngineUnavailableError(
                f'OpenVLA server {self.url} answered {path} with HTTP {status} '
                f'({_excerpt(body)})', 'it may recover: check its log (openvla-ros serve '
                '--verbose) if this persists', status=status)
        try:
            reply = json.loads(body) if body else None
        except RecursionError:
            # Python's parser recurses per nesting level; no real reply nests beyond a few.
            raise RemoteMismatchError(
                f'{self.url}{path} answered JSON nested too deeply to be a vLLM reply: the url '
                'is not an OpenVLA server started with `openvla-ros serve`') from None
        except ValueError:
            reply = None
            if status < 300:
                raise RemoteMismatchError(
                    f'{self.url}{path} did not answer JSON ({_excerpt(body)}): is the url an '
                    'OpenAI-compatible vLLM server (openvla-ros serve)?') from None
        if status >= 400:
            raise _client_error(status, reply, body, self.url, path)
        return reply, sent

    def _check_server(self) -> None:
        status, body, _ = self._http.request('GET', '/health', timeout_s=self.timeout_s)
        if status != 200:
            if status >= 500:
                raise EngineUnavailableError(
                    f'OpenVLA server {self.url} is not healthy (/health: HTTP {status}): it is '
                    'starting or failed; wait for `openvla-ros serve` to print its ready line')
            raise RemoteMismatchError(
                f'{self.url}/health answered HTTP {status}: the url is not a vLLM server '
                '(start one with `openvla-ros serve`, or fix the url)')
        models, _ = self._call('GET', '/v1/models')
        self._choose_model(models)
        self._check_tokenizer()
        self._check_template()

    def _choose_model(self, models: Any) -> None:
        entries = models.get('data') if isinstance(models, Mapping) else None
        if not isinstance(entries, list) or not entries:
            raise RemoteMismatchError(f'{self.url}/v1/models lists no model: not a vLLM server '
                                      'started with `openvla-ros serve`')
        ids = [str(e.get('id')) for e in entries if isinstance(e, Mapping)]
        roots = {str(e.get('id')): str(e.get('root') or '') for e in entries
                 if isinstance(e, Mapping)}
        alias = CONFIG_ALIAS_PREFIX + self.fingerprint
        names = [i for i in ids if not i.startswith(CONFIG_ALIAS_PREFIX)] or ids
        if alias in ids:
            # The server was started on a checkpoint whose config.json equals ours.
            self.identity = 'config.json fingerprint'
            chosen = names[0] if names else alias
        elif any(i.startswith(CONFIG_ALIAS_PREFIX) for i in ids):
            raise RemoteMismatchError(
                f'{self.url} serves {names[0]!r} ({printable(roots.get(names[0], ""), 200)}), '
                'whose config.json '
                f'differs from the robot\'s {self.config_path}: serve this checkpoint, or copy '
                'config.json, tokenizer files and dataset_statistics.json from the served '
                'checkpoint to the robot')
        else:
            # A server not started by openvla-ros serve: compare names (a hub id, or the last
            # path part of a checkpoint directory). The tokenizer and template checks follow.
            named = next((i for i in names if _same_name(self.model, i, roots.get(i, ''))),
                         None)
            if named is None:
                raise RemoteMismatchError(
                    f'{self.url} serves {", ".join(repr(n) for n in names)} (root '
                    f'{roots.get(names[0], "")!r}), not {self.model!r}: start the server on this '
                    'checkpoint with `openvla-ros serve --model ...`, or pass the model the '
                    'server serves')
            chosen = named
            self.identity = 'model name'
        self.served_model = chosen
        self.server_root = printable(roots.get(chosen, ''), _ERROR_BODY_CHARS)
        entry = next(e for e in entries if isinstance(e, Mapping) and str(e.get('id')) == chosen)
        length = entry.get('max_model_len')
        if isinstance(length, int) and length > 0:
            self.max_model_len = length

    def _tokenize(self, payload: dict[str, Any]) -> list[int] | None:
        """Return the server's ``/tokenize`` ids, or None when it has no such endpoint."""
        try:
            reply, _ = self._call('POST', '/tokenize', {'model': self.served_model, **payload})
        except RemoteEndpointMissingError:
            return None
        tokens = reply.get('tokens') if isinstance(reply, Mapping) else None
        if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
            raise RemoteMismatchError(f'{self.url}/tokenize answered without tokens: not a vLLM '
                                      'server started with `openvla-ros serve`')
        return [int(t) for t in tokens]

    def _check_tokenizer(self) -> None:
        for probe in TOKENIZER_PROBES:
            remote = self._tokenize({'prompt': probe, 'add_special_tokens': True})
            if remote is None:
                return  # no /tokenize (e.g. behind a proxy): every reply is still checked
            local = self.tokenizer.encode(probe)
            if remote != local:
                raise RemoteMismatchError(
                    f'the tokenizer of {self.url} ({self.served_model!r}) differs from the '
                    f'robot\'s {self.tokenizer.path} (probe {probe[:30]!r}...: first difference '
                    f'at id {_first_difference(remote, local)}): copy tokenizer.json and '
                    'tokenizer_config.json of the served checkpoint to the robot, or serve the '
                    "robot's checkpoint")

    def _check_template(self) -> None:
        """Render a prompt through the server's chat template, without running the model."""
        instruction = 'put the spoon on the towel'
        expected = self.prompt_ids(instruction)
        message = {'role': 'user',
                   'content': [{'type': 'text', 'text': build_prompt(instruction) + ' '}]}
        try:
            remote = self._tokenize({'messages': [message], 'add_special_tokens': False})
        except RemoteRequestError as error:
            if 'template' in str(error).lower():
                raise RemoteMismatchError(f'{self.url}: {NO_TEMPLATE_FIX} ({error})') from None
            raise
        if remote is None:
            self.template_check = 'no /tokenize: checked on every reply only'
            return
        if remote != expected:
            if not remote or remote[0] != expected[0]:
                cause = f'its prompt does not start with BOS ({expected[0]})'
            elif remote[-1] != SPACE_TOKEN_ID:
                cause = f'its prompt does not end with {SPACE_TOKEN_ID}'
            else:
                cause = ('its prompt differs from the reference at id '
                         f'{_first_difference(remote, expected)}')
            raise RemoteMismatchError(f'{self.url}: {cause}; {NO_TEMPLATE_FIX}')
        self.template_check = 'server template renders the reference prompt ids'

    # --- the policy interface ---

    def prompt_ids(self, instruction: str) -> list[int]:
        """Return the prompt token ids, or raise ``InstructionError`` for unusable text."""
        return prompt_token_ids(self.tokenizer, instruction, max_model_len=self.max_model_len)

    def predict(self, image: Any, instruction: str,
                prompt_ids: Sequence[int] | None = None) -> Prediction:
        """Return the action for one RGB image (PIL image or HxWx3 uint8 array).

        ``prompt_ids`` are the ids :meth:`prompt_ids` returned for ``instruction`` (the node
        computes them once per instruction); the server's prompt is checked against them.
        """
        if self._closed:
            raise EngineUnavailableError(f'RemotePolicy for {self.url} is closed')
        started = time.perf_counter()
        ids = list(prompt_ids) if prompt_ids is not None else self.prompt_ids(instruction)
        text = build_prompt(instruction) + ' '
        data, mime = encode_image(image, self.preparation, self.image_format,
                                  self.jpeg_quality)
        encoded = time.perf_counter()
        request_id = f'openvla-ros-{uuid.uuid4().hex}'
        payload = {
            'model': self.served_model,
            'messages': [{'role': 'user', 'content': [
                {'type': 'image_url', 'image_url': {
                    'url': f'data:{mime};base64,' + base64.b64encode(data).decode('ascii')}},
                # The template renders BOS then this text; the trailing space tokenizes to
                # 29871, as the reference appends it.
                {'type': 'text', 'text': text}]}],
            # Greedy, exactly 7 action tokens, as the in-process engine's SamplingParams.
            'temperature': 0.0,
            'max_tokens': GENERATED_TOKENS,
            'min_tokens': GENERATED_TOKENS,
            'allowed_token_ids': self.decoder.action_token_ids,
            'add_special_tokens': False,
            'skip_special_tokens': False,
            'return_token_ids': True,
            'request_id': request_id,
            'n': 1,
            'stream': False,
        }
        self.last_request_id = request_id
        reply, sent = self._call('POST', '/v1/chat/completions', payload, request_id=request_id)
        finished = time.perf_counter()
        token_ids = check_reply(reply, ids, image_token_id=self.image_token_id,
                                action_token_ids=self.decoder.action_token_ids, url=self.url)
        action = self.decoder.decode(token_ids)
        with self._stats_lock:
            self.requests += 1
            self.request_bytes_total += sent
            self.last_request_bytes = sent
        round_trip = finished - encoded
        timings = {'encode_s': encoded - started, 'engine_s': round_trip,
                   'round_trip_s': round_trip, 'request_bytes': float(sent),
                   'image_bytes': float(len(data))}
        server = _server_seconds(reply.get('metrics'))
        timings.update(server)
        if 'server_s' in server:
            timings['network_s'] = max(round_trip - server['server_s'], 0.0)
        timings['e2e_s'] = time.perf_counter() - started
        return Prediction(action=action, token_ids=token_ids, timings=timings)

    def is_alive(self) -> bool:
        """Return False once closed; a server that is down is reported per request instead.

        An unreachable server raises :class:`EngineUnavailableError` (retryable), so the node
        publishes a zero command and tries again with the next frame rather than giving up.
        """
        return not self._closed

    def close(self, fast: bool = False) -> None:
        """Close the connection (``fast`` is accepted for the interface; closing is immediate)."""
        self._closed = True
        self._http.stop()

    def engine_report(self) -> EngineReport:
        """Return what the remote engine runs with and the traffic so far (never the API key).

        The dtype and device are the server's (``openvla-ros serve`` reports them), so they
        are left empty here.
        """
        with self._stats_lock:
            requests, total, last = (self.requests, self.request_bytes_total,
                                     self.last_request_bytes)
        server = RemoteReport(
            url=self.url, served_model=self.served_model, server_root=self.server_root,
            model_identity=self.identity, template_check=self.template_check,
            image_format=self.image_format,
            jpeg_quality=self.jpeg_quality if self.image_format == 'jpeg' else None,
            timeout_s=self.timeout_s, api_key_env=self.api_key_env,
            api_key_set=bool(os.environ.get(self.api_key_env)), requests=requests,
            request_bytes_total=total, request_bytes_last=last)
        return EngineReport.describing(
            self.decoder, self.preparation, engine=REMOTE, model=self.model,
            statistics_file=self.statistics_file, startup_s=self.startup_s,
            max_model_len=self.max_model_len, remote=server)


def _same_name(model: str, served: str, root: str) -> bool:
    """Return whether a server's model name or root names the same checkpoint as ``model``."""
    def tail(name: str) -> str:
        return Path(name.rstrip('/')).name.lower()
    if model in (served, root):
        return True
    # A hub id on one side, a snapshot or copy directory on the other.
    cache_name = 'models--' + model.replace('/', '--')
    if cache_name in root:
        return True
    return bool(tail(model)) and tail(model) in (tail(served), tail(root))


def _excerpt(body: bytes) -> str:
    text = body[:4 * _ERROR_BODY_CHARS].decode('utf-8', errors='replace').strip()
    return printable(' '.join(text.split()), _ERROR_BODY_CHARS) or 'empty body'


def _client_error(status: int, reply: Any, body: bytes, url: str, path: str) -> RemoteError:
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
    message = printable(message, _ERROR_BODY_CHARS) if message else _excerpt(body)
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
