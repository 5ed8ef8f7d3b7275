# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Convert ROS ``sensor_msgs`` Image and CompressedImage messages to RGB numpy arrays.

The module needs neither rclpy nor cv_bridge: it works on any object carrying the message's
fields, so it runs in tests, in bag tools and in pip-only installs. That last case is why the
built-in converter exists: the PyPI wheels of ROS 2 have no ``cv_bridge``, and the PyPI package
named ``cv-bridge`` is a port of the ROS 1 bridge that must not be used here. ``cv_bridge`` is
therefore used only when it imports and exposes ``CvBridge``; that check cannot tell a ROS 2
install from the ROS 1 port, so any failure inside cv_bridge switches to the built-in converter
for the rest of the process instead of failing the frame. Every message is validated here
before either converter runs, so a bad message raises the same :class:`ImageError` with or
without cv_bridge.
"""

from __future__ import annotations

import io
import logging
import operator
import struct
import threading
import types
from typing import Any
import warnings

import numpy as np
import PIL
from PIL import Image as PILImage

__all__ = [
    'SUPPORTED_ENCODINGS',
    'DEFAULT_MAX_PIXELS',
    'ImageError',
    'compressed_to_rgb',
    'cv_bridge_available',
    'encode_compressed',
    'image_to_rgb',
    'load_image_file',
    'msg_to_rgb',
    'rgb_to_image_fields',
    'rgb_to_pil',
    'use_cv_bridge',
]

_LOG = logging.getLogger(__name__)

#: Default pixel limit of every image read (the node's ``max_image_pixels``, the tools'
#: ``--max-image-pixels``): 16.8 Mpx holds any camera this model is used with (it sees 224 x
#: 224), and refuses a header declaring 10000 x 10000 before a byte of it is decoded.
DEFAULT_MAX_PIXELS = 4096 * 4096

# Canonical encoding -> (channels, bytes per channel, channel order of the first three).
_LAYOUTS: dict[str, tuple[int, int, str]] = {
    'rgb8': (3, 1, 'rgb'),
    'bgr8': (3, 1, 'bgr'),
    'rgba8': (4, 1, 'rgb'),
    'bgra8': (4, 1, 'bgr'),
    'mono8': (1, 1, 'gray'),
    'mono16': (1, 2, 'gray'),
}
# OpenCV type names carry no channel order; OpenCV's convention is BGR, so 8UC3 is bgr8.
_ALIASES = {'8uc1': 'mono8', '8uc3': 'bgr8', '8uc4': 'bgra8', '16uc1': 'mono16'}

#: Encodings :func:`image_to_rgb` accepts (matched case-insensitively).
SUPPORTED_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16',
                       '8UC1', '8UC3', '8UC4', '16UC1')

_WRITABLE_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
# Pillow modes holding more than 8 bits of gray: mapped to 8 bits like mono16.
_WIDE_GRAY_MODES = ('I', 'I;16', 'I;16L', 'I;16B', 'I;16N')
# Decoding only what image_transport's "compressed" plugin publishes keeps the rest of
# Pillow's decoders (and their bugs) away from network input.
_COMPRESSED_FORMATS = ('JPEG', 'PNG')
# Pillow's plugins report broken files through all of these, not through one error type.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

_lock = threading.Lock()
_cv_bridge_enabled = True
_bridge: Any = None
_bridge_probed = False


class ImageError(ValueError):
    """An image message that cannot be converted; the text names the problem and the fix."""


def use_cv_bridge(enabled: bool) -> bool:
    """Allow or forbid cv_bridge for raw images and return the previous setting."""
    global _cv_bridge_enabled
    with _lock:
        previous, _cv_bridge_enabled = _cv_bridge_enabled, bool(enabled)
    return previous


def cv_bridge_available() -> bool:
    """Return whether a usable cv_bridge is importable (ignoring :func:`use_cv_bridge`)."""
    return _get_bridge() is not None


def _get_bridge() -> Any:
    global _bridge, _bridge_probed
    with _lock:
        if not _bridge_probed:
            _bridge_probed = True
            try:
                import cv_bridge
            except Exception:
                # A broken install (numpy ABI, missing cv2) is as good as none.
                cv_bridge = None
            bridge_class = getattr(cv_bridge, 'CvBridge', None)
            if bridge_class is not None:
                try:
                    _bridge = bridge_class()
                except Exception:
                    _bridge = None
        return _bridge


def _disable_broken_bridge(exc: BaseException) -> None:
    global _bridge
    with _lock:
        if _bridge is not None:
            _LOG.warning('cv_bridge failed (%s: %s); using the built-in image converter from '
                         'now on', type(exc).__name__, exc)
        _bridge = None


def _field(msg: Any, name: str, kind: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise ImageError(
            f'{kind} message has no field {name!r}: pass a sensor_msgs/msg/{kind}') from None


def _int_field(msg: Any, name: str) -> int:
    value = _field(msg, name, 'Image')
    try:
        return operator.index(value)
    except TypeError:
        raise ImageError(
            f'Image {name} must be an integer, got {value!r}: pass a sensor_msgs/msg/Image'
        ) from None


def _byte_array(data: Any, kind: str) -> np.ndarray:
    """Return ``data`` as a flat uint8 array, sharing its memory whenever it is contiguous."""
    if isinstance(data, np.ndarray):
        flat = np.ascontiguousarray(data).reshape(-1)
        try:
            return flat.view(np.uint8)
        except (TypeError, ValueError) as exc:
            raise ImageError(f'{kind} data has dtype {data.dtype}: pass bytes or uint8') from exc
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        pass
    except ValueError:
        # Buffers that are not contiguous; rare enough that a copy is fine.
        return np.frombuffer(memoryview(data).tobytes(), dtype=np.uint8)
    # Hand-built messages may carry a list of ints.
    try:
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise ImageError(
            f'{kind} data must be bytes, bytearray, array.array or a uint8 sequence, got '
            f'{type(data).__name__}') from None


def _canonical_encoding(encoding: Any) -> str:
    key = str(encoding).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _LAYOUTS:
        raise ImageError(
            f'unsupported encoding {encoding!r}: publish one of rgb8, bgr8, rgba8, bgra8, '
            'mono8, mono16 (or 8UC1, 8UC3, 8UC4, 16UC1), or use image/compressed')
    return key


def _check_pixels(height: int, width: int, max_pixels: int | None, kind: str) -> None:
    if max_pixels is not None and height * width > max_pixels:
        raise ImageError(
            f'{kind} is {width} x {height} = {height * width} pixels, above max_pixels='
            f'{max_pixels}: lower the camera resolution or raise max_pixels')


def _validate(msg: Any, max_pixels: int | None) -> tuple[str, int, int, int, np.ndarray]:
    """Check a raw Image and return its canonical encoding, height, width, step and bytes."""
    encoding = _canonical_encoding(_field(msg, 'encoding', 'Image'))
    height = _int_field(msg, 'height')
    width = _int_field(msg, 'width')
    if height <= 0 or width <= 0:
        raise ImageError(
            f'Image has zero size (height {height}, width {width}): the publisher sent an '
            'empty frame')
    # Before the data is looked at, so an absurd header cannot make us allocate.
    _check_pixels(height, width, max_pixels, 'Image')
    channels, depth, _ = _LAYOUTS[encoding]
    row_bytes = width * channels * depth
    step = _int_field(msg, 'step')
    if step < row_bytes:
        raise ImageError(
            f'Image step {step} is smaller than one row: width {width} x {channels * depth} '
            f'bytes ({encoding}) needs a step of at least {row_bytes}')
    data = _byte_array(_field(msg, 'data', 'Image'), 'Image')
    needed = height * step
    if data.size < needed:
        raise ImageError(
            f'Image data has {data.size} bytes but height {height} x step {step} needs '
            f"{needed}: the publisher's step or data is wrong")
    if data.size > needed:
        # Padding belongs inside step; trailing bytes mean the header does not match the data.
        raise ImageError(
            f'Image data has {data.size} bytes but height {height} x step {step} is {needed}: '
            f"data length inconsistent with height x step, the publisher's step or data is "
            'wrong')
    return encoding, height, width, step, data


def _builtin_rgb(encoding: str, height: int, width: int, step: int, data: np.ndarray,
                 big_endian: bool) -> np.ndarray:
    channels, depth, order = _LAYOUTS[encoding]
    # Slicing the rows drops any padding in step without copying.
    rows = data.reshape(height, step)[:, :width * channels * depth]
    pixels = rows.reshape(height, width, channels * depth)
    out = np.empty((height, width, 3), dtype=np.uint8)
    if order == 'gray':
        if depth == 2:
            # The high byte is value >> 8: it keeps the full 16-bit range linear with no
            # per-frame normalisation (which would make brightness flicker), and needs no
            # 16-bit arithmetic. cv_bridge scales by 255/65535 instead: at most 1 level apart.
            gray = pixels[:, :, 0 if big_endian else 1]
        else:
            gray = pixels[:, :, 0]
        out[...] = gray[:, :, np.newaxis]
    elif order == 'bgr':
        out[...] = pixels[:, :, 2::-1]
    else:
        out[...] = pixels[:, :, :3]
    return out


def _owned_rgb(array: Any, height: int, width: int) -> np.ndarray | None:
    """Return ``array`` as an owned C-contiguous RGB uint8 copy, or None if it is not one."""
    rgb: np.ndarray = np.asarray(array)
    if rgb.shape != (height, width, 3) or rgb.dtype != np.uint8:
        return None
    if rgb.flags.owndata and rgb.flags.c_contiguous and rgb.flags.writeable:
        return rgb
    return np.array(rgb, dtype=np.uint8, order='C', copy=True)


def image_to_rgb(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """Convert a raw ``sensor_msgs/msg/Image`` to an owned (H, W, 3) uint8 RGB array.

    Raises :class:`ImageError` for any inconsistent message, and before reading the pixel data
    when ``height x width`` exceeds ``max_pixels``. mono16 (and 16UC1) keeps the high byte.
    """
    encoding, height, width, step, data = _validate(msg, max_pixels)
    big_endian = bool(getattr(msg, 'is_bigendian', 0))
    bridge = _get_bridge() if _cv_bridge_enabled else None
    if bridge is not None:
        # cv_bridge knows neither aliases nor case variants; hand it the canonical name.
        canonical = types.SimpleNamespace(
            header=getattr(msg, 'header', None), height=height, width=width,
            encoding=encoding, is_bigendian=int(big_endian), step=step, data=data)
        try:
            result = _owned_rgb(bridge.imgmsg_to_cv2(canonical, desired_encoding='rgb8'),
                                height, width)
        except Exception as exc:
            # The message passed validation, so the failure is cv_bridge's own.
            _disable_broken_bridge(exc)
        else:
            if result is not None:
                return result
            _disable_broken_bridge(ValueError('imgmsg_to_cv2 returned an unexpected array'))
    return _builtin_rgb(encoding, height, width, step, data, big_endian)


def compressed_to_rgb(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """Decode a ``sensor_msgs/msg/CompressedImage`` (JPEG or PNG) to an owned RGB uint8 array.

    The ``format`` field is only used in messages: Pillow detects the real format. The size
    is checked against ``max_pixels`` from the file header, before any pixel is decoded.
    """
    return _pil_to_rgb(_decode_compressed(msg, max_pixels))


def _decode_compressed(msg: Any, max_pixels: int | None) -> PILImage.Image:
    """Return the decoded (loaded) Pillow image of a CompressedImage, or raise ImageError."""
    fmt = str(_field(msg, 'format', 'CompressedImage')).strip()
    data = _byte_array(_field(msg, 'data', 'CompressedImage'), 'CompressedImage')
    if data.size == 0:
        raise ImageError(
            f'CompressedImage data is empty (format {fmt!r}): the publisher sent no bytes')
    if 'compresseddepth' in fmt.lower():
        raise ImageError(
            f'CompressedImage format {fmt!r} is a compressedDepth image: subscribe to a colour '
            'image (image_raw or image_raw/compressed)')
    described = f'CompressedImage data (format {fmt!r}, {data.size} bytes)'
    try:
        img = PILImage.open(io.BytesIO(data.tobytes()), formats=_COMPRESSED_FORMATS)
        width, height = img.size
        _check_pixels(height, width, max_pixels, 'CompressedImage')
        img.load()
        return img
    except ImageError:
        raise
    except PILImage.DecompressionBombError as exc:
        raise ImageError(
            f'{described} is a decompression bomb ({exc}): the header claims an absurd size; '
            'check the publisher') from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(
            f'{described} is not a valid JPEG/PNG ({type(exc).__name__}: {exc}): check the '
            "publisher's compression, image_transport 'compressed' sends jpeg or png") from exc


def load_image_file(path: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                    label: str | None = None) -> PILImage.Image:
    """Return the image file at ``path`` as an RGB Pillow image, or raise ``ImageError``.

    The size in the file's header is checked against ``max_pixels`` before any pixel is
    decoded (Pillow's own decompression-bomb limit, ~89 Mpx with a warning, is far above what
    a robot camera sends); 16-bit gray files map to 8 bits as mono16 frames do. ``label``
    names the file in messages (default: its path).
    """
    shown = repr(label or str(path))
    try:
        with warnings.catch_warnings():
            # Pillow warns from ~89 Mpx; the limit below refuses such files with a message.
            warnings.simplefilter('ignore', PILImage.DecompressionBombWarning)
            opened = PILImage.open(path)
        with opened as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageError(
                    f'image file {shown} is {width} x {height} = {width * height} pixels, '
                    f'above the limit of {max_pixels}: resize it, or raise the limit with '
                    '--max-image-pixels')
            img.load()
            if img.mode == 'RGB':
                return img.copy()
            if img.mode in _WIDE_GRAY_MODES:
                return PILImage.fromarray(_pil_to_rgb(img))
            return img.convert('RGB')
    except ImageError:
        raise
    except FileNotFoundError:
        raise FileNotFoundError(f'image file {shown} does not exist') from None
    except IsADirectoryError:
        raise ImageError(f'image file {shown} is a folder: give an image file') from None
    except PILImage.DecompressionBombError as exc:
        raise ImageError(
            f'image file {shown} is a decompression bomb ({exc}): its header claims an absurd '
            'size; check where it came from') from None
    except PIL.UnidentifiedImageError:
        raise ImageError(f'cannot read image {shown} (not an image format Pillow knows): '
                         'give a PNG or JPEG file') from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f'cannot read image {shown} ({type(exc).__name__}: {exc}): give a '
                         'valid PNG or JPEG file') from None


def _pil_to_rgb(img: PILImage.Image) -> np.ndarray:
    img.load()
    if img.mode in _WIDE_GRAY_MODES:
        # Same mapping as mono16, so one camera looks the same raw or as a 16-bit PNG.
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        gray = (wide >> 8).astype(np.uint8)
        out = np.empty(gray.shape + (3,), dtype=np.uint8)
        out[...] = gray[:, :, np.newaxis]
        return out
    rgb = img if img.mode == 'RGB' else img.convert('RGB')
    return np.array(rgb, dtype=np.uint8, order='C', copy=True)


def msg_to_rgb(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """Convert an Image or a CompressedImage, told apart by their fields, to RGB uint8."""
    if hasattr(msg, 'encoding') and hasattr(msg, 'height'):
        return image_to_rgb(msg, max_pixels)
    if hasattr(msg, 'format') and hasattr(msg, 'data'):
        return compressed_to_rgb(msg, max_pixels)
    raise ImageError(
        f'expected a sensor_msgs/msg/Image or CompressedImage, got {type(msg).__name__}')


def msg_to_pil(msg: Any, max_pixels: int | None = None) -> PILImage.Image:
    """Convert an Image or a CompressedImage to the RGB Pillow image the engine takes.

    Each frame is decoded once: a CompressedImage goes from its bytes straight to a Pillow
    image (no array in between), a raw Image from its pixel rows to one RGB array, wrapped.
    """
    if hasattr(msg, 'format') and hasattr(msg, 'data') and not hasattr(msg, 'encoding'):
        img = _decode_compressed(msg, max_pixels)
        if img.mode == 'RGB':
            return img
        if img.mode in _WIDE_GRAY_MODES:
            return PILImage.fromarray(_pil_to_rgb(img))
        return img.convert('RGB')
    return PILImage.fromarray(msg_to_rgb(msg, max_pixels))


def _check_rgb(rgb: Any) -> np.ndarray:
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(
            f'expected an (H, W, 3) uint8 RGB array, got shape {array.shape} {array.dtype}')
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f'expected a non-empty image, got shape {array.shape}')
    return array


def rgb_to_pil(array: Any) -> PILImage.Image:
    """Return an (H, W, 3) uint8 RGB array as a Pillow image in mode RGB."""
    return PILImage.fromarray(np.ascontiguousarray(_check_rgb(array)))


def rgb_to_image_fields(rgb: Any, encoding: str = 'rgb8') -> dict[str, Any]:
    """Return the fields of a ``sensor_msgs/msg/Image`` holding ``rgb`` in ``encoding``.

    ``encoding`` is one of rgb8, bgr8, rgba8, bgra8 (alpha 255) or mono8 (ITU-R 601 luma,
    as Pillow computes it); the rows are unpadded and ``data`` is bytes.
    """
    array = _check_rgb(rgb)
    key = str(encoding).strip().lower()
    if key not in _WRITABLE_ENCODINGS:
        raise ValueError(
            f'cannot write encoding {encoding!r}: use one of {", ".join(_WRITABLE_ENCODINGS)}')
    height, width = array.shape[:2]
    channels, _, order = _LAYOUTS[key]
    if order == 'gray':
        weights = array.astype(np.uint32) * np.array([299, 587, 114], dtype=np.uint32)
        pixels = ((weights.sum(axis=2) + 500) // 1000).astype(np.uint8)
    else:
        pixels = np.empty((height, width, channels), dtype=np.uint8)
        pixels[:, :, :3] = array[:, :, ::-1] if order == 'bgr' else array
        if channels == 4:
            pixels[:, :, 3] = 255
    return {
        'height': height,
        'width': width,
        'encoding': key,
        'is_bigendian': 0,
        'step': width * channels,
        'data': np.ascontiguousarray(pixels).tobytes(),
    }


def encode_compressed(rgb: Any, fmt: str = 'jpeg', quality: int = 95) -> bytes:
    """Encode an image as JPEG (at ``quality``) or PNG and return the bytes.

    ``rgb`` is an (H, W, 3) uint8 RGB array or a Pillow image in mode RGB (the remote engine's
    requests and the bags' compressed frames are both encoded here).
    """
    key = str(fmt).strip().lower()
    buffer = io.BytesIO()
    if key not in ('jpeg', 'jpg', 'png'):
        raise ValueError(f'cannot encode format {fmt!r}: use jpeg or png')
    picture = rgb if isinstance(rgb, PILImage.Image) and rgb.mode == 'RGB' else rgb_to_pil(rgb)
    if key == 'png':
        picture.save(buffer, format='PNG')
    else:
        picture.save(buffer, format='JPEG', quality=int(quality))
    return buffer.getvalue()
