# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The robot's torch-free tokenizer gives the ids of the engine's (transformers) tokenizer.

In the engine tier: transformers' tokenizer classes import torch, which only the engine
environment has.
"""

import pytest

from openvla_ros.core import remote
from openvla_ros.core.prompt import prompt_token_ids

pytestmark = pytest.mark.engine


def test_local_tokenizer_matches_transformers(test_model):
    """The torch-free tokenizer gives the ids the in-process engine's tokenizer gives."""
    AutoTokenizer = pytest.importorskip('transformers', exc_type=ImportError).AutoTokenizer
    reference = AutoTokenizer.from_pretrained(str(test_model))
    local = remote.LocalTokenizer(test_model)
    for instruction in ('put the spoon on the towel', 'Pick up the RED block!',
                        'move 3 cm left, then stop', 'ouvrez le tiroir à gauche', 'x'):
        assert prompt_token_ids(local, instruction) == prompt_token_ids(reference, instruction)
