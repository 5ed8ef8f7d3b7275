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
import json
import math
import os
from pathlib import Path
import threading
import time
from typing import Any, Mapping, Sequence
import uuid

from openvla_ros.core.decoding import ActionDecoder, resolve_hub_config
from openvla_ros.core.engine import (check_image_format, check_jpeg_quality, DEFAULT_API_KEY_ENV,
                                     resolve_model)
from openvla_ros.core.errors import (EngineUnavailableError, RemoteAuthError,
                                     RemoteEndpointMissingError, RemoteMismatchError,
                                     RemoteRequestError)
from openvla_ros.core.images import encode_compressed
from openvla_ros.core.policy import EngineReport, Prediction, REMOTE, RemoteReport
from openvla_ros.core.preprocessing import ImagePreparation, prepare, processor_resize
from openvla_ros.core.prompt import (build_prompt, GENERATED_TOKENS, prompt_token_ids,
                                     SPACE_TOKEN_ID)
from openvla_ros.core.replies import (check_reply, first_difference, NO_TEMPLATE_FIX,
                                      server_seconds)
from openvla_ros.core.security import printable
from openvla_ros.core.tokenizer import LocalTokenizer
from openvla_ros.core.transport import client_error, ERROR_BODY_CHARS, excerpt, HttpTransport

__all__ = [
    'CONFIG_ALIAS_PREFIX',
    'RemotePolicy',
    'TOKENIZER_PROBES',
    'config_fingerprint',
    'encode_image',
    'model_files',
]

#: ``openvla-ros serve`` also serves the model under this prefix + the config fingerprint, so a
#: client can tell that the server runs the checkpoint whose config.json it holds.
CONFIG_ALIAS_PREFIX = 'openvla-config-'
#: Probe texts tokenized on both sides at start-up: prompt-like text, digits, punctuation and
#: non-ASCII characters, where two tokenizers of different checkpoints disagree first.
TOKENIZER_PROBES = (
    'In: What action should the robot take to put the spoon on the towel?\nOut:',
    'Pick up the 3 red blocks, then stack them (carefully!) on the café table.',
)


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
        self._http = HttpTransport(url, self.api_key_env, ca_file, allow_insecure_http)
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
                f'({excerpt(body)})', 'it may recover: check its log (openvla-ros serve '
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
                    f'{self.url}{path} did not answer JSON ({excerpt(body)}): is the url an '
                    'OpenAI-compatible vLLM server (openvla-ros serve)?') from None
        if status >= 400:
            raise client_error(status, reply, body, self.url, path)
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
        self.server_root = printable(roots.get(chosen, ''), ERROR_BODY_CHARS)
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
                    f'at id {first_difference(remote, local)}): copy tokenizer.json and '
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
                         f'{first_difference(remote, expected)}')
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
        server = server_seconds(reply.get('metrics'))
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
