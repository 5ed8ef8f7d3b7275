# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Image preparation: exact geometry, independent references, and TensorFlow where installed."""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
from PIL import Image as PILImage
import pytest

from openvla_ros.core import preprocessing
from openvla_ros.core.preprocessing import ImagePreparation, prepare

SIZES = [(480, 640), (240, 320), (256, 256), (224, 224)]
rng = np.random.default_rng(11)


def gradient(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1),
                     (x + 2 * y) % 256], axis=2).astype(np.uint8)


def edges(height: int, width: int) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, width // 3:] = 255
    image[height // 5:height // 3, :, 1] = 200
    image[::7, ::5, 2] = 90
    return image


def noise(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)


PATTERNS: dict[str, Callable[[int, int], np.ndarray]] = {
    'gradient': gradient, 'edges': edges, 'noise': noise}


# --- ImagePreparation ---

@pytest.mark.parametrize('preparation, text', [
    (ImagePreparation(), 'processor'),
    (ImagePreparation('training'), 'training'),
    (ImagePreparation('training', center_crop=True), 'training+center_crop(0.9)'),
    (ImagePreparation('processor', True, 0.81), 'processor+center_crop(0.81)'),
    (ImagePreparation('processor', True, 1), 'processor+center_crop(1)'),
    (ImagePreparation('training', False, 0.5), 'training'),
])
def test_describe(preparation: ImagePreparation, text: str) -> None:
    assert preparation.describe() == text


@pytest.mark.parametrize('kwargs, phrase', [
    ({'mode': 'tf'}, "unknown image preprocessing mode 'tf': use one of processor, training"),
    ({'center_crop_scale': 0.0}, r'center_crop_scale must be an area fraction in \(0, 1\], '
                                 'got 0.0'),
    ({'center_crop_scale': 1.5}, 'got 1.5'),
    ({'center_crop_scale': -0.1}, 'got -0.1'),
    ({'center_crop_scale': float('nan')}, 'got nan'),
    ({'center_crop_scale': '0.9'}, "got '0.9'"),
    ({'center_crop': 'yes'}, "center_crop must be true or false, got 'yes'"),
])
def test_validation(kwargs: dict, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        ImagePreparation(**kwargs)


# --- prepare ---

def test_processor_mode_is_the_identity() -> None:
    frame = noise(48, 64)
    out = prepare(frame)
    assert out.mode == 'RGB' and out.size == (64, 48)
    np.testing.assert_array_equal(np.asarray(out), frame)
    pil = PILImage.fromarray(frame)
    assert prepare(pil, ImagePreparation('processor')) is pil
    np.testing.assert_array_equal(np.asarray(prepare(pil.convert('RGBA'))), frame)


@pytest.mark.parametrize('preparation', [
    ImagePreparation('training'), ImagePreparation('training', True),
    ImagePreparation('processor', True), ImagePreparation('processor', True, 0.5)],
    ids=lambda p: p.describe())
def test_prepared_images_are_224_rgb(preparation: ImagePreparation) -> None:
    for frame in (gradient(480, 640), PILImage.fromarray(edges(100, 90))):
        out = prepare(frame, preparation)
        assert isinstance(out, PILImage.Image) and out.mode == 'RGB' and out.size == (224, 224)
        assert np.asarray(out).dtype == np.uint8


def bilinear_crop(image: np.ndarray, scale: float, size: int = 224) -> np.ndarray:
    """Crop the centre ``scale`` of the area and resize it bilinearly, in float64.

    An independent take on TF's crop_and_resize (corner-aligned sample grid) followed by
    convert_image_dtype(saturate=True) (x / 255 * 255.5, truncated).
    """
    height, width = image.shape[:2]
    side = math.sqrt(scale)
    start = (1 - side) / 2
    i = np.arange(size)
    rows = start * (height - 1) + i * side * (height - 1) / (size - 1)
    cols = start * (width - 1) + i * side * (width - 1) / (size - 1)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, height - 1), np.minimum(c0 + 1, width - 1)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    x = image.astype(np.float64)
    top = x[r0][:, c0] + (x[r0][:, c1] - x[r0][:, c0]) * fc
    bottom = x[r1][:, c0] + (x[r1][:, c1] - x[r1][:, c0]) * fc
    value = top + (bottom - top) * fr
    return np.clip(np.floor(value / 255 * 255.5), 0, 255).astype(np.uint8)


def test_crop_comes_after_the_training_resize() -> None:
    frame = gradient(240, 320)
    out = np.asarray(prepare(frame, ImagePreparation('training', True)))
    resized = np.asarray(prepare(frame, ImagePreparation('training', False)))
    expected = bilinear_crop(resized, 0.9)
    # float32 in the code, float64 here: a value may land one step apart at an exact .0.
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert np.mean(out == expected) > 0.95


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8'):
        prepare(np.zeros((4, 4), np.uint8), ImagePreparation('training'))


# --- centre crop geometry ---

def ramp(height: int, width: int) -> np.ndarray:
    """Return an image whose channels are linear in the column, the row, and both."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([10 * x, 20 * y, 10 * x + 10 * y], axis=2).astype(np.uint8)


def test_crop_box_is_sqrt_of_the_area_fraction() -> None:
    for scale in (0.9, 0.5, 0.25, 1.0):
        start, end = preprocessing.crop_box(scale)
        side = math.sqrt(scale)
        assert start == pytest.approx((1 - side) / 2, abs=1e-7)
        assert end == pytest.approx((1 + side) / 2, abs=1e-7)
    assert preprocessing.crop_box(0.25) == (0.25, 0.75)  # exact in binary


def test_crop_samples_the_corner_aligned_grid_exactly() -> None:
    # Area 0.25: box [0.25, 0.75] of a 9-pixel axis is [2, 6]. 5 outputs land on the integer
    # positions 2..6, 9 outputs on the half-integer positions 2, 2.5, ..., 6: on a linear ramp
    # bilinear sampling is exact, so the expected values are the ramp at those positions.
    image = ramp(9, 9)
    for size in (5, 9):
        out = preprocessing.center_crop(image, 0.25, size=size)
        positions = 2 + np.arange(size) * 4 / (size - 1)
        y, x = np.meshgrid(positions, positions, indexing='ij')
        expected = np.stack([10 * x, 20 * y, 10 * x + 10 * y], axis=2)
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize('height, width', SIZES + [(100, 90)])
def test_default_crop_against_closed_form(height: int, width: int) -> None:
    image = gradient(height, width)[:, :, :2]  # channel 0 linear in x only, 1 in y only
    out = preprocessing.center_crop(np.dstack([image, image[:, :, :1]]), 0.9)
    start = (1 - math.sqrt(0.9)) / 2
    i = np.arange(224)
    for channel, size in ((0, width), (1, height)):
        position = start * (size - 1) + i * math.sqrt(0.9) * (size - 1) / 223
        # The integer ramp is floor(255 t / (size - 1)): interpolate it, then convert to uint8
        # by x / 255 * 255.5 truncated, as convert_image_dtype(saturate=True) does.
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, size - 1)
        ramp_low, ramp_high = low * 255 // (size - 1), high * 255 // (size - 1)
        value = ramp_low + (ramp_high - ramp_low) * (position - low)
        expected = np.floor(value / 255 * 255.5)
        line = out[0, :, 0] if channel == 0 else out[:, 0, 1]
        assert np.abs(line.astype(int) - expected).max() <= 1  # float32 vs float64 at .0
        assert np.mean(line == expected) > 0.95


# --- Lanczos3 resize against the formula, in float64 ---

def lanczos3_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample with the textbook antialiased Lanczos3 filter, in float64."""
    def kernel(x: np.ndarray) -> np.ndarray:
        return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)

    def matrix(out_size: int, in_size: int) -> np.ndarray:
        stretch = max(in_size / out_size, 1.0)  # widen the kernel when downscaling
        centres = (np.arange(out_size) + 0.5) * in_size / out_size
        weights = kernel(((np.arange(in_size) + 0.5)[None, :] - centres[:, None]) / stretch)
        return weights / weights.sum(axis=1, keepdims=True)
    rows, cols = matrix(height, image.shape[0]), matrix(width, image.shape[1])
    return np.einsum('ij,jkc,lk->ilc', rows, image.astype(np.float64), cols, optimize=True)


@pytest.mark.parametrize('shape, out', [((480, 640), (224, 224)), ((240, 320), (224, 224)),
                                        ((61, 47), (20, 30)), ((16, 12), (40, 33))])
def test_lanczos3_matches_the_formula(shape: tuple, out: tuple) -> None:
    image = noise(*shape)
    mine = preprocessing.lanczos3_resize(image, *out)
    assert mine.dtype == np.float32 and mine.shape == out + (3,)
    # float32 steps and TF's 12-digit pi: ~0.005 of a level, far below rounding's 0.5.
    np.testing.assert_allclose(mine, lanczos3_reference(image, *out), rtol=0, atol=0.02)


def test_training_resize_rounds_and_clips() -> None:
    out = preprocessing.training_resize(edges(240, 320))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255  # Lanczos overshoot at the edges is clipped


# --- JPEG round trip: sanity without TensorFlow ---

def pillow_round_trip(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    PILImage.fromarray(image).save(buffer, format='JPEG', quality=95, subsampling=2)
    return np.asarray(PILImage.open(io.BytesIO(buffer.getvalue())).convert('RGB'))


@pytest.mark.parametrize('pattern', sorted(PATTERNS))
@pytest.mark.parametrize('height, width', [(240, 320), (37, 53)])
def test_jpeg_round_trip_is_close_to_pillow(pattern: str, height: int, width: int) -> None:
    # Same encoder as Pillow's libjpeg; the decoder uses the fast IDCT (Pillow: the accurate
    # one), so a few levels apart at most, and ~1 on average.
    image = PATTERNS[pattern](height, width)
    mine = preprocessing.jpeg_round_trip(image)
    assert mine.shape == image.shape and mine.dtype == np.uint8
    diff = np.abs(mine.astype(int) - pillow_round_trip(image))
    assert diff.max() <= 16 and diff.mean() < 2.0


# --- TensorFlow, the reference itself (skipped unless tensorflow is installed) ---

@pytest.fixture(scope='module')
def tf():
    return pytest.importorskip('tensorflow')


def tf_crop(tf, image, crop_scale: float = 0.9) -> np.ndarray:
    """Run the reference's center_crop branch of get_vla_action."""
    tensor = tf.image.convert_image_dtype(tf.convert_to_tensor(image), tf.float32)[None]
    side = tf.reshape(tf.clip_by_value(tf.sqrt(crop_scale), 0, 1), (1,))
    offset = (1 - side) / 2
    boxes = tf.stack([offset, offset, offset + side, offset + side], axis=1)
    crop = tf.image.crop_and_resize(tensor, boxes, tf.range(1), (224, 224))[0]
    crop = tf.clip_by_value(crop, 0, 1)
    return tf.image.convert_image_dtype(crop, tf.uint8, saturate=True).numpy()


def tf_jpeg(tf, image) -> np.ndarray:
    return tf.io.decode_image(tf.image.encode_jpeg(image), expand_animations=False,
                              dtype=tf.uint8).numpy()


def tf_resize(tf, image) -> np.ndarray:
    resized = tf.image.resize(image, (224, 224), method='lanczos3', antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


STAGES = {
    'crop': (lambda tf, x: tf_crop(tf, x), lambda x: preprocessing.center_crop(x, 0.9)),
    'resize': (tf_resize, lambda x: np.clip(np.rint(preprocessing.lanczos3_resize(
        x, 224, 224)), 0, 255).astype(np.uint8)),
    'jpeg': (tf_jpeg, preprocessing.jpeg_round_trip),
    'training': (lambda tf, x: tf_resize(tf, tf_jpeg(tf, x)), preprocessing.training_resize),
    'training+crop': (lambda tf, x: tf_crop(tf, tf_resize(tf, tf_jpeg(tf, x))),
                      lambda x: np.asarray(prepare(x, ImagePreparation('training', True)))),
}
#: Measured: every stage is pixel-identical to TensorFlow 2.21 (CPU) on these images.
TF_TOLERANCE = 0


@pytest.mark.parametrize('stage', list(STAGES))
@pytest.mark.parametrize('height, width', SIZES)
@pytest.mark.parametrize('pattern', sorted(PATTERNS))
def test_matches_tensorflow(tf, stage: str, height: int, width: int, pattern: str) -> None:
    reference, mine = STAGES[stage]
    image = PATTERNS[pattern](height, width)
    expected, actual = reference(tf, image), mine(image)
    assert actual.shape == expected.shape and actual.dtype == np.uint8
    diff = np.abs(actual.astype(int) - expected.astype(int))
    print(f'{stage} {pattern} {width}x{height}: max {diff.max()} mean {diff.mean():.4f}')
    assert diff.max() <= TF_TOLERANCE


def test_processor_resize_is_pillow_bicubic_and_leaves_224_alone():
    from PIL import Image

    from openvla_ros.core.preprocessing import processor_resize
    rng = np.random.default_rng(3)
    frame = Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    expected = frame.resize((224, 224), Image.Resampling.BICUBIC)   # the processor's own call
    np.testing.assert_array_equal(np.asarray(processor_resize(frame)), np.asarray(expected))
    square = Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    assert processor_resize(square) is square
    grey = frame.convert('L')
    assert processor_resize(grey).mode == 'RGB'
