"""Decoding of raw images into RGB, robust to the odd files that real datasets contain.

An image that declares more than :data:`MAX_IMAGE_PIXELS` pixels (64 Mpx, a decompression bomb or
a scan far beyond what training needs: ImageNet's largest photo has ~12 Mpx) is refused before it
is decoded, like a corrupt file. 16-bit images are scaled to 8 bits (``value / 257``), not clipped.
"""

import io
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["MAX_IMAGE_PIXELS", "UnreadableImageError", "decode_rgb"]

MAX_IMAGE_PIXELS = 64 * 1024 * 1024
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class UnreadableImageError(ValueError):
    """An image file is corrupt, truncated or not an image; the data pipeline skips and counts it."""


def decode_rgb(image: Any) -> Image.Image:
    """Decode one image of the ``datasets`` Image schema into an RGB PIL image.

    Args:
        image: ``{"bytes": bytes | None, "path": str | None}`` (``datasets.Image(decode=False)``),
            raw ``bytes``, or a PIL image.

    Returns:
        A fully loaded RGB image: CMYK, grayscale, palette and alpha images are converted; 16-bit
        grayscale is scaled to 8 bits.

    Raises:
        UnreadableImageError: the file is corrupt, truncated, missing, not an image, or declares
            more than ``MAX_IMAGE_PIXELS`` pixels.
    """
    try:
        if isinstance(image, Image.Image):
            pil = image
        else:
            if isinstance(image, dict):
                data = image.get("bytes")
                if data is None:
                    with open(image["path"], "rb") as handle:
                        data = handle.read()
            else:
                data = image
            pil = Image.open(io.BytesIO(data))
        width, height = pil.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(f"it declares {width}x{height} pixels, more than the limit of {MAX_IMAGE_PIXELS}")
        pil.load()
    except (
        OSError,
        UnidentifiedImageError,
        Image.DecompressionBombError,
        SyntaxError,
        ValueError,
        KeyError,
        TypeError,
    ) as error:
        origin = image.get("path") if isinstance(image, dict) else None
        raise UnreadableImageError(f"unreadable image {origin or ''}: {error}") from error
    if pil.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(pil, dtype=np.float64)
        pil = Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode="L")
    if pil.mode in ("P", "PA", "LA", "RGBA"):
        pil = pil.convert("RGBA").convert("RGB")
    elif pil.mode != "RGB":
        pil = pil.convert("RGB")
    return pil
