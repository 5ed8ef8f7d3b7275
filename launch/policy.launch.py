# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Launch the OpenVLA policy lifecycle node, configured and activated automatically."""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition


def generate_launch_description():
    """Return the launch description: arguments, the node, autostart transitions."""
    arguments = [
        DeclareLaunchArgument('model', default_value='openvla/openvla-7b',
                              description='OpenVLA checkpoint: hub id or local directory'),
        DeclareLaunchArgument('unnorm_key', default_value='bridge_orig',
                              description='dataset statistics to unnormalize actions with '
                                          '(bridge_orig for WidowX/Bridge, '
                                          'fractal20220817_data for the Google robot, ...)'),
        DeclareLaunchArgument('dtype', default_value='auto',
                              description='engine dtype: auto (bfloat16 on a GPU or a CPU with '
                                          'native bf16, float32 on other CPUs), bfloat16, '
                                          'float16 or float32'),
        DeclareLaunchArgument('engine_url', default_value='',
                              description="'' = run the engine in this process; "
                                          'http://host:port = the vLLM server started there '
                                          'with openvla-ros serve (the robot loads no weights)'),
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([
                                  FindPackageShare('openvla_ros'), 'config', 'policy.yaml']),
                              description='parameter file for the node'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('image_topic', default_value='image',
                              description='camera topic (sensor_msgs/Image) to remap image to'),
        DeclareLaunchArgument('instruction_topic', default_value='instruction',
                              description='std_msgs/String task topic to remap instruction to'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (true when replaying bags)'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='configure and activate the node automatically'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='node log level (debug, info, warn, error)'),
    ]
    node = LifecycleNode(
        package='openvla_ros',
        executable='policy_node',
        name='openvla_policy',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=[LaunchConfiguration('params_file'), {
            'model': LaunchConfiguration('model'),
            'unnorm_key': LaunchConfiguration('unnorm_key'),
            'engine.dtype': LaunchConfiguration('dtype'),
            # Typed: an empty url must stay the string '', not become a YAML null.
            'engine.url': ParameterValue(LaunchConfiguration('engine_url'), value_type=str),
            'use_sim_time': LaunchConfiguration('use_sim_time'),
        }],
        remappings=[('image', LaunchConfiguration('image_topic')),
                    ('image/compressed', [LaunchConfiguration('image_topic'), '/compressed']),
                    ('instruction', LaunchConfiguration('instruction_topic'))],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    )
    autostart = IfCondition(LaunchConfiguration('autostart'))
    configure = EmitEvent(event=ChangeState(
        lifecycle_node_matcher=matches_action(node),
        transition_id=Transition.TRANSITION_CONFIGURE), condition=autostart)
    # Activate only once configure succeeded (the engine loaded), never on a failed load.
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
        entities=[EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=Transition.TRANSITION_ACTIVATE))]), condition=autostart)
    return LaunchDescription(arguments + [node, activate, configure])
