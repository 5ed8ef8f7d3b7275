# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros prepare-image``: write the 224 x 224 image the model actually sees.

The same :func:`~openvla_ros.core.preprocessing.prepare` the engine boundary applies
(:meth:`VllmPolicy.predict <openvla_ros.core.engine.VllmPolicy.predict>`), followed by the resize of
vLLM's OpenVLA processor (Pillow bicubic to 224 x 224, aspect ratio not kept). The processor's
normalization comes after that and is not an image any more, so it is left out. No engine and
no vLLM: this runs in a fraction of a second anywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from PIL import Image

from openvla_ros.core.preprocessing import IMAGE_SIZE, ImagePreparation, prepare


def processor_view(image: Any, preparation: ImagePreparation | None = None) -> Image.Image:
    """Return the RGB image the model's processor normalizes for ``image``: 224 x 224.

    ``image`` is a Pillow image or an (H, W, 3) uint8 RGB array. The prepared frame (see
    :func:`~openvla_ros.core.preprocessing.prepare`) is resized as vLLM's OpenVLA processor does,
    Pillow bicubic to 224 x 224 (a no-op on frames the preparation already made 224 x 224).
    """
    return processor_resize(prepare(image, preparation))


def processor_resize(prepared: Image.Image) -> Image.Image:
    """Return an already prepared frame resized as vLLM's OpenVLA processor does."""
    return prepared.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)


def register(subparsers: Any) -> None:
    """Add the ``prepare-image`` subcommand."""
    from openvla_ros.core.engine import add_preprocessing_arguments
    parser = subparsers.add_parser(
        'prepare-image', help='write the 224x224 image the model sees for an image file',
        description='Prepare an image file as the policy would (--image-preprocessing, '
                    '--center-crop), apply the model processor\'s bicubic resize to 224x224 '
                    'and write the result: the picture the model is given, before the '
                    'processor\'s normalization. No engine is started.')
    parser.add_argument('input', metavar='IN', help='image file (PNG, JPEG, ...)')
    parser.add_argument('output', metavar='OUT',
                        help='output file; the extension picks the format (PNG keeps the exact '
                             'pixels, JPEG would change them)')
    add_preprocessing_arguments(parser, statistics=False)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from openvla_ros.core.engine import load_image_file, preparation_from_args
    preparation = preparation_from_args(args)
    image = load_image_file(args.input)
    prepared = prepare(image, preparation)
    view = processor_resize(prepared)
    output = Path(args.output)
    try:
        view.save(output)
    except (ValueError, KeyError) as error:
        raise ValueError(f'cannot write {str(output)!r}: {error} (use a .png name)') from None
    except OSError as error:
        raise OSError(f'cannot write {str(output)!r}: {error}') from None
    steps = preparation.describe()
    if steps == 'processor':
        steps = 'processor (frame unchanged)'
    if prepared.size == (IMAGE_SIZE, IMAGE_SIZE):
        resize = f'already {IMAGE_SIZE}x{IMAGE_SIZE} for the processor'
    else:
        resize = f'then the processor\'s bicubic resize to {IMAGE_SIZE}x{IMAGE_SIZE}'
    print(f'{args.input} ({image.width}x{image.height}) -> {output} ({view.width}x{view.height} '
          f'RGB): {steps}, {resize}')
    return 0
