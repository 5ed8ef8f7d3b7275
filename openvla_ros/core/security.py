# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Checks at the trust boundaries: the API key, the transport it travels on, outside text.

ROS-free and dependency-free: the remote client (``core/remote.py``), ``openvla-ros serve``
(``tools/serve.py``) and the instruction check use these, and the unit tier tests them alone.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Iterable

__all__ = [
    'ApiKeyError',
    'InsecureTransportError',
    'find_control',
    'is_loopback',
    'printable',
    'read_api_key',
    'redact',
    'require_secure_transport',
]

# C0 and C1 control characters, DEL, and the Unicode format characters that reorder or hide
# text on a terminal (bidirectional overrides and isolates, zero-width marks).
_CONTROL = re.compile('[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]')


class ApiKeyError(ValueError):
    """The API key in the environment cannot be sent (its value is never in the message)."""


class InsecureTransportError(ValueError):
    """A bearer key would travel in clear text over the network."""


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is this machine (``localhost`` or a loopback address)."""
    host = (host or '').strip().strip('[]').lower()
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_key(env_name: str) -> str | None:
    """Return the API key held by the environment variable ``env_name``, or None when unset.

    One trailing line break is removed (a secret mounted from a file usually ends with one).
    A key that still holds a control character (CR, LF, NUL, ...) or a character outside
    latin-1 cannot be an HTTP header value: it is refused with :class:`ApiKeyError`, whose
    message names the variable and never the value (``http.client``'s own error would
    print the whole header, key included).
    """
    value = os.environ.get(env_name)
    if not value:
        return None
    if value.endswith('\r\n'):
        value = value[:-2]
    elif value.endswith('\n'):
        value = value[:-1]
    if not value:
        raise ApiKeyError(f'the environment variable {env_name} holds only a line break: set it '
                          'to the API key the server was started with, or unset it')
    bad = _CONTROL.search(value)
    if bad is not None:
        raise ApiKeyError(
            f'the API key in the environment variable {env_name} contains a control '
            f'character (a line break or similar, at position {bad.start()} of '
            f'{len(value)}): set it to the key alone, on one line')
    try:
        value.encode('latin-1')
    except UnicodeEncodeError as error:
        raise ApiKeyError(
            f'the API key in the environment variable {env_name} contains a character that '
            f'an HTTP header cannot carry (non-latin-1, at position {error.start} of '
            f'{len(value)}): use a key of ASCII letters, digits and punctuation') from None
    return value


def require_secure_transport(scheme: str, host: str, key_set: bool, allow_insecure: bool,
                             key_env: str) -> None:
    """Refuse to send a bearer key over plain http to another machine, unless allowed.

    Loopback is exempt (the bytes never leave this machine), as is a client without a key
    (nothing secret travels). ``allow_insecure`` is the user's explicit opt-in for a network
    they trust.
    """
    if scheme != 'http' or not key_set or allow_insecure or is_loopback(host):
        return
    raise InsecureTransportError(
        f'refusing to send the API key in {key_env} over plain http to {host}: anyone on the '
        'path could read it. Use https:// (openvla-ros serve --ssl-certfile/--ssl-keyfile, '
        'and engine.ca_file for a private CA), or, on a network you trust, opt in with '
        'engine.allow_insecure_http (--allow-insecure-http)')


def find_control(text: str) -> tuple[int, str] | None:
    """Return (position, character) of the first control or invisible character, or None."""
    found = _CONTROL.search(text)
    return None if found is None else (found.start(), found.group())


def printable(text: object, limit: int | None = None) -> str:
    """Return ``text`` with control and invisible formatting characters replaced by ``?``.

    For server-controlled text copied into a log line or an exception: a reply cannot then
    forge log lines (CR/LF), drive the terminal (ESC sequences) or hide text (bidi overrides).
    """
    cleaned = _CONTROL.sub('?', str(text))
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[:limit] + '...'
    return cleaned


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every non-empty secret (and its stripped form) replaced."""
    for secret in secrets:
        for form in {secret, (secret or '').strip()}:
            if form and len(form) >= 4:
                text = text.replace(form, '<redacted>')
    return text
