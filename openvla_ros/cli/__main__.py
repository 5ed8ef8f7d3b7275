# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``python -m openvla_ros.cli``: the same as the ``openvla-ros`` command."""

from openvla_ros.cli import run

run()
