# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The QoS profiles of the node's topics, defined once for the node, its tools and tests."""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, qos_profile_sensor_data,
                       ReliabilityPolicy)

#: Instruction: reliable + transient local, so a node started late still gets the task.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     history=HistoryPolicy.KEEP_LAST)

#: Commands: reliable so a zero twist is never lost to the best-effort mode a camera uses;
#: depth 1 because an old command is worse than none.
COMMANDS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)

#: Camera: sensor-data QoS (best effort, keep last 1) so a slow node never back-pressures the
#: camera; the node keeps only the newest frame anyway.
IMAGES = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                    history=HistoryPolicy.KEEP_LAST,
                    durability=qos_profile_sensor_data.durability)
