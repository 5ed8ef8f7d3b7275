# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The one rule that tells a checkpoint directory on this machine from a Hugging Face hub id.

Every place that takes a ``model`` (the engine, the decoder's config lookup, the remote client,
``openvla-ros serve``) asks :func:`is_local_checkpoint`, so a string cannot be a path to one
of them and a hub id to another. The rule:

* anything that exists on this machine (after ``~`` expansion) is local;
* otherwise a hub id is exactly ``owner/name`` as the hub spells repository ids (letters,
  digits, ``_ . -``, starting with a letter or digit) and not a ``.json`` file name;
* anything else (``./x``, ``/x``, ``~/x``, ``a/b/c``, a bare ``name``) is a local path that
  happens to be missing, and is reported as such rather than sent to a hub.
"""

from __future__ import annotations

from pathlib import Path
import re

__all__ = ['is_hub_id', 'is_local_checkpoint']

# owner/name as the Hugging Face hub spells repository ids.
_HUB_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$')


def is_hub_id(model: str) -> bool:
    """Return whether ``model`` has the shape of a hub id (``owner/name``), wherever it is."""
    text = str(model).strip()
    # A config file path such as ``run/config.json`` has the shape too, but names a file.
    return bool(_HUB_ID.match(text)) and not text.endswith('.json')


def is_local_checkpoint(model: str) -> bool:
    """Return True if ``model`` names something on this machine, False if it is a hub id.

    An existing path is local even when it is spelled like a hub id (a folder ``org/name`` in
    the working directory wins, as it does for Hugging Face's own loaders). A missing path is
    local too unless it has the hub id shape: callers then report the missing path.
    """
    text = str(model).strip()
    return Path(text).expanduser().exists() or not is_hub_id(text)
