# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The 224 x 224 image the model actually sees (``openvla-ros prepare-image``).

The same :func:`~openvla_ros.core.preprocessing.prepare` the engine boundary applies
(:meth:`VllmPolicy.predict <openvla_ros.core.engine.VllmPolicy.predict>`), followed by the
resize of vLLM's OpenVLA processor (Pillow bicubic to 224 x 224, aspect ratio not kept). The
processor's normalization comes after that and is not an image any more, so it is left out. No
engine and no vLLM: this runs in a fraction of a second anywhere.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from openvla_ros.core.preprocessing import (IMAGE_SIZE, ImagePreparation, prepare,
                                            processor_resize)


def write_model_view(image: Image.Image, output: Path | str,
                     preparation: ImagePreparation | None = None) -> str:
    """Write the 224 x 224 image the model sees for ``image`` to ``output``; return what was done.

    The returned text names the output, its size and the steps (the preparation, then the
    processor's resize where one was needed). The file format follows the extension of
    ``output``; a name Pillow cannot write raises ``ValueError``, a folder it cannot write to
    ``OSError``.
    """
    preparation = preparation or ImagePreparation()
    prepared = prepare(image, preparation)
    view = processor_resize(prepared)
    output = Path(output)
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
    return f'{output} ({view.width}x{view.height} RGB): {steps}, {resize}'
