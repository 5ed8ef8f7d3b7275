"""Turn OpenVLA's 7 generated action tokens into an unnormalized end-effector action.

This is the reference decoding of OpenVLA (``OpenVLAForActionPrediction.predict_action``), done
on token ids, never on decoded text: action tokens are the last 256 ids of the Llama-2 base
vocabulary and decode to odd characters that do not round-trip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

#: Names of the 7 action dimensions, in the model's order.
ACTION_NAMES = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')
#: Number of tokens the model generates per action.
ACTION_DIM = len(ACTION_NAMES)

ConfigLike = Union[Mapping[str, Any], str, Path]


def load_model_config(config: ConfigLike) -> dict:
    """Return the checkpoint configuration and, if the checkpoint has one, its statistics file.

    ``config`` is a dict, a checkpoint directory or a ``config.json`` path. The result is a copy
    of the configuration; when a ``dataset_statistics.json`` sits beside ``config.json`` (as in
    fine-tuned checkpoints) it replaces ``norm_stats``, because the reference deployment loads
    that file in preference to the statistics baked into the configuration.
    """
    if isinstance(config, Mapping):
        return dict(config)
    path = Path(config).expanduser()
    if path.is_dir():
        directory, config_path = path, path / 'config.json'
    else:
        directory, config_path = path.parent, path
    if not config_path.is_file():
        raise FileNotFoundError(
            f'no OpenVLA config.json at {config_path}: pass a checkpoint directory that holds '
            'config.json, or the path of that file')
    with open(config_path, encoding='utf-8') as stream:
        loaded = json.load(stream)
    stats_path = directory / 'dataset_statistics.json'
    if stats_path.is_file():
        with open(stats_path, encoding='utf-8') as stream:
            loaded['norm_stats'] = json.load(stream)
    return loaded


class ActionDecoder:
    """Map OpenVLA action token ids to unnormalized 7-DoF actions exactly as the reference."""

    def __init__(self, vocab_size: int, n_action_bins: int, q01: Sequence[float],
                 q99: Sequence[float], mask: Sequence[bool] | None = None,
                 unnorm_key: str | None = None):
        """Build a decoder from the base vocabulary size, bin count and one dataset's statistics.

        ``vocab_size`` is the tokenizer's vocabulary without the padding rows added to the
        embedding (``text_config.vocab_size - pad_to_multiple_of``: 32000 for OpenVLA-7B).
        """
        if n_action_bins < 2:
            raise ValueError(f'n_action_bins must be at least 2, got {n_action_bins}')
        if vocab_size <= n_action_bins:
            raise ValueError(
                f'vocab_size {vocab_size} must exceed n_action_bins {n_action_bins}')
        self.vocab_size = int(vocab_size)
        self.n_action_bins = int(n_action_bins)
        self.unnorm_key = unnorm_key
        self.q01 = np.asarray(q01, dtype=np.float64)
        self.q99 = np.asarray(q99, dtype=np.float64)
        if self.q01.shape != self.q99.shape or self.q01.ndim != 1:
            raise ValueError(
                f'q01 and q99 must be vectors of one length, got {self.q01.shape} and '
                f'{self.q99.shape}')
        self.mask = (np.ones_like(self.q01, dtype=bool) if mask is None
                     else np.asarray(mask, dtype=bool))
        if self.mask.shape != self.q01.shape:
            raise ValueError(
                f'mask has shape {self.mask.shape} but the statistics have {self.q01.shape}')
        bins = np.linspace(-1.0, 1.0, self.n_action_bins)
        self.bin_centers = (bins[:-1] + bins[1:]) / 2.0

    @property
    def action_dim(self) -> int:
        """Return the number of action dimensions (the length of the statistics vectors)."""
        return int(self.q01.shape[0])

    @property
    def action_token_ids(self) -> list[int]:
        """Return the ids the model can emit as action tokens (the top ``n_action_bins`` ids)."""
        return list(range(self.vocab_size - self.n_action_bins, self.vocab_size))

    @classmethod
    def from_model_config(cls, config: ConfigLike, unnorm_key: str | None) -> 'ActionDecoder':
        """Build the decoder for ``unnorm_key`` from a checkpoint config (dict, dir or file)."""
        cfg = load_model_config(config)
        norm_stats = cfg.get('norm_stats') or {}
        keys = sorted(norm_stats)
        if not keys:
            raise ValueError(
                'the checkpoint has no norm_stats (nor a dataset_statistics.json): it cannot '
                'unnormalize actions')
        if unnorm_key is None or unnorm_key == '':
            if len(keys) == 1:
                unnorm_key = keys[0]
            else:
                raise ValueError(
                    f'unnorm_key is required: this checkpoint was trained on {len(keys)} '
                    f'datasets. Choose the one matching your robot, one of: {", ".join(keys)}')
        if unnorm_key not in norm_stats:
            raise ValueError(
                f'unknown unnorm_key {unnorm_key!r}; valid keys for this checkpoint: '
                f'{", ".join(keys)}')
        stats = norm_stats[unnorm_key].get('action')
        if stats is None or 'q01' not in stats or 'q99' not in stats:
            raise ValueError(
                f'norm_stats[{unnorm_key!r}] has no action q01/q99 statistics')
        text_config = cfg.get('text_config') or {}
        # The reference subtracts the padding added to the embedding: 32064 - 64 = 32000.
        padded = int(text_config.get('vocab_size', 32064))
        pad = int(cfg.get('pad_to_multiple_of', 64))
        return cls(vocab_size=padded - pad,
                   n_action_bins=int(cfg.get('n_action_bins', 256)),
                   q01=stats['q01'], q99=stats['q99'], mask=stats.get('mask'),
                   unnorm_key=unnorm_key)

    def normalized(self, token_ids: Sequence[int]) -> np.ndarray:
        """Return the normalized action in [-1, 1] for the generated token ids."""
        ids = np.asarray(list(token_ids), dtype=np.int64)
        if ids.shape != (self.action_dim,):
            raise ValueError(
                f'expected {self.action_dim} action token ids, got {ids.shape[0]}')
        index = np.clip(self.vocab_size - ids - 1, a_min=0,
                        a_max=self.bin_centers.shape[0] - 1)
        return self.bin_centers[index]

    def decode(self, token_ids: Sequence[int]) -> np.ndarray:
        """Return the unnormalized action, shape (7,), float64, for the generated token ids."""
        normalized = self.normalized(token_ids)
        return np.where(self.mask,
                        0.5 * (normalized + 1.0) * (self.q99 - self.q01) + self.q01,
                        normalized)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the smallest and largest action this decoder can produce, per dimension."""
        lo = self.decode([self.vocab_size - 1] * self.action_dim)
        hi = self.decode([self.vocab_size - self.n_action_bins] * self.action_dim)
        return np.minimum(lo, hi), np.maximum(lo, hi)
