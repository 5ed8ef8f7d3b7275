# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Read-only parameters stay so at run time, and every parameter is described."""

import pytest

from openvla_ros.node import parameters

# Written out here, not read from the table: a parameter that silently became writable must
# fail this test.
READ_ONLY = ['model', 'unnorm_key', 'use_compressed', 'diagnostics_period', 'engine.dtype',
             'engine.max_model_len', 'engine.gpu_memory_utilization', 'engine.enforce_eager',
             'engine.quantization', 'engine.seed', 'engine.trust_remote_code',
             'image_preprocessing', 'center_crop', 'center_crop_scale', 'statistics_file']


def test_read_only_parameters_are_read_only_at_run_time():
    rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')
    from rclpy.parameter import Parameter

    from openvla_ros.node.policy_node import OpenVlaPolicyNode
    rclpy.init()
    try:
        node = OpenVlaPolicyNode(node_name='read_only_probe')
        for name in READ_ONLY:
            descriptor = node.describe_parameter(name)
            assert descriptor.read_only, name
            assert descriptor.description, name
            current = node.get_parameter(name).value
            new = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v + 0.5,
                   str: lambda v: v + 'x'}[type(current)](current)
            result = node.set_parameters([Parameter(name, value=new)])[0]
            assert not result.successful, name
            assert node.get_parameter(name).value == current
        assert node.get_parameter('engine.trust_remote_code').value is False
        # Every parameter the node declares has a description.
        for param in parameters.TABLE:
            assert node.describe_parameter(param.name).description, param.name
        declared = set(node.get_parameters_by_prefix('').keys())
        assert {p.name for p in parameters.TABLE} <= declared
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
