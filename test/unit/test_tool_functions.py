# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Tools without an engine: node parameters of the demo, synthetic frames, statistics, knobs."""

import inspect
import json

import numpy as np
import pytest

from openvla_ros.cli import main
from openvla_ros.core.engine import EngineConfig
from openvla_ros.core.policy import EngineReport
from openvla_ros.tools import demo
from openvla_ros.tools.benchmark import stats_ms
from openvla_ros.tools.cpu_knobs_benchmark import measure_knobs
from openvla_ros.node.parameters import engine_values
from openvla_ros.tools.report import jsonable, report_provenance, write_json
from openvla_ros.tools.synthetic import scene_image, unique_image

#: Every engine option, by hand: a new EngineConfig field must reach the node too.
ENGINE_OPTIONS = {'dtype': 'float32', 'max_model_len': 1024, 'gpu_memory_utilization': 0.5,
                  'enforce_eager': True, 'quantization': 'fp8', 'seed': 7,
                  'trust_remote_code': True, 'url': 'https://127.0.0.1:9', 'api_key_env': 'K',
                  'image_format': 'jpeg', 'jpeg_quality': 80, 'ca_file': __file__,
                  'allow_insecure_http': True}


def test_engine_values_cover_every_engine_option():
    names = set(inspect.signature(EngineConfig).parameters)
    assert names == set(ENGINE_OPTIONS)
    values = engine_values(EngineConfig(**ENGINE_OPTIONS))
    assert values == {f'engine.{name}': value for name, value in ENGINE_OPTIONS.items()}
    defaults = engine_values(EngineConfig())
    assert set(defaults) == set(values)
    for name, parameter in inspect.signature(EngineConfig).parameters.items():
        assert defaults[f'engine.{name}'] == parameter.default


def test_demo_flags_reach_the_node_parameters(monkeypatch, capsys):
    seen = {}

    def fake_run_demo(model, unnorm_key, instruction, duration, camera_hz, engine,
                      preparation=None, statistics_file=None):
        seen.update(model=model, unnorm_key=unnorm_key, instruction=instruction,
                    values=engine_values(engine))
        return {'actions': 0, 'seconds': duration, 'reason': 'faked'}

    monkeypatch.setattr(demo, 'run_demo', fake_run_demo)
    code = main(['demo', '--model', 'owner/name', '--duration', '2', '--quantization', 'fp8',
                 '--seed', '5', '--max-model-len', '600', '--dtype', 'float32',
                 '--trust-remote-code'])
    assert code == 1
    assert '[demo] FAILED: no action in 2 s: faked' in capsys.readouterr().out
    assert seen['model'] == 'owner/name' and seen['unnorm_key'] == 'bridge_orig'
    assert seen['instruction'] == 'put the spoon on the towel'
    values = seen['values']
    assert values['engine.quantization'] == 'fp8' and values['engine.seed'] == 5
    assert values['engine.max_model_len'] == 600 and values['engine.dtype'] == 'float32'
    assert values['engine.trust_remote_code'] is True
    assert values['engine.enforce_eager'] is False


def test_demo_refuses_bad_options_before_anything_starts(monkeypatch, capsys):
    monkeypatch.setattr(demo, 'run_demo', lambda *a, **k: pytest.fail('must not run'))
    assert main(['demo', '--model', 'owner/name', '--duration', '0']) == 2
    assert 'must be positive' in capsys.readouterr().err
    assert main(['demo', '--model', 'owner/name', '--max-model-len', '10']) == 2
    assert 'max_model_len' in capsys.readouterr().err


def test_unique_images_differ_from_the_scene_only_in_the_stamp_rows():
    scene, image = scene_image(7), unique_image(7, salt=3)
    assert image.shape == scene.shape == (224, 224, 3) and image.dtype == np.uint8
    # 128 one-bit cells of 4 x 4 px, 56 to a row on a 224-wide frame: rows 0..11 at most.
    np.testing.assert_array_equal(image[12:], scene[12:])
    assert not np.array_equal(image[:12], scene[:12])
    # Index 7 = bits 0, 1, 2: the first three cells white, the fourth black; salt 3 starts at
    # bit 64 (cell row 1, column 8).
    assert (image[0:4, 0:12] == 255).all() and (image[0:4, 12:16] == 0).all()
    assert (image[4:8, 32:40] == 255).all() and (image[4:8, 40:44] == 0).all()
    assert not np.array_equal(unique_image(7, salt=4), image)
    assert not np.array_equal(unique_image(107, salt=3), image)   # the scene repeats at 100


def test_unique_images_stay_distinct_through_jpeg_and_stamp_any_base():
    import io

    from PIL import Image

    def through_jpeg(rgb):
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format='JPEG', quality=50)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert('RGB')).tobytes()

    base = np.full((64, 96, 3), 128, dtype=np.uint8)
    decoded = {through_jpeg(unique_image(serial, base=base)) for serial in range(1, 41)}
    assert len(decoded) == 40
    assert base.max() == 128   # the base is copied, not stamped in place
    with pytest.raises(ValueError, match='too small'):
        unique_image(1, base=np.zeros((8, 8, 3), dtype=np.uint8))


def test_stats_ms_uses_numpy_percentiles_and_skips_missing_values():
    values = [0.010, 0.020, 0.030, 0.040, float('nan'), None]
    stats = stats_ms(values)
    assert stats['n'] == 4
    assert stats['p50'] == pytest.approx(25.0) and stats['p95'] == pytest.approx(38.5)
    assert stats['min'] == pytest.approx(10.0) and stats['max'] == pytest.approx(40.0)
    assert stats_ms([]) == {'n': 0, 'mean': None, 'p50': None, 'p95': None, 'min': None,
                            'max': None}


def test_unknown_cpu_knob_is_refused_before_any_engine():
    with pytest.raises(ValueError, match='unknown CPU setting'):
        measure_knobs('owner/name', None, ['turbo'], images=1, warmup=0)


def test_report_helpers(tmp_path):
    assert jsonable({'a': 1, 'b': None, 'c': [1], 'd': 'x'}) == {'a': 1, 'b': None, 'd': 'x'}
    report = EngineReport(model='m', unnorm_key='k', statistics_source='config.json norm_stats',
                          statistics_hash='abc', image_preprocessing='processor')
    assert report_provenance(report) == {'image_preprocessing': 'processor',
                                         'statistics_source': 'config.json norm_stats',
                                         'statistics_hash': 'abc'}
    path = write_json(tmp_path / 'new' / 'r.json', {'x': 1.5})
    assert json.loads(path.read_text()) == {'x': 1.5} and path.read_text().endswith('\n')
    with pytest.raises(ValueError):
        write_json(tmp_path / 'nan.json', {'x': float('nan')})
