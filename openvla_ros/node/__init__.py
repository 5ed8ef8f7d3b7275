# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""ROS 2 glue: the lifecycle node, its parameter table, diagnostics and QoS profiles."""
