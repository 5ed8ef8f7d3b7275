# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Tests for openvla_ros.core.images: raw and compressed image messages to RGB arrays."""

from __future__ import annotations

import array
import io
import struct
from types import SimpleNamespace
from typing import Callable, Iterator
import zlib

import numpy as np
from PIL import Image as PILImage
import pytest

from openvla_ros.core import images
from openvla_ros.core.images import ImageError

HEIGHT, WIDTH = 3, 4
# Distinct value in every channel of every pixel, so a swapped channel or row shows.
RGB = (np.arange(HEIGHT * WIDTH * 3, dtype=np.uint8).reshape(HEIGHT, WIDTH, 3) * 7 + 3)
PIXELS = RGB.tolist()


@pytest.fixture(autouse=True)
def builtin_converter() -> Iterator[None]:
    """Run every test on the built-in converter, whether or not cv_bridge is installed."""
    previous = images.use_cv_bridge(False)
    yield
    images.use_cv_bridge(previous)


def pack(pixel_bytes: Callable[[list[int]], list[int]], bpp: int, pad: int = 0) -> bytes:
    """Serialize PIXELS row by row by hand, with ``pad`` junk bytes after each row."""
    out = bytearray()
    for row in PIXELS:
        for pixel in row:
            chunk = pixel_bytes(pixel)
            assert len(chunk) == bpp
            out += bytes(chunk)
        out += b'\xee' * pad
    return bytes(out)


def raw(encoding: str, data: object, bpp: int, pad: int = 0, big_endian: int = 0,
        height: int = HEIGHT, width: int = WIDTH) -> SimpleNamespace:
    """Build a duck-typed sensor_msgs/msg/Image."""
    return SimpleNamespace(height=height, width=width, encoding=encoding,
                           is_bigendian=big_endian, step=width * bpp + pad, data=data)


def gray_rgb(gray: np.ndarray) -> np.ndarray:
    """Return the RGB image whose three channels are ``gray``."""
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


GRAY8 = RGB[:, :, 1]
# Distinct 16-bit values whose two bytes differ, so a byte-order mix-up shows.
GRAY16 = (RGB[:, :, 0].astype(np.uint16) << 8) | RGB[:, :, 2].astype(np.uint16)


def mono16_bytes(order: str) -> Callable[[list[int]], list[int]]:
    """Return a packer of GRAY16 in byte order ``order`` ('<' or '>')."""
    def packer(pixel: list[int]) -> list[int]:
        return list(struct.pack(order + 'H', (pixel[0] << 8) | pixel[2]))
    return packer


CASES = {
    'rgb8': (lambda p: p, 3, RGB),
    'bgr8': (lambda p: p[::-1], 3, RGB),
    'rgba8': (lambda p: p + [200], 4, RGB),
    'bgra8': (lambda p: p[::-1] + [200], 4, RGB),
    'mono8': (lambda p: [p[1]], 1, gray_rgb(GRAY8)),
    'mono16': (mono16_bytes('<'), 2, gray_rgb((GRAY16 >> 8).astype(np.uint8))),
    '8UC3': (lambda p: p[::-1], 3, RGB),
    '8UC1': (lambda p: [p[1]], 1, gray_rgb(GRAY8)),
    '8UC4': (lambda p: p[::-1] + [200], 4, RGB),
    '16UC1': (mono16_bytes('<'), 2, gray_rgb((GRAY16 >> 8).astype(np.uint8))),
}


def test_cases_cover_supported_encodings() -> None:
    """Test every advertised encoding."""
    assert set(CASES) == set(images.SUPPORTED_ENCODINGS)


@pytest.mark.parametrize('encoding', sorted(CASES))
def test_every_encoding(encoding: str) -> None:
    """Convert each supported encoding exactly."""
    packer, bpp, expected = CASES[encoding]
    out = images.image_to_rgb(raw(encoding, pack(packer, bpp), bpp))
    assert out.dtype == np.uint8 and out.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(out, expected)


def test_mono16_keeps_high_byte() -> None:
    """Map 16-bit gray to its high byte, across the whole range."""
    values = np.array([[0, 255, 256, 65535]], dtype='<u2')
    msg = raw('mono16', values.tobytes(), 2, height=1, width=4)
    np.testing.assert_array_equal(images.image_to_rgb(msg)[0, :, 0], [0, 0, 1, 255])


@pytest.mark.parametrize('encoding', ['rgb8', 'mono8', 'mono16'])
def test_row_padding(encoding: str) -> None:
    """Drop the padding bytes at the end of each row."""
    packer, bpp, expected = CASES[encoding]
    msg = raw(encoding, pack(packer, bpp, pad=5), bpp, pad=5)
    np.testing.assert_array_equal(images.image_to_rgb(msg), expected)


@pytest.mark.parametrize('pad', [0, 5])
def test_mono16_byte_order(pad: int) -> None:
    """Give the same values for little- and big-endian mono16."""
    expected = gray_rgb((GRAY16 >> 8).astype(np.uint8))
    little = raw('mono16', pack(mono16_bytes('<'), 2, pad), 2, pad=pad, big_endian=0)
    big = raw('mono16', pack(mono16_bytes('>'), 2, pad), 2, pad=pad, big_endian=1)
    np.testing.assert_array_equal(images.image_to_rgb(little), expected)
    np.testing.assert_array_equal(images.image_to_rgb(big), expected)


def test_eight_bit_ignores_is_bigendian() -> None:
    """Ignore is_bigendian for 8-bit channels."""
    msg = raw('bgra8', pack(CASES['bgra8'][0], 4), 4, big_endian=1)
    np.testing.assert_array_equal(images.image_to_rgb(msg), RGB)


@pytest.mark.parametrize('wrap', [
    bytes, bytearray, lambda b: array.array('B', b), lambda b: np.frombuffer(b, np.uint8),
    memoryview, list,
], ids=['bytes', 'bytearray', 'array', 'numpy', 'memoryview', 'list'])
def test_data_containers(wrap: Callable[[bytes], object]) -> None:
    """Accept every container rclpy or a user may put in data."""
    msg = raw('rgb8', wrap(RGB.tobytes()), 3)
    np.testing.assert_array_equal(images.image_to_rgb(msg), RGB)


def test_encoding_case_and_spaces() -> None:
    """Match encodings case-insensitively after stripping."""
    msg = raw(' RGB8 ', RGB.tobytes(), 3)
    np.testing.assert_array_equal(images.image_to_rgb(msg), RGB)


def test_result_owns_memory() -> None:
    """Return a C-contiguous copy, never a view into the message."""
    data = bytearray(RGB.tobytes())
    out = images.image_to_rgb(raw('rgb8', data, 3))
    assert out.flags.c_contiguous and out.flags.owndata and out.flags.writeable
    out[0, 0, 0] = 0
    data[1] = 0
    np.testing.assert_array_equal(np.frombuffer(data, np.uint8)[[0, 1]], [RGB[0, 0, 0], 0])
    assert out[0, 0, 1] == RGB[0, 0, 1]


@pytest.mark.parametrize('changes, phrase', [
    ({'data': RGB.tobytes()[:-1]}, 'needs 36'),
    ({'data': RGB.tobytes() + b'\0'}, 'data length inconsistent'),
    ({'height': 0}, 'zero size'),
    ({'width': 0}, 'zero size'),
    ({'step': 11}, 'at least 12'),
    ({'encoding': 'yuv422'}, "unsupported encoding 'yuv422'"),
    ({'encoding': 'bayer_rggb8'}, 'or use image/compressed'),
    ({'height': 'three'}, 'must be an integer'),
    ({'data': 'text'}, 'data must be bytes'),
], ids=['short', 'long', 'height0', 'width0', 'step', 'yuv', 'bayer', 'height_type', 'str'])
def test_malformed_image(changes: dict, phrase: str) -> None:
    """Reject each inconsistent message with a message naming the problem."""
    msg = raw('rgb8', RGB.tobytes(), 3)
    vars(msg).update(changes)
    with pytest.raises(ImageError, match=phrase):
        images.image_to_rgb(msg)


def test_missing_field() -> None:
    """Name a missing field."""
    msg = raw('rgb8', RGB.tobytes(), 3)
    del msg.step
    with pytest.raises(ImageError, match="no field 'step'"):
        images.image_to_rgb(msg)


def test_max_pixels_checked_before_data() -> None:
    """Refuse an oversized header without looking at its (absent) data."""
    msg = raw('rgb8', b'', 3, height=100_000, width=100_000)
    with pytest.raises(ImageError, match='above max_pixels=1000000'):
        images.image_to_rgb(msg, max_pixels=1_000_000)
    assert images.image_to_rgb(raw('rgb8', RGB.tobytes(), 3), max_pixels=12).shape == (3, 4, 3)


def smooth(height: int = 48, width: int = 64) -> np.ndarray:
    """Return a smooth gradient that JPEG compresses with little error."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 2],
                    axis=2).astype(np.uint8)


def compressed(data: object, fmt: str = 'jpeg') -> SimpleNamespace:
    """Build a duck-typed sensor_msgs/msg/CompressedImage."""
    return SimpleNamespace(format=fmt, data=data)


def png_bytes(pil_image: PILImage.Image) -> bytes:
    """Encode a Pillow image as PNG."""
    buffer = io.BytesIO()
    pil_image.save(buffer, format='PNG')
    return buffer.getvalue()


def test_jpeg_round_trip() -> None:
    """Decode a JPEG close to its source."""
    image = smooth()
    out = images.compressed_to_rgb(
        compressed(images.encode_compressed(image, 'jpeg'), 'rgb8; jpeg compressed bgr8'))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image.astype(int)).mean() < 3


def test_png_round_trip_rgb() -> None:
    """Decode an RGB PNG exactly, whatever the format string claims."""
    data = array.array('B', images.encode_compressed(RGB, 'png'))
    out = images.compressed_to_rgb(compressed(data, 'jpeg'))
    np.testing.assert_array_equal(out, RGB)
    assert out.flags.c_contiguous and out.flags.owndata


def test_png_round_trip_rgba_and_gray() -> None:
    """Drop alpha and expand gray when decoding PNG."""
    alpha = np.full((HEIGHT, WIDTH, 1), 9, np.uint8)
    rgba = png_bytes(PILImage.fromarray(np.concatenate([RGB, alpha], axis=2)))
    np.testing.assert_array_equal(images.compressed_to_rgb(compressed(rgba, 'png')), RGB)
    gray = png_bytes(PILImage.fromarray(GRAY8))
    out = images.compressed_to_rgb(compressed(gray, 'mono8; png compressed'))
    np.testing.assert_array_equal(out, gray_rgb(GRAY8))


def test_png_16_bit_gray() -> None:
    """Map a 16-bit gray PNG like mono16."""
    data = png_bytes(PILImage.fromarray(GRAY16))
    with PILImage.open(io.BytesIO(data)) as check:
        assert check.mode.startswith('I')
    out = images.compressed_to_rgb(compressed(np.frombuffer(data, np.uint8), 'png'))
    np.testing.assert_array_equal(out, gray_rgb((GRAY16 >> 8).astype(np.uint8)))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """Return one PNG chunk with its length and CRC."""
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """Return a PNG claiming ``width`` x ``height`` but holding almost no pixel data."""
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', ihdr)
            + png_chunk(b'IDAT', zlib.compress(b'\0' * 16)))


def corrupt_png() -> bytes:
    """Return a PNG whose compressed pixels are damaged."""
    data = bytearray(images.encode_compressed(smooth(), 'png'))
    start = data.index(b'IDAT') + 8
    data[start:start + 40] = b'\x55' * 40
    return bytes(data)


@pytest.mark.parametrize('data, max_pixels, phrase', [
    (b'', None, 'data is empty'),
    (b'\xff\xd8\xff\xe0' + b'junk' * 10, None, 'not a valid JPEG/PNG'),
    (lambda: images.encode_compressed(smooth(), 'jpeg')[:300], None, 'not a valid JPEG/PNG'),
    (b'\x89PNG\r\n\x1a\n' + b'junk' * 10, None, 'not a valid JPEG/PNG'),
    (corrupt_png, None, 'not a valid JPEG/PNG'),
    (lambda: images.encode_compressed(smooth(), 'png'), 1000, 'above max_pixels=1000'),
    # Decoding this would fail, so the error proves the size is checked first.
    (lambda: png_header(5000, 5000), 10**6, 'is 5000 x 5000 = 25000000 pixels, above'),
    (lambda: png_header(100_000, 100_000), None, 'decompression bomb'),
], ids=['empty', 'junk_jpeg', 'truncated_jpeg', 'junk_png', 'corrupt_png', 'max_pixels',
        'huge_header', 'bomb'])
def test_malformed_compressed(data: object, max_pixels: int | None, phrase: str) -> None:
    """Reject each bad compressed image with a message naming the problem."""
    payload = data() if callable(data) else data
    with pytest.raises(ImageError, match=phrase):
        images.compressed_to_rgb(compressed(payload), max_pixels=max_pixels)


def test_msg_to_rgb_dispatch() -> None:
    """Dispatch on the message's fields."""
    np.testing.assert_array_equal(images.msg_to_rgb(raw('rgb8', RGB.tobytes(), 3)), RGB)
    png = images.encode_compressed(RGB, 'png')
    np.testing.assert_array_equal(images.msg_to_rgb(compressed(png, 'png')), RGB)
    with pytest.raises(ImageError, match='expected a sensor_msgs/msg/Image'):
        images.msg_to_rgb(SimpleNamespace(data=b''))


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_writer_round_trip(encoding: str) -> None:
    """Read back what rgb_to_image_fields writes."""
    fields = images.rgb_to_image_fields(RGB, encoding)
    assert fields['step'] * fields['height'] == len(fields['data'])
    np.testing.assert_array_equal(images.image_to_rgb(SimpleNamespace(**fields)), RGB)


def test_writer_mono8_uses_luma() -> None:
    """Write mono8 as Pillow's luma."""
    fields = images.rgb_to_image_fields(RGB, 'mono8')
    luma = np.asarray(PILImage.fromarray(RGB).convert('L'))
    out = images.image_to_rgb(SimpleNamespace(**fields))
    assert np.abs(out[:, :, 0].astype(int) - luma.astype(int)).max() <= 1


def test_writer_rejects_bad_input() -> None:
    """Reject non-RGB arrays and unknown encodings."""
    with pytest.raises(ValueError, match='uint8 RGB array'):
        images.rgb_to_image_fields(RGB.astype(np.float32))
    with pytest.raises(ValueError, match='cannot write encoding'):
        images.rgb_to_image_fields(RGB, 'mono16')
    with pytest.raises(ValueError, match='use jpeg or png'):
        images.encode_compressed(RGB, 'webp')


def test_rgb_to_pil() -> None:
    """Wrap an RGB array as a Pillow RGB image."""
    pil = images.rgb_to_pil(RGB[:, ::-1])
    assert pil.mode == 'RGB' and pil.size == (WIDTH, HEIGHT)
    np.testing.assert_array_equal(np.asarray(pil), RGB[:, ::-1])
