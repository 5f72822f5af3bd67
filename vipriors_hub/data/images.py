"""Decoding of raw images into RGB, robust to the odd files that real datasets contain."""

import io
from typing import Any

from PIL import Image, UnidentifiedImageError

__all__ = ["UnreadableImageError", "decode_rgb"]


class UnreadableImageError(ValueError):
    """An image file is corrupt, truncated or not an image; the data pipeline skips and counts it."""


def decode_rgb(image: Any) -> Image.Image:
    """Decode one image of the ``datasets`` Image schema into an RGB PIL image.

    Args:
        image: ``{"bytes": bytes | None, "path": str | None}`` (``datasets.Image(decode=False)``),
            raw ``bytes``, or a PIL image.

    Returns:
        A fully loaded RGB image: CMYK, grayscale, palette and alpha images are converted.

    Raises:
        UnreadableImageError: the file is corrupt, truncated, missing or not an image.
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
        pil.load()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, KeyError, TypeError) as error:
        origin = image.get("path") if isinstance(image, dict) else None
        raise UnreadableImageError(f"unreadable image {origin or ''}: {error}") from error
    if pil.mode in ("P", "PA", "LA", "RGBA"):
        pil = pil.convert("RGBA").convert("RGB")
    elif pil.mode != "RGB":
        pil = pil.convert("RGB")
    return pil
