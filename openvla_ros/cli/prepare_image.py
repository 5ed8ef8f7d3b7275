# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros prepare-image``: write the 224 x 224 image the model sees (no engine)."""

from __future__ import annotations

import argparse

from openvla_ros.cli.common import (add_pixel_limit_argument, add_preprocessing_arguments,
                                    load_image_file, pixel_limit_from_args,
                                    preparation_from_args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepare-image`` subcommand."""
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
    add_pixel_limit_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prepare the image, write it, print one line saying what was done."""
    from openvla_ros.tools.prepare_image import write_model_view
    preparation = preparation_from_args(args)
    image = load_image_file(args.input, pixel_limit_from_args(args))
    done = write_model_view(image, args.output, preparation)
    print(f'{args.input} ({image.width}x{image.height}) -> {done}')
    return 0
