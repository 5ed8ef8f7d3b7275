# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""ASGI middleware that puts the API key on every path of vLLM's server except ``/health``.

vLLM's own ``--api-key`` guards only the ``/v1``, ``/v2``, ``/inference`` and ``/cohere``
prefixes: ``/invocations`` (the SageMaker route, the same inference), ``/tokenize``,
``/detokenize``, ``/metrics``, ``/load``, ``/version`` and any route a later vLLM adds stay
open. ``openvla-ros serve`` adds this class with vLLM's ``--middleware`` option, so it guards
by default and opens exactly one path, the liveness probe load balancers and ``serve`` itself
poll. The server process imports it by name: it depends on nothing but the standard library
(pure ASGI), and reads the key from ``VLLM_API_KEY``, where ``serve`` puts it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Awaitable, Callable

__all__ = ['KEY_ENV', 'OPEN_PATHS', 'RequireApiKey', 'middleware_path']

#: The one path answered without the key (a liveness probe; it reveals nothing).
OPEN_PATHS = frozenset({'/health'})
#: The variable holding the key in the server's environment (vLLM's own name).
KEY_ENV = 'VLLM_API_KEY'

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode('utf-8', errors='surrogateescape')).digest()


class RequireApiKey:
    """Answer 401 to any HTTP or WebSocket request without ``Authorization: Bearer <key>``.

    Exempt: ``GET``/``HEAD`` of the paths in :data:`OPEN_PATHS`, compared exactly after
    vLLM's ``root_path`` is removed. The comparison is of SHA-256 digests in constant time.
    Without a key in the environment the middleware refuses to start rather than run open.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], key: str | None = None):
        """Wrap ``app``; the key comes from ``VLLM_API_KEY`` unless given."""
        key = key if key is not None else os.environ.get(KEY_ENV, '')
        if not key:
            raise RuntimeError(f'{type(self).__name__} needs the API key in {KEY_ENV}; '
                               'openvla-ros serve sets it from --api-key-env')
        self.app = app
        self._key = _digest(key)

    def authorized(self, scope: Scope) -> bool:
        """Return whether the request's headers carry the bearer key."""
        for name, value in scope.get('headers') or ():
            if name.lower() != b'authorization':
                continue
            scheme, _, token = value.decode('latin-1').partition(' ')
            if scheme.lower() == 'bearer' and hmac.compare_digest(_digest(token), self._key):
                return True
        return False

    def is_open(self, scope: Scope) -> bool:
        """Return whether the request may pass without the key."""
        path = scope.get('path', '')
        root = scope.get('root_path', '')
        if root and path.startswith(root):
            path = path[len(root):]
        return (scope.get('type') == 'http' and scope.get('method') in ('GET', 'HEAD')
                and path in OPEN_PATHS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass authorized (and open) requests on; answer 401 to the others."""
        kind = scope.get('type')
        if kind not in ('http', 'websocket') or self.is_open(scope) or self.authorized(scope):
            await self.app(scope, receive, send)
            return
        if kind == 'websocket':
            # Policy violation, before the handshake is accepted.
            await send({'type': 'websocket.close', 'code': 1008})
            return
        body = b'{"error": "Unauthorized: send Authorization: Bearer <API key>"}'
        await send({'type': 'http.response.start', 'status': 401,
                    'headers': [(b'content-type', b'application/json'),
                                (b'content-length', str(len(body)).encode()),
                                (b'www-authenticate', b'Bearer')]})
        await send({'type': 'http.response.body', 'body': body})


def middleware_path() -> str:
    """Return the import path vLLM's ``--middleware`` takes for :class:`RequireApiKey`."""
    return f'{RequireApiKey.__module__}.{RequireApiKey.__qualname__}'
