# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Offline work: bags, evaluation, replay, benchmark, demo, doctor, the generated checkpoint.

Never imported by core or node. ``harness`` runs the node in-process for the demo, the
benchmark, replay and the tests.
"""
