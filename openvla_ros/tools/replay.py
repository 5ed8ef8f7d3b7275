# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Online evaluation: replay a bag into the live ROS graph, record the node, score the recording.

The online twin of ``evaluate``. Instead of calling the policy on every frame, this publishes a
bag's camera and instruction messages with the bag's timing (scaled by ``rate``) to a running
policy node, drives ``/clock`` from bag time so the node can run with ``use_sim_time``, records
what the node publishes (``ee_delta``, ``gripper``, ``action``, ``diagnostics``) into a new
rosbag2 and scores that recording against the bag's ground truth with the same metrics and
report as offline evaluation.

Attribution: the node stamps ``ee_delta`` with the header stamp of the image it acted on
(``stamp_source: image``, the default), so every command maps back to exactly one bag frame
(matched to the nanosecond). The raw 7-value ``action`` published with it (the model's
unconditioned output, which is what the ground truth describes) is paired with the command by
publisher source timestamp. The node skips frames while its engine is busy (the engine is
slower than a camera), so every frame ends up either evaluated or skipped with a reason, and
``read == evaluated + skipped``:

``bad_image``        the bag message cannot be decoded; it is not published
``not_acted_on``     published, but the node computed no action from it (busy, stale, no
                     instruction yet, ...; the node's diagnostics in the report say which)
``no_ground_truth``  acted on, but the bag has no ground truth within tolerance of its stamp

Needs rclpy (ROS 2) but no ``ros2 bag``: bags are read and written with ``rosbags``.
"""

from __future__ import annotations

from datetime import datetime, timezone
import math
from pathlib import Path
import sys
import threading
import time
from typing import Any, Mapping

from openvla_ros.core.stats import NS_PER_S, ns_to_stamp_fields, stamp_to_ns
from openvla_ros.tools.bags import (ARRAY_TYPE, BagData, BAG_VERSION, COMPRESSED_IMAGE_TYPE,
                                    FLOAT64_TYPE, GT_GRIPPER_TOPIC, GT_TWIST_TOPIC,
                                    INSTRUCTION_TOPIC, read_bag, TWIST_STAMPED_TYPE, typestore)
from openvla_ros.tools.report import write_report
from openvla_ros.tools.scoring import (bag_metadata, check_instruction_override,
                                       ground_truth_matches)

#: Skip reasons of a replay, in the order they are checked.
REPLAY_SKIP_REASONS = ('bad_image', 'not_acted_on', 'no_ground_truth')
RECORDING = 'recording'
DIAGNOSTIC_ARRAY_TYPE = 'diagnostic_msgs/msg/DiagnosticArray'
#: What is recorded: topic (relative to the namespace, except the absolute /diagnostics that
#: every node shares) and its type.
RECORDED_TOPICS = (('ee_delta', TWIST_STAMPED_TYPE), ('gripper', FLOAT64_TYPE),
                   ('action', ARRAY_TYPE), ('/diagnostics', DIAGNOSTIC_ARRAY_TYPE))
#: A command and its raw action are published back to back; this bounds their pairing.
PAIR_WINDOW_NS = 500_000_000
_NODE_PARAMETERS = ('model', 'unnorm_key', 'use_sim_time', 'stamp_source', 'max_image_age',
                    'use_compressed', 'max_rate_hz', 'image_preprocessing', 'center_crop',
                    'center_crop_scale', 'statistics_file')
#: Diagnostics keys copied into the report's metadata: what the node prepares images with and
#: which statistics it unnormalizes with.
PROVENANCE_KEYS = ('image_preprocessing', 'statistics_source', 'statistics_hash')


class ReplayError(ValueError):
    """A replay that cannot run as asked; the text names the fix."""


class _Recorder:
    """Subscriptions to the node's outputs, keeping raw messages with their timing."""

    def __init__(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import TwistStamped
        from std_msgs.msg import Float64, Float64MultiArray
        classes = {'ee_delta': TwistStamped, 'gripper': Float64, 'action': Float64MultiArray,
                   '/diagnostics': DiagnosticArray}
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.sim_ns = 0   # the bag time last published on /clock
        self.topics: dict[str, str] = {}
        self.subscriptions = {}
        for name, _ in RECORDED_TOPICS:
            subscription = node.create_subscription(classes[name], name, self._keep(name), 50,
                                                    raw=True)
            self.subscriptions[name] = subscription
            self.topics[name] = subscription.topic_name

    def _keep(self, name: str) -> Any:
        def callback(raw: bytes, info: Any) -> None:
            with self.lock:
                self.messages.append({'topic': name, 'raw': bytes(raw),
                                      'source_ns': int(info['source_timestamp']),
                                      'received_ns': int(info['received_timestamp']),
                                      'sim_ns': self.sim_ns})
        return callback

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.messages)


def _parameter_value(value: Any) -> Any:
    from rcl_interfaces.msg import ParameterType
    kinds = {ParameterType.PARAMETER_BOOL: 'bool_value',
             ParameterType.PARAMETER_INTEGER: 'integer_value',
             ParameterType.PARAMETER_DOUBLE: 'double_value',
             ParameterType.PARAMETER_STRING: 'string_value'}
    field = kinds.get(value.type)
    return getattr(value, field) if field else None


def _call(node: Any, client: Any, request: Any, timeout_s: float) -> Any:
    if not client.wait_for_service(timeout_sec=timeout_s):
        return None
    future = client.call_async(request)
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    return future.result() if future.done() else None


def _node_facts(node: Any, fqn: str, timeout_s: float = 5.0) -> tuple[dict, str | None]:
    """Return the policy node's parameters and lifecycle state label (None where unknown)."""
    from lifecycle_msgs.srv import GetState
    from rcl_interfaces.srv import GetParameters
    params: dict[str, Any] = {}
    client = node.create_client(GetParameters, f'{fqn}/get_parameters')
    try:
        request = GetParameters.Request(names=list(_NODE_PARAMETERS))
        answer = _call(node, client, request, timeout_s)
        if answer is not None:
            params = {name: _parameter_value(value)
                      for name, value in zip(_NODE_PARAMETERS, answer.values)}
    finally:
        node.destroy_client(client)
    state = None
    client = node.create_client(GetState, f'{fqn}/get_state')
    try:
        answer = _call(node, client, GetState.Request(), timeout_s)
        if answer is not None:
            state = answer.current_state.label
    finally:
        node.destroy_client(client)
    return params, state


def check_node_settings(params: Mapping[str, Any], expected: Mapping[str, Any] | None,
                        node: str) -> None:
    """Raise ReplayError when the node runs other image or statistics settings than asked.

    ``expected`` maps node parameter names (``image_preprocessing``, ``center_crop``,
    ``center_crop_scale``, ``statistics_file``) to the values the replay was asked for; None
    values are not checked. The node's settings are read-only: they cannot be changed from
    here, so a mismatch stops the replay before a frame is published.
    """
    wrong = []
    for name, want in (expected or {}).items():
        if want is None:
            continue
        have = params.get(name)
        if name == 'center_crop_scale' and isinstance(have, (int, float)):
            same = math.isclose(float(have), float(want), rel_tol=0.0, abs_tol=1e-9)
        elif name == 'statistics_file' and isinstance(have, str) and have:
            same = Path(have).expanduser().resolve() == Path(want).expanduser().resolve()
        else:
            same = have == want
        if not same:
            wrong.append(f'{name} is {have!r}, not {want!r}')
    if wrong:
        raise ReplayError(
            f'the policy node {node} runs other settings than asked: {"; ".join(wrong)}. '
            'They are read-only node parameters: restart the node (or cleanup, set them in the '
            'parameter file, configure) with them, or leave the flags out')


def _wait_for_node(node: Any, image_pub: Any, recorder: _Recorder, timeout_s: float) -> str:
    """Wait until a node subscribes to our image topic and publishes ee_delta; return its name."""
    deadline = time.monotonic() + timeout_s
    twist_topic = recorder.topics['ee_delta']
    while time.monotonic() < deadline:
        # A publisher's node name arrives with discovery a little after the publisher itself.
        infos = [info for info in node.get_publishers_info_by_topic(twist_topic)
                 if not info.node_name.startswith('_NODE_NAME_UNKNOWN_')]
        if image_pub.get_subscription_count() > 0 and infos:
            time.sleep(0.5)   # let both directions finish matching
            info = infos[0]
            namespace = info.node_namespace.rstrip('/')
            return f'{namespace}/{info.node_name}'
        time.sleep(0.1)
    raise ReplayError(
        f'no policy node found within {timeout_s:g} s: nothing subscribes to '
        f'{image_pub.topic_name} and publishes {twist_topic}. Start the node in that namespace '
        '(with use_compressed true for a bag of compressed images), or pass --namespace')


def replay_bag(bag: BagData | Path | str, out_dir: Path | str, *, namespace: str = '',
               rate: float = 1.0, settle_s: float = 5.0, instruction: str | None = None,
               image_topic: str | None = None, instruction_topic: str = INSTRUCTION_TOPIC,
               gt_twist_topic: str = GT_TWIST_TOPIC, gt_gripper_topic: str = GT_GRIPPER_TOPIC,
               gt_array_topic: str | None = None, tolerance_s: float | None = None,
               warmup: int = 1, context: Any = None, wait_for_node_s: float = 30.0,
               clock_hz: float = 50.0, progress: bool = True, write_plots: bool = True,
               metadata: Mapping[str, Any] | None = None,
               expected_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Replay a bag to a running policy node, record its outputs and write the report.

    Publishes the bag's frames on ``<namespace>/image`` (``image/compressed`` for compressed
    frames) and its instructions (or ``instruction``, once) on ``<namespace>/instruction``, at
    bag timing divided by ``rate``, with ``/clock`` following bag time; keeps listening
    ``settle_s`` after the last frame for the action in flight. Writes the recording (a
    sqlite3 rosbag2) to ``out_dir/recording`` and report.json, report.md and plots to
    ``out_dir``. ``context`` is an initialised rclpy context to run in (the node under test
    may live in the same process); without it a private one is created and shut down.
    ``expected_settings`` (node parameter -> value, see :func:`check_node_settings`) makes the
    replay refuse a node running other image preparation or statistics. Returns the report,
    whose metadata holds the node's parameters, its last diagnostics and, from them, its image
    preparation and statistics hash and source.
    """
    _check_options(rate, settle_s, warmup)
    check_instruction_override(instruction, ReplayError)
    if isinstance(bag, BagData):
        data = bag
    else:
        data = read_bag(bag, image_topic=image_topic,
                        instruction_topic=None if instruction is not None else instruction_topic,
                        gt_twist_topic=gt_twist_topic, gt_gripper_topic=gt_gripper_topic,
                        gt_array_topic=gt_array_topic)
    out = Path(out_dir)
    recording = out / RECORDING
    if recording.exists():
        raise ReplayError(f'{recording} already exists: choose a new --out folder or delete it')
    out.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()

    player = _Player(context, namespace,
                     compressed=data.topics[data.image_topic] == COMPRESSED_IMAGE_TYPE)
    try:
        policy_node = _wait_for_node(player.node, player.image_pub, player.recorder,
                                     wait_for_node_s)
        params, state = _node_facts(player.node, policy_node)
        if state is not None and state != 'active':
            raise ReplayError(
                f'the policy node {policy_node} is {state}, so it would publish nothing: '
                f'activate it first (ros2 lifecycle set {policy_node} configure, then '
                'activate)')
        if params:
            check_node_settings(params, expected_settings, policy_node)
        player.play(data, instruction, rate, clock_hz, progress)
        player.settle(settle_s, rate, clock_hz)
        messages = player.recorder.snapshot()
        topics = dict(player.recorder.topics)
        if not params:
            params, _ = _node_facts(player.node, policy_node, timeout_s=2.0)
    finally:
        player.close()

    _write_recording(recording, messages, topics)
    return _score(data, out, messages, player.published, policy_node, params, topics, {
        'rate': rate, 'namespace': namespace, 'settle_s': settle_s, 'warmup': warmup,
        'tolerance_s': tolerance_s, 'instruction': instruction,
    }, warmup=warmup, tolerance_s=tolerance_s, started=started, started_at=started_at,
        recording=recording, write_plots=write_plots, metadata=metadata)


def _check_options(rate: float, settle_s: float, warmup: int) -> None:
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ReplayError(f'rate must be a positive factor (1 = real time), got {rate!r}')
    if not (isinstance(settle_s, (int, float)) and math.isfinite(settle_s) and settle_s >= 0):
        raise ReplayError(f'settle must be a number of seconds >= 0, got {settle_s!r}')
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ReplayError(f'warmup must be an integer >= 0, got {warmup!r}')


class _Player:
    """The replaying node: publishers, /clock driven from bag time, and the recorder."""

    def __init__(self, context: Any, namespace: str, compressed: bool) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        from openvla_ros.node.qos import LATCHED

        self._own_context = context is None
        if self._own_context:
            context = rclpy.Context()
            rclpy.init(args=[], context=context)
        self.context = context
        self.node: Any = None
        self.executor: Any = None
        self.published: dict[int, int] = {}   # frame index -> wall ns of publication
        self._t0: int | None = None            # bag time of the first message (ns)
        self._wall0 = 0.0                       # monotonic time it was due
        try:
            self.node = rclpy.create_node('openvla_replay', namespace=namespace or '/',
                                          context=context)
            self.image_pub = self.node.create_publisher(
                CompressedImage if compressed else Image,
                'image/compressed' if compressed else 'image', 10)
            self.instruction_pub = self.node.create_publisher(String, 'instruction', LATCHED)
            self._clock_pub = self.node.create_publisher(Clock, '/clock', 10)
            self._string = String
            self.recorder = _Recorder(self.node)
            self.executor = SingleThreadedExecutor(context=context)
            self.executor.add_node(self.node)
            threading.Thread(target=self.executor.spin, name='replay-executor',
                             daemon=True).start()
        except BaseException:
            self.close()
            raise

    def publish_clock(self, ns: int) -> None:
        from builtin_interfaces.msg import Time as TimeMsg
        from rosgraph_msgs.msg import Clock
        self.recorder.sim_ns = ns
        self._clock_pub.publish(Clock(clock=TimeMsg(**ns_to_stamp_fields(ns))))

    def _clock_until(self, due: float, rate: float, period: float, cap: int | None) -> None:
        """Sleep until monotonic ``due``, moving /clock along bag time (as ``--clock`` does)."""
        while (now := time.monotonic()) < due:
            time.sleep(min(period, due - now))
            if self._t0 is None:
                continue
            sim = self._t0 + int((min(time.monotonic(), due) - self._wall0) * rate * NS_PER_S)
            if cap is not None:
                sim = min(sim, cap)
            if sim > self.recorder.sim_ns:
                self.publish_clock(sim)

    def play(self, data: BagData, instruction: str | None, rate: float, clock_hz: float,
             progress: bool) -> None:
        """Publish the bag's frames (and instructions) at bag timing divided by ``rate``."""
        from rosbags.rosbag2 import Reader
        from tqdm import tqdm

        reader = Reader(data.path)
        reader.open()
        try:
            wanted = {data.image_topic}
            if instruction is None and data.instruction_topic:
                wanted.add(data.instruction_topic)
            connections = [c for c in reader.connections if c.topic in wanted]
            bar = tqdm(total=len(data.frames), desc='replay', unit='frame', file=sys.stderr,
                       disable=not progress, leave=False)
            index = 0
            for connection, stamp, raw in reader.messages(connections=connections):
                if self._t0 is None:
                    self._t0, self._wall0 = stamp, time.monotonic() + 0.1
                    self.publish_clock(stamp)
                    if instruction is not None:
                        self.instruction_pub.publish(self._string(data=instruction))
                due = self._wall0 + (stamp - self._t0) / NS_PER_S / rate
                self._clock_until(due, rate, 1.0 / clock_hz, cap=stamp)
                if stamp > self.recorder.sim_ns:
                    self.publish_clock(stamp)
                if connection.topic != data.image_topic:
                    self.instruction_pub.publish(bytes(raw))
                    continue
                if data.frames[index].error is None:
                    self.published[index] = time.time_ns()
                    self.image_pub.publish(bytes(raw))
                index += 1
                bar.update()
            bar.close()
        finally:
            reader.close()

    def settle(self, settle_s: float, rate: float, clock_hz: float) -> None:
        """Keep the clock running while the frame in flight is processed."""
        self._clock_until(time.monotonic() + settle_s, rate, 1.0 / clock_hz, cap=None)

    def close(self) -> None:
        import rclpy
        if self.executor is not None:
            self.executor.shutdown(timeout_sec=2.0)
        if self.node is not None:
            self.node.destroy_node()
        if self._own_context:
            rclpy.try_shutdown(context=self.context)


def _write_recording(path: Path, messages: list[dict[str, Any]], topics: dict[str, str]) -> None:
    """Write the recorded messages into a sqlite3 rosbag2, stamped with bag (sim) time."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    store = typestore()
    types = dict(RECORDED_TOPICS)
    with Writer(path, version=BAG_VERSION, storage_plugin=StoragePlugin.SQLITE3) as writer:
        connections = {name: writer.add_connection(topics[name], types[name], typestore=store)
                       for name, _ in RECORDED_TOPICS}
        for message in sorted(messages, key=lambda m: (m['sim_ns'], m['received_ns'])):
            writer.write(connections[message['topic']], message['sim_ns'], message['raw'])


def _diagnostics(store: Any, messages: list[dict[str, Any]], policy_node: str
                 ) -> dict[str, str]:
    """Return the key/values of the policy node's last status on /diagnostics (or empty)."""
    for message in reversed([m for m in messages if m['topic'] == '/diagnostics']):
        array = store.deserialize_cdr(message['raw'], DIAGNOSTIC_ARRAY_TYPE)
        for status in array.status:
            if status.name.startswith(f'{policy_node}:'):
                return {kv.key: kv.value for kv in status.values}
    return {}


def _score(data: BagData, out: Path, messages: list[dict[str, Any]], published: dict[int, int],
           policy_node: str, params: dict[str, Any], topics: dict[str, str],
           options: dict[str, Any], *, warmup: int, tolerance_s: float | None, started: float,
           started_at: datetime, recording: Path, write_plots: bool,
           metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attribute the recorded actions to bag frames and write the report."""
    store = typestore()
    twists, actions, pairs, unpaired_actions = _pair_actions(store, messages)
    by_stamp, notes = _frames_by_stamp(data)
    acted: dict[int, tuple[dict, dict]] = {}
    unattributed = 0
    for twist, action in pairs:
        index = by_stamp.get(twist['stamp_ns'])
        if index is None or index in acted:
            unattributed += 1
            continue
        acted[index] = (twist, action)
    if unattributed:
        notes.append(f'{unattributed} action(s) carried a stamp of no bag frame (is the node\'s '
                     'stamp_source "now", or are other publishers in this namespace?)')
    records, skipped = _replay_records(data, acted, ground_truth_matches(data, tolerance_s),
                                       published, options['instruction'])
    diagnostics = _diagnostics(store, messages, policy_node)
    report_notes = [
        f'Online replay into `{policy_node}` at rate {options["rate"]}: the node acted on '
        f'{len(acted)} of {len(published)} published frames (it skips frames while its engine '
        'is busy); latency is from publishing a frame to receiving the action computed from it.',
    ]
    if params.get('use_sim_time') is False:
        report_notes.append('The node did not use sim time: its max_image_age check compared '
                            'bag stamps with the wall clock (set use_sim_time true).')
    meta: dict[str, Any] = {
        'title': 'OpenVLA online replay',
        'model': params.get('model'),
        'unnorm_key': params.get('unnorm_key'),
        **{key: diagnostics.get(key) or None for key in PROVENANCE_KEYS},
        'node': policy_node,
        'node_parameters': params,
        'node_diagnostics': diagnostics,
        **bag_metadata(data, options['instruction'], options, started_at, notes),
        'recording': str(recording),
        'recorded_topics': sorted(topics.values()),
        'replay': {'frames_published': len(published), 'commands_received': len(twists),
                   'actions_received': len(actions), 'actions_attributed': len(acted),
                   'zero_commands': sum(1 for t in twists if not t['paired']),
                   'unpaired_actions': unpaired_actions,
                   'unattributed_actions': unattributed},
        'report_notes': report_notes,
    }
    if metadata:
        meta.update(metadata)
    return write_report(out, records, skipped, len(data.frames), meta, warmup=warmup,
                        started=started, write_plots=write_plots,
                        skip_reasons=REPLAY_SKIP_REASONS)


def _pair_actions(store: Any, messages: list[dict[str, Any]]
                  ) -> tuple[list[dict], list[dict], list[tuple[dict, dict]], int]:
    """Return (twists, actions, (twist, action) pairs, unpaired actions) of the recording.

    Each raw action is paired with the command the same node published just before it.
    """
    twists = []
    for message in messages:
        if message['topic'] == 'ee_delta':
            msg = store.deserialize_cdr(message['raw'], TWIST_STAMPED_TYPE)
            t = msg.twist
            command = [t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z]
            twists.append({**message, 'stamp_ns': stamp_to_ns(msg.header.stamp),
                           'command': [float(v) for v in command], 'paired': False})
    actions = [{**m, 'values': [float(v) for v in store.deserialize_cdr(m['raw'],
                                                                        ARRAY_TYPE).data]}
               for m in messages if m['topic'] == 'action']
    twists.sort(key=lambda m: m['source_ns'])
    actions.sort(key=lambda m: m['source_ns'])
    pairs = []
    unpaired = 0
    for action in actions:
        candidates = [t for t in twists if not t['paired']
                      and 0 <= action['source_ns'] - t['source_ns'] <= PAIR_WINDOW_NS]
        if not candidates:
            unpaired += 1
            continue
        candidates[-1]['paired'] = True
        pairs.append((candidates[-1], action))
    return twists, actions, pairs, unpaired


def _frames_by_stamp(data: BagData) -> tuple[dict[int, int], list[str]]:
    """Return header stamp (ns) -> frame index, and notes on stamps that cannot attribute."""
    by_stamp: dict[int, int] = {}
    notes = []
    for frame in data.frames:
        header = getattr(getattr(frame.msg, 'header', None), 'stamp', None)
        if header is None:
            continue
        key = stamp_to_ns(header)
        if key == 0:
            continue   # an unset stamp: the node would stamp its command 0, unattributable
        if key in by_stamp:
            notes.append(f'frames {by_stamp[key]} and {frame.index} share a header stamp; '
                         f'commands for it are attributed to frame {by_stamp[key]}')
            continue
        by_stamp[key] = frame.index
    return by_stamp, notes


def _replay_records(data: BagData, acted: dict[int, tuple[dict, dict]],
                    matches: list[int | None], published: dict[int, int],
                    instruction: str | None
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (records, skipped): every frame scored or skipped with its reason."""
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for frame, match in zip(data.frames, matches):
        entry = {'index': frame.index, 'stamp': frame.stamp_s}
        if frame.error is not None:
            skipped.append({**entry, 'reason': 'bad_image', 'message': frame.error})
            continue
        if frame.index not in acted:
            skipped.append({**entry, 'reason': 'not_acted_on'})
            continue
        twist, action = acted[frame.index]
        if match is None:
            skipped.append({**entry, 'reason': 'no_ground_truth',
                            'message': 'acted on, but no ground truth within tolerance'})
            continue
        latency = (action['received_ns'] - published[frame.index]) / NS_PER_S
        text = instruction if instruction is not None else data.instruction_at(frame.bag_time_ns)
        stamp = ns_to_stamp_fields(twist['stamp_ns'])
        records.append({
            'index': frame.index,
            'stamp': frame.stamp_s,
            'stamp_sec': stamp['sec'],
            'stamp_nanosec': stamp['nanosec'],
            'bag_time': frame.bag_time_s,
            'instruction': text,
            'predicted': action['values'],
            'command': twist['command'],
            'ground_truth': [float(v) for v in data.ground_truth[match].values],
            'latency_s': latency,
            'timings': {'publish_to_action_s': latency,
                        'action_sim_time_s': action['sim_ns'] / NS_PER_S},
        })
    return records, skipped


def require_rclpy() -> None:
    """Raise :class:`ReplayError` when rclpy (ROS 2) cannot be imported."""
    try:
        import rclpy  # noqa: F401
    except ImportError:
        raise ReplayError('replay needs rclpy (ROS 2): source a ROS 2 installation or install '
                          'the ros extra') from None


def format_node_line(report: Mapping[str, Any]) -> str:
    """Return the line saying how many published frames the node acted on, and the recording."""
    meta = report['metadata']
    replay = meta['replay']
    return (f"node {meta['node']}: {replay['actions_attributed']} actions on "
            f"{replay['frames_published']} published frames; recording: {meta['recording']}")
