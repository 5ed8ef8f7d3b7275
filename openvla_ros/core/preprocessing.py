# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Prepare camera frames the way OpenVLA's reference evaluation does, without TensorFlow.

OpenVLA was trained on RLDS data whose frames had been JPEG-encoded by the dataset builder and
were resized by the Octo data loader with TensorFlow; fine-tuned checkpoints trained with
random-crop augmentation also expect a centre crop at test time. The reference evaluation
(openvla/openvla ``experiments/robot``) reproduces both with TensorFlow before the processor:

* ``training`` (``resize_image`` in ``libero_utils.py`` / ``bridgev2_utils.py``, applied when the
  observation is built): ``tf.image.encode_jpeg`` with its defaults (quality 95, 4:2:0 chroma,
  baseline, libjpeg-turbo's integer ISLOW forward DCT), ``tf.io.decode_image`` (which decodes
  with libjpeg's *fast* integer IDCT, JDCT_IFAST, and fancy chroma upsampling), then
  ``tf.image.resize(..., (224, 224), method="lanczos3", antialias=True)`` and
  ``cast(clip(round(x), 0, 255), uint8)`` (``tf.round`` rounds half to even).
* ``center_crop`` (``crop_and_resize`` in ``openvla_utils.py``, applied inside
  ``get_vla_action`` after the above): uint8 to float32 by ``x * float32(1/255)``, a centred box
  whose height and width fractions are ``sqrt(crop_scale)`` (crop_scale is an area fraction),
  ``tf.image.crop_and_resize`` to 224 x 224 (bilinear, corner-aligned sampling
  ``y1 * (H - 1) + i * (y2 - y1) * (H - 1) / (224 - 1)``), clip to [0, 1], then
  ``convert_image_dtype(..., uint8, saturate=True)``, which multiplies by 255.5 and truncates.

Everything here is a numpy re-implementation of those operations, written from TensorFlow's and
libjpeg-turbo's documented arithmetic (``scale_and_translate_op.cc``, ``sampling_kernels.h``,
``crop_and_resize_op.cc``, ``image_ops_impl.py``; ``jccolor.c``, ``jcsample.c``, ``jfdctint.c``,
``jcdctmgr.c``, ``jidctfst.c``, ``jdsample.c``, ``jdcolor.c``), in the same float32 or integer
steps, so the result matches TensorFlow pixel for pixel (see ``docs/preprocessing.md``). The JPEG
round trip needs no entropy coding because Huffman coding is lossless: only colour conversion,
subsampling, DCT, quantization and their inverses change pixels.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
import functools
import math
from typing import Any, Callable

import numpy as np
from PIL import Image as PILImage

from openvla_ros.core.errors import ParameterError
from openvla_ros.core.images import rgb_to_pil

__all__ = [
    'DEFAULT_CROP_SCALE',
    'IMAGE_SIZE',
    'PREPROCESSING_MODES',
    'ImagePreparation',
    'center_crop',
    'crop_box',
    'jpeg_round_trip',
    'lanczos3_resize',
    'prepare',
    'processor_resize',
    'training_resize',
]

#: ``processor``: the frame goes to the model's processor as it is (PIL bicubic to 224 x 224);
#: ``training``: the JPEG round trip and Lanczos3 resize the training data went through.
PREPROCESSING_MODES = ('processor', 'training')
#: Side of the square image the model sees.
IMAGE_SIZE = 224
#: Area fraction kept by the reference centre crop.
DEFAULT_CROP_SCALE = 0.9
#: ``tf.image.encode_jpeg``'s default quality.
JPEG_QUALITY = 95

_F32 = np.float32


@dataclass(frozen=True)
class ImagePreparation:
    """How a camera frame is prepared before the model's processor sees it."""

    mode: str = 'processor'
    center_crop: bool = False
    center_crop_scale: float = DEFAULT_CROP_SCALE

    def __post_init__(self) -> None:
        """Reject an unknown mode or a crop scale outside (0, 1]."""
        if self.mode not in PREPROCESSING_MODES:
            raise ParameterError(
                f'unknown image preprocessing mode {self.mode!r}',
                f'use one of {", ".join(PREPROCESSING_MODES)}',
                parameter='image_preprocessing')
        if not isinstance(self.center_crop, (bool, np.bool_)):
            raise ParameterError(f'center_crop must be true or false, got {self.center_crop!r}',
                                 'set center_crop to true or false', parameter='center_crop')
        scale = self.center_crop_scale
        if (isinstance(scale, bool) or not isinstance(scale, (int, float))
                or not math.isfinite(scale) or not 0.0 < scale <= 1.0):
            raise ParameterError(
                f'center_crop_scale must be an area fraction in (0, 1], got {scale!r}',
                f'set center_crop_scale to a fraction in (0, 1], e.g. {DEFAULT_CROP_SCALE} '
                "(the reference's)", parameter='center_crop_scale')

    def describe(self) -> str:
        """Return a short stable text such as ``training+center_crop(0.9)`` for logs."""
        if not self.center_crop:
            return self.mode
        return f'{self.mode}+center_crop({float(self.center_crop_scale):g})'


def prepare(image: Any, preparation: ImagePreparation | None = None) -> PILImage.Image:
    """Return the RGB image to hand to the model's processor for ``preparation``.

    ``image`` is an (H, W, 3) uint8 RGB array or a Pillow image. ``processor`` mode leaves the
    frame as it is; ``training`` returns 224 x 224. A centre crop, when asked for, comes last
    (as in the reference, where ``get_vla_action`` crops the already resized observation) and
    also returns 224 x 224.
    """
    preparation = preparation or ImagePreparation()
    if isinstance(image, PILImage.Image):
        if (preparation.mode == 'processor' and not preparation.center_crop
                and image.mode == 'RGB'):
            return image
        rgb = np.asarray(image.convert('RGB'))
    else:
        rgb = np.asarray(rgb_to_pil(image))
    if preparation.mode == 'training':
        rgb = training_resize(rgb)
    if preparation.center_crop:
        rgb = center_crop(rgb, preparation.center_crop_scale)
    return rgb_to_pil(rgb)


def processor_resize(image: PILImage.Image, size: int = IMAGE_SIZE) -> PILImage.Image:
    """Resize to ``size`` x ``size`` exactly as vLLM's OpenVLA processor does.

    The processor (vLLM ``transformers_utils/processors/openvla.py``) calls
    ``image.convert('RGB').resize((224, 224), Image.Resampling.BICUBIC)``, and Pillow returns
    an unchanged copy when the size already matches, so a frame resized here gives the
    processor nothing left to do: its pixels are the ones the model sees.
    """
    rgb = image if image.mode == 'RGB' else image.convert('RGB')
    if rgb.size == (size, size):
        return rgb
    return rgb.resize((size, size), PILImage.Resampling.BICUBIC)


def training_resize(rgb: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Return ``rgb`` JPEG round-tripped and Lanczos3-resized to ``size`` x ``size``, uint8."""
    resized = lanczos3_resize(jpeg_round_trip(rgb), size, size)
    # tf.round rounds half to even, as np.rint does.
    rounded: np.ndarray = np.rint(resized)
    return np.clip(rounded, 0, 255).astype(np.uint8)


# --- Lanczos3 antialiased resize (tf.image.resize, method="lanczos3", antialias=True) ---

def _load_sinf() -> Callable[[float], float] | None:
    """Return the C library's single-precision sine, which TensorFlow's kernel calls."""
    try:
        libm = ctypes.CDLL(ctypes.util.find_library('m'))
        sinf = libm.sinf
    except (OSError, AttributeError, TypeError):
        return None
    sinf.restype = ctypes.c_float
    sinf.argtypes = [ctypes.c_float]
    return sinf


_SINF = _load_sinf()


def _sin32(x: np.ndarray) -> np.ndarray:
    """Return sin(x) in float32 as C's ``sinf`` computes it (numpy's float32 sine differs)."""
    if _SINF is None:
        # Correctly rounded; equals sinf for all but a few arguments (1 ulp apart).
        return np.sin(x.astype(np.float64)).astype(_F32)
    flat = [_SINF(float(value)) for value in x.ravel()]
    return np.array(flat, dtype=_F32).reshape(x.shape)


def _lanczos3(x: np.ndarray) -> np.ndarray:
    """Evaluate TensorFlow's Lanczos3 kernel in float32, with its constants and limits."""
    pi, radius = _F32(3.14159265359), _F32(3.0)
    x = np.abs(x).astype(_F32)
    with np.errstate(divide='ignore', invalid='ignore'):
        value = (radius * _sin32(pi * x) * _sin32(pi * x / radius)) / (pi * pi * x * x)
    value = np.where(x <= _F32(1e-3), _F32(1.0), value)
    return np.where(x > radius, _F32(0.0), value).astype(_F32)


@functools.lru_cache(maxsize=32)
def _lanczos3_spans(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return source indices and normalized weights, (out_size, span), as TF computes them."""
    scale = _F32(out_size) / _F32(in_size)
    inv_scale = _F32(1.0 / float(scale))
    # Downscaling widens the kernel so it low-pass filters (antialias=True).
    kernel_scale = max(inv_scale, _F32(1.0))
    span = min(2 * math.ceil(_F32(3.0) * kernel_scale) + 1, in_size)
    sample = (np.arange(out_size, dtype=_F32) + _F32(0.5)) * inv_scale
    start = np.ceil(sample - _F32(3.0) * kernel_scale - _F32(0.5)).astype(np.int64)
    end = np.floor(sample + _F32(3.0) * kernel_scale - _F32(0.5)).astype(np.int64)
    start = np.clip(start, 0, in_size - 1)
    end = np.clip(end, 0, in_size - 1) + 1
    source = start[:, None] + np.arange(span)[None, :]
    distance = (source.astype(_F32) + _F32(0.5)) - sample[:, None]
    weights = np.where(source < end[:, None],
                       _lanczos3(distance * (_F32(1.0) / kernel_scale)), _F32(0.0))
    total = np.zeros(out_size, dtype=_F32)
    for j in range(span):  # TF sums in this order, in float32
        total = total + weights[:, j]
    weights = (weights * (_F32(1.0) / total)[:, None]).astype(_F32)
    source = np.minimum(source, in_size - 1)  # zero-weight padding past the edge
    source.setflags(write=False)
    weights.setflags(write=False)
    return source, weights


def _resample_axis(image: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    source, weights = _lanczos3_spans(out_size, image.shape[axis])
    moved = np.moveaxis(image, axis, 0)
    total = np.zeros((out_size,) + moved.shape[1:], dtype=_F32)
    shape = (out_size,) + (1,) * (moved.ndim - 1)
    # One multiply and one add per tap, accumulated in float32 in tap order, like TF's loops.
    for j in range(weights.shape[1]):
        total = total + weights[:, j].reshape(shape) * moved[source[:, j]]
    return np.moveaxis(total, 0, axis)


def lanczos3_resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize like ``tf.image.resize(lanczos3, antialias=True)``; return float32, unrounded."""
    image = np.asarray(rgb).astype(_F32)
    # TF filters the rows first, then the columns.
    return _resample_axis(_resample_axis(image, 0, height), 1, width)


# --- Centre crop (tf.image.crop_and_resize, bilinear) ---

def crop_box(crop_scale: float = DEFAULT_CROP_SCALE) -> tuple[np.float32, np.float32]:
    """Return the normalized (start, end) of the centred crop, equal on both axes, in float32."""
    fraction = np.clip(np.sqrt(_F32(crop_scale)), _F32(0.0), _F32(1.0))
    offset = (_F32(1.0) - fraction) / _F32(2.0)
    return offset, _F32(offset + fraction)


def _sample_positions(in_size: int, out_size: int, start: np.float32,
                      end: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the lower and upper source indices and the lerp fraction of every output pixel."""
    if out_size > 1:
        step = _F32((end - start) * _F32(in_size - 1)) / _F32(out_size - 1)
        position = start * _F32(in_size - 1) + np.arange(out_size, dtype=_F32) * step
    else:
        position = np.full(1, _F32(0.5) * (start + end) * _F32(in_size - 1), dtype=_F32)
    position = position.astype(_F32)
    if np.any(position < 0) or np.any(position > in_size - 1):
        # Only a box reaching outside the image does that; crop scales in (0, 1] never do.
        raise ValueError('crop box reaches outside the image')
    low = np.floor(position).astype(np.int64)
    return low, np.ceil(position).astype(np.int64), (position - low.astype(_F32)).astype(_F32)


def center_crop(rgb: np.ndarray, crop_scale: float = DEFAULT_CROP_SCALE,
                size: int = IMAGE_SIZE) -> np.ndarray:
    """Crop the centred ``crop_scale`` of the area and resize it to ``size`` x ``size`` (uint8)."""
    image = np.asarray(rgb).astype(_F32) * _F32(1.0 / 255.0)
    start, end = crop_box(crop_scale)
    top, bottom, y_frac = _sample_positions(image.shape[0], size, start, end)
    left, right, x_frac = _sample_positions(image.shape[1], size, start, end)
    y_frac, x_frac = y_frac[:, None, None], x_frac[None, :, None]
    upper, lower = image[top], image[bottom]
    row_top = upper[:, left] + (upper[:, right] - upper[:, left]) * x_frac
    row_bottom = lower[:, left] + (lower[:, right] - lower[:, left]) * x_frac
    crop = (row_top + (row_bottom - row_top) * y_frac).astype(_F32)
    # convert_image_dtype(saturate=True): scale by 255.5, clamp, truncate toward zero.
    scaled: np.ndarray = np.clip(crop, _F32(0.0), _F32(1.0)) * _F32(255.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


# --- JPEG round trip (tf.image.encode_jpeg defaults, then tf.io.decode_image) ---

_LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
_CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32
# The AAN scale factors of libjpeg's fast IDCT, in 14-bit fixed point.
_AAN_SCALES = (
    16384, 22725, 21407, 19266, 16384, 12873, 8867, 4520,
    22725, 31521, 29692, 26722, 22725, 17855, 12299, 6270,
    21407, 29692, 27969, 25172, 21407, 16819, 11585, 5906,
    19266, 26722, 25172, 22654, 19266, 15137, 10426, 5315,
    16384, 22725, 21407, 19266, 16384, 12873, 8867, 4520,
    12873, 17855, 16819, 15137, 12873, 10114, 6967, 3552,
    8867, 12299, 11585, 10426, 8867, 6967, 4799, 2446,
    4520, 6270, 5906, 5315, 4520, 3552, 2446, 1247)


def _fix(value: float, bits: int = 16) -> int:
    return int(value * (1 << bits) + 0.5)


def _descale(x: np.ndarray, bits: int) -> np.ndarray:
    """Shift right by ``bits`` with rounding, as libjpeg's DESCALE."""
    return (x + (1 << (bits - 1))) >> bits


def _quant_table(base: tuple[int, ...], quality: int = JPEG_QUALITY) -> np.ndarray:
    """Scale an Annex K table for ``quality`` as ``jpeg_set_quality(force_baseline)``."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table = (np.array(base, dtype=np.int64) * scale + 50) // 100
    return np.clip(table, 1, 255).reshape(8, 8)


def _rgb_to_ycc(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = (rgb[..., c].astype(np.int64) for c in range(3))
    half, offset = 1 << 15, 128 << 16
    y = (_fix(0.299) * r + _fix(0.587) * g + _fix(0.114) * b + half) >> 16
    # A rounding fudge of one half minus epsilon keeps 255 from rounding to 256.
    cb = (-_fix(0.16874) * r - _fix(0.33126) * g + _fix(0.5) * b + offset + half - 1) >> 16
    cr = (_fix(0.5) * r - _fix(0.41869) * g - _fix(0.08131) * b + offset + half - 1) >> 16
    return y, cb, cr


def _pad_edges(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Replicate the last row and column out to ``height`` x ``width``, as the encoder does."""
    return np.pad(plane, ((0, height - plane.shape[0]), (0, width - plane.shape[1])),
                  mode='edge')


def _downsample_420(plane: np.ndarray) -> np.ndarray:
    """Average 2 x 2 blocks with libjpeg's alternating 1, 2 rounding bias (h2v2)."""
    height, width = plane.shape
    full = _pad_edges(plane, height + height % 2, -(-width // 16) * 16)
    total = full[0::2, 0::2] + full[0::2, 1::2] + full[1::2, 0::2] + full[1::2, 1::2]
    mean: np.ndarray = (total + np.tile([1, 2], total.shape[1] // 2)) >> 2
    return mean


def _fdct_pass(v: list[np.ndarray], last: bool) -> list[np.ndarray]:
    """Run one pass of libjpeg's accurate integer forward DCT (ISLOW, 13-bit constants)."""
    pass1_bits, const_bits = 2, 13
    shift = const_bits + pass1_bits if last else const_bits - pass1_bits
    t0, t7, t1, t6 = v[0] + v[7], v[0] - v[7], v[1] + v[6], v[1] - v[6]
    t2, t5, t3, t4 = v[2] + v[5], v[2] - v[5], v[3] + v[4], v[3] - v[4]
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    out: list[Any] = [None] * 8
    if last:
        out[0], out[4] = _descale(t10 + t11, pass1_bits), _descale(t10 - t11, pass1_bits)
    else:
        out[0], out[4] = (t10 + t11) << pass1_bits, (t10 - t11) << pass1_bits
    z1 = (t12 + t13) * 4433
    out[2] = _descale(z1 + t13 * 6270, shift)
    out[6] = _descale(z1 - t12 * 15137, shift)
    z1, z2, z3, z4 = t4 + t7, t5 + t6, t4 + t6, t5 + t7
    z5 = (z3 + z4) * 9633
    t4, t5, t6, t7 = t4 * 2446, t5 * 16819, t6 * 25172, t7 * 12299
    z1, z2 = z1 * -7373, z2 * -20995
    z3, z4 = z3 * -16069 + z5, z4 * -3196 + z5
    out[7], out[5] = _descale(t4 + z1 + z3, shift), _descale(t5 + z2 + z4, shift)
    out[3], out[1] = _descale(t6 + z2 + z3, shift), _descale(t7 + z1 + z4, shift)
    return out


def _idct_pass(v: list[np.ndarray], last: bool) -> list[np.ndarray]:
    """Run one pass of libjpeg's fast integer inverse DCT (IFAST, 8-bit constants)."""
    def mul(x: np.ndarray, constant: int) -> np.ndarray:
        return (x * constant) >> 8  # IFAST truncates instead of rounding
    t10, t11, t13 = v[0] + v[4], v[0] - v[4], v[2] + v[6]
    t12 = mul(v[2] - v[6], 362) - t13
    t0, t3, t1, t2 = t10 + t13, t10 - t13, t11 + t12, t11 - t12
    z13, z10, z11, z12 = v[5] + v[3], v[5] - v[3], v[1] + v[7], v[1] - v[7]
    t7 = z11 + z13
    t11 = mul(z11 - z13, 362)
    z5 = mul(z10 + z12, 473)
    t10, t12 = mul(z12, 277) - z5, mul(z10, -669) + z5
    t6 = t12 - t7
    t5 = t11 - t6
    t4 = t10 + t5
    out = [t0 + t7, t1 + t6, t2 + t5, t3 - t4, t3 + t4, t2 - t5, t1 - t6, t0 - t7]
    if last:
        # Drop the pass-1 and DCT scaling (2 + 3 bits), recentre and range-limit.
        out = [np.clip((x >> 5) + 128, 0, 255) for x in out]
    return out


def _jpeg_plane(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Encode and decode one padded (multiple of 8) plane; return the decoded samples."""
    rows, cols = plane.shape[0] // 8, plane.shape[1] // 8
    blocks = (plane - 128).reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3)
    coef = np.stack(_fdct_pass([blocks[..., i] for i in range(8)], False), -1)
    coef = np.stack(_fdct_pass([coef[..., i, :] for i in range(8)], True), -2)
    # The forward DCT output is 8 times too large: divide by 8q, rounding half away from 0.
    divisor = table * 8
    magnitude = (np.abs(coef) + (divisor >> 1)) // divisor
    quantized = np.where(coef < 0, -magnitude, magnitude)
    multiplier = _descale(table * np.array(_AAN_SCALES, dtype=np.int64).reshape(8, 8), 12)
    work = quantized * multiplier
    work = np.stack(_idct_pass([work[..., i, :] for i in range(8)], False), -2)
    pixels = np.stack(_idct_pass([work[..., i] for i in range(8)], True), -1)
    return pixels.transpose(0, 2, 1, 3).reshape(rows * 8, cols * 8)


def _upsample_420(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Double a chroma plane with libjpeg's "fancy" triangle filter (h2v2_fancy_upsample)."""
    above = np.concatenate([plane[:1], plane[:-1]])
    below = np.concatenate([plane[1:], plane[-1:]])
    out = np.empty((2 * plane.shape[0], 2 * plane.shape[1]), dtype=np.int64)
    for parity, neighbour in ((0, above), (1, below)):
        column = 3 * plane + neighbour
        left = np.concatenate([column[:, :1], column[:, :-1]], axis=1)
        right = np.concatenate([column[:, 1:], column[:, -1:]], axis=1)
        out[parity::2, 0::2] = (3 * column + left + 8) >> 4
        out[parity::2, 1::2] = (3 * column + right + 7) >> 4
    return out[:height, :width]


def _ycc_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    half = 1 << 15
    cb, cr = cb - 128, cr - 128
    red = y + ((_fix(1.402) * cr + half) >> 16)
    green = y + ((-_fix(0.34414) * cb + half - _fix(0.71414) * cr) >> 16)
    blue = y + ((_fix(1.772) * cb + half) >> 16)
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def jpeg_round_trip(rgb: np.ndarray) -> np.ndarray:
    """Return ``rgb`` after ``tf.image.encode_jpeg`` (defaults) and ``tf.io.decode_image``."""
    rgb = np.asarray(rgb)
    height, width = rgb.shape[:2]
    y, cb, cr = _rgb_to_ycc(rgb)

    def blocks_of(n: int) -> int:
        return -(-n // 8) * 8
    luma = _jpeg_plane(_pad_edges(y, blocks_of(height), blocks_of(width)),
                       _quant_table(_LUMA_TABLE))[:height, :width]
    chroma = []
    for plane in (cb, cr):
        small = _downsample_420(plane)
        small = _pad_edges(small, blocks_of(small.shape[0]), small.shape[1])
        decoded = _jpeg_plane(small, _quant_table(_CHROMA_TABLE))
        # The decoder upsamples from the real samples only, replicating its own edges.
        decoded = decoded[:(height + 1) // 2, :(width + 1) // 2]
        chroma.append(_upsample_420(decoded, height, width))
    return _ycc_to_rgb(luma, *chroma)
