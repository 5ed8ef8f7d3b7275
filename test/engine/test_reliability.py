# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Reliability: bad input, floods, engine faults and lifecycle churn, against the running node.

In-process over real DDS with the session's engine (through the ``policy_factory`` hook and a
fault-injecting wrapper). Durations are tuned for CI; ``OPENVLA_ROS_SOAK=1`` runs the long
variants (60 s flood, 20 churn cycles with more frames) by hand.
"""

import gc
import os
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from lifecycle_msgs.msg import State, Transition  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from openvla_ros.core.images import rgb_to_image_fields  # noqa: E402
from openvla_ros.tools.synthetic import scene_image  # noqa: E402
from ros_harness import RosGraph, SharedPolicy  # noqa: E402

pytestmark = pytest.mark.engine
SOAK = os.environ.get('OPENVLA_ROS_SOAK') == '1'
INSTRUCTION = 'stack the red block on the blue block'


class FaultyPolicy(SharedPolicy):
    """The shared engine behind a switch that makes it fail, hang or report itself dead."""

    def __init__(self, policy):
        super().__init__(policy)
        self.mode = None
        self.hang_s = 0.0

    def predict(self, image, instruction, prompt_ids=None):
        if self.mode == 'raise':
            raise RuntimeError('injected engine failure')
        if self.mode == 'hang':
            time.sleep(self.hang_s)
        if self.mode == 'dead':
            from vllm.v1.engine.exceptions import EngineDeadError
            raise EngineDeadError('injected: engine process gone')
        return super().predict(image, instruction, prompt_ids)


@pytest.fixture(scope='module')
def graph(policy, test_model):
    rclpy.init()
    graph = RosGraph(policy, test_model, 'rel', [
        Parameter('instruction', value=INSTRUCTION),
        Parameter('max_image_age', value=30.0),
        Parameter('max_linear', value=0.0),
        Parameter('max_angular', value=0.0),
        Parameter('max_image_pixels', value=1_000_000),
        Parameter('diagnostics_period', value=0.2),
        Parameter('command_timeout', value=60.0),
    ], shared=FaultyPolicy(policy))
    h = graph.harness
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    yield graph
    graph.close()
    rclpy.try_shutdown()


def counter(h, name):
    return int(h.diagnostics_values()[name])


def wait_counter(h, name, at_least, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if counter(h, name) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f'{name} stayed below {at_least}: {h.diagnostics_values()}')


_EXPECTED = {}


def expected_action(policy, index, instruction):
    """Return the engine's own action for a frame, computed once per frame and instruction.

    Greedy decoding is deterministic (test_engine checks it), and one inference costs seconds
    on a CPU without native bf16, so the reference for a repeated frame is reused.
    """
    key = (index, instruction)
    if key not in _EXPECTED:
        _EXPECTED[key] = policy.predict(scene_image(index), instruction).action
    return _EXPECTED[key]


def assert_still_correct(graph, policy, index):
    """A good frame after the bad input gives exactly the engine's action."""
    h = graph.harness
    h.clear()
    h.publish_image(index)
    action = h.wait_for('action', 1)[0]
    expected = expected_action(policy, index, h.diagnostics_values()['instruction'])
    np.testing.assert_allclose(action.data, expected)


GOOD = rgb_to_image_fields(scene_image(0))
BAD_IMAGES = {
    'unsupported encoding': (dict(GOOD, encoding='yuv422'), 'unsupported encoding'),
    'data shorter than height x step': (dict(GOOD, data=GOOD['data'][:-10]), 'step'),
    'data longer than height x step': (dict(GOOD, data=GOOD['data'] + b'\0' * 7), 'step'),
    'zero width': (dict(GOOD, width=0, step=0, data=b''), 'zero'),
    'zero height': (dict(GOOD, height=0, data=b''), 'zero'),
    'wrong step': (dict(GOOD, step=GOOD['width'] * 3 - 1), 'step'),
    'above max_image_pixels': (dict(GOOD, height=2000, width=2000, step=6000, data=b''),
                               'max'),
}


@pytest.mark.parametrize('case', list(BAD_IMAGES))
def test_bad_raw_image(graph, policy, case, caplog):
    h = graph.harness
    fields, phrase = BAD_IMAGES[case]
    before = counter(h, 'bad_images')
    h.publish_raw(**fields)
    wait_counter(h, 'bad_images', before + 1)
    assert phrase in h.diagnostics_values()['last_error'].lower(), case
    assert_still_correct(graph, policy, 1)


def test_rapid_instruction_changes_keep_the_latest(graph, policy):
    h = graph.harness
    for i in range(30):
        h.instruction_pub.publish(String(data=f'move the cup {i} cm to the left'))
    final = 'put the cup in the sink'
    h.instruction_pub.publish(String(data=final))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and h.diagnostics_values()['instruction'] != final:
        time.sleep(0.05)
    assert h.diagnostics_values()['instruction'] == final
    assert_still_correct(graph, policy, 2)
    h.instruction_pub.publish(String(data=INSTRUCTION))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and h.diagnostics_values()['instruction'] != INSTRUCTION:
        time.sleep(0.05)


def test_empty_and_over_long_instructions(graph, policy):
    h = graph.harness
    before = counter(h, 'bad_instructions')
    h.instruction_pub.publish(String(data=''))
    wait_counter(h, 'bad_instructions', before + 1)
    h.instruction_pub.publish(String(data='and then ' * 200))
    wait_counter(h, 'bad_instructions', before + 2)
    assert 'too long' in h.diagnostics_values()['last_error']
    assert h.diagnostics_values()['instruction'] == INSTRUCTION
    assert_still_correct(graph, policy, 3)


@pytest.mark.parametrize('name, value', [
    ('output_mode', 'warp'), ('control_period', 0.0), ('action_scale', [1.0] * 5),
    ('max_linear', -1.0), ('stamp_source', 'later'), ('frame_id', ' '), ('instruction', ''),
    ('max_rate_hz', -5.0), ('model', 'other/checkpoint'), ('engine.dtype', 'float64'),
])
def test_invalid_parameter_updates_are_refused(graph, policy, name, value):
    h = graph.harness
    result = h.set_parameter(name, value)
    assert not result.successful, (name, value)
    assert result.reason, 'a refusal must say why'
    assert graph.node.get_parameter(name).value != value


def test_engine_exception_then_recovery(graph, policy):
    h = graph.harness
    shared = graph.shared
    before = counter(h, 'engine_errors')
    shared.mode = 'raise'
    try:
        h.clear()
        h.publish_image(4)
        wait_counter(h, 'engine_errors', before + 1)
        zero = h.wait_for('ee_delta', 1)[-1].twist
        assert [zero.linear.x, zero.linear.y, zero.linear.z] == [0.0, 0.0, 0.0]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and h.diagnostics_values()['engine_health'] == 'ok':
            time.sleep(0.05)
        status = h.snapshot('diagnostics')[-1]
        assert status.level == status.ERROR and 'injected engine failure' in status.message
    finally:
        shared.mode = None
    assert_still_correct(graph, policy, 5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and h.diagnostics_values()['engine_health'] != 'ok':
        time.sleep(0.05)
    assert h.diagnostics_values()['engine_health'] == 'ok'


def test_engine_timeout_then_recovery(graph, policy):
    h = graph.harness
    shared = graph.shared
    assert h.set_parameter('inference_timeout', 0.5).successful
    before = counter(h, 'engine_timeouts')
    shared.mode, shared.hang_s = 'hang', 3.0
    try:
        h.clear()
        started = time.monotonic()
        h.publish_image(6)
        wait_counter(h, 'engine_timeouts', before + 1)
        assert time.monotonic() - started < 3.0, 'the timeout must fire before the engine ends'
        zero = h.wait_for('ee_delta', 1)[-1].twist
        assert [zero.linear.x, zero.angular.z] == [0.0, 0.0]
        assert h.diagnostics_values()['engine_health'] == 'timeout'
        # The executor keeps serving: parameters and diagnostics answer while the engine hangs.
        assert h.set_parameter('max_linear', 0.0).successful
    finally:
        shared.mode = None
    assert h.set_parameter('inference_timeout', 30.0).successful
    time.sleep(3.0)   # the hung request finishes; its late result must not be published
    assert_still_correct(graph, policy, 7)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and h.diagnostics_values()['engine_health'] != 'ok':
        time.sleep(0.05)
    assert h.diagnostics_values()['engine_health'] == 'ok'


def test_flood_stays_bounded_and_fresh(graph, policy):
    """A 200 Hz camera: no backlog, bounded memory, action rate = engine rate."""
    import psutil
    h = graph.harness
    node = graph.node
    # At least 12 s and at least 4 actions (one action takes ~0.75 s with native bf16 and
    # several seconds in float32 on 2 AVX2 cores), bounded.
    seconds = 60.0 if SOAK else 12.0
    wanted, limit = 4, 180.0
    frames = [rgb_to_image_fields(scene_image(i)) for i in range(50)]
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    node.trace.clear()
    stop = threading.Event()
    sent = [0]

    def flood():
        from sensor_msgs.msg import Image
        period = 1.0 / 200.0
        next_time = time.monotonic()
        while not stop.is_set():
            msg = Image(**frames[sent[0] % len(frames)])
            msg.header.stamp = h.now_stamp()
            h.image_pub.publish(msg)
            sent[0] += 1
            next_time += period
            delay = next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    thread = threading.Thread(target=flood, daemon=True)
    started = time.monotonic()
    thread.start()
    time.sleep(seconds)
    while len(node.trace) < wanted and time.monotonic() - started < limit:
        time.sleep(0.1)
    stop.set()
    thread.join()
    elapsed = time.monotonic() - started
    gc.collect()
    rss_after = process.memory_info().rss
    trace = list(node.trace)
    assert len(trace) >= 3, 'the node must keep acting during a flood'
    ages = np.array([t['age_at_start_s'] for t in trace])
    engine = np.array([t['engine_s'] for t in trace])
    cycles = np.array([t['cycle_s'] for t in trace[1:]])
    rate = len(trace) / elapsed
    report = (f'flood {seconds:.0f} s at {sent[0] / elapsed:.0f} Hz: {len(trace)} actions, '
              f'{rate:.2f}/s vs 1/engine {1 / engine.mean():.2f}/s; frame age at start p50 '
              f'{np.median(ages) * 1000:.1f} ms p95 {np.percentile(ages, 95) * 1000:.1f} ms; '
              f'cycle - engine {np.median(cycles - engine[1:]) * 1000:.1f} ms; RSS growth '
              f'{(rss_after - rss_before) / 2**20:.1f} MiB')
    print(report)
    # No backlog: the frame used is the newest one, i.e. received within the last camera
    # periods. The 2-core CI machine runs the engine on both cores while the flood and DDS
    # share them too, so allow scheduling delay on top of the 5 ms period.
    assert np.median(ages) < 0.05, report
    assert np.max(ages) < 0.5, report
    # The action rate is the engine's: cycle time is engine time plus a small overhead.
    assert np.median(cycles - engine[1:]) < 0.25, report
    # Memory stays bounded: the mailbox holds one frame whatever the camera rate.
    assert rss_after - rss_before < 200 * 2**20, report


def test_lifecycle_churn(graph, policy):
    """Deactivate/cleanup/configure/activate cycles: no leaked threads, correct actions."""
    h = graph.harness
    cycles = 20
    baseline_threads = None
    for cycle in range(cycles):
        assert h.transition(Transition.TRANSITION_DEACTIVATE)
        assert h.transition(Transition.TRANSITION_CLEANUP)
        assert h.state() == State.PRIMARY_STATE_UNCONFIGURED
        gc.collect()
        threads = threading.active_count()
        if baseline_threads is None:
            baseline_threads = threads
        assert threads <= baseline_threads, f'cycle {cycle}: threads {threads} > ' \
                                            f'{baseline_threads}'
        assert h.transition(Transition.TRANSITION_CONFIGURE)
        assert h.transition(Transition.TRANSITION_ACTIVATE)
        if cycle % 10 == 9 or SOAK:
            assert_still_correct(graph, policy, 10 + cycle)
    assert h.state() == State.PRIMARY_STATE_ACTIVE
    print(f'churn: {cycles} cycles, threads when unconfigured {baseline_threads} '
          f'(constant)')


def test_engine_death_deactivates_and_configure_recovers(graph, policy):
    h = graph.harness
    shared = graph.shared
    shared.mode = 'dead'
    try:
        h.clear()
        h.publish_image(40)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and h.state() != State.PRIMARY_STATE_INACTIVE:
            time.sleep(0.1)
        assert h.state() == State.PRIMARY_STATE_INACTIVE
        while time.monotonic() < deadline and \
                h.diagnostics_values()['engine_state'] != 'dead':
            time.sleep(0.05)
        values = h.diagnostics_values()
        assert values['engine_state'] == 'dead' and 'cleanup then configure' in \
            values['last_error']
        status = h.snapshot('diagnostics')[-1]
        assert status.level == status.ERROR
        zero = h.wait_for('ee_delta', 1)[-1].twist
        assert [zero.linear.x, zero.angular.z] == [0.0, 0.0]
    finally:
        shared.mode = None
    assert h.transition(Transition.TRANSITION_CLEANUP)
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    assert_still_correct(graph, policy, 41)
