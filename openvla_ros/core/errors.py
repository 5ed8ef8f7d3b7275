# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The project's errors: what went wrong and how to fix it, as fields, not as words to match.

Every error the project can advise on is an :class:`OpenVlaError`: ``what`` says what failed,
``fix`` what to do about it ('' when nothing better than the message is known), ``parameter``
names the node parameter (or the option it comes from) to change, when one is at fault. Its
text is the one-line message "what: fix", so a log line, a diagnostic or the command line shows
both without parsing anything. Subclasses also derive from the built-in exception callers
already catch (``ValueError``, ``FileNotFoundError``, ...); a caller that must branch on a
failure branches on the class or its typed fields (see ``core/remote.py``), never on its text.

ROS-free and import-free, so every floor of the project can raise and read them.
"""

from __future__ import annotations


class OpenVlaError(Exception):
    """A failure the project understands: ``what`` happened, ``fix`` says what to do."""

    def __init__(self, what: str, fix: str = '', parameter: str | None = None) -> None:
        """Keep the fields; the exception's text is :meth:`__str__`'s one line."""
        self.what = what
        self.fix = fix
        self.parameter = parameter
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """Return the one-line message: "what: fix", or just ``what`` without a fix."""
        return f'{self.what}: {self.fix}' if self.fix else self.what

    def __str__(self) -> str:
        """Return :attr:`message` (also for subclasses of OSError, which format their own)."""
        return self.message


class ParameterError(OpenVlaError, ValueError):
    """A parameter (or command option) has a value that cannot work; ``parameter`` names it."""


class EngineMemoryError(OpenVlaError, MemoryError):
    """The engine could not start for lack of accelerator (or CPU) memory."""


def fix_of(error: BaseException) -> str:
    """Return the fix an error carries ('' for an exception that is not the project's)."""
    return error.fix if isinstance(error, OpenVlaError) else ''


# ---------------------------------------------------------------- a remote engine's failures

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


# ---------------------------------------------------------------- bags

class BagError(ValueError):
    """A bag that cannot be written or read as asked; the text names the problem and the fix."""
