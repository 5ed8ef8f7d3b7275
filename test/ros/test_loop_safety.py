# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node never stops acting quietly: unexpected errors and engine death, over real rclpy.

A fake policy stands in for the engine (no vLLM); topics, lifecycle services and
``/diagnostics`` are real. Faults are injected where the real ones happen: in the node's image
decoding, in its action publisher, in the engine's ``predict``.
"""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402

from openvla_ros.core.engine import Prediction  # noqa: E402
from openvla_ros.core.preprocessing import ImagePreparation  # noqa: E402
from ros_harness import RosGraph, wait_until  # noqa: E402

PARAMETERS = {'max_linear': 0.0, 'max_angular': 0.0, 'max_image_age': 30.0,
              'diagnostics_period': 0.2, 'inference_timeout': 5.0, 'command_timeout': 60.0,
              'instruction': 'put the carrot on the plate'}


class EngineDeadError(RuntimeError):
    """Named like vLLM's: the loop recognizes a dead engine by this name."""


class FakePolicy:
    """Answers a fixed action at once; ``die()`` makes it fail as a dead vLLM engine does."""

    def __init__(self):
        self.decoder = SimpleNamespace(unnorm_key='bridge_orig', provenance=lambda: {
            'unnorm_key': 'bridge_orig', 'statistics_source': 'fake',
            'statistics_hash': 'f00d'})
        self.preparation = ImagePreparation()
        self.alive = True

    def prompt_ids(self, instruction):
        return [1, 2, 29871]

    def predict(self, image, instruction, prompt_ids=None):
        if not self.alive:
            raise EngineDeadError('EngineCore encountered an issue')
        return Prediction(np.array([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]), [31800] * 7,
                          {'engine_s': 0.01})

    def is_alive(self):
        return self.alive

    def die(self):
        self.alive = False

    def close(self, fast=False):
        pass


@pytest.fixture
def graph(tmp_path):
    graph = RosGraph(None, tmp_path, 'safety', PARAMETERS, shared=FakePolicy())
    h = graph.harness
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    yield graph
    graph.close()


def is_zero(msg):
    t = msg.twist
    return [t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z] == [0.0] * 6


def act_once(h):
    count = len(h.snapshot('action'))
    h.publish_image(1)
    assert wait_until(lambda: len(h.snapshot('action')) > count), 'no action'


def test_memory_error_decoding_zero_error_diagnostics_then_the_next_frame_acts(graph):
    h, node = graph.harness, graph.node
    act_once(h)
    decode = node.loop.decode
    huge = {'on': True}

    def exhausted(msg):
        if huge['on']:
            raise MemoryError('cannot allocate 286 MiB for the pixels')
        return decode(msg)
    node.loop.decode = exhausted
    h.clear()
    h.publish_image(2)
    assert wait_until(lambda: h.snapshot('ee_delta') and is_zero(h.snapshot('ee_delta')[-1]))
    assert wait_until(lambda: h.diagnostics_values()['engine_health'] == 'error')
    status = h.snapshot('diagnostics')[-1]
    assert status.level == DiagnosticStatus.ERROR
    assert 'MemoryError: cannot allocate 286 MiB for the pixels' in status.message
    assert h.diagnostics_values()['loop_errors'] == '1'
    assert not h.snapshot('action')
    huge['on'] = False                    # the next good frame
    act_once(h)
    assert wait_until(lambda: h.diagnostics_values()['engine_health'] == 'ok')
    assert h.state() == State.PRIMARY_STATE_ACTIVE


def test_output_callback_error_zero_fault_until_deactivate_and_activate(graph):
    h, node = graph.harness, graph.node
    act_once(h)
    publish = node.loop.outputs.action
    broken = {'on': True}

    def failing(prediction, frame):
        if broken['on']:
            raise ValueError('float() argument must be a string or a real number')
        return publish(prediction, frame)
    node.loop.outputs.action = failing   # the loop holds the node's method: replace it there
    h.clear()
    h.publish_image(2)
    assert wait_until(lambda: h.diagnostics_values()['engine_health'] == 'fault')
    assert h.snapshot('ee_delta') and is_zero(h.snapshot('ee_delta')[-1])
    status = h.snapshot('diagnostics')[-1]
    assert status.level == DiagnosticStatus.ERROR
    assert 'ValueError: float() argument must be a string' in status.message
    broken['on'] = False                  # it would work now, but the node waits for a human
    for index in (3, 4, 5):
        h.publish_image(index)
        time.sleep(0.2)
    assert not h.snapshot('action') and len(h.snapshot('ee_delta')) == 1
    assert h.transition(Transition.TRANSITION_DEACTIVATE)
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    act_once(h)
    assert wait_until(lambda: h.diagnostics_values()['engine_health'] == 'ok')


def test_engine_death_deactivation_waits_for_a_lifecycle_call_in_progress(graph):
    """The engine dies while a deactivate service call is half way: no second transition
    starts beside it (it would be refused by the state machine, or worse, run beside it)."""
    h, node, fake = graph.harness, graph.node, graph.shared
    act_once(h)
    in_transition, hold = threading.Event(), threading.Event()
    stop_loop = node._stop_loop

    def slow_stop(reason, join=True):
        if reason == 'deactivate' and not hold.is_set():
            in_transition.set()
            hold.wait(10)
        return stop_loop(reason, join)
    node._stop_loop = slow_stop
    calls = []
    trigger = node.trigger_deactivate

    def recorded_trigger():
        result = trigger()
        calls.append(result)
        return result
    node.trigger_deactivate = recorded_trigger

    answers = []
    caller = threading.Thread(
        target=lambda: answers.append(h.transition(Transition.TRANSITION_DEACTIVATE)))
    caller.start()
    assert in_transition.wait(10)         # on_deactivate runs; the loop still does
    fake.die()
    h.publish_image(2)
    assert wait_until(lambda: node.loop.state.value == 'dead')
    time.sleep(1.0)                       # time for a deactivation racing the service call
    hold.set()
    caller.join(15)
    assert answers == [True]
    assert h.state() == State.PRIMARY_STATE_INACTIVE
    time.sleep(0.5)
    assert all(result == TransitionCallbackReturn.SUCCESS for result in calls), calls
    assert h.state() == State.PRIMARY_STATE_INACTIVE
    assert wait_until(lambda: h.diagnostics_values()['engine_state'] == 'dead')


def test_engine_death_alone_still_deactivates_through_the_executor(graph):
    h, node, fake = graph.harness, graph.node, graph.shared
    act_once(h)
    threads = []
    stop_loop = node._stop_loop

    def recorded_stop(reason, join=True):
        threads.append(threading.current_thread())
        return stop_loop(reason, join)
    node._stop_loop = recorded_stop
    h.clear()
    fake.die()
    h.publish_image(2)
    assert wait_until(lambda: h.state() == State.PRIMARY_STATE_INACTIVE)
    assert h.snapshot('ee_delta') and is_zero(h.snapshot('ee_delta')[-1])
    # on_deactivate ran on one of the executor's threads, not on a thread of its own.
    assert [t.name.startswith('ThreadPoolExecutor') for t in threads] == [True], threads
