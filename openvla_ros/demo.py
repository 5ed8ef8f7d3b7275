"""``openvla-ros demo``: the policy node on a generated camera, end to end, for a bounded time.

Runs the real lifecycle node (it loads the model through vLLM in ``configure``), a camera
publisher of synthetic frames and a listener that prints every action, all over real DDS in
one process. Without ``--model`` it uses the generated random-weight test checkpoint, whose
actions are meaningless: the demo shows the plumbing, the rate and the latency, not skill.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any

from openvla_ros.policy import add_engine_arguments, engine_options_from_args

DISCLAIMER = (
    'NOTE: the generated test checkpoint has random weights, so these actions are meaningless; '
    'they show that images flow in and commands flow out at the engine\'s rate.\n'
    'For the real model on a GPU machine: openvla-ros demo --model openvla/openvla-7b '
    '--unnorm-key bridge_orig (or ros2 launch openvla_ros policy.launch.py '
    'model:=openvla/openvla-7b unnorm_key:=bridge_orig with your camera).')


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        'demo', help='run the policy node on a generated camera and print its actions',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default=None,
                        help='checkpoint directory or hub id (default: the generated test '
                             'checkpoint, built and cached on first use)')
    parser.add_argument('--unnorm-key', default='bridge_orig',
                        help='dataset statistics (default %(default)s)')
    parser.add_argument('--instruction', default='put the spoon on the towel',
                        help='task sent on the instruction topic')
    parser.add_argument('--duration', type=float, default=30.0,
                        help='seconds to run after the node is active (default %(default)s)')
    parser.add_argument('--camera-hz', type=float, default=30.0,
                        help='rate of the generated camera (default %(default)s)')
    add_engine_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.camera_hz <= 0:
        raise ValueError('--duration and --camera-hz must be positive')
    model = args.model
    if model is None:
        from openvla_ros.test_model import cached_test_model
        print('[demo] preparing the generated test checkpoint (built once, then cached) ...',
              flush=True)
        model = str(cached_test_model())
    print(DISCLAIMER, flush=True)
    result = run_demo(model, args.unnorm_key, args.instruction, args.duration,
                      args.camera_hz, engine_options_from_args(args),
                      trust_remote_code=args.trust_remote_code)
    return 0 if result['actions'] > 0 else 1


def run_demo(model: str, unnorm_key: str, instruction: str, duration: float,
             camera_hz: float, engine_options: dict, trust_remote_code: bool = False) -> dict:
    """Run node + camera + listener for ``duration`` seconds once active; return a summary."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64MultiArray, String

    from openvla_ros.images import rgb_to_image_fields
    from openvla_ros.policy_node import OpenVlaPolicyNode
    from openvla_ros.synthetic import scene_image

    # The demo's camera and node live in this process: keep their DDS traffic on loopback.
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    rclpy.init()
    overrides = [Parameter('model', value=model), Parameter('unnorm_key', value=unnorm_key),
                 Parameter('instruction', value=instruction),
                 Parameter('engine.dtype', value=engine_options.get('dtype', 'bfloat16')),
                 Parameter('engine.max_model_len',
                           value=int(engine_options.get('max_model_len', 512))),
                 Parameter('engine.trust_remote_code', value=bool(trust_remote_code))]
    if engine_options.get('enforce_eager'):
        overrides.append(Parameter('engine.enforce_eager', value=True))
    if engine_options.get('gpu_memory_utilization'):
        overrides.append(Parameter('engine.gpu_memory_utilization',
                                   value=float(engine_options['gpu_memory_utilization'])))
    node = OpenVlaPolicyNode(parameter_overrides=overrides)
    peer = rclpy.create_node('openvla_demo')
    camera = peer.create_publisher(Image, 'image', 10)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    peer.create_publisher(String, 'instruction', latched).publish(String(data=instruction))
    received: list[float] = []
    started = [0.0]

    def on_action(msg: Float64MultiArray) -> None:
        now = time.monotonic()
        received.append(now)
        values = ' '.join(f'{v:+.4f}' for v in msg.data)
        print(f'[demo] t={now - started[0]:6.2f}s action #{len(received):3d}: {values}',
              flush=True)

    peer.create_subscription(Float64MultiArray, 'action', on_action, 10)
    count = [0]

    def publish_frame() -> None:
        # Every frame differs: vLLM reuses its cache for an identical image and prompt, which
        # would make repeated frames look faster than a real camera's.
        msg = Image(**rgb_to_image_fields(scene_image(count[0])))
        msg.header.stamp = peer.get_clock().now().to_msg()
        msg.header.frame_id = 'camera'
        camera.publish(msg)
        count[0] += 1

    peer.create_timer(1.0 / camera_hz, publish_frame)
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    executor.add_node(peer)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    summary: dict = {'actions': 0}
    try:
        print('[demo] configuring the node (loads the engine) ...', flush=True)
        from rclpy.lifecycle import TransitionCallbackReturn
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError('configure failed; see the node log above')
        node.trigger_activate()
        started[0] = time.monotonic()
        sent_before = count[0]
        superseded_before = node.diagnostics_status()
        superseded_before = int({kv.key: kv.value for kv in superseded_before.values}[
            'frames_superseded'])
        time.sleep(duration)
        status = {kv.key: kv.value for kv in node.diagnostics_status().values}
        elapsed = time.monotonic() - started[0]
        rate = ((len(received) - 1) / (received[-1] - received[0])
                if len(received) >= 2 else 0.0)
        summary = {
            'actions': len(received), 'seconds': elapsed, 'action_rate_hz': rate,
            'camera_frames': count[0] - sent_before,
            'engine_latency_p50_s': float(status['latency_p50_s']),
            'frames_superseded': int(status['frames_superseded']) - superseded_before,
            'engine_startup_s': float(status['engine_startup_s']),
        }
        latency = summary['engine_latency_p50_s']
        print(f'[demo] {len(received)} actions in {elapsed:.1f} s: {rate:.2f} actions/s; '
              f'engine p50 {latency * 1000:.0f} ms (1/latency = '
              f'{(1 / latency if latency > 0 else 0):.2f} Hz); camera {camera_hz:g} Hz, '
              f'{summary["frames_superseded"]} frames superseded while the engine was busy; '
              f'engine start-up {summary["engine_startup_s"]:.0f} s', flush=True)
    except KeyboardInterrupt:
        print('[demo] interrupted', flush=True)
    finally:
        if node.is_active:
            node.trigger_deactivate()   # the robot's last command is a zero twist
        node.stop_and_release()
        executor.shutdown(timeout_sec=2.0)
        peer.destroy_node()
        node.destroy_node()
        rclpy.try_shutdown()
    return summary
