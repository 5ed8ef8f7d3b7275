# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Real engine reloads through the lifecycle: nothing leaks from one engine to the next."""

import gc
import os
import threading

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

pytestmark = pytest.mark.engine
SOAK = os.environ.get('OPENVLA_ROS_SOAK') == '1'
INSTRUCTION = 'stack the red block on the blue block'


def is_resource_tracker(process):
    """Return whether ``process`` is Python's multiprocessing resource tracker."""
    try:
        return 'multiprocessing.resource_tracker' in ' '.join(process.cmdline())
    except Exception:  # noqa: B902 - it may have ended meanwhile
        return False


def described(processes):
    """Return pid and command line of each process (what was left behind, for the failure)."""
    out = []
    for p in processes:
        try:
            out.append((p.pid, ' '.join(p.cmdline())[:200]))
        except Exception as error:  # noqa: B902 - it may have ended meanwhile
            out.append((p.pid, repr(error)))
    return out


def test_real_engine_reload_cycles(test_model):
    """Configure/cleanup with a real engine each time: processes, threads and RSS come back.

    Two reloads in CI (each starts a vLLM engine, ~70 s on a CPU); set OPENVLA_ROS_RELOADS=20
    for the full churn by hand.
    """
    import psutil

    from openvla_ros.node.policy_node import OpenVlaPolicyNode
    reloads = int(os.environ.get('OPENVLA_ROS_RELOADS', '20' if SOAK else '2'))
    rclpy.init()
    node = OpenVlaPolicyNode(node_name='reload_probe', parameter_overrides=[
        Parameter('model', value=str(test_model)), Parameter('unnorm_key', value='bridge_orig'),
        Parameter('instruction', value=INSTRUCTION)])
    process = psutil.Process()
    children_before = {p.pid for p in process.children(recursive=True)}
    samples = []
    try:
        for cycle in range(reloads):
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.status()['engine_state'] == 'ready'
            # Python's multiprocessing resource tracker starts on first use and serves this
            # process until it exits (once, not per engine): it is not an engine process. In
            # the full suite an earlier test has started it; run alone, the first configure does.
            engine = [p for p in process.children(recursive=True)
                      if p.pid not in children_before and not is_resource_tracker(p)]
            assert engine, 'the engine runs in its own processes'
            node.trigger_activate()
            node.trigger_deactivate()
            node.trigger_cleanup()
            gone, alive = psutil.wait_procs(engine, timeout=30)
            assert not alive, f'cycle {cycle}: engine processes left: {described(alive)}'
            gc.collect()
            samples.append((process.memory_info().rss, threading.active_count()))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    rss = [s[0] / 2**20 for s in samples]
    threads = [s[1] for s in samples]
    print(f'reloads: {reloads}, RSS after each cleanup {rss[0]:.0f} -> {rss[-1]:.0f} MiB, '
          f'threads {threads}')
    assert max(threads) <= threads[0] + 2, threads
    # No steady growth: later reloads stay near the first (vLLM keeps some module caches).
    assert rss[-1] - rss[0] < 100 * (reloads - 1) + 100, rss
