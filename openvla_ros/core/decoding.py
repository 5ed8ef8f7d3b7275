# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Turn OpenVLA's 7 generated action tokens into an unnormalized end-effector action.

This is the reference decoding of OpenVLA (``OpenVLAForActionPrediction.predict_action``), done
on token ids, never on decoded text: action tokens are the last 256 ids of the Llama-2 base
vocabulary and decode to odd characters that do not round-trip.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np

from openvla_ros.core.checkpoints import is_local_checkpoint
from openvla_ros.core.errors import OpenVlaError

#: Names of the 7 action dimensions, in the model's order.
ACTION_NAMES = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')
#: Number of tokens the model generates per action.
ACTION_DIM = len(ACTION_NAMES)

ConfigLike = Union[Mapping[str, Any], str, Path]
PathLike = Union[str, Path]

#: Statistics sources recorded by :class:`ActionDecoder` (the explicit file adds its path).
SOURCE_DATASET_STATISTICS = 'dataset_statistics.json'
SOURCE_CONFIG = 'config.json norm_stats'
SOURCE_CONFIG_DICT = 'norm_stats (config dict)'
SOURCE_STATISTICS_FILE = 'statistics_file'


class StatisticsError(OpenVlaError, ValueError):
    """A checkpoint configuration or statistics file that cannot unnormalize actions."""


class StatisticsFileNotFoundError(OpenVlaError, FileNotFoundError):
    """The statistics_file given does not exist."""


#: The fix for any problem with a given statistics_file.
STATISTICS_FILE_FIX = ("set statistics_file to a readable JSON file in dataset_statistics.json "
                       "layout, or to '' to use the checkpoint's statistics")


#: Bounds of the decoder's integers: OpenVLA uses 256 bins and a 32000-token vocabulary; far
#: larger values come from a broken file and would allocate without limit.
_MAX_BINS = 1 << 16
_MAX_VOCAB = 1 << 24


def hub_cache_dir() -> Path:
    """Return the Hugging Face hub cache directory, read from the environment on every call.

    Same precedence as ``huggingface_hub``: ``$HF_HUB_CACHE``, the older
    ``$HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub``, ``$XDG_CACHE_HOME/huggingface/hub``, then
    ``~/.cache/huggingface/hub``.
    """
    for name in ('HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE'):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    if os.environ.get('HF_HOME'):
        return Path(os.environ['HF_HOME']).expanduser() / 'hub'
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(cache).expanduser() / 'huggingface' / 'hub'


def _walk_hub_cache(repo_id: str, cache: Path) -> Path | None:
    """Find ``config.json`` of ``repo_id`` in a hub cache by walking its layout."""
    repo = cache / ('models--' + repo_id.replace('/', '--'))
    snapshots = repo / 'snapshots'
    ref = repo / 'refs' / 'main'
    if ref.is_file():
        # refs/main names the snapshot the hub client would load.
        candidate = snapshots / ref.read_text(encoding='utf-8').strip() / 'config.json'
        if candidate.is_file():
            return candidate
    if not snapshots.is_dir():
        return None
    found = [entry / 'config.json' for entry in snapshots.iterdir()
             if (entry / 'config.json').is_file()]
    # Without a usable ref, the most recently written snapshot is the latest download.
    return max(found, key=lambda path: (path.parent.stat().st_mtime, path.parent.name),
               default=None)


def resolve_hub_config(repo_id: str) -> Path:
    """Return the cached ``config.json`` of hub model ``repo_id`` without any network access.

    The path stays inside ``snapshots/<revision>/`` (it is not resolved through the blob
    symlinks) so that ``dataset_statistics.json`` is found beside it.
    """
    cache = hub_cache_dir()
    found: Path | None = None
    try_to_load_from_cache: Callable[..., object] | None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        try_to_load_from_cache = None
    if try_to_load_from_cache is not None:
        try:
            cached = try_to_load_from_cache(repo_id, 'config.json', cache_dir=str(cache))
        except ValueError:
            cached = None  # an id the hub client rejects: let the walk decide
        if isinstance(cached, str):
            found = Path(cached)
    if found is None:
        # Also covers a cache with no refs/main, which the hub client does not search.
        found = _walk_hub_cache(repo_id, cache)
    if found is None:
        raise FileNotFoundError(
            f'{repo_id!r} is not a local checkpoint directory and is not in the Hugging Face '
            f'cache {cache} (no network access is attempted): on a machine with network run '
            f'"huggingface-cli download {repo_id} config.json dataset_statistics.json" (set '
            'HF_HUB_CACHE or HF_HOME if the cache lives elsewhere), or pass a local checkpoint '
            'directory')
    return found


def _config_path(config: PathLike) -> Path:
    """Return the ``config.json`` path for a directory, a file path or a hub id."""
    if not is_local_checkpoint(str(config)):
        return resolve_hub_config(str(config).strip())
    path = Path(str(config).strip()).expanduser()
    config_path = path / 'config.json' if path.is_dir() else path
    if not config_path.is_file():
        raise FileNotFoundError(
            f'no OpenVLA config.json at {config_path}: pass a checkpoint directory that holds '
            'config.json, the path of that file, or a Hugging Face model id in the local cache')
    return config_path


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f'{what} {path} does not exist (or is not a file)')
    try:
        with open(path, encoding='utf-8') as stream:
            return json.load(stream)
    except (OSError, UnicodeDecodeError) as exc:
        raise StatisticsError(f'{what} {path} cannot be read: {exc}') from exc
    except json.JSONDecodeError as exc:
        raise StatisticsError(f'{what} {path} is not valid JSON: {exc}') from exc


def _check_statistics(stats: Any, where: str) -> dict[str, Any]:
    """Check the ``dataset_statistics.json`` layout: {key: {"action": {"q01", "q99"}}}."""
    if not isinstance(stats, Mapping) or not stats:
        raise StatisticsError(
            f'{where} must be a non-empty JSON object mapping dataset keys to statistics, '
            'like {"my_robot": {"action": {"q01": [...], "q99": [...], "mask": [...]}}}')
    for key, entry in stats.items():
        action = entry.get('action') if isinstance(entry, Mapping) else None
        if not isinstance(action, Mapping):
            raise StatisticsError(f'{where}: entry {key!r} has no "action" object')
        lengths = []
        for name in ('q01', 'q99', 'mask'):
            values = action.get(name)
            if values is None and name == 'mask':
                continue
            if (not isinstance(values, list) or not values
                    or not all(_is_number(v, name == 'mask') for v in values)):
                raise StatisticsError(
                    f'{where}: {key!r} action {name} must be a non-empty list of numbers '
                    f'({"true/false" if name == "mask" else "finite"}), got {_short(values)}')
            lengths.append(len(values))
        if len(set(lengths)) != 1:
            raise StatisticsError(
                f'{where}: {key!r} action q01, q99 and mask have different lengths {lengths}')
    return dict(stats)


def _is_number(value: Any, mask: bool) -> bool:
    if mask:
        return isinstance(value, (bool, int)) and not isinstance(value, float)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < 1e300 if isinstance(value, int) else math.isfinite(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:120] + '...'


def _config_int(cfg: Mapping[str, Any], name: str, default: int, low: int, high: int,
                where: Any = None) -> int:
    value = (where if where is not None else cfg).get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StatisticsError(f'config {name} must be an integer in {low}..{high}, got '
                              f'{_short(value)}')
    return value


def _load_config(config: ConfigLike,
                 statistics_file: PathLike | None = None) -> tuple[dict[str, Any], str]:
    """Return the configuration with the statistics in effect, and where they came from."""
    if isinstance(config, Mapping):
        loaded, source = dict(config), SOURCE_CONFIG_DICT
    else:
        config_path = _config_path(config)
        loaded = _read_json(config_path, 'OpenVLA config')
        if not isinstance(loaded, dict):
            raise StatisticsError(f'OpenVLA config {config_path} is not a JSON object')
        source = SOURCE_CONFIG
        stats_path = config_path.parent / 'dataset_statistics.json'
        if stats_path.is_file():
            loaded['norm_stats'] = _check_statistics(
                _read_json(stats_path, 'statistics file'), str(stats_path))
            source = SOURCE_DATASET_STATISTICS
    if statistics_file is not None:
        path = Path(statistics_file).expanduser()
        if not path.is_file():
            raise StatisticsFileNotFoundError(
                f'statistics_file {path} does not exist (or is not a file)',
                STATISTICS_FILE_FIX, parameter='statistics_file')
        try:
            loaded['norm_stats'] = _check_statistics(
                _read_json(path, 'statistics_file'), f'statistics_file {path}')
        except StatisticsError as error:
            # The file given is at fault, whatever check found it: say which setting to change.
            raise StatisticsError(error.what, STATISTICS_FILE_FIX,
                                  parameter='statistics_file') from None
        source = f'{SOURCE_STATISTICS_FILE} {path}'
    return loaded, source


def load_model_config(config: ConfigLike,
                      statistics_file: PathLike | None = None) -> dict[str, Any]:
    """Return the checkpoint configuration with the statistics the reference would use.

    ``config`` is a dict, a checkpoint directory, a ``config.json`` path, or a Hugging Face
    model id (``owner/name``) already in the local hub cache. The result is a copy of the
    configuration; when a ``dataset_statistics.json`` sits beside ``config.json`` (as in
    fine-tuned checkpoints) it replaces ``norm_stats``, because the reference deployment loads
    that file in preference to the statistics baked into the configuration. An explicit
    ``statistics_file`` (same layout as ``dataset_statistics.json``) overrides both.
    """
    return _load_config(config, statistics_file)[0]


def statistics_hash(unnorm_key: str | None, q01: Sequence[float] | np.ndarray,
                    q99: Sequence[float] | np.ndarray, mask: Sequence[bool] | np.ndarray) -> str:
    """Return 12 hex digits of the SHA-256 of the statistics' canonical JSON.

    The canonical form is ``{"mask": [bools], "q01": [floats], "q99": [floats],
    "unnorm_key": key}`` dumped with sorted keys and no white space, so the same statistics
    give the same hash whichever file or machine they come from.
    """
    canonical = {'unnorm_key': unnorm_key, 'q01': [float(v) for v in q01],
                 'q99': [float(v) for v in q99], 'mask': [bool(v) for v in mask]}
    text = json.dumps(canonical, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]


class ActionDecoder:
    """Map OpenVLA action token ids to unnormalized 7-DoF actions exactly as the reference."""

    def __init__(self, vocab_size: int, n_action_bins: int, q01: Sequence[float],
                 q99: Sequence[float], mask: Sequence[bool] | None = None,
                 unnorm_key: str | None = None, statistics_source: str | None = None):
        """Build a decoder from the base vocabulary size, bin count and one dataset's statistics.

        ``vocab_size`` is the tokenizer's vocabulary without the padding rows added to the
        embedding (``text_config.vocab_size - pad_to_multiple_of``: 32000 for OpenVLA-7B).
        ``statistics_source`` says where the statistics came from, for :meth:`provenance`.
        """
        if n_action_bins < 2:
            raise StatisticsError(f'n_action_bins must be at least 2, got {n_action_bins}')
        if vocab_size <= n_action_bins:
            raise StatisticsError(
                f'vocab_size {vocab_size} must exceed n_action_bins {n_action_bins}')
        self.vocab_size = int(vocab_size)
        self.n_action_bins = int(n_action_bins)
        self.unnorm_key = unnorm_key
        self.q01 = np.asarray(q01, dtype=np.float64)
        self.q99 = np.asarray(q99, dtype=np.float64)
        if self.q01.shape != self.q99.shape or self.q01.ndim != 1:
            raise StatisticsError(
                f'q01 and q99 must be vectors of one length, got {self.q01.shape} and '
                f'{self.q99.shape}')
        self.mask = (np.ones_like(self.q01, dtype=bool) if mask is None
                     else np.asarray(mask, dtype=bool))
        if self.mask.shape != self.q01.shape:
            raise StatisticsError(
                f'mask has shape {self.mask.shape} but the statistics have {self.q01.shape}')
        bins = np.linspace(-1.0, 1.0, self.n_action_bins)
        self.bin_centers = (bins[:-1] + bins[1:]) / 2.0
        self.statistics_source = statistics_source
        self.statistics_hash = statistics_hash(unnorm_key, self.q01, self.q99, self.mask)

    def provenance(self) -> dict[str, Any]:
        """Return which statistics this decoder uses: key, source and hash, for logs."""
        return {'unnorm_key': self.unnorm_key, 'statistics_source': self.statistics_source,
                'statistics_hash': self.statistics_hash}

    @property
    def action_dim(self) -> int:
        """Return the number of action dimensions (the length of the statistics vectors)."""
        return int(self.q01.shape[0])

    @property
    def action_token_ids(self) -> list[int]:
        """Return the ids the model can emit as action tokens (the top ``n_action_bins`` ids)."""
        return list(range(self.vocab_size - self.n_action_bins, self.vocab_size))

    @classmethod
    def from_model_config(cls, config: ConfigLike, unnorm_key: str | None,
                          statistics_file: PathLike | None = None) -> 'ActionDecoder':
        """Build the decoder for ``unnorm_key`` from a checkpoint config.

        ``config`` is a dict, a checkpoint directory, a ``config.json`` path or a hub id in the
        local cache (see :func:`load_model_config`); ``statistics_file`` overrides the
        checkpoint's statistics. A single dataset key is chosen when ``unnorm_key`` is empty.
        """
        cfg, source = _load_config(config, statistics_file)
        norm_stats = cfg.get('norm_stats') or {}
        if not isinstance(norm_stats, Mapping):
            raise StatisticsError(f'norm_stats must be an object mapping dataset keys to '
                                  f'statistics, got {_short(norm_stats)} (from {source})')
        keys = sorted(str(k) for k in norm_stats)
        if not keys:
            raise StatisticsError(
                'the checkpoint has no norm_stats (nor a dataset_statistics.json): it cannot '
                'unnormalize actions; pass a statistics_file')
        if unnorm_key is None or unnorm_key == '':
            if len(keys) == 1:
                unnorm_key = keys[0]
            else:
                raise StatisticsError(
                    'unnorm_key is required',
                    f'this checkpoint was trained on {len(keys)} datasets. Choose the one '
                    f'matching your robot, one of: {", ".join(keys)} (statistics from '
                    f'{source})', parameter='unnorm_key')
        if unnorm_key not in norm_stats:
            raise StatisticsError(
                f'unknown unnorm_key {unnorm_key!r}',
                f'set unnorm_key to one of the valid keys for this checkpoint: '
                f'{", ".join(keys)} (statistics from {source})', parameter='unnorm_key')
        entry = norm_stats[unnorm_key]
        stats = entry.get('action') if isinstance(entry, Mapping) else None
        if not isinstance(stats, Mapping) or 'q01' not in stats or 'q99' not in stats:
            raise StatisticsError(
                f'norm_stats[{unnorm_key!r}] has no action q01/q99 statistics (statistics '
                f'from {source})')
        text_config = cfg.get('text_config') or {}
        if not isinstance(text_config, Mapping):
            raise StatisticsError(f'config text_config must be an object, got '
                                  f'{_short(text_config)}')
        # The reference subtracts the padding added to the embedding: 32064 - 64 = 32000.
        padded = _config_int(text_config, 'vocab_size', 32064, 3, _MAX_VOCAB)
        pad = _config_int(cfg, 'pad_to_multiple_of', 64, 0, _MAX_VOCAB)
        bins = _config_int(cfg, 'n_action_bins', 256, 2, _MAX_BINS)
        # A config dict (no file) has not been through the file check: check it the same way.
        _check_statistics({unnorm_key: entry}, f'norm_stats[{unnorm_key!r}] ({source})')
        return cls(vocab_size=padded - pad, n_action_bins=bins,
                   q01=stats['q01'], q99=stats['q99'], mask=stats.get('mask'),
                   unnorm_key=unnorm_key, statistics_source=source)

    def normalized(self, token_ids: Sequence[int]) -> np.ndarray:
        """Return the normalized action in [-1, 1] for the generated token ids."""
        ids = np.asarray(list(token_ids), dtype=np.int64)
        if ids.shape != (self.action_dim,):
            raise StatisticsError(
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
