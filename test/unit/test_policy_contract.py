# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The policy contract: every policy class has the protocol's members, and reports are typed."""

import inspect
import json
import typing

import pytest

from openvla_ros.core.engine import VllmPolicy
from openvla_ros.core.policy import (EngineReport, NOT_REPORTED, Policy, RemoteReport,
                                     report_of, ReportingPolicy)
from openvla_ros.core.preprocessing import ImagePreparation
from openvla_ros.core.remote import RemotePolicy
from openvla_ros.tools.arm_demo import SyntheticPolicy
from openvla_ros.tools.benchmark import _RecordingPolicy

# Written out here rather than read from the protocol: the test fails when the contract changes
# without the classes (or this list) following.
DATA = ('decoder', 'preparation')
METHODS = {'prompt_ids': ['instruction'],
           'predict': ['image', 'instruction', 'prompt_ids'],
           'is_alive': [],
           'close': ['fast']}
REPORT_METHOD = {'engine_report': []}


def _parameters(function):
    return [name for name in inspect.signature(function).parameters if name != 'self']


def _declared(protocol):
    """Return the protocol's own data members and methods (not those of ``object``)."""
    data = set(typing.get_type_hints(protocol, include_extras=False)) - {'return'}
    methods = {name for name, value in vars(protocol).items()
               if inspect.isfunction(value) and not name.startswith('_')}
    return data, methods


def test_protocols_declare_the_expected_members():
    assert _declared(Policy) == (set(DATA), set(METHODS))
    data, methods = _declared(ReportingPolicy)
    assert data == set(DATA) and methods == set(REPORT_METHOD)   # the rest is inherited
    assert Policy in ReportingPolicy.__mro__


@pytest.mark.parametrize('cls', [VllmPolicy, RemotePolicy])
def test_engines_implement_the_reporting_protocol(cls):
    """Checked on the classes: building either engine needs vLLM or a server."""
    hints = typing.get_type_hints(cls)
    for name in DATA:
        assert name in hints, f'{cls.__name__} does not declare {name}'
    for name, parameters in {**METHODS, **REPORT_METHOD}.items():
        method = getattr(cls, name)
        assert callable(method), name
        assert _parameters(method) == parameters, (cls.__name__, name)
    assert typing.get_type_hints(cls.engine_report)['return'] is EngineReport


def test_stand_ins_satisfy_the_protocol():
    """The arm benchmark's synthetic engine and the benchmark's recorder, as instances."""
    synthetic = SyntheticPolicy(latency=0.0)
    assert isinstance(synthetic, Policy)
    assert not isinstance(synthetic, ReportingPolicy)   # it does not describe an engine
    for name, parameters in METHODS.items():
        assert _parameters(getattr(SyntheticPolicy, name)) == parameters, name
    recorder = _RecordingPolicy(synthetic)
    assert isinstance(recorder, ReportingPolicy)
    for name, parameters in {**METHODS, **REPORT_METHOD}.items():
        assert _parameters(getattr(_RecordingPolicy, name)) == parameters, name
    assert not isinstance(object(), Policy)


def test_report_of_a_policy_without_a_report():
    """Built from its decoder and preparation; the engine fields say nothing."""
    report = report_of(SyntheticPolicy(latency=0.0))
    assert report == EngineReport(model='', unnorm_key='bridge_orig',
                                  statistics_source='synthetic', statistics_hash='synthetic',
                                  image_preprocessing='processor', engine=NOT_REPORTED)
    assert report.dtype == '' and report.startup_s is None and report.enforce_eager is None
    # The recorder forwards whatever the recorded policy reports.
    assert report_of(_RecordingPolicy(SyntheticPolicy(latency=0.0))) == report


def test_engine_report_dict_is_json_with_remote_fields_on_top():
    remote = RemoteReport(url='https://gpu.lab:8000', served_model='m', server_root='/ckpt',
                          model_identity='model name', template_check='ok',
                          image_format='jpeg', jpeg_quality=80, timeout_s=2.0,
                          api_key_env='KEY_VAR', api_key_set=True, requests=4,
                          request_bytes_total=1000, request_bytes_last=300)
    report = EngineReport(model='m', unnorm_key='k', statistics_source='s',
                          statistics_hash='h', image_preprocessing='processor',
                          engine='remote', startup_s=float('nan'),
                          engine_options={'dtype': 'float32', 'odd': object()},
                          remote=remote)
    found = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert found['url'] == 'https://gpu.lab:8000' and found['engine'] == 'remote'
    assert found['request_bytes_mean'] == 250.0 and found['jpeg_quality'] == 80
    assert found['bit_exact_images'] is False and found['api_key_env'] == 'KEY_VAR'
    assert found['startup_s'] is None            # NaN is not JSON
    assert found['engine_options'] == {'dtype': 'float32'}
    in_process = EngineReport(model='m', unnorm_key=None, statistics_source='s',
                              statistics_hash='h', image_preprocessing='processor')
    assert 'url' not in in_process.as_dict() and 'jpeg_quality' not in in_process.as_dict()
    with pytest.raises(ValueError, match='user info'):
        RemoteReport(url='https://user:secret@gpu.lab:8000', served_model='m', server_root='',
                     model_identity='', template_check='', image_format='png',
                     jpeg_quality=None, timeout_s=1.0, api_key_env='K', api_key_set=False)


def test_describing_reads_the_decoder_and_preparation():
    class Decoder:
        unnorm_key = 'lab_arm'

        def provenance(self):
            return {'unnorm_key': 'lab_arm', 'statistics_source': 'statistics_file x.json',
                    'statistics_hash': '0123456789ab'}

    preparation = ImagePreparation(mode='training', center_crop=True, center_crop_scale=0.8)
    report = EngineReport.describing(Decoder(), preparation, model='ckpt', dtype='float32')
    assert (report.unnorm_key, report.statistics_source, report.statistics_hash) == (
        'lab_arm', 'statistics_file x.json', '0123456789ab')
    assert report.image_preprocessing == 'training+center_crop(0.8)'
    assert (report.model, report.dtype, report.engine) == ('ckpt', 'float32', NOT_REPORTED)
