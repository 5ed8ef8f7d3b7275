# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""RemotePolicy against real vLLM servers started through ``openvla-ros serve``.

Two server start-ups (~60 s each on 2 CPU cores): a plain vLLM server without the OpenVLA
template, refused at construction; then one ``openvla-ros serve`` with an API key for every
other test. The in-process engine (the session ``policy``) runs only after that server is
stopped, so one engine computes at a time.
"""

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from openvla_ros.core import remote
from openvla_ros.core.images import encode_compressed, msg_to_rgb, rgb_to_image_fields
from openvla_ros.tools.synthetic import scene_image
from server_harness import base_env, free_port, KEY_ENV, ROOT, Server  # noqa: I100

pytestmark = pytest.mark.engine


def engine_dtype():
    """Return the dtype the session's in-process engine resolves ``auto`` to on this machine.

    The server and the in-process engine compared below must run the same computation:
    ``auto`` is bfloat16 on a CPU with native bf16 and float32 elsewhere, so the server gets
    the same resolved value instead of a fixed one.
    """
    from openvla_ros.core.hardware import detect_machine, resolve_dtype
    return resolve_dtype('auto', detect_machine()).dtype


UNNORM_KEY = 'bridge_orig'
KEY = 'test-key-' + os.urandom(6).hex()
INSTRUCTION = 'put the spoon on the towel'
# Camera sizes (height, width): already 224, smaller and larger than 224, odd aspect ratios.
SIZES = [(224, 224), (480, 640), (240, 320), (720, 1280), (300, 300), (256, 455), (600, 800),
         (224, 300), (512, 512), (360, 480)]
MESSAGE_KINDS = ['Image rgb8', 'Image bgr8', 'CompressedImage png', 'CompressedImage jpeg']


def frame_message(index):
    """Return a ROS image message of a textured scene: raw or compressed, by ``index``."""
    from sensor_msgs.msg import CompressedImage, Image
    height, width = SIZES[index]
    rng = np.random.default_rng(index)
    noise = rng.normal(0.0, 6.0, (height, width, 3))
    rgb = np.clip(scene_image(index, height, width) + noise, 0, 255).astype(np.uint8)
    kind = MESSAGE_KINDS[index % len(MESSAGE_KINDS)]
    if kind.startswith('Image'):
        msg = Image()
        for name, value in rgb_to_image_fields(rgb, kind.split()[1]).items():
            setattr(msg, name, value)
        return msg
    msg = CompressedImage()
    msg.format = kind.split()[1]
    msg.data = encode_compressed(rgb, msg.format)
    return msg


def test_server_without_openvla_template_is_refused(test_model, tmp_path):
    port = free_port()
    log = tmp_path / 'plain-vllm.log'
    argv = [sys.executable, '-m', 'vllm.entrypoints.openai.api_server', '--model',
            str(test_model), '--host', '127.0.0.1', '--port', str(port), '--dtype', 'float32',
            '--max-num-seqs', '1', '--max-model-len', '512', '--limit-mm-per-prompt',
            '{"image":1}', '--enforce-eager', '--gpu-memory-utilization', '0.3']
    server = Server(argv, base_env(log), 'its output above', f'http://127.0.0.1:{port}')
    try:
        server.wait_ready(health_only=True)
        try:
            policy = remote.RemotePolicy(str(test_model), UNNORM_KEY, url=server.url,
                                         api_key_env=KEY_ENV, timeout_s=120)
        except remote.RemoteMismatchError as error:
            refused = error
        else:
            with pytest.raises(remote.RemoteMismatchError) as caught:
                policy.predict(scene_image(1), INSTRUCTION)
            refused = caught.value
        assert remote.NO_TEMPLATE_FIX in str(refused)
        assert '--print-template' in str(refused)
    finally:
        server.stop()


@pytest.fixture(scope='module')
def served(test_model, tmp_path_factory):
    """Return ``openvla-ros serve`` on the test checkpoint, with an API key, on a free port."""
    port = free_port()
    log = tmp_path_factory.mktemp('serve') / 'serve.log'
    env = dict(base_env(log), **{KEY_ENV: KEY})
    argv = [sys.executable, '-m', 'openvla_ros.cli', 'serve', '--model', str(test_model),
            '--host', '127.0.0.1', '--port', str(port), '--dtype', engine_dtype(),
            '--api-key-env', KEY_ENV]
    server = Server(argv, env, log, f'http://127.0.0.1:{port}')
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture
def with_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def connect(test_model, url, **kwargs):
    return remote.RemotePolicy(str(test_model), UNNORM_KEY, url=url, api_key_env=KEY_ENV,
                               timeout_s=kwargs.pop('timeout_s', 120.0), **kwargs)


def test_ready_line_and_served_names(served, test_model):
    ready = [line for line in served.lines if 'ready at' in line]
    assert ready == [f'[serve] OpenVLA server ready at {served.url} (model {test_model}, '
                     f'max_num_seqs 1, dtype {engine_dtype()}, '
                     'API key required on every path but /health)']
    assert KEY not in ' '.join(served.lines)
    # The key reached the server through the environment, not its command line.
    for pid in subprocess.run(['pgrep', '-f', f'port {served.url.rsplit(":", 1)[1]}'],
                              capture_output=True, text=True).stdout.split():
        cmdline = Path(f'/proc/{pid}/cmdline').read_bytes().decode(errors='replace')
        assert KEY not in cmdline


def test_api_key_is_required(served, test_model, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(remote.RemoteAuthError, match=f'set the environment variable {KEY_ENV}'):
        connect(test_model, served.url)
    monkeypatch.setenv(KEY_ENV, 'not-the-key')
    with pytest.raises(remote.RemoteAuthError, match=f'refused the API key .*{KEY_ENV}') \
            as caught:
        connect(test_model, served.url)
    assert 'not-the-key' not in str(caught.value) and KEY not in str(caught.value)
    monkeypatch.setenv(KEY_ENV, KEY)
    policy = connect(test_model, served.url)
    report = policy.engine_report()
    assert report.remote.model_identity == 'config.json fingerprint'
    assert report.remote.template_check == 'server template renders the reference prompt ids'
    assert KEY not in json.dumps(report.as_dict()) and KEY not in repr(policy)
    policy.close()


@pytest.fixture(scope='module')
def remote_results(served, test_model):
    """Return the remote token ids and timings of every test frame (decoded like the node)."""
    os.environ[KEY_ENV] = KEY
    try:
        policy = connect(test_model, served.url)
        results = []
        for index in range(len(SIZES)):
            rgb = msg_to_rgb(frame_message(index))
            prediction = policy.predict(rgb, INSTRUCTION)
            results.append((prediction.token_ids, prediction.timings))
        policy.close()
    finally:
        os.environ.pop(KEY_ENV, None)
    return results


def test_remote_frames(remote_results):
    for token_ids, timings in remote_results:
        assert len(token_ids) == 7 and all(31744 <= t < 32000 for t in token_ids)
        assert timings['request_bytes'] > 0 and timings['engine_s'] > 0
        assert 0 < timings['server_s'] <= timings['engine_s']
    # The test frames are meant to move the random model: not all actions alike.
    assert len({tuple(ids) for ids, _ in remote_results}) > 2


def test_benchmark_clients_command(served, test_model, with_key, tmp_path):
    """``benchmark --engine-url --clients 1,2``: per-client and aggregate figures in the JSON."""
    out = tmp_path / 'fleet.json'
    done = subprocess.run(
        [sys.executable, '-m', 'openvla_ros.cli', 'benchmark', '--model', str(test_model),
         '--unnorm-key', UNNORM_KEY, '--engine-url', served.url, '--api-key-env', KEY_ENV,
         '--clients', '1,2', '--requests-per-client', '1', '--out', str(out),
         '--no-progress'], capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())['fleet']
    assert [run['clients'] for run in result['runs']] == [1, 2]
    for run in result['runs']:
        assert run['errors'] == 0 and run['completed'] == run['clients']
        assert run['actions_per_s'] > 0
        assert len(run['per_client']) == run['clients']
        for client in run['per_client']:
            assert 0 < client['p50_s'] <= client['p95_s']
    assert 'actions/s' in done.stdout


def test_remote_equals_in_process(request, served, remote_results):
    """The server's tokens equal the in-process engine's on every frame (bit-exact images)."""
    served.stop()  # one engine computing at a time on this machine
    policy = request.getfixturevalue('policy')
    # Like with like: the same dtype and engine settings on both sides (the server's come from
    # ``serve``, which uses the in-process engine's defaults for everything else).
    report = policy.engine_report()
    assert report.dtype == engine_dtype(), report
    assert (report.max_model_len, report.enforce_eager) == (512, True), report
    mismatches = []
    ratios = []
    for index, (remote_ids, timings) in enumerate(remote_results):
        rgb = msg_to_rgb(frame_message(index))
        local = policy.predict(rgb, INSTRUCTION)
        if local.token_ids != remote_ids:
            mismatches.append((index, MESSAGE_KINDS[index % 4], SIZES[index], remote_ids,
                               local.token_ids))
        ratios.append(timings['engine_s'] / local.timings['engine_s'])
    print(f'\nremote vs in-process: {len(remote_results)} frames, {len(mismatches)} token '
          f'mismatches; remote/in-process engine_s ratio median {np.median(ratios):.3f} '
          f'(range {min(ratios):.3f}..{max(ratios):.3f})')
    assert not mismatches, mismatches
