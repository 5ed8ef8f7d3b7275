# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The engine's processes: where their output goes, and leaving without waiting for them.

vLLM runs its engine core and workers as child processes. They inherit this process's file
descriptors (so their output can be sent to a log file) and can outlive a request that hangs
(so commands and the node end them explicitly instead of waiting).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, TYPE_CHECKING

if TYPE_CHECKING:   # imported where used at run time: a cheap import of this module
    import psutil


#: A file path the user may set to choose the engine log of one ``openvla-ros`` command (a test
#: harness does, to read a server's output). Only the CLI reads it, once, and hands the path on
#: as an argument (:func:`use_engine_log`); the library never reads or writes it.
ENGINE_LOG_ENV = 'OPENVLA_ROS_ENGINE_LOG'

#: Where engines started by this process send their output unless given an ``engine_log`` of
#: their own: None (the terminal) unless the CLI chose a file (:func:`use_engine_log`).
_engine_log: str | None = None


def use_engine_log(path: str | os.PathLike[str] | None) -> None:
    """Send the output of every engine this process starts to ``path`` (None: the terminal).

    The CLI calls it once, before the command runs, unless ``--verbose``: everything the
    engine's processes print (vLLM, torch, oneDNN and progress bars, C++ warnings included) then
    goes to that file. A node started by ros2 launch never calls it and keeps the engine's
    output visible. An engine built with an explicit ``engine_log`` argument uses that instead.
    """
    global _engine_log
    _engine_log = str(path) if path else None


def engine_log() -> str | None:
    """Return the engine log file of this process (None: the engine prints to the terminal)."""
    return _engine_log


@contextlib.contextmanager
def engine_output_to(path: str | None) -> Iterator[None]:
    """Send this process's stdout/stderr file descriptors to ``path`` while the block runs.

    vLLM starts its engine core and workers as new processes that inherit the descriptors, so
    they keep writing to the file after the block; this process gets its terminal back. Python
    warnings raised meanwhile go there too. Nothing is redirected when ``path`` is None.
    """
    if not path:
        yield
        return
    import sys
    import warnings
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)


def exit_now(code: int) -> None:
    """End this process at once with ``code``, after terminating any engine processes left.

    A Python exit would join every non-daemon thread first, and a thread still waiting on an
    engine that hangs (vLLM's client blocks in ``get_output``) never returns: commands that own
    an engine leave through here so they end within seconds whatever the engine does.
    """
    import sys
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        end_children(timeout=2.0)
    except Exception:  # noqa: B902 - leaving is what matters now
        pass
    os._exit(code)


def child_processes() -> list[psutil.Process]:
    """Return every live descendant of this process (psutil processes)."""
    import psutil
    return psutil.Process().children(recursive=True)


def end_children(timeout: float = 2.0, rounds: int = 3) -> list[psutil.Process]:
    """Terminate, then kill, every descendant of this process; return any still alive.

    Looked up again after each round: an engine that is still starting (a signal during
    ``configure``) may start a worker while the previous ones are being ended, and a process
    left now would outlive this one holding the model's memory.
    """
    for _ in range(rounds):
        children = child_processes()
        if not children:
            return []
        terminate(children, timeout=timeout)
    return child_processes()


def terminate(children: list[psutil.Process], timeout: float) -> None:
    """Terminate, then kill, the given processes (the engine's)."""
    import psutil
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
