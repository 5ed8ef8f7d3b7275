# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""launch_testing: the real policy.launch.py brings the node to active and actions flow.

Needs the ROS 2 launch stack (``launch``, ``launch_ros``, ``launch_testing``,
``launch_testing_ros``), which ships with every ROS 2 distribution but is not on PyPI; where it
is missing the test is skipped with that reason (CI installs it from ``../shared/wheels``).
``ros2 launch`` finds this package through the ament index of an install prefix: a colcon
install space, or, for the pip install into ``.venv``, the environment's own prefix, which this
test puts on ``AMENT_PREFIX_PATH`` as the README tells pip users to.

Done the ROS 2 way: ``ReadyToTest`` once the lifecycle node reports ``active``,
``WaitForTopics`` for the outputs, ``assertExitCodes`` after shutdown.
"""

import os
import threading
import unittest

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing (ROS 2 launch stack) is not installed; it ships '
                             'with ROS 2 distributions and is not on PyPI')
pytest.importorskip('launch_ros', reason='launch_ros (ROS 2 launch stack) is not installed')
pytest.importorskip('launch_testing_ros', reason='launch_testing_ros is not installed')

import launch  # noqa: E402
from launch.actions import IncludeLaunchDescription, RegisterEventHandler  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_ros.event_handlers import OnStateTransition  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch_testing_ros import WaitForTopics  # noqa: E402
import rclpy  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402,I100

from openvla_ros.tools.generated_checkpoint import cached_test_model  # noqa: E402
from openvla_ros.tools.synthetic import scene_image  # noqa: E402
from openvla_ros.tools.synthetic_camera import SyntheticCamera  # noqa: E402
from colcon_harness import ament_prefix_path  # noqa: E402,I100

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH_FILE = os.path.join(_ROOT, 'launch', 'policy.launch.py')
NAMESPACE = 'launch_test'
# Engine start-up takes one to two minutes on a 2-core CPU, more under load.
READY_TIMEOUT_S = 600
ACTIONS_TIMEOUT_S = 300
os.environ['AMENT_PREFIX_PATH'] = ament_prefix_path()


@pytest.mark.launch_test
@launch_testing.ready_to_test_action_timeout(READY_TIMEOUT_S)
def generate_test_description():
    model = str(cached_test_model(progress=False))
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={'model': model, 'unnorm_key': 'bridge_orig',
                          'namespace': NAMESPACE, 'autostart': 'true'}.items())
    # Ready when the lifecycle node reaches active (the launch file activates it once the
    # engine has loaded), not after a guessed delay.
    ready = RegisterEventHandler(OnStateTransition(
        goal_state='active', entities=[launch_testing.actions.ReadyToTest()]))
    return launch.LaunchDescription([include, ready])


class _Camera:
    """Publish the instruction (latched) and a changing camera frame at 10 Hz from a thread."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('launch_test_camera', context=self.context)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_publisher(String, f'/{NAMESPACE}/instruction', latched).publish(
            String(data='put the spoon on the towel'))
        self.camera = SyntheticCamera(self.node, f'/{NAMESPACE}/image',
                                      frames=lambda index: scene_image(index % 8))
        self.camera.start(10.0)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except rclpy.executors.ExternalShutdownException:
            pass

    def close(self):
        self.context.try_shutdown()
        self.thread.join(timeout=10)
        self.node.destroy_node()


class TestActionsFlow(unittest.TestCase):

    def test_node_becomes_active(self, proc_output):
        # ReadyToTest came from the state transition; the node also says so in its log.
        proc_output.assertWaitFor('active: publishing actions', timeout=30)

    def test_actions_and_commands_are_published(self):
        camera = _Camera()
        try:
            topics = [(f'/{NAMESPACE}/action', Float64MultiArray),
                      (f'/{NAMESPACE}/ee_delta', TwistStamped)]
            with WaitForTopics(topics, timeout=ACTIONS_TIMEOUT_S) as received:
                actions = received.received_messages(f'/{NAMESPACE}/action')
                twists = received.received_messages(f'/{NAMESPACE}/ee_delta')
        finally:
            camera.close()
        self.assertEqual(len(actions[0].data), 7)
        self.assertEqual(twists[0].header.frame_id, 'base_link')

    def test_the_action_is_served(self):
        try:
            from openvla_ros_interfaces.action import ExecuteInstruction
        except ImportError:
            self.skipTest('openvla_ros_interfaces is not built: run scripts/build_interfaces.sh')
        from rclpy.action import ActionClient
        rclpy.init()
        node = rclpy.create_node('launch_test_action_probe')
        try:
            client = ActionClient(node, ExecuteInstruction,
                                  '/launch_test/openvla_policy/execute_instruction')
            self.assertTrue(client.wait_for_server(timeout_sec=60.0),
                            'the launched node serves no ~/execute_instruction action')
            client.destroy()
        finally:
            node.destroy_node()
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
