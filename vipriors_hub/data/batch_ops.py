"""Pixel operations on whole batches, each sample with its own parameters, on the batch's device.

torchvision's functional ops (and kornia's) take one parameter for the whole batch; these take a
tensor of per-sample parameters and follow torchvision's formulas (``transforms/_functional_tensor.py``)
so that, for the same parameters, they give torchvision's pixels (tests state the tolerances).
Images are float ``(B, 3, H, W)``; ``scale`` is their white level (1 for [0, 1] images, 255 for
AutoAugment's 8-bit semantics). Nothing here reads a device value on the host.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "affine",
    "apply_grouped",
    "crop_resize",
    "erase",
    "gaussian_blur",
    "grayscale",
]

_GRAY = (0.2989, 0.587, 0.114)


def crop_resize(canvas: Tensor, boxes: Tensor, images: Tensor, size: int) -> Tensor:
    """Crop ``boxes`` ``(K, 4)`` (left, top, right, bottom in pixels) out of images ``images`` ``(K,)``
    of ``canvas`` ``(B, 3, H, W)`` and resize each to ``size x size``: torchvision's ``roi_align``,
    bilinear with pixel centres at ``i + 0.5`` (a resize's sampling), averaging ``ceil(box / size)``
    samples per output pixel and axis when it shrinks (an antialiasing filter). Returns ``(K, 3, size, size)``."""
    rois = torch.cat([images[:, None].to(canvas.dtype), boxes.to(canvas.dtype)], dim=1)
    return roi_align(canvas, rois, (size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def grayscale(images: Tensor) -> Tensor:
    """ITU-R 601 luma of ``(B, 3, H, W)`` images: ``(B, 1, H, W)``."""
    red, green, blue = images.unbind(dim=1)
    return (_GRAY[0] * red + _GRAY[1] * green + _GRAY[2] * blue).unsqueeze(1)


def _blend(images: Tensor, other: Tensor, ratio: Tensor, scale: float) -> Tensor:
    """``ratio * images + (1 - ratio) * other`` clamped to ``[0, scale]``; ``ratio`` ``(B,)``."""
    ratio = ratio.to(images.dtype).view(-1, 1, 1, 1)
    return (ratio * images + (1.0 - ratio) * other).clamp_(0.0, scale)


def adjust_brightness(images: Tensor, factor: Tensor, scale: float = 1.0) -> Tensor:
    """Brightness times ``factor`` ``(B,)``."""
    return _blend(images, torch.zeros_like(images), factor, scale)


def adjust_contrast(images: Tensor, factor: Tensor, scale: float = 1.0) -> Tensor:
    """Contrast about each image's mean gray, times ``factor`` ``(B,)``."""
    return _blend(images, grayscale(images).mean(dim=(-3, -2, -1), keepdim=True), factor, scale)


def adjust_saturation(images: Tensor, factor: Tensor, scale: float = 1.0) -> Tensor:
    """Saturation times ``factor`` ``(B,)`` (0: gray)."""
    return _blend(images, grayscale(images), factor, scale)


def adjust_hue(images: Tensor, shift: Tensor) -> Tensor:
    """Hue rotated by ``shift`` ``(B,)`` turns (in [-0.5, 0.5]) through HSV, for [0, 1] images."""
    maximum, _ = images.max(dim=1)
    minimum, _ = images.min(dim=1)
    chroma = maximum - minimum
    safe_chroma = torch.where(chroma == 0, torch.ones_like(chroma), chroma)
    saturation = chroma / torch.where(maximum == 0, torch.ones_like(maximum), maximum)
    red, green, blue = ((maximum - channel) / safe_chroma for channel in images.unbind(dim=1))
    hue_red = (maximum == images[:, 0]) * (blue - green)
    hue_green = ((maximum == images[:, 1]) & (maximum != images[:, 0])) * (2.0 + red - blue)
    hue_blue = ((maximum != images[:, 1]) & (maximum != images[:, 0])) * (4.0 + green - red)
    hue = torch.fmod((hue_red + hue_green + hue_blue) / 6.0 + 1.0, 1.0)
    hue = torch.remainder(hue + shift.to(images.dtype).view(-1, 1, 1), 1.0)
    sector = torch.floor(hue * 6.0)
    fraction = hue * 6.0 - sector
    sector = sector.to(torch.int64) % 6
    p = (maximum * (1.0 - saturation)).clamp(0.0, 1.0)
    q = (maximum * (1.0 - saturation * fraction)).clamp(0.0, 1.0)
    t = (maximum * (1.0 - saturation * (1.0 - fraction))).clamp(0.0, 1.0)
    value = maximum
    choices = torch.stack(
        [
            torch.stack(channel)
            for channel in (
                (value, q, p, p, t, value),
                (t, value, value, q, p, p),
                (p, p, t, value, value, q),
            )
        ]
    )
    return choices.gather(1, sector[None, None].expand(3, 1, *sector.shape)).squeeze(1).permute(1, 0, 2, 3)


def gaussian_blur(images: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Gaussian blur with a per-sample ``sigma`` ``(B,)`` and an odd ``kernel_size``, reflect-padded
    (torchvision's ``gaussian_blur``): one grouped separable convolution for the whole batch."""
    count, channels, height, width = images.shape
    half = kernel_size // 2
    taps = torch.arange(-half, half + 1, device=images.device, dtype=images.dtype)
    kernels = torch.exp(-0.5 * (taps[None] / sigma.to(images.dtype)[:, None]) ** 2)
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
    flat = F.pad(images.reshape(1, count * channels, height, width), (half, half, half, half), mode="reflect")
    flat = F.conv2d(flat, kernels[:, None, :, None], groups=count * channels)
    flat = F.conv2d(flat, kernels[:, None, None, :], groups=count * channels)
    return flat.view(count, channels, height, width)


def affine(images: Tensor, matrices: Tensor, fill: Tensor, mode: str) -> Tensor:
    """Per-sample affine warps in PIL's convention: output pixel ``(x, y)`` takes the input at
    ``matrices @ (x + 0.5, y + 0.5, 1)`` (``matrices`` ``(B, 2, 3)``, pixel units), ``mode``
    ``bilinear`` or ``nearest``; pixels from outside the image are ``fill`` ``(3,)``."""
    count, _, height, width = images.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=images.device, dtype=images.dtype) + 0.5,
        torch.arange(width, device=images.device, dtype=images.dtype) + 0.5,
        indexing="ij",
    )
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)
    source = torch.einsum("hwk,bjk->bhwj", points, matrices.to(images.dtype))
    grid = torch.stack([source[..., 0] / (width / 2.0), source[..., 1] / (height / 2.0)], dim=-1) - 1.0
    with_mask = torch.cat([images, torch.ones_like(images[:, :1])], dim=1)
    warped = F.grid_sample(with_mask, grid, mode=mode, padding_mode="zeros", align_corners=False)
    mask = warped[:, 3:]
    if mode == "nearest":
        mask = (mask > 0.5).to(images.dtype)
    return warped[:, :3] * mask + (1.0 - mask) * fill.to(images.dtype).view(1, 3, 1, 1)


def erase(images: Tensor, boxes: Tensor, noise: Tensor) -> Tensor:
    """Replace box ``(left, top, right, bottom)`` ``(B, 4)`` of each image by ``noise`` (same shape as
    ``images``)."""
    _, _, height, width = images.shape
    ys = torch.arange(height, device=images.device)[None, :, None]
    xs = torch.arange(width, device=images.device)[None, None, :]
    boxes = boxes.to(images.device)
    inside = (
        (ys >= boxes[:, 1, None, None])
        & (ys < boxes[:, 3, None, None])
        & (xs >= boxes[:, 0, None, None])
        & (xs < boxes[:, 2, None, None])
    )
    return torch.where(inside[:, None], noise, images)


def apply_grouped(
    images: Tensor, order: Tensor, counts: list[int], operations: list[Callable[[Tensor, Tensor], Tensor]]
) -> Tensor:
    """Apply ``operations[k]`` to the samples of group ``k`` of ``images`` ``(B, ...)``, in place:
    ``order`` ``(B,)`` (device) lists the samples by group, ``counts`` (host integers, the first for
    samples without an operation) gives the group sizes
    (:func:`~vipriors_hub.data.batch_params.group_order`). ``operations[k](images, samples)`` returns
    the new pixels of ``images[samples]``. Slices are cut with host integers: no sync. Returns ``images``."""
    start = counts[0]
    for operation, count in zip(operations, counts[1:], strict=True):
        if count:
            samples = order[start : start + count]
            images.index_copy_(0, samples, operation(images, samples))
        start += count
    return images
