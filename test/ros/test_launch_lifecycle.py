# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""launch_testing without an engine: policy.launch.py starts the node, unconfigured, with its YAML.

The ROS tier's launch test (no vLLM needed, so it also runs in the Jazzy no-engine environment):
``autostart:=false`` leaves the lifecycle node unconfigured; the test checks what the launch file
is responsible for — the executable found through the ament index, the parameter file loaded from
the package's share directory, the namespace, the lifecycle services, ``/diagnostics`` — and that
the node exits cleanly when launch shuts it down. The engine-tier launch test
(``test/engine/test_policy_launch.py``) covers autostart and actions.
"""

import os
import time
import unittest

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing (ROS 2 launch stack) is not installed; it ships '
                             'with ROS 2 distributions and is not on PyPI')
pytest.importorskip('launch_ros', reason='launch_ros (ROS 2 launch stack) is not installed')
pytest.importorskip('launch_testing_ros', reason='launch_testing_ros is not installed')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
import launch  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch_testing_ros import WaitForTopics  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
import rclpy  # noqa: E402
import rclpy.executors  # noqa: E402
from colcon_harness import ament_prefix_path  # noqa: E402,I100

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH_FILE = os.path.join(_ROOT, 'launch', 'policy.launch.py')
NAMESPACE = 'launch_lifecycle_test'
NODE = f'/{NAMESPACE}/openvla_policy'
os.environ['AMENT_PREFIX_PATH'] = ament_prefix_path()


@pytest.mark.launch_test
@launch_testing.ready_to_test_action_timeout(120)
def generate_test_description():
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={'namespace': NAMESPACE, 'autostart': 'false',
                          'model': 'no/such-model-needed'}.items())
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


def _call(executor, client, request, timeout=30.0):
    assert client.wait_for_service(timeout_sec=timeout), f'{client.srv_name} not offered'
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=timeout)
    assert future.done(), f'{client.srv_name} did not answer'
    return future.result()


class TestLaunchedNode(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.context = rclpy.Context()
        rclpy.init(context=cls.context)
        cls.node = rclpy.create_node('launch_lifecycle_probe', context=cls.context)
        cls.executor = rclpy.executors.SingleThreadedExecutor(context=cls.context)
        cls.executor.add_node(cls.node)

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        cls.context.try_shutdown()

    def test_node_says_it_is_unconfigured(self, proc_output):
        proc_output.assertWaitFor('ready (unconfigured)', timeout=60)

    def test_lifecycle_state_is_unconfigured(self):
        client = self.node.create_client(GetState, f'{NODE}/get_state')
        state = _call(self.executor, client, GetState.Request()).current_state
        self.assertEqual(state.label, 'unconfigured')

    def test_parameters_come_from_the_launch_file_and_the_package_yaml(self):
        client = self.node.create_client(GetParameters, f'{NODE}/get_parameters')
        request = GetParameters.Request(names=['model', 'unnorm_key', 'frame_id'])
        values = [v.string_value for v in _call(self.executor, client, request).values]
        # model from the launch argument; unnorm_key from config/policy.yaml in share/.
        self.assertEqual(values, ['no/such-model-needed', 'bridge_orig', 'base_link'])

    def test_one_node_has_the_policy_node_name(self):
        # Launch renames every node of the process (__node:=openvla_policy); the motion inputs'
        # helper node must keep its own name, or the graph would hold two openvla_policy nodes.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            names = [(ns, name) for name, ns in self.node.get_node_names_and_namespaces()
                     if ns == f'/{NAMESPACE}']
            if len(names) >= 2:
                break
            time.sleep(0.2)
        self.assertEqual(sorted(names), [(f'/{NAMESPACE}', 'openvla_policy'),
                                         (f'/{NAMESPACE}', 'openvla_policy_motion_inputs')])

    def test_diagnostics_are_published(self):
        with WaitForTopics([('/diagnostics', DiagnosticArray)], timeout=60) as received:
            arrays = received.received_messages('/diagnostics')
        names = [status.name for array in arrays for status in array.status]
        self.assertIn(f'{NODE}: OpenVLA policy', names)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
