# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: the generated checkpoint (built once) and one vLLM engine per session.

With ``OPENVLA_ROS_BLOCK_IMPORTS`` set (a comma-separated list of top-level packages), those
packages cannot be imported in this test process: ``test/unit`` is run that way with ROS 2 and
vLLM blocked, to prove it needs neither.
"""

import importlib.abc
import itertools
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
# The domain is ours to choose (and to change per test in test/ros) unless the caller set one.
DOMAIN_CHOSEN_HERE = 'ROS_DOMAIN_ID' not in os.environ
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))

UNNORM_KEY = 'bridge_orig'

# The ROS tier starts and shuts down a ROS context per test, mostly with the same node and service
# names. A participant that has just shut down can stay half-known to the next test's participant
# until its DDS lease runs out: a service whose request reader is still known but whose reply
# writer is gone makes ``wait_for_service`` call the live service unavailable (seen once in CI, for
# 30 s). So each test of that tier gets the next domain of a cycle, and consecutive tests never see
# each other's leftovers. Ids 101..230 are valid with the default port mapping.
_DOMAINS = itertools.count(os.getpid() % 130)


@pytest.fixture(autouse=True)
def _fresh_ros_domain(request, monkeypatch):
    if DOMAIN_CHOSEN_HERE and request.node.path.parent.name == 'ros':
        monkeypatch.setenv('ROS_DOMAIN_ID', str(101 + next(_DOMAINS) % 130))
    yield


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
