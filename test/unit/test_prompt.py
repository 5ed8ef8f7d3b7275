# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The prompt text and token ids, as the reference predict_action builds them."""

import pytest

from openvla_ros.core.prompt import (build_prompt, InstructionError, prompt_token_ids,
                                     SPACE_TOKEN_ID)
from openvla_ros.core.remote import LocalTokenizer
from openvla_ros.tools.generated_checkpoint import write_tokenizer_files


class FakeLlamaTokenizer:
    """Return the real Llama-2 ids of the reference example (a fixed table)."""

    bos_token_id = 1
    # "In: What action should the robot take to put spoon on towel?\nOut:" with the real
    # tokenizer; the trailing-space variant ends in 29871 already.
    IDS = [1, 512, 29901, 1724, 3158, 881, 278, 19964, 2125, 304, 1925, 805, 6150, 373, 304,
           20466, 29973, 13, 3744, 29901]

    def __init__(self, trailing_space=False):
        self.trailing_space = trailing_space

    def __call__(self, text):
        assert text == build_prompt('put spoon on towel')
        return {'input_ids': self.IDS + ([SPACE_TOKEN_ID] if self.trailing_space else [])}


@pytest.fixture(scope='module')
def tokenizer(tmp_path_factory):
    # The generated checkpoint's tokenizer, read with the torch-free ``tokenizers`` library.
    return LocalTokenizer(write_tokenizer_files(tmp_path_factory.mktemp('tokenizer')))


def test_prompt_text_is_lower_cased():
    assert build_prompt('Put the Spoon on the TOWEL') == (
        'In: What action should the robot take to put the spoon on the towel?\nOut:')


def test_prompt_strips_surrounding_white_space():
    assert build_prompt('  pick up the cup \n') == (
        'In: What action should the robot take to pick up the cup?\nOut:')


def test_reference_ids_get_29871_once():
    expected = FakeLlamaTokenizer.IDS + [29871]
    assert prompt_token_ids(FakeLlamaTokenizer(), 'put spoon on towel') == expected
    # A tokenizer that already ends in 29871 must not get a second one.
    assert prompt_token_ids(FakeLlamaTokenizer(True), 'put spoon on towel') == expected


def test_generated_tokenizer_bos_first_29871_last(tokenizer):
    ids = prompt_token_ids(tokenizer, 'Put spoon on towel')
    assert ids[0] == tokenizer.bos_token_id == 1
    assert ids[-1] == 29871 and ids[-2] != 29871 and ids.count(1) == 1
    text = tokenizer.decode(ids[1:-1])
    assert text == 'In: What action should the robot take to put spoon on towel?\nOut:'


def test_missing_bos_is_added():
    class NoBos(FakeLlamaTokenizer):
        def __call__(self, text):
            return {'input_ids': self.IDS[1:]}
    assert prompt_token_ids(NoBos(), 'put spoon on towel')[0] == 1


@pytest.mark.parametrize('bad', ['', '   ', '\n\t'])
def test_empty_instruction_is_rejected(tokenizer, bad):
    with pytest.raises(InstructionError, match='instruction is empty'):
        prompt_token_ids(tokenizer, bad)


def test_non_text_instruction_is_rejected():
    with pytest.raises(InstructionError, match='must be text'):
        build_prompt(None)


def test_over_long_instruction_is_rejected_with_the_budget(tokenizer):
    fits = prompt_token_ids(tokenizer, 'go', max_model_len=512)
    assert len(fits) + 256 + 7 <= 512
    with pytest.raises(InstructionError, match='too long.*shorten the instruction'):
        prompt_token_ids(tokenizer, 'pick up the cup ' * 40, max_model_len=512)
