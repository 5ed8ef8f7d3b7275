# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Write and read the rosbag2 files of offline evaluation, with the pure-Python ``rosbags``.

No ROS installation is needed: ``rosbags`` serializes CDR itself and writes both storage
formats (sqlite3, the ROS 2 default up to Iron, and mcap, the default since Jazzy).

Bag layout written by :func:`make_bag` and expected by :func:`read_bag` by default:

=================================  ===============================  ============================
topic                              type                             content
=================================  ===============================  ============================
``/camera/image_raw``              ``sensor_msgs/msg/Image``        rgb8 frame, frame_id camera
``/camera/image_raw/compressed``   ``sensor_msgs/msg/CompressedImage``  instead, with --compressed
``/instruction``                   ``std_msgs/msg/String``          at step 0 and on each change
``/ground_truth/ee_delta``         ``geometry_msgs/msg/TwistStamped``  action[0:3], action[3:6]
``/ground_truth/gripper``          ``std_msgs/msg/Float64``         action[6]
=================================  ===============================  ============================

Every message of a step carries the step's stamp, both as header stamp and as bag time.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
import shutil
import sys
from typing import Any, Sequence

import numpy as np

from openvla_ros.core.decoding import ACTION_DIM
from openvla_ros.core.errors import BagError
from openvla_ros.core.images import (DEFAULT_MAX_PIXELS, encode_compressed, ImageError, msg_to_rgb,
                                     rgb_to_image_fields)
from openvla_ros.core.stats import NS_PER_S, ns_to_stamp_fields, stamp_to_ns
from openvla_ros.tools.metrics import default_tolerance, match_ground_truth
from openvla_ros.tools.steps import (DEFAULT_RATE_HZ, DEFAULT_T0_S, load_step_image, load_steps,
                                     Step)

#: Raw image topic written by ``make-bag`` and looked for first by the reader.
IMAGE_TOPIC = '/camera/image_raw'
#: Compressed image topic (image_transport's naming) written with ``--compressed``.
COMPRESSED_IMAGE_TOPIC = '/camera/image_raw/compressed'
INSTRUCTION_TOPIC = '/instruction'
GT_TWIST_TOPIC = '/ground_truth/ee_delta'
GT_GRIPPER_TOPIC = '/ground_truth/gripper'

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
STRING_TYPE = 'std_msgs/msg/String'
TWIST_STAMPED_TYPE = 'geometry_msgs/msg/TwistStamped'
TWIST_TYPE = 'geometry_msgs/msg/Twist'
FLOAT64_TYPE = 'std_msgs/msg/Float64'
FLOAT32_TYPE = 'std_msgs/msg/Float32'
ARRAY_TYPE = 'std_msgs/msg/Float64MultiArray'

#: JPEG quality of ``--compressed`` frames: high enough that the model sees nearly the raw
#: pixels (JPEG is lossy; use ``compressed_format='png'`` for bit-exact frames).
JPEG_QUALITY = 95
#: rosbag2 metadata version written: 8 is what Jazzy writes and reads.
BAG_VERSION = 8
STORAGES = ('sqlite3', 'mcap')


# --------------------------------------------------------------------------------------------
# Type store and message construction


def typestore() -> Any:
    """Return the rosbags type store of Jazzy, or of the newest ROS 2 release this rosbags has."""
    from rosbags.typesys import Stores, get_typestore
    store = getattr(Stores, 'ROS2_JAZZY', None)
    if store is None:
        ros2 = [s for s in Stores if s.name.startswith('ROS2_')]
        store = ros2[-1]
    return get_typestore(store)


def make_header(store: Any, stamp_ns: int, frame_id: str) -> Any:
    """Return a ``std_msgs/Header`` of ``store`` stamped ``stamp_ns`` (for messages to write)."""
    types = store.types
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](**ns_to_stamp_fields(stamp_ns)),
        frame_id=frame_id)


def _stamp_of(msg: Any) -> int | None:
    """Return a message's header stamp in ns, or None when it has no header or a zero stamp."""
    header = getattr(msg, 'header', None)
    stamp = getattr(header, 'stamp', None)
    if stamp is None:
        return None
    ns = stamp_to_ns(stamp)
    # A zero stamp means the publisher never set it; bag time is the better clock then.
    return ns if ns > 0 else None


class _Damaged:
    """Turn the errors of a damaged bag file into :class:`BagError` naming it and the fix.

    rosbags reports a corrupt sqlite3 page as ``apsw.CorruptError`` (and other ``apsw``
    errors), a bad mcap chunk checksum or record as ``ReaderError``, a truncated file as
    ``struct.error`` / ``EOFError``: none of them says which file, nor what to do.
    """

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> '_Damaged':
        return self

    def __exit__(self, kind: Any, error: BaseException | None, _tb: Any) -> bool:
        if error is None or isinstance(error, BagError) or not _is_damage(error):
            return False
        files = [self.path] if self.path.is_file() else sorted(
            p for p in self.path.glob('*') if p.suffix in ('.db3', '.mcap'))
        shown = ', '.join(str(f) for f in files) or str(self.path)
        raise BagError(
            f'bag file {shown} is damaged ({type(error).__name__}: {error}): copy it again '
            'from its source or re-record it; to salvage what is left, run `sqlite3 FILE '
            '".recover"` on a .db3 or `mcap recover FILE` on a .mcap, then `ros2 bag reindex`'
        ) from None


def _is_damage(error: BaseException) -> bool:
    import struct
    from rosbags.rosbag2.errors import ReaderError
    damage: tuple = (ReaderError, struct.error, EOFError, UnicodeDecodeError)
    try:
        import apsw
        damage += (apsw.Error,)
    except ImportError:   # rosbags reads sqlite3 through apsw; without it nothing to map
        pass
    missing = (FileNotFoundError, PermissionError)
    if isinstance(error, OSError) and not isinstance(error, missing):
        return True   # an I/O error reading the file (EIO on a failing disk, say)
    return isinstance(error, damage)


def seal_mcap_chunks(path: Path) -> int:
    """Write the CRC-32 of every uncompressed chunk into an mcap file; return how many.

    rosbags writes chunks with a zero CRC ("not computed"), so a damaged chunk would be read
    without complaint; with the CRC in place its reader checks every chunk it decompresses.
    ``ros2 bag record`` writes these CRCs itself.
    """
    import binascii
    import struct
    sealed = 0
    with open(path, 'r+b') as stream:
        data = stream.read()
        position = 8   # after the magic
        while position + 9 <= len(data):
            opcode = data[position]
            (length,) = struct.unpack_from('<Q', data, position + 1)
            content = position + 9
            if opcode == 0x06:   # Chunk: start u64, end u64, size u64, crc u32, compression...
                (crc,) = struct.unpack_from('<I', data, content + 24)
                (name_length,) = struct.unpack_from('<I', data, content + 28)
                compression = data[content + 32:content + 32 + name_length]
                records = content + 32 + name_length
                (records_length,) = struct.unpack_from('<Q', data, records)
                if crc == 0 and compression == b'':
                    value = binascii.crc32(data[records + 8:records + 8 + records_length])
                    stream.seek(content + 24)
                    stream.write(struct.pack('<I', value))
                    sealed += 1
            if opcode in (0x02, 0x0F):   # Footer, DataEnd: no chunk after
                break
            position = content + length
    return sealed


# --------------------------------------------------------------------------------------------
# Writing


def storage_plugin(storage: str) -> Any:
    """Return the rosbags writer plugin for ``storage`` (``mcap`` or ``sqlite3``)."""
    from rosbags.rosbag2 import StoragePlugin
    if storage not in STORAGES:
        raise BagError(f'unknown storage {storage!r}: use one of {", ".join(STORAGES)}')
    return StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3


def _remove_old_bag(out: Path) -> None:
    """Delete the bag ``--force`` replaces, refusing anything that is not a rosbag2."""
    if out.is_dir() and (out / 'metadata.yaml').is_file():
        shutil.rmtree(out)
    elif out.is_file() and out.suffix in ('.db3', '.mcap'):
        out.unlink()
    else:
        raise BagError(
            f'output bag {str(out)!r} exists and is not a rosbag2 (no metadata.yaml): --force '
            'replaces only a bag; choose another path')


def make_bag(steps_json: Path | str, out_bag: Path | str, rate_hz: float = DEFAULT_RATE_HZ,
             storage: str = 'sqlite3', compressed: bool = False, progress: bool = True,
             compressed_format: str = 'jpeg', t0_s: float = DEFAULT_T0_S, force: bool = False,
             max_pixels: int | None = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """Write a rosbag2 (sqlite3 or mcap) replaying STEPS.json; return a summary dict.

    Frames go to ``/camera/image_raw`` (rgb8) or, with ``compressed``, to
    ``/camera/image_raw/compressed`` as JPEG (quality 95) or PNG (``compressed_format``). See
    the module documentation for the other topics. Every step is validated before the bag is
    created, and a bag left half-written by an unreadable image is removed. An existing
    ``out_bag`` is refused unless ``force`` (then it must be a rosbag2, which is replaced).
    Images above ``max_pixels`` are refused before they are decoded.
    """
    from rosbags.rosbag2 import Writer
    from tqdm import tqdm

    out = Path(out_bag)
    if out.exists() and not force:
        raise BagError(
            f'output bag {str(out)!r} already exists: choose a new path, or pass --force to '
            'replace it')
    plugin = storage_plugin(storage)
    if compressed and compressed_format not in ('jpeg', 'png'):
        raise BagError(f'unknown compressed format {compressed_format!r}: use jpeg or png')
    steps = load_steps(steps_json, rate_hz=rate_hz, t0_s=t0_s)
    if out.exists():
        _remove_old_bag(out)
    store = typestore()
    types = store.types
    image_topic = COMPRESSED_IMAGE_TOPIC if compressed else IMAGE_TOPIC
    image_type = COMPRESSED_IMAGE_TYPE if compressed else IMAGE_TYPE
    counts = {image_topic: 0, INSTRUCTION_TOPIC: 0, GT_TWIST_TOPIC: 0, GT_GRIPPER_TOPIC: 0}
    sizes: set[tuple[int, int]] = set()
    try:
        with Writer(out, version=BAG_VERSION, storage_plugin=plugin) as writer:
            connections = {topic: writer.add_connection(topic, kind, typestore=store)
                           for topic, kind in ((image_topic, image_type),
                                               (INSTRUCTION_TOPIC, STRING_TYPE),
                                               (GT_TWIST_TOPIC, TWIST_STAMPED_TYPE),
                                               (GT_GRIPPER_TOPIC, FLOAT64_TYPE))}

            def write(topic: str, msg: Any, stamp_ns: int) -> None:
                data = store.serialize_cdr(msg, msg.__msgtype__)
                writer.write(connections[topic], stamp_ns, data)
                counts[topic] += 1

            previous_instruction = None
            for step in tqdm(steps, desc='make-bag', unit='frame', file=sys.stderr,
                             disable=not progress, leave=False):
                rgb = load_step_image(step, max_pixels)
                sizes.add((rgb.shape[1], rgb.shape[0]))
                # The instruction first, so a reader sees it at or before its first frame.
                if step.instruction != previous_instruction:
                    write(INSTRUCTION_TOPIC, types[STRING_TYPE](data=step.instruction),
                          step.stamp_ns)
                    previous_instruction = step.instruction
                for topic, msg in _step_messages(store, step, rgb, image_topic,
                                                 compressed_format if compressed else None):
                    write(topic, msg, step.stamp_ns)
        for file in out.glob('*.mcap'):
            seal_mcap_chunks(file)
    except BaseException:
        # We checked that ``out`` did not exist, so everything there is ours and half-written.
        if out.exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    first, last = steps[0].stamp_ns, steps[-1].stamp_ns
    return {
        'bag': str(out),
        'storage': storage,
        'frames': len(steps),
        'start_stamp_s': first / NS_PER_S,
        'duration_s': (last - first) / NS_PER_S,
        'image_topic': image_topic,
        'image_format': compressed_format if compressed else 'rgb8',
        'image_sizes': sorted([list(size) for size in sizes]),
        'instructions': counts[INSTRUCTION_TOPIC],
        'topics': counts,
    }


def _step_messages(store: Any, step: Step, rgb: np.ndarray, image_topic: str,
                   compressed_format: str | None) -> list[tuple[str, Any]]:
    """Return one step's camera image and ground truth (twist, gripper) as (topic, message)."""
    types = store.types
    header = make_header(store, step.stamp_ns, 'camera')
    if compressed_format is not None:
        payload = encode_compressed(rgb, compressed_format, quality=JPEG_QUALITY)
        image = types[COMPRESSED_IMAGE_TYPE](header=header, format=compressed_format,
                                             data=np.frombuffer(payload, dtype=np.uint8))
    else:
        fields = rgb_to_image_fields(rgb, 'rgb8')
        fields['data'] = np.frombuffer(fields['data'], dtype=np.uint8)
        image = types[IMAGE_TYPE](header=header, **fields)
    vector = types['geometry_msgs/msg/Vector3']
    twist = types[TWIST_STAMPED_TYPE](
        header=make_header(store, step.stamp_ns, 'ee'),
        twist=types[TWIST_TYPE](linear=vector(*step.action[0:3]),
                                angular=vector(*step.action[3:6])))
    return [(image_topic, image), (GT_TWIST_TOPIC, twist),
            (GT_GRIPPER_TOPIC, types[FLOAT64_TYPE](data=step.action[6]))]


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class BagFrame:
    """One image message of a bag; decode it with :meth:`rgb` when it is needed."""

    index: int
    stamp_s: float
    bag_time_ns: int
    msg: Any = None
    error: str | None = None

    @property
    def bag_time_s(self) -> float:
        """Return the bag (recording) time in seconds."""
        return self.bag_time_ns / NS_PER_S

    def rgb(self, max_pixels: int | None = None) -> np.ndarray:
        """Return the frame as an RGB uint8 array, or raise ``ImageError``."""
        if self.error is not None:
            raise ImageError(self.error)
        return msg_to_rgb(self.msg, max_pixels=max_pixels)


@dataclass
class InstructionRecord:
    """One instruction message: bag time and text."""

    bag_time_ns: int
    text: str


@dataclass
class GroundTruth:
    """One ground-truth action: its stamp in seconds, bag time and the 7-vector."""

    stamp_s: float
    bag_time_ns: int
    values: np.ndarray


@dataclass
class BagData:
    """Everything offline evaluation needs from a bag, in bag-time order."""

    path: Path
    storage: str
    topics: dict[str, str]
    image_topic: str
    instruction_topic: str | None
    gt_source: str
    #: 'header' when ground-truth stamps are header stamps, 'bag' when they are bag times.
    gt_time_base: str
    frames: list[BagFrame] = field(default_factory=list)
    instructions: list[InstructionRecord] = field(default_factory=list)
    ground_truth: list[GroundTruth] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def instruction_at(self, bag_time_ns: int) -> str | None:
        """Return the latest instruction at or before ``bag_time_ns`` (None before the first)."""
        # Instructions are in bag-time order (the reader yields messages sorted by time).
        times = [record.bag_time_ns for record in self.instructions]
        position = bisect.bisect_right(times, bag_time_ns)
        return self.instructions[position - 1].text if position else None

    def frame_time(self, frame: BagFrame) -> float:
        """Return the frame's time on the clock its ground truth is stamped with."""
        return frame.stamp_s if self.gt_time_base == 'header' else frame.bag_time_s


def _topic_listing(topics: dict[str, str]) -> str:
    if not topics:
        return '(the bag has no topics)'
    return ', '.join(f'{name} [{kind}]' for name, kind in sorted(topics.items()))


def _require_topic(topics: dict[str, str], topic: str, allowed: Sequence[str], what: str,
                   fix: str) -> str:
    if topic not in topics:
        raise BagError(
            f'the bag has no {what} topic {topic!r}; its topics: {_topic_listing(topics)}. '
            f'{fix}')
    if topics[topic] not in allowed:
        raise BagError(
            f'{what} topic {topic!r} has type {topics[topic]}, expected '
            f'{" or ".join(allowed)}. {fix}')
    return topics[topic]


def _detect_storage(path: Path) -> str:
    if path.is_file():
        return 'mcap' if path.suffix == '.mcap' else 'sqlite3'
    if any(path.glob('*.mcap')):
        return 'mcap'
    return 'sqlite3'


def read_bag(bag_path: Path | str, image_topic: str | None = None,
             instruction_topic: str | None = INSTRUCTION_TOPIC,
             gt_twist_topic: str = GT_TWIST_TOPIC, gt_gripper_topic: str = GT_GRIPPER_TOPIC,
             gt_array_topic: str | None = None,
             pair_tolerance_s: float | None = None) -> BagData:
    """Read frames, instructions and ground truth of a rosbag2 (sqlite3 or mcap, auto-detected).

    ``image_topic`` None picks ``/camera/image_raw`` or ``/camera/image_raw/compressed``,
    whichever the bag has. ``instruction_topic`` None reads no instructions (the caller gives
    one). Ground truth comes from ``gt_array_topic`` (a ``Float64MultiArray`` of 7 values,
    stamped with bag time) when given, else from the twist topic (``TwistStamped``, stamped with
    its header) paired with the gripper message (``Float64``) nearest in bag time, within
    ``pair_tolerance_s`` (default half the twist period). Images stay undecoded until
    :meth:`BagFrame.rgb` is called.
    """
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError

    path = Path(bag_path)
    if not path.exists():
        raise FileNotFoundError(
            f'bag {str(path)!r} does not exist: pass a rosbag2 directory (or .mcap/.db3 file); '
            'make one from images with `openvla-ros make-bag STEPS.json OUT_BAG`')
    store = typestore()
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, FileNotFoundError, KeyError, ValueError) as exc:
        raise BagError(
            f'cannot open {str(path)!r} as a rosbag2 ({exc}): pass the bag directory holding '
            'metadata.yaml, or a .mcap/.db3 file') from exc
    try:
        topics = {name: info.msgtype or '?' for name, info in reader.topics.items()}
        image_topic = _pick_image_topic(topics, image_topic)
        if instruction_topic is not None:
            _require_topic(topics, instruction_topic, (STRING_TYPE,), 'instruction',
                           'Pass --instruction-topic with the right topic, or --instruction '
                           'TEXT to give the task yourself.')
        if gt_array_topic is not None:
            _require_topic(topics, gt_array_topic, (ARRAY_TYPE,), 'ground-truth array',
                           'Pass --gt-array-topic naming a Float64MultiArray of 7 values.')
            gt_topics = [gt_array_topic]
            gt_source = f'{gt_array_topic} (Float64MultiArray)'
            time_base = 'bag'
        else:
            fix = ('Pass --gt-twist-topic and --gt-gripper-topic, or --gt-array-topic for a '
                   'Float64MultiArray of 7 values.')
            twist_type = _require_topic(topics, gt_twist_topic, (TWIST_STAMPED_TYPE, TWIST_TYPE),
                                        'ground-truth twist', fix)
            _require_topic(topics, gt_gripper_topic, (FLOAT64_TYPE, FLOAT32_TYPE),
                           'ground-truth gripper', fix)
            gt_topics = [gt_twist_topic, gt_gripper_topic]
            gt_source = f'{gt_twist_topic} + {gt_gripper_topic}'
            time_base = 'header' if twist_type == TWIST_STAMPED_TYPE else 'bag'
        data = BagData(path=path, storage=_detect_storage(path), topics=topics,
                       image_topic=image_topic, instruction_topic=instruction_topic,
                       gt_source=gt_source, gt_time_base=time_base)
        wanted = {image_topic, *gt_topics}
        if instruction_topic is not None:
            wanted.add(instruction_topic)
        connections = [c for c in reader.connections if c.topic in wanted]
        twists: list[tuple[int, int | None, np.ndarray]] = []
        grippers: list[tuple[int, float]] = []
        with _Damaged(path):
            for connection, timestamp, raw in reader.messages(connections=connections):
                _collect(data, store, connection, timestamp, raw, gt_array_topic, twists,
                         grippers)
    finally:
        with _Damaged(path):
            reader.close()
    if gt_array_topic is None:
        data.ground_truth = _pair_twists(data, twists, grippers, pair_tolerance_s)
    return data


def _pick_image_topic(topics: dict[str, str], image_topic: str | None) -> str:
    allowed = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
    if image_topic is not None:
        _require_topic(topics, image_topic, allowed, 'image',
                       'Pass --image-topic naming a sensor_msgs Image or CompressedImage topic.')
        return image_topic
    found = [t for t in (IMAGE_TOPIC, COMPRESSED_IMAGE_TOPIC) if t in topics]
    if len(found) == 1:
        _require_topic(topics, found[0], allowed, 'image', 'Pass --image-topic.')
        return found[0]
    images = sorted(t for t, kind in topics.items() if kind in allowed)
    if not found:
        raise BagError(
            f'the bag has neither {IMAGE_TOPIC} nor {COMPRESSED_IMAGE_TOPIC}; its topics: '
            f'{_topic_listing(topics)}. Pass --image-topic'
            + (f' (image topics here: {", ".join(images)})' if images else ''))
    raise BagError(
        f'the bag has both {IMAGE_TOPIC} and {COMPRESSED_IMAGE_TOPIC}: pass --image-topic to '
        'choose one')


def _collect(data: BagData, store: Any, connection: Any, timestamp: int, raw: bytes,
             gt_array_topic: str | None, twists: list, grippers: list) -> None:
    """Deserialize one message into ``data`` (frames, instructions) or the twist/gripper lists."""
    topic = connection.topic
    try:
        msg = store.deserialize_cdr(raw, connection.msgtype)
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for corrupt CDR
        if topic == data.image_topic:
            # Keep the frame so it is accounted for (as a bad image), not silently lost.
            data.frames.append(BagFrame(len(data.frames), timestamp / NS_PER_S, timestamp,
                                        error=f'undecodable message ({exc})'))
        else:
            data.notes.append(f'{topic}: skipped an undecodable message at bag time '
                              f'{timestamp / NS_PER_S:.3f} s ({exc})')
        return
    if topic == data.image_topic:
        stamp = _stamp_of(msg)
        data.frames.append(BagFrame(len(data.frames), (stamp or timestamp) / NS_PER_S,
                                    timestamp, msg))
    elif topic == data.instruction_topic:
        data.instructions.append(InstructionRecord(timestamp, str(msg.data)))
    elif topic == gt_array_topic:
        values = np.asarray(msg.data, dtype=np.float64).reshape(-1)
        if values.shape != (ACTION_DIM,) or not np.all(np.isfinite(values)):
            data.notes.append(
                f'{topic}: skipped a message at bag time {timestamp / NS_PER_S:.3f} s holding '
                f'{values.size} values (expected {ACTION_DIM} finite numbers)')
            return
        data.ground_truth.append(GroundTruth(timestamp / NS_PER_S, timestamp, values))
    elif hasattr(msg, 'twist') or hasattr(msg, 'linear'):
        twist = getattr(msg, 'twist', msg)
        vector = np.array([twist.linear.x, twist.linear.y, twist.linear.z,
                           twist.angular.x, twist.angular.y, twist.angular.z])
        twists.append((timestamp, _stamp_of(msg), vector))
    else:
        grippers.append((timestamp, float(msg.data)))


def _pair_twists(data: BagData, twists: list, grippers: list,
                 tolerance_s: float | None) -> list[GroundTruth]:
    """Pair each twist with the gripper message nearest in bag time; note unpaired ones."""
    twist_times = [t / NS_PER_S for t, _, _ in twists]
    gripper_times = [t / NS_PER_S for t, _ in grippers]
    if tolerance_s is None:
        tolerance_s = default_tolerance(twist_times)
    matches = match_ground_truth(twist_times, gripper_times, tolerance_s=tolerance_s)
    records = []
    unpaired = 0
    for (bag_ns, stamp_ns, vector), match in zip(twists, matches):
        if match is None:
            unpaired += 1
            continue
        values = np.append(vector, grippers[match][1])
        if not np.all(np.isfinite(values)):
            unpaired += 1
            continue
        stamp = stamp_ns if (stamp_ns is not None and data.gt_time_base == 'header') else bag_ns
        records.append(GroundTruth(stamp / NS_PER_S, bag_ns, values))
    if unpaired:
        data.notes.append(
            f'{unpaired} ground-truth twist message(s) had no finite gripper value within '
            f'{tolerance_s:.3f} s and were dropped')
    return records


# --------------------------------------------------------------------------------------------
# Output


def format_summary(summary: dict[str, Any]) -> str:
    """Return the one-line description of a bag written by :func:`make_bag`."""
    sizes = ', '.join(f'{w}x{h}' for w, h in summary['image_sizes'])
    return (f"wrote {summary['bag']}: {summary['frames']} frames over "
            f"{summary['duration_s']:.2f} s on {summary['image_topic']} ({sizes} "
            f"{summary['image_format']}), {summary['instructions']} instruction message(s), "
            f"{summary['storage']}")
