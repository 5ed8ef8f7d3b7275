# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Check a server's reply against the robot's own prompt before its action ids are used.

A reply must echo the robot's prompt ids (the server rendered the same prompt with the same
tokenizer and image tokens) and carry exactly the action tokens; its timing fields are read
into the prediction's timings.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from openvla_ros.core.errors import RemoteMismatchError
from openvla_ros.core.prompt import GENERATED_TOKENS, IMAGE_TOKENS, SPACE_TOKEN_ID
from openvla_ros.core.security import printable

#: The fix for a server whose chat template does not render OpenVLA's prompt.
NO_TEMPLATE_FIX = ('server has no OpenVLA chat template: start it with `openvla-ros serve` or '
                   'pass --chat-template <path printed by openvla-ros serve --print-template>')


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
            f'{first_difference(text, expected[1:])}): the server runs another tokenizer or '
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


def first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return min(len(a), len(b))


def server_seconds(metrics: Any) -> dict[str, float]:
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
