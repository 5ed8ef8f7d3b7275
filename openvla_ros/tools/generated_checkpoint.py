# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Generate a small OpenVLA-architecture checkpoint with random weights, for tests and demos.

No machine of this project reaches a model hub, so the test suite and the demo make their own
checkpoint. It has the real OpenVLA structure, so vLLM's own ``OpenVLAForActionPrediction`` and
its real safetensors loader take it unchanged:

- the two full-size timm vision towers (DINOv2 ViT-L/14 with registers and SigLIP So400m/14;
  vLLM fixes these, so they cannot be shrunk), randomly initialised by timm;
- the fused-GELU projector 2176 -> 8704 -> H -> H;
- a small Llama (``text_config``) with the real padded vocabulary of 32064;
- ``norm_stats`` for two datasets (the real Bridge and Fractal statistics, quoted from the
  published OpenVLA-7B configuration) so ``unnorm_key`` handling is exercised for real;
- a character-level tokenizer built here, with Llama's special ids (0 unk, 1 BOS, 2 EOS), byte
  fallback at Llama's ids 3-258 and "▁" at 29871, padded to Llama's 32000 base ids.

The weights are random, so the actions mean nothing; they do depend on the image, which is all
the tests need. ``load_format="dummy"`` would not do: it fills every weight with the same tiny
uniform noise and the model then emits the same tokens for every image.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Any

#: Vision towers OpenVLA-7B uses (and vLLM requires).
TIMM_MODEL_IDS = ['vit_large_patch14_reg4_dinov2.lvd142m', 'vit_so400m_patch14_siglip_224']
#: Real statistics from openvla/openvla-7b's config.json (facts, quoted for tests).
NORM_STATS = {
    'bridge_orig': {'action': {
        'q01': [-0.02872725307941437, -0.04170349963009357, -0.026093858778476715,
                -0.08092105075716972, -0.09288699507713317, -0.20718276381492615, 0.0],
        'q99': [0.028309678435325586, 0.040855254605412394, 0.040161586627364146,
                0.08192047759890528, 0.07792850524187081, 0.20382574498653397, 1.0],
        'mask': [True, True, True, True, True, True, False],
    }},
    'fractal20220817_data': {'action': {
        'q01': [-0.22453527510166169, -0.14820013284683228, -0.231589707583189,
                -0.3517994859814644, -0.4193011274933815, -0.43643461108207704, 0.0],
        'q99': [0.17824687153100965, 0.14938379630446405, 0.21842354819178575,
                0.5892666035890578, 0.35272657424211445, 0.44796681255102094, 1.0],
        'mask': [True, True, True, True, True, True, False],
    }},
}
#: Bumped whenever the generated checkpoint changes, so caches rebuild.
FORMAT_VERSION = 1
#: File in which a generated checkpoint records its format version and build options.
MARKER = 'openvla_ros_test_model.json'
BASE_VOCAB = 32000
PADDED_VOCAB = 32064
SPACE_ID = 29871


def model_config(hidden_size: int = 256, num_layers: int = 2, num_heads: int = 4) -> dict:
    """Return the config.json of the test checkpoint (OpenVLA-7B's structure, small Llama)."""
    return {
        'architectures': ['OpenVLAForActionPrediction'],
        'model_type': 'openvla',
        'arch_specifier': 'no-align+fused-gelu-mlp',
        'vision_backbone_id': 'dinosiglip-vit-so-224px',
        'llm_backbone_id': 'llama2-test-tiny',
        'hf_llm_id': 'meta-llama/Llama-2-7b-hf',
        'image_resize_strategy': 'resize-naive',
        'image_sizes': [224, 224],
        'timm_model_ids': list(TIMM_MODEL_IDS),
        'timm_override_act_layers': [None, None],
        'use_fused_vision_backbone': True,
        'output_projector_states': False,
        'llm_max_length': 2048,
        'n_action_bins': 256,
        'pad_to_multiple_of': 64,
        'pad_token_id': 32000,
        'image_token_index': 32000,
        'torch_dtype': 'bfloat16',
        'norm_stats': NORM_STATS,
        'openvla_ros_test_model': {'format_version': FORMAT_VERSION,
                                   'note': 'random weights: actions are meaningless'},
        'text_config': {
            'model_type': 'llama',
            'architectures': ['LlamaForCausalLM'],
            'vocab_size': PADDED_VOCAB,
            'hidden_size': hidden_size,
            'intermediate_size': hidden_size * 4,
            'num_hidden_layers': num_layers,
            'num_attention_heads': num_heads,
            'num_key_value_heads': num_heads,
            'max_position_embeddings': 2048,
            'rms_norm_eps': 1e-6,
            'pad_token_id': 32000,
            'bos_token_id': 1,
            'eos_token_id': 2,
            'tie_word_embeddings': False,
            'torch_dtype': 'bfloat16',
        },
    }


def build_tokenizer() -> Any:
    """Return a character-level fast tokenizer laid out on Llama-2's special and byte ids."""
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, Tokenizer
    vocab: dict[str, int] = {'<unk>': 0, '<s>': 1, '</s>': 2}
    for byte in range(256):
        vocab[f'<0x{byte:02X}>'] = 3 + byte
    # Printable ASCII, with and without the word-start marker, so ordinary text needs no
    # byte fallback; everything else falls back to bytes exactly like Llama's tokenizer.
    for char in (chr(c) for c in range(33, 127)):
        for piece in (char, '\u2581' + char):
            vocab.setdefault(piece, len(vocab))
    filler = 0
    while len(vocab) < BASE_VOCAB:
        if len(vocab) == SPACE_ID:
            vocab['\u2581'] = SPACE_ID
            continue
        vocab[f'<unused_{filler}>'] = len(vocab)
        filler += 1
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token='<unk>',
                                     byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend('\u2581'),
                                                 normalizers.Replace(' ', '\u2581')])
    tokenizer.pre_tokenizer = pre_tokenizers.Split('\u2581', behavior='merged_with_next')
    tokenizer.decoder = decoders.Sequence([decoders.Replace('\u2581', ' '),
                                           decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(' ', 1, 0)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single='<s> $A', pair='<s> $A <s> $B', special_tokens=[('<s>', 1)])
    return tokenizer


def write_tokenizer_files(directory: Path | str) -> Path:
    """Write the test tokenizer's ``tokenizer.json`` and BOS setting, without transformers.

    What :class:`openvla_ros.core.remote.LocalTokenizer` reads; for tests that need the
    tokenizer but not the engine (transformers' classes import torch).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    build_tokenizer().save(str(folder / 'tokenizer.json'))
    (folder / 'tokenizer_config.json').write_text(json.dumps({'bos_token': '<s>'}))
    return folder


def _save_tokenizer(directory: Path) -> None:
    from transformers import PreTrainedTokenizerFast
    fast = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(), bos_token='<s>',
                                   eos_token='</s>', unk_token='<unk>', pad_token='<unk>',
                                   model_max_length=2048)
    fast.save_pretrained(str(directory))


def _state_dict(config: dict, seed: int) -> dict:
    """Return the checkpoint's tensors under OpenVLA's published parameter names."""
    import timm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tensors: dict[str, Any] = {}
    for prefix, timm_id in zip(('vision_backbone.featurizer.',
                                'vision_backbone.fused_featurizer.'), TIMM_MODEL_IDS):
        tower = timm.create_model(timm_id, pretrained=False, num_classes=0, img_size=224)
        for name, tensor in tower.state_dict().items():
            # The published checkpoint names DINOv2's LayerScale ".scale_factor" (vLLM maps
            # it back to timm's ".gamma"), so keep that spelling to exercise the real mapping.
            name = name.replace('.ls1.gamma', '.ls1.scale_factor')
            name = name.replace('.ls2.gamma', '.ls2.scale_factor')
            tensors[prefix + name] = tensor
        del tower
    text = config['text_config']
    hidden, vision_dim = text['hidden_size'], 2176
    for index, (fan_in, fan_out) in enumerate(
            [(vision_dim, 4 * vision_dim), (4 * vision_dim, hidden), (hidden, hidden)], 1):
        layer = torch.nn.Linear(fan_in, fan_out)  # PyTorch's default (Kaiming-uniform) init
        tensors[f'projector.fc{index}.weight'] = layer.weight.detach()
        tensors[f'projector.fc{index}.bias'] = layer.bias.detach()
    llama_options = {k: v for k, v in text.items() if k not in ('model_type', 'torch_dtype')}
    llama = LlamaForCausalLM(LlamaConfig(**llama_options))
    for name, tensor in llama.state_dict().items():
        tensors['language_model.' + name] = tensor
    return {name: t.detach().to(torch.bfloat16).contiguous() for name, t in tensors.items()}


def make_test_model(directory: str | os.PathLike, *, seed: int = 0, hidden_size: int = 256,
                    num_layers: int = 2, overwrite: bool = False, progress: bool = True) -> Path:
    """Write a random-weight OpenVLA-architecture checkpoint into ``directory``; return it.

    An existing complete checkpoint of the current format is reused (the test suite and the
    demo call this on a cache directory); ``overwrite`` rebuilds it. Writing goes to a sibling
    temporary directory renamed into place at the end, so an interrupted run leaves no
    half-written checkpoint that would later be taken for a good one.
    """
    target = Path(directory).expanduser()
    if is_test_model(target) and not overwrite:
        return target
    if target.exists() and any(target.iterdir()) and not is_test_model(target):
        if not overwrite:
            raise FileExistsError(
                f'{target} exists and is not an openvla_ros test checkpoint; choose an empty or '
                'new directory (or pass --overwrite)')
    from safetensors.torch import save_file
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix='.openvla-test-model-', dir=target.parent))
    steps = ['config', 'tokenizer', 'vision towers + projector + language model', 'safetensors']
    bar = _progress(len(steps), progress)
    try:
        started = time.perf_counter()
        config = model_config(hidden_size=hidden_size, num_layers=num_layers)
        (staging / 'config.json').write_text(json.dumps(config, indent=2) + '\n')
        bar.update(1)
        _save_tokenizer(staging)
        bar.update(1)
        with torch.no_grad():
            tensors = _state_dict(config, seed)
        bar.update(1)
        save_file(tensors, str(staging / 'model.safetensors'), metadata={'format': 'pt'})
        bar.update(1)
        info = {'format_version': FORMAT_VERSION, 'seed': seed,
                'parameters': int(sum(t.numel() for t in tensors.values())),
                'seconds': round(time.perf_counter() - started, 1)}
        (staging / MARKER).write_text(json.dumps(info, indent=2) + '\n')
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        bar.close()
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def checkpoint_info(directory: str | os.PathLike) -> dict:
    """Return what a test checkpoint records about itself (format version, seed, sizes)."""
    return json.loads((Path(directory) / MARKER).read_text())


def is_test_model(directory: str | os.PathLike) -> bool:
    """Return whether ``directory`` holds a complete test checkpoint of the current format."""
    try:
        info = checkpoint_info(directory)
    except (OSError, ValueError):
        return False
    return (info.get('format_version') == FORMAT_VERSION
            and (Path(directory) / 'model.safetensors').is_file())


def default_cache_dir() -> Path:
    """Return where the shared test checkpoint is cached (``OPENVLA_ROS_CACHE`` overrides)."""
    base = os.environ.get('OPENVLA_ROS_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache'),
        'openvla_ros')
    return Path(base) / f'test-model-v{FORMAT_VERSION}'


def cached_test_model(progress: bool = True) -> Path:
    """Return the cached test checkpoint, building it on first use."""
    return make_test_model(default_cache_dir(), progress=progress)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc='test checkpoint', unit='step')
