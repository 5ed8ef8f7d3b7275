# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The checkpoint's tokenizer without transformers (and so without torch), for a robot client.

A robot that runs its model on a server still builds the prompt ids itself (the server's
reply is checked against them): this reads the checkpoint's ``tokenizer.json`` with the
``tokenizers`` library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping


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
