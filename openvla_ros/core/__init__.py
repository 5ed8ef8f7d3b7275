# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""ROS-free runtime: prompt, decoding, images, engine, conditioning, the inference loop.

Nothing here imports rclpy or message packages; vLLM and torch are imported only when an
in-process engine is built (``core.engine.VllmPolicy``).
"""
