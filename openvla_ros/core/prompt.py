# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Build OpenVLA's prompt exactly as the reference ``predict_action`` does."""

from __future__ import annotations

from typing import Any

from openvla_ros.core.security import find_control

#: SentencePiece "▁" (a lone space): the reference appends it so the prompt ends like training's
#: ``Out: `` with its trailing space.
SPACE_TOKEN_ID = 29871
#: Number of image patch embeddings vLLM inserts after BOS (224 px, patch 14: 16 x 16).
IMAGE_TOKENS = 256
#: Tokens the model generates per action.
GENERATED_TOKENS = 7
#: Longest instruction accepted, in characters, checked before tokenizing (a 1 MiB string took
#: 3 s and 455 MB to tokenize before the token budget refused it). OpenVLA was trained on
#: one-sentence tasks; with the default 512-token context the token budget (249) is reached
#: near 1000 characters anyway.
MAX_INSTRUCTION_CHARS = 2000


class InstructionError(ValueError):
    """An instruction the model cannot be prompted with (empty, too long, control characters)."""


def clean_instruction(instruction: Any) -> str:
    """Return the instruction stripped of surrounding white space, or raise InstructionError.

    Refused: an empty one, one over :data:`MAX_INSTRUCTION_CHARS` (before any tokenizing),
    and one holding a control or invisible formatting character inside (a line break, a tab,
    ESC, a bidi override...). Refused rather than stripped: the prompt is
    ``...to {instruction}?`` + newline + ``Out:``, so a line break could forge the prompt's own
    layout, and silently editing a task would run a task nobody sent.
    """
    if not isinstance(instruction, str):
        raise InstructionError(
            f'the instruction must be text, got {type(instruction).__name__}')
    text = instruction.strip()
    if not text:
        raise InstructionError(
            'the instruction is empty: publish a task such as "put the spoon on the towel" '
            'on the instruction topic (or set the instruction parameter)')
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise InstructionError(
            f'the instruction is too long: {len(text)} characters, the limit is '
            f'{MAX_INSTRUCTION_CHARS}; send one short task sentence')
    control = find_control(text)
    if control is not None:
        position, character = control
        raise InstructionError(
            f'the instruction contains a control character (U+{ord(character):04X} at '
            f'position {position}): send the task as one line of plain text')
    return text


def build_prompt(instruction: str) -> str:
    """Return OpenVLA's prompt text for an instruction (lower-cased, as in training)."""
    text = clean_instruction(instruction)
    return f'In: What action should the robot take to {text.lower()}?\nOut:'


def prompt_token_ids(tokenizer: Any, instruction: str,
                     max_model_len: int | None = None) -> list[int]:
    """Return the prompt's token ids: BOS first, ending in 29871 exactly once.

    ``tokenizer`` is a Hugging Face tokenizer that adds BOS by itself (Llama's does). When
    ``max_model_len`` is given, an instruction whose prompt plus the 256 image tokens and the 7
    generated tokens would not fit the engine's context is rejected with
    :class:`InstructionError` instead of failing inside the engine.
    """
    ids = list(tokenizer(build_prompt(instruction))['input_ids'])
    bos = getattr(tokenizer, 'bos_token_id', None)
    if bos is None:
        raise ValueError('the tokenizer has no BOS token; OpenVLA prompts must start with BOS')
    if not ids or ids[0] != bos:
        # vLLM inserts the image embeddings right after BOS and finds no target without it.
        ids.insert(0, bos)
    if ids[-1] != SPACE_TOKEN_ID:
        ids.append(SPACE_TOKEN_ID)
    if max_model_len is not None:
        needed = len(ids) + IMAGE_TOKENS + GENERATED_TOKENS
        if needed > max_model_len:
            budget = max_model_len - IMAGE_TOKENS - GENERATED_TOKENS
            raise InstructionError(
                f'the instruction is too long: its prompt is {len(ids)} tokens but the engine '
                f'context ({max_model_len} tokens, of which {IMAGE_TOKENS} are the image and '
                f'{GENERATED_TOKENS} the action) leaves room for {budget}; shorten the '
                'instruction or raise max_model_len')
    return ids
