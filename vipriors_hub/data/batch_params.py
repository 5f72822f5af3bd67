"""Random parameters of a batch's augmentations, one set per sample, drawn on the CPU.

Every function draws from the ``torch.Generator`` it is given (the loader seeds one per batch from
``(seed, epoch, rank, batch)``; no global random state is read or changed) and draws all samples at
once. The rules are torchvision's and timm's, vectorised: where they try up to 10 times and take the
first draw that fits, all 10 tries are drawn for every sample and the first that fits is taken,
which gives the same distribution.
"""

import math

import torch
from torch import Tensor

__all__ = ["erasing_boxes", "group_order", "resized_crop_boxes", "uniform"]

TRIES = 10


def uniform(low: float, high: float, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Samples of U(low, high), float64, of ``shape``."""
    return torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low


def _first_fit(fits: Tensor, *values: Tensor) -> tuple[Tensor, ...]:
    """Whether any try fits ``(B,)`` and, per sample, the values ``(B,)`` of its first try that fits."""
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)
    return (fits.any(dim=1), *(value.gather(1, first).squeeze(1) for value in values))


def _offset(room: Tensor, generator: torch.Generator) -> Tensor:
    """Uniform integers in ``[0, room]`` per sample (``room`` ``(B,)`` >= 0), as ``randint(0, room + 1)``."""
    return (torch.rand(room.shape, generator=generator, dtype=torch.float64) * (room + 1)).floor().clamp(max=room)


def resized_crop_boxes(
    sizes: Tensor, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator
) -> Tensor:
    """RandomResizedCrop's boxes with torchvision's rule (``RandomResizedCrop.get_params``): up to 10
    tries of an area fraction in ``scale`` and a log-uniform aspect ratio in ``ratio``, the first box
    that fits at a uniform position; else the whole image cropped to the nearest allowed ratio, centred.

    Args:
        sizes: ``(B, 2)`` image heights and widths.

    Returns:
        ``(B, 4)`` float64 boxes ``(left, top, right, bottom)`` in pixels (right/bottom exclusive).
    """
    count = len(sizes)
    height, width = sizes[:, :1].double(), sizes[:, 1:].double()
    area = height * width
    target = area * uniform(scale[0], scale[1], (count, TRIES), generator)
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1]), (count, TRIES), generator))
    crop_w, crop_h = torch.sqrt(target * aspect).round(), torch.sqrt(target / aspect).round()
    fits = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
    found, crop_w, crop_h = _first_fit(fits, crop_w, crop_h)
    height, width = height.squeeze(1), width.squeeze(1)
    top, left = _offset(height - crop_h, generator), _offset(width - crop_w, generator)
    image_ratio = width / height
    narrow, wide = image_ratio < min(ratio), image_ratio > max(ratio)
    fallback_w = torch.where(wide, (height * max(ratio)).round(), width)
    fallback_h = torch.where(narrow, (width / min(ratio)).round(), height)
    crop_w, crop_h = torch.where(found, crop_w, fallback_w), torch.where(found, crop_h, fallback_h)
    top = torch.where(found, top, torch.div(height - crop_h, 2, rounding_mode="floor"))
    left = torch.where(found, left, torch.div(width - crop_w, 2, rounding_mode="floor"))
    return torch.stack([left, top, left + crop_w, top + crop_h], dim=1)


def erasing_boxes(size: int, probability: float, generator: torch.Generator, count: int) -> tuple[Tensor, Tensor]:
    """timm's RandomErasing boxes (one per image, ``max_count=1``) on ``size x size`` images: with
    ``probability``, up to 10 tries of an area fraction in (0.02, 1/3) and a log-uniform aspect ratio
    in (0.3, 1/0.3); the first box strictly smaller than the image, at a uniform position.

    Returns:
        Whether each of the ``count`` images is erased ``(B,)`` and its box ``(B, 4)`` float64
        ``(left, top, right, bottom)``.
    """
    erase = torch.rand(count, generator=generator, dtype=torch.float64) <= probability
    target = size * size * uniform(0.02, 1 / 3, (count, TRIES), generator)
    aspect = torch.exp(uniform(math.log(0.3), math.log(1 / 0.3), (count, TRIES), generator))
    box_h, box_w = torch.sqrt(target * aspect).round(), torch.sqrt(target / aspect).round()
    found, box_h, box_w = _first_fit((box_w < size) & (box_h < size), box_h, box_w)
    top, left = _offset(size - box_h, generator), _offset(size - box_w, generator)
    return erase & found, torch.stack([left, top, left + box_w, top + box_h], dim=1)


def group_order(kinds: Tensor, number_of_kinds: int) -> tuple[Tensor, list[int]]:
    """Samples grouped by kind, for applying each kind of operation to its samples in one batched call:
    ``kinds`` ``(B,)`` in ``[-1, number_of_kinds)`` (-1: no operation). Returns the sample indices
    ordered by kind (those of kind -1 first) ``(B,)`` and the group sizes, kind -1 first
    (``number_of_kinds + 1`` host integers, so that the device side can slice without a sync)."""
    order = torch.argsort(kinds, stable=True)
    counts = torch.bincount(kinds + 1, minlength=number_of_kinds + 1)
    return order, counts.tolist()
