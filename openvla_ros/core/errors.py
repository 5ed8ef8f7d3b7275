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
