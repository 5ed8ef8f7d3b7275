# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""RemotePolicy without a vLLM server: a scripted stand-in server, crafted replies, imports."""

import base64
import io
import json
import os
from pathlib import Path
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image
import pytest

from openvla_ros.core import remote
from openvla_ros.core.policy import ReportingPolicy
from openvla_ros.core.preprocessing import ImagePreparation, prepare
from openvla_ros.core.prompt import InstructionError, SPACE_TOKEN_ID
from openvla_ros.tools.synthetic import scene_image

ROOT = Path(__file__).resolve().parents[2]
UNNORM_KEY = 'bridge_orig'
KEY_ENV = 'OPENVLA_ROS_TEST_REMOTE_KEY'
SECRET = 'do-not-leak-0123456789'
IMAGE_TOKEN = 32000
ACTION_IDS = list(range(31744, 32000))


class FakeServer:
    """A stand-in for vLLM's OpenAI-compatible server, answering like vLLM 0.32 does.

    Its tokenizer is the checkpoint's own (the ``tokenizers`` library), its chat template the
    OpenVLA one unless told otherwise; chat completions return ``reply_hook``'s reply.
    """

    def __init__(self, model_dir, *, key=None, template=True, served=None, delay=0.0):
        from tokenizers import Tokenizer
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / 'tokenizer.json'))
        self.key = key
        self.template = template
        self.delay = delay
        self.served = served or [str(model_dir), remote.CONFIG_ALIAS_PREFIX
                                 + remote.config_fingerprint(Path(model_dir) / 'config.json')]
        self.requests = []
        self.reply_hook = None
        self.fail_with = None
        self.closed = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _send(self, status, payload):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:
                    pass  # the client gave up (deadline tests)

            def _authorized(self):
                if fake.key is None:
                    return True
                return self.headers.get('Authorization') == f'Bearer {fake.key}'

            def do_GET(self):
                if self.path == '/health':
                    self.send_response(200)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                elif self.path == '/v1/models':
                    if not self._authorized():
                        return self._send(401, {'error': 'Unauthorized'})
                    self._send(200, {'object': 'list', 'data': [
                        {'id': name, 'root': fake.served[0], 'max_model_len': 512}
                        for name in fake.served]})
                else:
                    self._send(404, {'detail': 'Not Found'})

            def do_POST(self):
                if fake.closed:
                    # Gone: drop kept-alive connections without a reply, like a dead server.
                    self.close_connection = True
                    return
                length = int(self.headers.get('Content-Length', 0))
                body = json.loads(self.rfile.read(length))
                fake.requests.append((self.path, dict(self.headers), body))
                if self.path == '/tokenize':
                    if 'messages' in body:
                        if not fake.template:
                            return self._send(400, {'error': {
                                'message': 'As of transformers v4.44, default chat template '
                                           'is no longer allowed', 'code': 400}})
                        return self._send(200, {'tokens': fake.render(body['messages'])})
                    ids = fake.tokenizer.encode(body['prompt'],
                                                add_special_tokens=body['add_special_tokens'])
                    return self._send(200, {'tokens': ids.ids})
                if self.path == '/v1/chat/completions':
                    if not self._authorized():
                        return self._send(401, {'error': 'Unauthorized'})
                    time.sleep(fake.delay)
                    if fake.fail_with is not None:
                        return self._send(*fake.fail_with)
                    prompt = fake.render(body['messages'])
                    prompt = prompt[:1] + [IMAGE_TOKEN] * 256 + prompt[1:]
                    reply = {'id': 'chatcmpl-' + body['request_id'],
                             'choices': [{'index': 0, 'finish_reason': 'length',
                                          'token_ids': [31744, 31872, 31999, 31800, 31900,
                                                        31850, 31999]}],
                             'prompt_token_ids': prompt,
                             'metrics': {'queue_time_ms': 1.0, 'time_to_first_token_ms': 20.0,
                                         'generation_time_ms': 9.0, 'mean_itl_ms': 1.5}}
                    if fake.reply_hook is not None:
                        reply = fake.reply_hook(reply)
                    return self._send(200, reply)
                self._send(404, {'detail': 'Not Found'})

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def render(self, messages):
        text = ''.join(part['text'] for m in messages for part in m['content']
                       if part['type'] == 'text')
        prefix = '<s>' if self.template else ''
        return self.tokenizer.encode(prefix + text, add_special_tokens=False).ids

    def close(self):
        self.closed = True
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake(test_model):
    server = FakeServer(test_model)
    yield server
    server.close()


def make_policy(test_model, url, **kwargs):
    return remote.RemotePolicy(str(test_model), UNNORM_KEY, url=url, api_key_env=KEY_ENV,
                               timeout_s=kwargs.pop('timeout_s', 5.0), **kwargs)


def test_request_body_and_decoding(test_model, fake):
    policy = make_policy(test_model, fake.url)
    prediction = policy.predict(scene_image(3, 480, 640), 'Put the spoon on the towel')
    path, headers, body = fake.requests[-1]
    assert path == '/v1/chat/completions'
    assert body['model'] == str(test_model)
    assert body['temperature'] == 0.0
    assert body['max_tokens'] == body['min_tokens'] == 7
    assert body['allowed_token_ids'] == ACTION_IDS
    assert body['return_token_ids'] is True and body['add_special_tokens'] is False
    assert body['request_id'].startswith('openvla-ros-')
    assert headers['X-Request-Id'] == body['request_id']
    image_part, text_part = body['messages'][0]['content']
    assert text_part == {'type': 'text', 'text': 'In: What action should the robot take to put '
                                                 'the spoon on the towel?\nOut: '}
    assert image_part['image_url']['url'].startswith('data:image/png;base64,')
    assert 'Authorization' not in headers  # no key set
    np.testing.assert_array_equal(
        prediction.action, policy.decoder.decode([31744, 31872, 31999, 31800, 31900, 31850,
                                                  31999]))
    timings = prediction.timings
    assert timings['server_s'] == pytest.approx(0.030)
    assert timings['network_s'] == pytest.approx(timings['engine_s'] - 0.030)
    for name in ('encode_s', 'engine_s', 'e2e_s', 'request_bytes', 'ttft_s', 'tpot_s'):
        assert timings[name] > 0, name
    assert isinstance(policy, ReportingPolicy)   # the node's and the tools' contract
    report = policy.engine_report()
    assert report.engine == 'remote' and report.model == policy.model
    assert report.remote.model_identity == 'config.json fingerprint'
    assert report.remote.requests == 1
    assert report.remote.request_bytes_last == timings['request_bytes']
    assert report.unnorm_key == UNNORM_KEY and report.image_preprocessing == 'processor'
    assert report.as_dict()['url'] == policy.url   # the remote fields sit at the top level
    json.dumps(report.as_dict())
    policy.close()
    assert not policy.is_alive()


def test_png_resize_matches_the_server_processor():
    """The robot-side resize + PNG gives the server exactly the processor's 224 x 224 pixels."""
    for index, (height, width) in enumerate([(480, 640), (224, 224), (100, 300), (720, 1280)]):
        # Fine detail and noise, so that any resampling difference would show.
        rgb = textured(index, height, width)
        rgb[::7, ::5] = (index * 40) % 256
        data, mime = remote.encode_image(rgb)
        assert mime == 'image/png'
        received = Image.open(io.BytesIO(data))
        received.load()
        # vLLM's server: decode, convert('RGB'), then the OpenVLA processor's resize.
        server = received.convert('RGB').resize((224, 224), Image.Resampling.BICUBIC)
        # The in-process engine: the camera frame itself through the processor's resize.
        expected = Image.fromarray(rgb).convert('RGB').resize((224, 224),
                                                              Image.Resampling.BICUBIC)
        np.testing.assert_array_equal(np.asarray(server), np.asarray(expected))


def test_preparation_happens_before_the_resize():
    preparation = ImagePreparation(mode='processor', center_crop=True)
    rgb = scene_image(5, 300, 400)
    data, _ = remote.encode_image(rgb, preparation)
    expected = prepare(rgb, preparation).resize((224, 224), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(expected))


def test_jpeg_is_smaller_and_not_exact():
    rgb = textured(2)
    png, _ = remote.encode_image(rgb, image_format='png')
    jpeg, mime = remote.encode_image(rgb, image_format='jpeg', jpeg_quality=80)
    assert mime == 'image/jpeg' and len(jpeg) < len(png)
    with pytest.raises(ValueError, match='image_format'):
        remote.encode_image(rgb, image_format='webp')


def textured(index, height=480, width=640):
    """Return a scene with camera-like sensor noise (flat synthetic scenes compress too well)."""
    rng = np.random.default_rng(index)
    noise = rng.normal(0.0, 6.0, (height, width, 3))
    return np.clip(scene_image(index, height, width) + noise, 0, 255).astype(np.uint8)


def reply_for(prompt, completion=(31744,) * 7):
    return {'choices': [{'token_ids': list(completion), 'finish_reason': 'length'}],
            'prompt_token_ids': list(prompt)}


EXPECTED = [1, 500, 600, 700, SPACE_TOKEN_ID]
GOOD_PROMPT = [1] + [IMAGE_TOKEN] * 256 + EXPECTED[1:]


def check(reply):
    return remote.check_reply(reply, EXPECTED, image_token_id=IMAGE_TOKEN,
                              action_token_ids=ACTION_IDS, url='http://server')


def test_reply_checks_accept_the_reference_layout():
    assert check(reply_for(GOOD_PROMPT, range(31990, 31997))) == list(range(31990, 31997))


@pytest.mark.parametrize('prompt,completion,message', [
    (GOOD_PROMPT[1:], (31744,) * 7,
     'does not start with BOS.*openvla-ros serve.*--print-template'),
    ([1] + EXPECTED[1:], (31744,) * 7, 'without the 256 image tokens.*--chat-template'),
    ([1] + [IMAGE_TOKEN] * 255 + EXPECTED[1:], (31744,) * 7, 'without the 256 image tokens'),
    ([1] + [IMAGE_TOKEN] * 256 + [500, 601, 700, SPACE_TOKEN_ID], (31744,) * 7,
     'tokenized the instruction differently'),
    ([1] + [IMAGE_TOKEN] * 256 + [500, 600, 700], (31744,) * 7,
     'does not end with 29871.*--print-template'),
    (GOOD_PROMPT, (31744,) * 6, 'generated 6 tokens instead of 7'),
    (GOOD_PROMPT, (31744,) * 8, 'generated 8 tokens instead of 7'),
    (GOOD_PROMPT, (31744,) * 6 + (32000,), 'outside the action range.*allowed_token_ids'),
    (GOOD_PROMPT, (31743,) + (31744,) * 6, 'outside the action range'),
])
def test_reply_checks_refuse(prompt, completion, message):
    with pytest.raises(remote.RemoteMismatchError, match=message):
        check(reply_for(prompt, completion))


def test_reply_without_token_ids_is_refused():
    with pytest.raises(remote.RemoteMismatchError, match='no token ids'):
        check({'choices': [{'message': {'content': 'abc'}}]})


def test_bad_reply_never_returns_an_action(test_model, fake):
    policy = make_policy(test_model, fake.url)
    fake.reply_hook = lambda reply: {**reply, 'prompt_token_ids': reply['prompt_token_ids'][1:]}
    with pytest.raises(remote.RemoteMismatchError, match='BOS') as caught:
        policy.predict(scene_image(0), 'lift the cup')
    assert caught.value.engine_dead and not caught.value.retryable
    assert policy.requests == 0


def test_server_without_template_is_refused_at_construction(test_model):
    server = FakeServer(test_model, template=False)
    try:
        with pytest.raises(remote.RemoteMismatchError,
                           match=r'no OpenVLA chat template: start it with `openvla-ros serve`'):
            make_policy(test_model, server.url)
    finally:
        server.close()


def test_other_model_is_refused(test_model):
    server = FakeServer(test_model, served=['someone/other-vla', 'openvla-config-0000'])
    try:
        with pytest.raises(remote.RemoteMismatchError, match="config.json differs"):
            make_policy(test_model, server.url)
    finally:
        server.close()
    # A server not started by openvla-ros serve: matched by name, then by its tokenizer.
    server = FakeServer(test_model, served=['/srv/models/' + Path(test_model).name])
    try:
        assert make_policy(test_model, server.url).identity == 'model name'
    finally:
        server.close()
    server = FakeServer(test_model, served=['/srv/models/other'])
    try:
        with pytest.raises(remote.RemoteMismatchError, match='not .*start the server on this'):
            make_policy(test_model, server.url)
    finally:
        server.close()


def test_instruction_errors_like_the_in_process_policy(test_model, fake):
    policy = make_policy(test_model, fake.url)
    with pytest.raises(InstructionError, match='empty'):
        policy.prompt_ids('   ')
    with pytest.raises(InstructionError, match='too long'):
        policy.predict(scene_image(0), 'go ' * 400)
    assert not [r for r in fake.requests if r[0] == '/v1/chat/completions']


def test_api_key_is_sent_and_never_shown(test_model, monkeypatch):
    server = FakeServer(test_model, key=SECRET)
    try:
        monkeypatch.delenv(KEY_ENV, raising=False)
        with pytest.raises(remote.RemoteAuthError,
                           match=f'set the environment variable {KEY_ENV}'):
            make_policy(test_model, server.url)
        monkeypatch.setenv(KEY_ENV, 'wrong-key')
        with pytest.raises(remote.RemoteAuthError, match=f'refused the API key .*{KEY_ENV}') \
                as caught:
            make_policy(test_model, server.url)
        assert 'wrong-key' not in str(caught.value)
        monkeypatch.setenv(KEY_ENV, SECRET)
        policy = make_policy(test_model, server.url)
        policy.predict(scene_image(1), 'lift the cup')
        assert server.requests[-1][1]['Authorization'] == f'Bearer {SECRET}'
        texts = [repr(policy), str(policy.__dict__), json.dumps(policy.engine_report().as_dict())]
        server.key = 'rotated'
        with pytest.raises(remote.RemoteAuthError) as caught:
            policy.predict(scene_image(2), 'lift the cup')
        texts += [str(caught.value), repr(caught.value)]
        for text in texts:
            assert SECRET not in text
    finally:
        server.close()


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def test_unreachable_server_is_retryable_and_quick(test_model):
    url = f'http://127.0.0.1:{free_port()}'
    started = time.monotonic()
    with pytest.raises(remote.EngineUnavailableError, match='connection refused.*openvla-ros '
                                                            'serve') as caught:
        make_policy(test_model, url)
    assert time.monotonic() - started < 2.0
    assert caught.value.retryable and not caught.value.engine_dead
    assert url.split('//')[1] in str(caught.value)


def test_server_going_away_and_deadline(test_model):
    server = FakeServer(test_model)
    policy = make_policy(test_model, server.url, timeout_s=1.0)
    server.delay = 1.5
    started = time.monotonic()
    with pytest.raises(remote.EngineUnavailableError, match='deadline of 1 s') as caught:
        policy.predict(scene_image(0), 'lift the cup')
    assert time.monotonic() - started < 1.4
    assert caught.value.retryable
    server.delay = 0.0
    time.sleep(0.6)  # the late reply arrives on a connection that was dropped
    assert policy.predict(scene_image(1), 'lift the cup').token_ids[0] == 31744
    server.close()
    with pytest.raises(remote.EngineUnavailableError) as caught:
        policy.predict(scene_image(2), 'lift the cup')
    assert caught.value.retryable and policy.is_alive()


def test_http_errors_map_to_exceptions(test_model, fake):
    policy = make_policy(test_model, fake.url)
    cases = [(503, remote.EngineUnavailableError, True),
             (500, remote.EngineUnavailableError, True),
             (429, remote.EngineUnavailableError, True), (400, remote.RemoteRequestError, False),
             (404, remote.RemoteMismatchError, False)]
    for status, kind, retryable in cases:
        message = 'The model `x` does not exist.' if status == 404 else f'failure {status}'
        fake.fail_with = (status, {'error': {'message': message, 'code': status}})
        with pytest.raises(kind) as caught:
            policy.predict(scene_image(0), 'lift the cup')
        assert caught.value.retryable is retryable
        assert str(status) in str(caught.value) or 'does not exist' in str(caught.value)
    fake.fail_with = None
    assert len(policy.predict(scene_image(0), 'lift the cup').token_ids) == 7


_BLOCKER = '''
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('vllm', 'torch'):
            raise ImportError('blocked: ' + name)
        return None
sys.meta_path.insert(0, Block())
from openvla_ros.core import remote
from openvla_ros.tools.synthetic import scene_image
tokenizer = remote.LocalTokenizer(sys.argv[1])
ids = remote.prompt_token_ids(tokenizer, 'put the spoon on the towel')
model, config = remote.model_files(sys.argv[1])
decoder = remote.ActionDecoder.from_model_config(config, 'bridge_orig')
decoder.decode([31744] * 7)
remote.encode_image(scene_image(0, 480, 640))
import openvla_ros.tools.fleet
assert ids[0] == 1 and ids[-1] == 29871, ids
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('vllm', 'torch', 'transformers'))
print('LOADED', loaded)
'''


def test_client_needs_neither_vllm_nor_torch(test_model):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, '-c', _BLOCKER, str(test_model)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'LOADED []' in done.stdout, done.stdout


def test_bad_arguments(test_model, fake):
    with pytest.raises(ValueError, match='image_format'):
        make_policy(test_model, fake.url, image_format='gif')
    with pytest.raises(ValueError, match='url'):
        make_policy(test_model, 'ftp://host:1')
    with pytest.raises(ValueError, match='not in the url'):
        make_policy(test_model, f'http://user:{SECRET}@127.0.0.1:1')
    with pytest.raises(ValueError, match='timeout_s'):
        make_policy(test_model, fake.url, timeout_s=0)


def test_jpeg_requests_are_smaller(test_model, fake):
    png = make_policy(test_model, fake.url)
    jpeg = make_policy(test_model, fake.url, image_format='jpeg', jpeg_quality=85)
    rgb = textured(4)
    a = png.predict(rgb, 'lift the cup').timings['request_bytes']
    b = jpeg.predict(rgb, 'lift the cup').timings['request_bytes']
    assert b < a
    assert fake.requests[-1][2]['messages'][0]['content'][0]['image_url']['url'].startswith(
        'data:image/jpeg;base64,')
    report = jpeg.engine_report()
    assert report.remote.jpeg_quality == 85 and report.remote.bit_exact_images is False
    assert report.as_dict()['jpeg_quality'] == 85
    # The payload is base64 of the encoded image: decoding it gives back 224 x 224.
    url = fake.requests[-1][2]['messages'][0]['content'][0]['image_url']['url']
    assert Image.open(io.BytesIO(base64.b64decode(url.split(',', 1)[1]))).size == (224, 224)
