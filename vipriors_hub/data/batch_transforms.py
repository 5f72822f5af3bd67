"""Each phase's augmentations and the evaluation views on whole batches of cached pixels (the device
pipeline), beside their PIL reference (:mod:`vipriors_hub.data.transforms`).

A batch transform is two halves: ``draw`` runs in a DataLoader worker and draws every sample's
parameters from the batch's generator (boxes, factors, choices; small CPU tensors, the host group
sizes); ``__call__`` runs on the batch's device and does the pixel work on the gathered canvas
``(B, H, W, 3)`` uint8 (:meth:`~vipriors_hub.data.decoded_cache.DecodedSplit.gather`).
kornia's and torchvision.transforms.v2's batch augmentations draw one parameter set (or one random
order, one sub-policy) per call and use the global generator; the draws here are per sample and
seeded per batch, which exact resume and worker-count independence need.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from ..errors import VipriorsError
from .batch_autoaugment import BatchAutoAugment
from .batch_ops import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_grouped,
    crop_resize,
    erase,
    gaussian_blur,
    grayscale,
)
from .batch_params import erasing_boxes, group_order, resized_crop_boxes, uniform

__all__ = [
    "BatchTransform",
    "EvalBatch",
    "MoCoV2Batch",
    "StudentBatch",
    "UnavailableBatch",
    "Views",
    "eval_views",
    "moco_v2_views",
    "student_views",
]

Params = dict[str, Tensor]
Host = dict[str, Any]


class BatchTransform(Protocol):
    """The device half and the worker half of a batch augmentation."""

    def draw(self, sizes: Tensor, generator: torch.Generator) -> tuple[Params, Host]:
        """Per-sample parameters for images of ``sizes`` ``(B, 2)``: device tensors and host values."""

    def __call__(self, canvas: Tensor, params: Params, host: Host) -> Any:
        """The batch's images from the canvas ``(B, H, W, 3)`` uint8 on the device."""


class Views(NamedTuple):
    """What one use of images does to them, in both pipelines: ``pil`` (a PIL image -> tensor(s),
    the reference) and ``batched`` (a :class:`BatchTransform` over cached pixels)."""

    pil: Callable[[Any], Any]
    batched: BatchTransform


class Normalize:
    """``(images - mean) / std`` per channel of ``(..., 3, H, W)`` images; the constants are sent to a
    device once (a host-to-device copy of a CPU tensor waits for the device: not once per batch)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        self._on: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def __call__(self, images: Tensor) -> Tensor:
        """``images`` normalised."""
        if images.device not in self._on:
            self._on[images.device] = (self.mean.to(images.device), self.std.to(images.device))
        mean, std = self._on[images.device]
        return (images - mean) / std


def _as_float(canvas: Tensor) -> Tensor:
    return canvas.permute(0, 3, 1, 2).float()


def _flag_order(flags: Tensor) -> tuple[Tensor, list[int]]:
    """Group order of the samples whose ``flags`` ``(B,)`` are set (one operation kind)."""
    return group_order(torch.where(flags, 0, -1), 1)


class MoCoV2Batch:
    """MoCo v2's two views ``(B, 3, size, size)`` each, torchvision's semantics per sample:
    RandomResizedCrop (scale 0.2-1), ColorJitter 0.4/0.4/0.4/0.1 in a random order with p 0.8,
    grayscale p 0.2, Gaussian blur (sigma 0.1-2, 13 taps) p 0.5, horizontal flip, normalisation."""

    views = 2

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.size, self.normalize = size, Normalize(mean, std)

    def draw(self, sizes: Tensor, generator: torch.Generator) -> tuple[Params, Host]:
        """Per sample and view: crop box ``(B, 4)``, jitter factors ``(B, 4)`` and order, sigma, and the
        jitter, grayscale, blur and flip groups (host sizes)."""
        count, params, host = len(sizes), {}, {}
        for view in range(self.views):
            params[f"boxes{view}"] = resized_crop_boxes(sizes, (0.2, 1.0), (3 / 4, 4 / 3), generator).float()
            jitter = torch.rand(count, generator=generator, dtype=torch.float64) <= 0.8
            factors = uniform(0.6, 1.4, (count, 4), generator)
            factors[:, 3] = uniform(-0.1, 0.1, (count,), generator)
            order = torch.argsort(torch.rand((count, 4), generator=generator), dim=1)
            gray = torch.rand(count, generator=generator) < 0.2
            blur = torch.rand(count, generator=generator, dtype=torch.float64) <= 0.5
            sigma = uniform(0.1, 2.0, (count,), generator)
            flip = torch.rand(count, generator=generator) < 0.5
            slots = [group_order(torch.where(jitter, order[:, slot], -1), 4) for slot in range(4)]
            params[f"jitter{view}"] = torch.stack([slot_order for slot_order, _ in slots])
            host[f"jitter{view}"] = [slot_counts for _, slot_counts in slots]
            params[f"factors{view}"], params[f"sigma{view}"] = factors.float(), sigma.float()
            for name, flags in (("gray", gray), ("blur", blur), ("flip", flip)):
                params[f"{name}{view}"], host[f"{name}{view}"] = _flag_order(flags)
        return params, host

    def __call__(self, canvas: Tensor, params: Params, host: Host) -> tuple[Tensor, Tensor]:
        """The two normalised views ``(B, 3, size, size)`` of the canvas ``(B, H, W, 3)`` uint8."""
        pixels = _as_float(canvas)
        first, second = (self._view(pixels, params, host, view) for view in range(self.views))
        return first, second

    def _view(self, pixels: Tensor, params: Params, host: Host, view: int) -> Tensor:
        everyone = torch.arange(len(pixels), device=pixels.device)
        images = crop_resize(pixels, params[f"boxes{view}"], everyone, self.size).div_(255.0)
        factors, sigma = params[f"factors{view}"], params[f"sigma{view}"]
        jitter = [
            lambda x, s: adjust_brightness(x[s], factors[s, 0]),
            lambda x, s: adjust_contrast(x[s], factors[s, 1]),
            lambda x, s: adjust_saturation(x[s], factors[s, 2]),
            lambda x, s: adjust_hue(x[s], factors[s, 3]),
        ]
        for slot, slot_counts in enumerate(host[f"jitter{view}"]):
            images = apply_grouped(images, params[f"jitter{view}"][slot], slot_counts, jitter)
        for name, operation in (
            ("gray", lambda x, s: grayscale(x[s]).expand(-1, 3, -1, -1)),
            ("blur", lambda x, s: gaussian_blur(x[s], sigma[s], 13)),
            ("flip", lambda x, s: x[s].flip(-1)),
        ):
            images = apply_grouped(images, params[f"{name}{view}"], host[f"{name}{view}"], [operation])
        return self.normalize(images)


class StudentBatch:
    """The student's training images ``(B, 3, size, size)``: RandomResizedCrop (scale 0.08-1, timm's),
    horizontal flip, AutoAugment (``auto_augment``: :data:`~vipriors_hub.data.batch_autoaugment.BATCH_POLICIES`
    or ``None``), normalisation and timm's random erasing with per-pixel noise (``reprob``)."""

    def __init__(
        self,
        size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        auto_augment: str | None,
        reprob: float,
    ) -> None:
        self.size, self.reprob, self.normalize = size, reprob, Normalize(mean, std)
        fill = tuple(min(255, round(255 * value)) for value in mean)
        self.auto_augment = BatchAutoAugment(auto_augment, size, fill) if auto_augment else None

    def draw(self, sizes: Tensor, generator: torch.Generator) -> tuple[Params, Host]:
        """Per sample: crop box, flip, AutoAugment choices, erasing box; the seed of the erasing noise."""
        count = len(sizes)
        params = {"boxes": resized_crop_boxes(sizes, (0.08, 1.0), (3 / 4, 4 / 3), generator).float()}
        params["flip"], host = _flag_order(torch.rand(count, generator=generator) < 0.5)
        host = {"flip": host, "seed": int(torch.randint(2**62, (1,), generator=generator))}
        if self.auto_augment is not None:
            aa_params, aa_host = self.auto_augment.draw(count, generator)
            params.update(aa_params)
            host.update(aa_host)
        erased, boxes = erasing_boxes(self.size, self.reprob, generator, count)
        params["erase"], host["erase"] = _flag_order(erased)
        params["erase_boxes"] = boxes.float()
        return params, host

    def __call__(self, canvas: Tensor, params: Params, host: Host) -> Tensor:
        """The normalised images ``(B, 3, size, size)`` of the canvas ``(B, H, W, 3)`` uint8."""
        everyone = torch.arange(len(canvas), device=canvas.device)
        images = crop_resize(_as_float(canvas), params["boxes"], everyone, self.size)
        images = apply_grouped(
            images.round_().clamp_(0.0, 255.0), params["flip"], host["flip"], [lambda x, s: x[s].flip(-1)]
        )
        if self.auto_augment is not None:
            images = self.auto_augment(images, params, host)
        images = self.normalize(images.div_(255.0))
        if host["erase"][1]:
            generator = torch.Generator(device=images.device).manual_seed(host["seed"])
            boxes = params["erase_boxes"]

            def erased(x: Tensor, s: Tensor) -> Tensor:
                noise = torch.randn(x[s].shape, generator=generator, device=x.device, dtype=x.dtype)
                return erase(x[s], boxes[s], noise)

            images = apply_grouped(images, params["erase"], host["erase"], [erased])
        return images


class EvalBatch:
    """Evaluation views of cached images: the short side resized to ``floor(size / crop_pct)``, then
    the centre ``size x size`` crop ``(B, 3, size, size)``, or with ``ten_crop`` the four corners and
    the centre, each also flipped ``(B, 10, 3, size, size)`` (torchvision's ``TenCrop`` order)."""

    def __init__(
        self, size: int, crop_pct: float, mean: tuple[float, ...], std: tuple[float, ...], ten_crop: bool
    ) -> None:
        self.size, self.ten_crop, self.normalize = size, ten_crop, Normalize(mean, std)
        self.scale_size = math.floor(size / crop_pct)

    def draw(self, sizes: Tensor, generator: torch.Generator) -> tuple[Params, Host]:
        """Per sample: the view boxes ``(B, V, 4)`` in the image's pixels (no randomness)."""
        height, width = sizes[:, 0].double(), sizes[:, 1].double()
        short, long = torch.minimum(height, width), torch.maximum(height, width)
        long_resized = torch.floor(self.scale_size * long / short)
        new_h = torch.where(height <= width, float(self.scale_size), long_resized)
        new_w = torch.where(height <= width, long_resized, float(self.scale_size))
        scale_y, scale_x = new_h / height, new_w / width
        right, bottom = new_w - self.size, new_h - self.size
        centre = (torch.round(right / 2.0), torch.round(bottom / 2.0))
        corners = [(0 * right, 0 * bottom), (right, 0 * bottom), (0 * right, bottom), (right, bottom), centre]
        if not self.ten_crop:
            corners = [centre]
        boxes = [
            torch.stack([left / scale_x, top / scale_y, (left + self.size) / scale_x, (top + self.size) / scale_y], 1)
            for left, top in corners
        ]
        if self.ten_crop:
            boxes += [boxes[1], boxes[0], boxes[3], boxes[2], boxes[4]]
        return {"boxes": torch.stack(boxes, dim=1).float()}, {}

    def __call__(self, canvas: Tensor, params: Params, host: Host) -> Tensor:
        """The normalised views: ``(B, 3, size, size)``, or ``(B, 10, 3, size, size)`` with ten crops."""
        boxes = params["boxes"]
        count, views = boxes.shape[:2]
        images = torch.arange(count, device=canvas.device).repeat_interleave(views)
        crops = crop_resize(_as_float(canvas), boxes.reshape(-1, 4), images, self.size).div_(255.0)
        crops = crops.view(count, views, 3, self.size, self.size)
        if self.ten_crop:
            crops = torch.cat([crops[:, :5], crops[:, 5:].flip(-1)], dim=1)
            return self.normalize(crops.flatten(0, 1)).view(count, views, 3, self.size, self.size)
        return self.normalize(crops[:, 0])


def moco_v2_views(size: int, data_config: dict[str, Any]) -> Views:
    """The teacher's two MoCo v2 views in both pipelines."""
    from .transforms import moco_v2_transform

    return Views(moco_v2_transform(size, data_config), MoCoV2Batch(size, data_config["mean"], data_config["std"]))


class UnavailableBatch:
    """The device half of views the device pipeline cannot run: choosing it raises ``error``."""

    def __init__(self, error: VipriorsError) -> None:
        self.error = error

    def draw(self, sizes: Tensor, generator: torch.Generator) -> tuple[Params, Host]:
        """Refuse: the device pipeline cannot run these views."""
        raise self.error

    def __call__(self, canvas: Tensor, params: Params, host: Host) -> Any:
        """Refuse: the device pipeline cannot run these views."""
        raise self.error


def student_views(size: int, data_config: dict[str, Any], auto_augment: str | None, reprob: float) -> Views:
    """The student's training augmentation in both pipelines (a policy the device pipeline does not
    run gives an :class:`UnavailableBatch`, refused when the device pipeline is chosen)."""
    from .transforms import student_train_transform

    pil = student_train_transform(size, data_config, auto_augment, reprob)
    try:
        batched: BatchTransform = StudentBatch(size, data_config["mean"], data_config["std"], auto_augment, reprob)
    except VipriorsError as error:
        batched = UnavailableBatch(error)
    return Views(pil, batched)


def eval_views(size: int, data_config: dict[str, Any], ten_crop: bool = False) -> Views:
    """Centre-crop (or 10-crop) evaluation views in both pipelines."""
    from .transforms import eval_transform, ten_crop_transform

    pil = (ten_crop_transform if ten_crop else eval_transform)(size, data_config)
    batched = EvalBatch(size, data_config["crop_pct"], data_config["mean"], data_config["std"], ten_crop)
    return Views(pil, batched)
