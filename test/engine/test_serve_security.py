# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros serve`` really protected: one real vLLM server with a key and TLS (loopback).

One server start-up (~1 min on 2 CPU cores) for every test here: the key guards every path
but ``/health`` (``/invocations`` and ``/tokenize`` included, which vLLM's own key check
leaves open), vLLM's development endpoints stay off even when ``VLLM_SERVER_DEV_MODE`` is set
around ``serve``, and the client and the node act over https with a CA the test generates;
a client trusting another CA is refused. No key material is committed: the certificates are
made here, in the test's temporary folder.
"""

import base64
import datetime
import io
import ipaddress
import json
import os
import ssl
import urllib.error
import urllib.request

import pytest

from openvla_ros.core import remote
from openvla_ros.tools.synthetic import scene_image
from server_harness import base_env, free_port, KEY_ENV, serve_argv, Server  # noqa: I100

pytestmark = pytest.mark.engine

UNNORM_KEY = 'bridge_orig'
KEY = 'serve-key-' + os.urandom(8).hex()
INSTRUCTION = 'put the spoon on the towel'


def make_ca(folder, name):
    """Write a self-signed CA (certificate and key) and return (cert path, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    path = folder / f'{name}.pem'
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def make_server_cert(folder, ca_cert, ca_key):
    """Write a server certificate for 127.0.0.1 / localhost signed by the CA, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'localhost')]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName('localhost'), x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = folder / 'server.pem', folder / 'server.key'
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    pytest.importorskip('cryptography', reason='the cryptography package makes the test CA')
    folder = tmp_path_factory.mktemp('pki')
    ca_path, ca_cert, ca_key = make_ca(folder, 'test-ca')
    other_ca, _, _ = make_ca(folder, 'other-ca')
    cert, key = make_server_cert(folder, ca_cert, ca_key)
    return {'ca': ca_path, 'other_ca': other_ca, 'cert': cert, 'key': key}


@pytest.fixture(scope='module')
def server(test_model, pki, tmp_path_factory):
    log = tmp_path_factory.mktemp('serve') / 'serve.log'
    port = free_port()
    env = base_env(log)
    env[KEY_ENV] = KEY + '\n'   # as mounted from a file: serve strips the one newline
    # Would open /server_info, /reset_prefix_cache, /sleep ... if it reached the server.
    env['VLLM_SERVER_DEV_MODE'] = '1'
    argv = serve_argv(test_model, port, '--api-key-env', KEY_ENV,
                      '--ssl-certfile', str(pki['cert']), '--ssl-keyfile', str(pki['key']))
    running = Server(argv, env, log, f'https://127.0.0.1:{port}')
    try:
        running.wait_ready()
        assert any(f'ready at https://127.0.0.1:{port}' in line for line in running.lines)
        yield running
    finally:
        running.stop()


def call(server, pki, method, path, payload=None, key=None):
    """Return (status, parsed body) of one https request trusting the test CA."""
    context = ssl.create_default_context(cafile=str(pki['ca']))
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)
    if data is not None:
        request.add_header('Content-Type', 'application/json')
    if key:
        request.add_header('Authorization', f'Bearer {key}')
    try:
        with urllib.request.urlopen(request, timeout=300, context=context) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body


def chat_payload(test_model):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(scene_image(2)).resize((224, 224), Image.Resampling.BICUBIC).save(
        buffer, format='PNG')
    text = f'In: What action should the robot take to {INSTRUCTION}?\nOut: '
    return {'model': str(test_model), 'temperature': 0.0, 'max_tokens': 7, 'min_tokens': 7,
            'allowed_token_ids': list(range(31744, 32000)), 'add_special_tokens': False,
            'return_token_ids': True,
            'messages': [{'role': 'user', 'content': [
                {'type': 'image_url', 'image_url': {
                    'url': 'data:image/png;base64,' + base64.b64encode(buffer.getvalue())
                    .decode()}},
                {'type': 'text', 'text': text}]}]}


def test_every_path_but_health_needs_the_key(server, pki, test_model):
    tokenize = {'model': str(test_model), 'prompt': 'put the spoon on the towel'}
    assert call(server, pki, 'GET', '/health')[0] == 200
    for method, path, payload in [('POST', '/invocations', chat_payload(test_model)),
                                  ('POST', '/tokenize', tokenize),
                                  ('POST', '/detokenize', {'model': str(test_model),
                                                           'tokens': [1, 2]}),
                                  ('GET', '/metrics', None), ('GET', '/version', None),
                                  ('GET', '/v1/models', None), ('GET', '/health/', None)]:
        for key in (None, 'wrong-' + KEY):
            status, _ = call(server, pki, method, path, payload, key=key)
            assert status == 401, (method, path, key is None, status)
    status, body = call(server, pki, 'POST', '/tokenize', tokenize, key=KEY)
    assert status == 200 and body['tokens'][0] == 1, body
    status, body = call(server, pki, 'POST', '/invocations', chat_payload(test_model), key=KEY)
    assert status == 200, body
    ids = body['choices'][0]['token_ids']
    assert len(ids) == 7 and all(31744 <= t < 32000 for t in ids), body


def test_dev_mode_environment_is_not_forwarded(server, pki):
    # With the key (so the middleware lets it through): vLLM itself has no such route.
    assert call(server, pki, 'GET', '/server_info', key=KEY)[0] == 404
    assert call(server, pki, 'POST', '/reset_prefix_cache', {}, key=KEY)[0] == 404


def test_client_over_https_with_the_private_ca(server, pki, test_model, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    policy = remote.RemotePolicy(str(test_model), UNNORM_KEY, url=server.url,
                                 api_key_env=KEY_ENV, timeout_s=300, ca_file=str(pki['ca']))
    try:
        prediction = policy.predict(scene_image(4), INSTRUCTION)
        assert len(prediction.token_ids) == 7
        assert policy.engine_report().remote.url.startswith('https://')
    finally:
        policy.close()


@pytest.mark.parametrize('ca', ['other_ca', None])
def test_client_refuses_a_certificate_of_another_ca(server, pki, test_model, monkeypatch, ca):
    monkeypatch.setenv(KEY_ENV, KEY)
    with pytest.raises(remote.RemoteAuthError) as caught:
        remote.RemotePolicy(str(test_model), UNNORM_KEY, url=server.url, api_key_env=KEY_ENV,
                            timeout_s=60, ca_file=str(pki[ca]) if ca else None)
    text = str(caught.value)
    assert 'not trusted' in text and 'ca_file' in text, text
    assert KEY not in text


def test_node_acts_over_https(server, pki, test_model, monkeypatch):
    pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')
    from lifecycle_msgs.msg import Transition
    from ros_harness import RosGraph
    monkeypatch.setenv(KEY_ENV, KEY)
    graph = RosGraph(None, test_model, 'tls', {
        'engine.url': server.url, 'engine.ca_file': str(pki['ca']),
        'engine.api_key_env': KEY_ENV, 'instruction': INSTRUCTION, 'max_image_age': 120.0,
        'inference_timeout': 120.0, 'command_timeout': 600.0}, own_engine=True)
    try:
        h = graph.harness
        assert h.transition(Transition.TRANSITION_CONFIGURE)
        assert h.transition(Transition.TRANSITION_ACTIVATE)
        stamp = h.publish_image(1)
        twist = h.wait_for('ee_delta', 1, timeout=180)[-1]
        assert (twist.header.stamp.sec, twist.header.stamp.nanosec) == (stamp.sec,
                                                                        stamp.nanosec)
        assert h.wait_for('action', 1)
    finally:
        graph.close()
