# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Property-based tests (Hypothesis) of the pure functions that take outside data.

Image messages, server replies, STEPS.json files, instructions and statistics files are
generated, mutated and broken; the property is always the same: the function returns a
well-formed result or raises the project's own typed error, never anything else (no
``TypeError``, ``OverflowError``, ``MemoryError``, ``RecursionError``...). Every test runs a
fixed number of examples, derandomized (the same inputs on every run and machine, as CI
needs), without Hypothesis' example database. The counts are in :data:`EXAMPLES`.
"""

import io
import json
import math
from types import SimpleNamespace

import numpy as np
from PIL import Image
import pytest

hypothesis = pytest.importorskip('hypothesis', reason='hypothesis (the test extra) is missing')
from hypothesis import given, HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from openvla_ros.core import errors, remote, replies, transport  # noqa: E402
from openvla_ros.core.decoding import ActionDecoder, StatisticsError  # noqa: E402
from openvla_ros.core.images import ImageError, msg_to_pil, msg_to_rgb  # noqa: E402
from openvla_ros.core.prompt import (build_prompt, clean_instruction,  # noqa: E402
                                     InstructionError, MAX_INSTRUCTION_CHARS,
                                     prompt_token_ids, SPACE_TOKEN_ID)
from openvla_ros.tools.steps import load_steps, StepsError  # noqa: E402

#: Examples per property, fixed for CI (the report quotes these numbers).
EXAMPLES = {'raw_image': 400, 'compressed_image': 300, 'reply': 400, 'reply_json': 300,
            'steps': 300, 'instruction': 500, 'tokenized_instruction': 200, 'statistics': 400,
            'statistics_file': 200}


def fixed(name):
    """Return the settings of one property: its example count, derandomized, no database."""
    return settings(max_examples=EXAMPLES[name], derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


# JSON values of any shape, numbers including the extremes a parser accepts.
json_scalars = (st.none() | st.booleans() | st.text(max_size=20)
                | st.integers(min_value=-(10 ** 400), max_value=10 ** 400)
                | st.floats(allow_nan=True, allow_infinity=True))
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=6)
                           | st.dictionaries(st.text(max_size=10), children, max_size=6),
                           max_leaves=30)

# --- image messages ---------------------------------------------------------------------------

ENCODINGS = ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '8UC1', '8UC3', '8UC4',
             '16UC1', 'RGB8', ' rgb8 ', 'yuv422', '32FC1', '', 'rgb16']
ints = st.one_of(st.integers(min_value=-3, max_value=40), st.integers(min_value=-(2 ** 40),
                                                                      max_value=2 ** 40),
                 st.floats(allow_nan=True), st.none(), st.text(max_size=3), st.booleans())


@fixed('raw_image')
@given(encoding=st.one_of(st.sampled_from(ENCODINGS), st.text(max_size=8), st.integers()),
       height=ints, width=ints, step=ints, big_endian=st.integers(0, 1),
       data=st.one_of(st.binary(max_size=6000), st.lists(st.integers(-5, 300), max_size=50),
                      st.none(), st.text(max_size=10)))
def test_raw_image_messages(encoding, height, width, step, big_endian, data):
    msg = SimpleNamespace(encoding=encoding, height=height, width=width, step=step,
                          is_bigendian=big_endian, data=data)
    try:
        rgb = msg_to_rgb(msg, max_pixels=4096)
    except ImageError:
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape == (height, width, 3)
    assert msg_to_pil(msg, max_pixels=4096).size == (width, height)


def _encoded(kind, size, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=kind)
    return buffer.getvalue()


VALID = [_encoded('PNG', (16, 12), 1), _encoded('JPEG', (24, 8), 2), _encoded('PNG', (1, 1), 3)]


@fixed('compressed_image')
@given(base=st.sampled_from(VALID), cuts=st.lists(st.tuples(st.integers(0, 4000),
                                                            st.integers(0, 255)), max_size=8),
       truncate=st.one_of(st.none(), st.integers(0, 4000)), noise=st.binary(max_size=200),
       fmt=st.one_of(st.sampled_from(['jpeg', 'png', 'rgb8; jpeg compressed bgr8',
                                      '16UC1; compressedDepth png', '']), st.text(max_size=12)))
def test_compressed_image_messages(base, cuts, truncate, noise, fmt):
    data = bytearray(base)
    for position, value in cuts:
        if position < len(data):
            data[position] = value
    data = bytes(data[:truncate]) + noise if truncate is not None else bytes(data)
    msg = SimpleNamespace(format=fmt, data=data)
    try:
        rgb = msg_to_rgb(msg, max_pixels=4096)
    except ImageError:
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[0] * rgb.shape[1] <= 4096


# --- remote replies ---------------------------------------------------------------------------

BOS, IMAGE, ACTIONS = 1, 32000, list(range(31744, 32000))
EXPECTED = [BOS, 512, 29901, 1724, 3158, 881, 278, 19964, 2125, 304, 1925, SPACE_TOKEN_ID]


def valid_reply():
    return {'choices': [{'index': 0, 'finish_reason': 'length',
                         'token_ids': [31744, 31872, 31999, 31800, 31900, 31850, 31999]}],
            'prompt_token_ids': EXPECTED[:1] + [IMAGE] * 256 + EXPECTED[1:]}


def check(reply):
    try:
        ids = remote.check_reply(reply, EXPECTED, image_token_id=IMAGE,
                                 action_token_ids=ACTIONS, url='http://server')
    except remote.RemoteMismatchError as error:
        assert '\n' not in str(error) and len(str(error)) < 2000
        return None
    assert len(ids) == 7 and all(type(t) is int and t in ACTIONS for t in ids)
    return ids


@fixed('reply')
@given(edits=st.lists(st.tuples(st.sampled_from(['choices', 'prompt', 'tokens', 'finish',
                                                 'drop']),
                                st.integers(0, 300), json_values), max_size=4))
def test_mutated_replies(edits):
    reply = valid_reply()
    for where, position, value in edits:
        if where == 'choices':
            reply['choices'] = value if position % 3 == 0 else [value]
        elif where == 'prompt' and isinstance(reply.get('prompt_token_ids'), list):
            ids = reply['prompt_token_ids']
            if ids:
                ids[position % len(ids)] = value
        elif where == 'tokens':
            choice = reply['choices'][0] if isinstance(reply.get('choices'), list) and \
                reply['choices'] and isinstance(reply['choices'][0], dict) else None
            if choice is not None and isinstance(choice.get('token_ids'), list):
                choice['token_ids'][position % 7 if choice['token_ids'] else 0:][:1] = [value]
        elif where == 'finish':
            reply['metrics'] = value
        else:
            reply.pop('prompt_token_ids' if position % 2 else 'choices', None)
    ids = check(reply)
    if not edits:
        assert ids == [31744, 31872, 31999, 31800, 31900, 31850, 31999]
    replies.server_seconds(reply.get('metrics') if isinstance(reply, dict) else None)


@fixed('reply_json')
@given(reply=json_values, status=st.sampled_from([400, 404, 409, 422]))
def test_arbitrary_json_replies_and_errors(reply, status):
    check(reply)
    body = json.dumps(reply).encode() if not _has_nan(reply) else b'{}'
    error = transport.client_error(status, reply, body, 'http://server', '/v1/chat/completions')
    assert isinstance(error, errors.RemoteError)
    assert not any(ch in str(error) for ch in '\r\n\x1b')
    assert isinstance(replies.server_seconds(reply), dict)


def _has_nan(value):
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False


# --- STEPS.json -------------------------------------------------------------------------------

def mostly(valid, broken):
    """Return ``valid`` three times in four, else ``broken``: deep paths need valid prefixes."""
    return st.integers(0, 3).flatmap(lambda k: broken if k == 0 else valid)


wild_numbers = st.one_of(st.floats(), st.integers(-(10 ** 400), 10 ** 400), st.booleans(),
                         st.none(), st.text(max_size=3))
step_values = st.fixed_dictionaries(
    {'image': mostly(st.just('a.png'), st.one_of(st.sampled_from(
        ['missing.png', '', '.', '..', 'a.png\x00', '/', 'STEPS.json']), json_values)),
     'instruction': mostly(st.just('lift the cup'), st.one_of(st.sampled_from(
         ['', ' ', 'a\nb', 'x' * 3000]), json_values)),
     'action': mostly(st.lists(mostly(st.floats(-1, 1), wild_numbers), min_size=7,
                               max_size=7),
                      st.one_of(st.lists(st.floats(-1, 1), max_size=9), json_values))},
    optional={'stamp': mostly(st.floats(0, 1e9), st.one_of(wild_numbers, json_values))})


@fixed('steps')
@given(document=st.one_of(st.fixed_dictionaries({'steps': st.lists(step_values, max_size=4)}),
                          json_values),
       raw=st.one_of(st.none(), st.binary(max_size=40)),
       rate=st.one_of(st.just(5.0), st.floats()))
def test_steps_files(tmp_path_factory, document, raw, rate):
    folder = tmp_path_factory.mktemp('steps', numbered=True)
    Image.new('RGB', (4, 4)).save(folder / 'a.png')
    path = folder / 'STEPS.json'
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(json.dumps(document), encoding='utf-8')
    try:
        steps = load_steps(path, rate_hz=rate)
    except StepsError as error:
        assert str(error)
        return
    assert steps and all(len(s.action) == 7 and all(math.isfinite(v) for v in s.action)
                         for s in steps)
    stamps = [s.stamp_ns for s in steps]
    assert stamps == sorted(set(stamps))


# --- instructions -----------------------------------------------------------------------------

class Tokenizer:
    """A tokenizer that counts characters (the real one is exercised in test_prompt.py)."""

    bos_token_id = 1

    def __call__(self, text):
        return {'input_ids': [1] + [100 + (ord(c) % 1000) for c in text]}


@fixed('instruction')
@given(text=st.one_of(st.text(max_size=300), st.text(max_size=3000),
                      st.binary(max_size=20), st.integers(), st.none(), st.lists(st.text())))
def test_instruction_check(text):
    try:
        cleaned = clean_instruction(text)
    except InstructionError:
        return
    assert cleaned == cleaned.strip() and 0 < len(cleaned) <= MAX_INSTRUCTION_CHARS
    assert all(ord(c) >= 32 and c not in '\x7f\u202e\u200b' for c in cleaned)
    assert build_prompt(text).endswith('?\nOut:')


@fixed('tokenized_instruction')
@given(text=st.text(max_size=2500), context=st.integers(min_value=263, max_value=4096))
def test_prompt_ids_fit_the_context_or_are_refused(text, context):
    try:
        ids = prompt_token_ids(Tokenizer(), text, max_model_len=context)
    except InstructionError:
        return
    assert ids[0] == 1 and ids[-1] == SPACE_TOKEN_ID and len(ids) + 256 + 7 <= context


# --- statistics -------------------------------------------------------------------------------

seven = st.lists(mostly(st.floats(-2, 2), wild_numbers), min_size=7, max_size=7)
action_stats = st.fixed_dictionaries(
    {'q01': mostly(seven, json_values), 'q99': mostly(seven, json_values)},
    optional={'mask': mostly(st.lists(mostly(st.booleans(), wild_numbers), min_size=7,
                                      max_size=7), json_values)})
norm_stats = mostly(st.dictionaries(st.sampled_from(['bridge_orig', 'other']),
                                    mostly(st.fixed_dictionaries({'action': action_stats}),
                                           json_values), min_size=1, max_size=2),
                    json_values)


@fixed('statistics')
@given(stats=norm_stats, key=st.sampled_from([None, '', 'bridge_orig', 'other']),
       text_config=mostly(st.fixed_dictionaries({}, optional={'vocab_size': mostly(
           st.just(32064), json_values)}), json_values),
       pad=mostly(st.just(64), json_values), bins=mostly(st.just(256), json_values))
def test_statistics_from_a_config(stats, key, text_config, pad, bins):
    config = {'norm_stats': stats, 'text_config': text_config, 'pad_to_multiple_of': pad,
              'n_action_bins': bins}
    try:
        decoder = ActionDecoder.from_model_config(config, key)
    except StatisticsError as error:
        assert str(error)
        return
    lo, hi = decoder.bounds()
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))
    assert decoder.action_dim == len(decoder.q01) >= 1


@fixed('statistics_file')
@given(content=st.one_of(json_values.map(lambda v: json.dumps(v).encode()),
                         norm_stats.map(lambda v: json.dumps(v).encode()),
                         st.binary(max_size=60)))
def test_statistics_files(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp('stats', numbered=True)
    path = folder / 'dataset_statistics.json'
    path.write_bytes(content)
    config = {'text_config': {'vocab_size': 32064}, 'norm_stats': {
        'x': {'action': {'q01': [0.0] * 7, 'q99': [1.0] * 7}}}}
    try:
        decoder = ActionDecoder.from_model_config(config, None, statistics_file=path)
    except StatisticsError:
        return
    assert np.all(np.isfinite(decoder.bounds()[0]))
