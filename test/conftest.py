"""Shared fixtures: the generated checkpoint (built once) and one vLLM engine per session."""

import os

import pytest

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
    from openvla_ros.tools.generated_checkpoint import cached_test_model
    return cached_test_model(progress=False)


@pytest.fixture(scope='session')
def policy(test_model):
    """Return one real vLLM-backed policy on the generated checkpoint, shared by all tests."""
    from openvla_ros.core.engine import VllmPolicy
    policy = VllmPolicy(str(test_model), UNNORM_KEY)
    yield policy
    policy.close()
