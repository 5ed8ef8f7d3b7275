# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: the generated checkpoint (built once) and one vLLM engine per session.

With ``OPENVLA_ROS_BLOCK_IMPORTS`` set (a comma-separated list of top-level packages), those
packages cannot be imported in this test process: ``test/unit`` is run that way with ROS 2 and
vLLM blocked, to prove it needs neither.
"""

import importlib.abc
import os
import sys

import pytest


class _Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in self.names:
            raise ModuleNotFoundError(f'{name} is blocked for this test run', name=name)
        return None


if os.environ.get('OPENVLA_ROS_BLOCK_IMPORTS'):
    sys.meta_path.insert(0, _Blocker(os.environ['OPENVLA_ROS_BLOCK_IMPORTS'].split(',')))

# One request at a time, on a 2-core machine: keep the KV cache small (GiB).
os.environ.setdefault('VLLM_CPU_KVCACHE_SPACE', '1')
# Keep test DDS traffic on this machine and away from other ROS graphs running beside it.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))

UNNORM_KEY = 'bridge_orig'


def pytest_configure(config):
    config.addinivalue_line('markers', 'engine: needs the real vLLM engine (slow start-up)')
    config.addinivalue_line('markers', 'linter: style checks')
    config.addinivalue_line('markers', 'launch_test: a launch_testing test description')


@pytest.fixture(scope='session')
def test_model():
    """Return the generated OpenVLA-architecture checkpoint, built on first use and cached."""
    import importlib.util

    from openvla_ros.tools.generated_checkpoint import (cached_test_model, default_cache_dir,
                                                        is_test_model)
    if not is_test_model(default_cache_dir()) and importlib.util.find_spec('torch') is None:
        # An environment without the engine (the Jazzy no-engine tiers) cannot build it.
        pytest.skip('the generated test checkpoint is not built and torch is not installed '
                    'here: run `make test` (or `openvla-ros make-test-model`) once first')
    return cached_test_model(progress=False)


@pytest.fixture(scope='session')
def policy(test_model):
    """Return one real vLLM-backed policy on the generated checkpoint, shared by all tests."""
    from openvla_ros.core.engine import VllmPolicy
    policy = VllmPolicy(str(test_model), UNNORM_KEY)
    yield policy
    policy.close()
