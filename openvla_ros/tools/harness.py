# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Run the policy node in this process: node, peers, executor, spinner and teardown, once.

The demo, the benchmark, replay and the ROS tests all need the real node on a background
executor next to nodes of their own (a camera, a recorder, a test driver). :class:`NodeRunner`
is that set-up and its orderly teardown: zero twist first, engine released, executor stopped,
nodes destroyed, the ROS context shut down when the runner started it.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn

from openvla_ros.core.policy import Policy
from openvla_ros.node import parameters as node_parameters
from openvla_ros.node.policy_node import OpenVlaPolicyNode


class NodeRunner:
    """One :class:`OpenVlaPolicyNode` (plus peer nodes) spinning on a background executor."""

    def __init__(self, values: dict[str, Any], *, namespace: str = '',
                 policy_factory: Callable[..., Policy] | None = None, threads: int = 3,
                 loopback: bool = True, context: Any = None) -> None:
        """Build the node with parameter ``values`` (name -> value) and start spinning.

        ``loopback`` keeps this process's DDS traffic on the machine (demo, tests), unless the
        environment already chose a discovery range. ``context`` is an ``rclpy.Context`` of
        its own (default: the global one); the runner initialises and shuts down a context it
        found uninitialised.
        """
        if loopback:
            os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        self.context = context
        self._owns_context = not rclpy.ok(context=context)
        if self._owns_context:
            rclpy.init(args=[], context=context)
        self.node = OpenVlaPolicyNode(
            namespace=namespace, policy_factory=policy_factory, context=context,
            parameter_overrides=node_parameters.overrides(values))
        self.peers: list[Any] = []
        self.executor = MultiThreadedExecutor(num_threads=threads, context=context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, name='node-runner',
                                         daemon=True)
        self._spinner.start()

    def add_peer(self, name: str, namespace: str = '', spin: bool = True) -> Any:
        """Create a plain node that spins with the policy node (camera, recorder, driver).

        ``spin=False``: the node joins the executor only at :meth:`spin_peer`. Create action
        clients on such a node first: rclpy's ``ActionClient`` registers itself with its node
        before it has finished initialising, so an executor already spinning that node can
        meet the half-made client and its thread dies (seen in CI: ``'ActionClient' object has
        no attribute '_lock'``, then no callback of any node ran again).
        """
        peer = rclpy.create_node(name, namespace=namespace, context=self.context)
        self.peers.append(peer)
        if spin:
            self.executor.add_node(peer)
        return peer

    def spin_peer(self, peer: Any) -> None:
        """Start spinning a peer created with ``spin=False``."""
        self.executor.add_node(peer)

    def configure(self) -> bool:
        """Run the configure transition in this thread; return whether it succeeded."""
        return self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS

    def activate(self) -> bool:
        """Run the activate transition in this thread; return whether it succeeded."""
        return self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def close(self, fast: bool = False) -> None:
        """Zero twist and engine release first, then the executor and the nodes."""
        self.node.stop_and_release(fast=fast)
        self.executor.shutdown(timeout_sec=2.0)
        for peer in self.peers:
            peer.destroy_node()
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> 'NodeRunner':
        """Return the running runner."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Tear everything down."""
        self.close()
