# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Errors carry what failed and its fix as fields; the loop owns its counters and last error."""

import os

import pytest

from openvla_ros.core import processes, remote, transport
from openvla_ros.core.decoding import ActionDecoder, StatisticsError
from openvla_ros.core.engine import ModelNotFoundError, resolve_model
from openvla_ros.core.errors import fix_of, OpenVlaError, ParameterError
from openvla_ros.core.inference_loop import (FunctionClock, InferenceLoop, LoopState,
                                             OutputFunctions)
from openvla_ros.core.preprocessing import ImagePreparation


def test_message_is_what_then_fix():
    error = OpenVlaError('the thing broke', 'mend it', parameter='thing')
    assert str(error) == 'the thing broke: mend it'
    assert (error.what, error.fix, error.parameter) == ('the thing broke', 'mend it', 'thing')
    assert str(OpenVlaError('no advice')) == 'no advice'
    assert fix_of(error) == 'mend it' and fix_of(ValueError('x')) == ''


def test_model_not_found_is_a_file_not_found_error_with_fields(tmp_path):
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model(str(tmp_path / 'nope'))
    error = caught.value
    assert isinstance(error, FileNotFoundError) and error.parameter == 'model'
    assert error.what == f"model {str(tmp_path / 'nope')!r} does not exist"
    assert error.fix.startswith('pass an existing checkpoint directory')
    assert str(error) == f'{error.what}: {error.fix}'   # not OSError's own formatting


def test_bad_preparation_names_its_parameter():
    with pytest.raises(ValueError) as caught:
        ImagePreparation(center_crop_scale=1.5)
    assert isinstance(caught.value, ParameterError)
    assert caught.value.parameter == 'center_crop_scale'
    assert 'set center_crop_scale' in caught.value.fix


def test_unknown_unnorm_key_carries_the_fix():
    config = {'norm_stats': {'a': {'action': {'q01': [0.0] * 7, 'q99': [1.0] * 7}},
                             'b': {'action': {'q01': [0.0] * 7, 'q99': [1.0] * 7}}}}
    with pytest.raises(StatisticsError) as caught:
        ActionDecoder.from_model_config(config, 'c')
    assert caught.value.parameter == 'unnorm_key'
    assert caught.value.what == "unknown unnorm_key 'c'"
    assert 'a, b' in caught.value.fix


def test_bad_statistics_file_names_the_statistics_file(tmp_path):
    path = tmp_path / 'statistics.json'
    path.write_text('{"a": ')
    with pytest.raises(StatisticsError) as caught:
        ActionDecoder.from_model_config({}, 'a', str(path))
    assert caught.value.parameter == 'statistics_file'
    assert 'is not valid JSON' in caught.value.what
    with pytest.raises(FileNotFoundError) as missing:
        ActionDecoder.from_model_config({}, 'a', str(tmp_path / 'none.json'))
    assert missing.value.parameter == 'statistics_file'


@pytest.mark.parametrize('status, message, kind', [
    (404, 'The model `x` does not exist.', remote.RemoteMismatchError),
    (404, 'Not Found', remote.RemoteEndpointMissingError),
    (400, 'bad', remote.RemoteRequestError),
])
def test_remote_http_errors_have_their_status(status, message, kind):
    error = transport.client_error(status, {'error': {'message': message}}, b'', 'http://s', '/p')
    assert type(error) is kind and error.status == status
    assert isinstance(error, OpenVlaError)


class _Log:
    def __init__(self):
        self.logged = []

    def problem(self, key, message, level):
        self.logged.append((key, message, level))


def test_the_loop_records_a_problem_once_and_owns_its_counters():
    log = _Log()
    outputs = OutputFunctions(action=lambda prediction, frame: True, zero=lambda reason: None,
                              problem=log.problem, engine_dead=lambda message: None)
    loop = InferenceLoop(outputs, decode=lambda msg: msg, clock=FunctionClock(now=lambda: 5.0))
    assert loop.clock.now() == 5.0 and loop.state is LoopState.STOPPED
    loop.report_problem('goal', 'goal rejected: no', 'warning')
    loop.count('bad_parameters')
    loop.count('bad_parameters')
    status = loop.status()
    assert status['last_error'] == loop.last_error == 'goal rejected: no'
    assert status['bad_parameters'] == 2 and loop.counts()['bad_parameters'] == 2
    assert log.logged == [('goal', 'goal rejected: no', 'warning')]
    with pytest.raises(AttributeError):
        loop.last_error = 'written from outside'


def test_the_cli_chooses_the_engine_log_without_the_environment(monkeypatch, tmp_path):
    from openvla_ros import cli
    monkeypatch.delenv(processes.ENGINE_LOG_ENV, raising=False)
    chosen = tmp_path / 'engine.log'
    monkeypatch.setattr(cli, 'engine_log_path', lambda command: chosen)
    try:
        cli.main(['prepare-image', str(tmp_path / 'missing.png'),
                  str(tmp_path / 'out.png')])
        assert processes.engine_log() == str(chosen)
        assert processes.ENGINE_LOG_ENV not in os.environ
        cli.main(['-v', 'prepare-image', str(tmp_path / 'missing.png'),
                  str(tmp_path / 'out.png')])
        assert processes.engine_log() is None   # --verbose: the terminal
    finally:
        processes.use_engine_log(None)
