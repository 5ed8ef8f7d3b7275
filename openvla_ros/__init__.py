# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""OpenVLA vision-language-action policy for ROS 2, served by vLLM."""
