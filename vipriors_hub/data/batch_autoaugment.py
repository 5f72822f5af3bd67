"""AutoAugment on whole batches: a sub-policy drawn per sample, each operation applied to the samples
that drew it in one batched call.

timm's ``AutoAugment`` and torchvision's draw one sub-policy per image with the global random
generators and run it through PIL, one image at a time; this module reads the same policies (timm's
``auto_augment_policy``, torchvision's ``AutoAugment.policies``), draws per-sample choices from the
batch's generator on the CPU and runs the operations on the device with 8-bit semantics (pixels in
[0, 255], rounded after each operation, as PIL's uint8 images are).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.transforms import AutoAugment, AutoAugmentPolicy, InterpolationMode

from ..errors import VipriorsError
from .batch_ops import adjust_brightness, adjust_saturation, affine, apply_grouped, grayscale
from .batch_params import group_order
from .settings import BATCH_POLICIES, CIFAR10_POLICY, check_batch_policy

__all__ = ["BATCH_POLICIES", "BatchAutoAugment", "PolicyOp"]

KINDS = (
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
    "invert",
    "color",
    "contrast",
    "brightness",
    "sharpness",
    "rotate",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
_SHARED_KINDS = {
    "Solarize": "solarize",
    "AutoContrast": "autocontrast",
    "Equalize": "equalize",
    "Invert": "invert",
    "Color": "color",
    "Contrast": "contrast",
    "Brightness": "brightness",
    "Sharpness": "sharpness",
    "Rotate": "rotate",
    "ShearX": "shear_x",
    "ShearY": "shear_y",
}
"""Operations both libraries name alike (their arguments differ: see :func:`timm_argument` and
:func:`torchvision_policy`)."""
_TIMM_KINDS = {**_SHARED_KINDS, "PosterizeOriginal": "posterize"}
_TORCHVISION_KINDS = {
    **_SHARED_KINDS,
    "Posterize": "posterize",
    "TranslateX": "translate_x",
    "TranslateY": "translate_y",
}


class PolicyOp(NamedTuple):
    """One operation of a sub-policy: its kind, probability and argument (bits, threshold, enhancement
    factor, degrees, shear factor or pixels): ``offset + sign x argument``, the sign drawn at random
    when ``signed`` (else +1)."""

    kind: str
    probability: float
    argument: float
    signed: bool
    offset: float = 0.0


def timm_argument(name: str, magnitude: float, translate_const: int) -> tuple[float, bool]:
    """The argument timm's ``LEVEL_TO_ARG[name]`` gives for ``magnitude`` (0-10), without its random
    sign, and whether it has one."""
    level = magnitude / 10.0
    if name == "PosterizeOriginal":
        return float(int(level * 4) + 4), False
    if name == "Solarize":
        return float(min(256, int(level * 256))), False
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return level * 1.8 + 0.1, False
    if name == "Rotate":
        return level * 30.0, True
    if name in ("ShearX", "ShearY"):
        return level * 0.3, True
    return 0.0, False


def timm_policy(name: str, size: int) -> list[list[PolicyOp]]:
    """timm's AutoAugment policy ``name`` (``original``) as its operations' arguments."""
    from timm.data.auto_augment import auto_augment_policy

    policy = auto_augment_policy(name, {"translate_const": int(size * 0.45)})
    table = []
    for sub_policy in policy:
        ops = []
        for op in sub_policy:
            if op.name not in _TIMM_KINDS or op.magnitude_std:
                raise VipriorsError(f"--aa {name}: the device pipeline cannot run {op.name}; use --data-pipeline pil.")
            argument, signed = timm_argument(op.name, op.magnitude, int(size * 0.45))
            ops.append(PolicyOp(_TIMM_KINDS[op.name], op.prob, argument, signed))
        table.append(ops)
    return table


def torchvision_policy(size: int) -> list[list[PolicyOp]]:
    """torchvision's CIFAR-10 AutoAugment policy with its magnitudes for ``size x size`` images."""
    augment = AutoAugment(AutoAugmentPolicy.CIFAR10)
    space = augment._augmentation_space(10, (size, size))  # the magnitude table; no public accessor
    table = []
    for sub_policy in augment.policies:
        ops = []
        for name, probability, bin_index in sub_policy:
            magnitudes, signed = space[name]
            argument = float(magnitudes[bin_index]) if magnitudes.ndim > 0 and bin_index is not None else 0.0
            if name in ("TranslateX", "TranslateY"):
                argument = float(int(argument))
            offset = 1.0 if name in ("Color", "Contrast", "Brightness", "Sharpness") else 0.0
            ops.append(PolicyOp(_TORCHVISION_KINDS[name], probability, argument, signed, offset))
        table.append(ops)
    return table


class BatchAutoAugment:
    """AutoAugment ``policy`` (:data:`BATCH_POLICIES`) for ``size x size`` images of a batch.

    timm's ``original`` fills warped-in pixels with ``fill`` (the mean colour, 0-255) and resamples
    bilinearly, torchvision's ``cifar10`` with black and nearest, as each library does.

    Raises:
        VipriorsError: a policy the device pipeline does not run.
    """

    def __init__(self, policy: str, size: int, fill: tuple[int, int, int]) -> None:
        check_batch_policy(policy)
        if policy == CIFAR10_POLICY:
            self.table = torchvision_policy(size)
            self.fill, self.mode = (0.0, 0.0, 0.0), InterpolationMode.NEAREST.value
        else:
            self.table = timm_policy(policy, size)
            self.fill, self.mode = tuple(float(value) for value in fill), InterpolationMode.BILINEAR.value
        self._fills: dict[torch.device, Tensor] = {}
        slots = max(len(sub_policy) for sub_policy in self.table)
        padded = [
            sub_policy + [PolicyOp("invert", 0.0, 0.0, False)] * (slots - len(sub_policy)) for sub_policy in self.table
        ]
        self.kinds = torch.tensor([[KINDS.index(op.kind) for op in ops] for ops in padded])
        self.probabilities = torch.tensor([[op.probability for op in ops] for ops in padded], dtype=torch.float64)
        self.arguments = torch.tensor([[op.argument for op in ops] for ops in padded], dtype=torch.float64)
        self.signed = torch.tensor([[op.signed for op in ops] for ops in padded])
        self.offsets = torch.tensor([[op.offset for op in ops] for ops in padded], dtype=torch.float64)

    def draw(self, count: int, generator: torch.Generator) -> tuple[dict[str, Tensor], dict[str, list[int]]]:
        """Per sample: a sub-policy (uniform), then per operation whether it applies (its probability)
        and its argument's sign. Returns device parameters (``aa_order`` ``(S, B)``, ``aa_argument``
        ``(S, B)``) and host group sizes (``aa_counts``, one list per operation slot ``S``)."""
        chosen = torch.randint(len(self.table), (count,), generator=generator)
        applies = torch.rand((count, self.kinds.shape[1]), generator=generator, dtype=torch.float64)
        negative = torch.rand((count, self.kinds.shape[1]), generator=generator) < 0.5
        applies = applies <= self.probabilities[chosen]
        sign = torch.where(self.signed[chosen] & negative, -1.0, 1.0).double()
        kinds = torch.where(applies, self.kinds[chosen], -1)
        orders, counts = zip(*(group_order(kinds[:, slot], len(KINDS)) for slot in range(kinds.shape[1])), strict=True)
        arguments = self.offsets[chosen] + self.arguments[chosen] * sign
        params = {"aa_order": torch.stack(orders), "aa_argument": arguments.T.float().contiguous()}
        return params, {"aa_counts": [list(sizes) for sizes in counts]}

    def __call__(self, images: Tensor, params: dict[str, Tensor], counts: dict[str, list[int]]) -> Tensor:
        """Run the drawn sub-policies on ``images`` ``(B, 3, H, W)`` in [0, 255] (integers); returns the same."""
        for slot, slot_counts in enumerate(counts["aa_counts"]):
            argument = params["aa_argument"][slot]
            operations = [self._operation(kind, argument) for kind in KINDS]
            images = apply_grouped(images, params["aa_order"][slot], slot_counts, operations)
        return images

    def _operation(self, kind: str, argument: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """Operation ``kind`` with this slot's per-sample ``argument`` ``(B,)``, rounded to 8-bit levels."""

        def run(images: Tensor, samples: Tensor) -> Tensor:
            return _OPERATIONS[kind](self, images[samples], argument[samples]).round_().clamp_(0.0, 255.0)

        return run

    def warp(self, images: Tensor, matrices: Tensor) -> Tensor:
        """``images`` warped by PIL-convention ``matrices`` ``(B, 2, 3)`` with the policy's fill and resampling
        (the fill colour is sent to a device once, not per batch: a host copy would wait for the device)."""
        if images.device not in self._fills:
            self._fills[images.device] = torch.tensor(self.fill).to(images.device)
        return affine(images, matrices, self._fills[images.device], self.mode)


def _posterize(_: BatchAutoAugment, images: Tensor, bits: Tensor) -> Tensor:
    step = torch.pow(2.0, 8.0 - bits).view(-1, 1, 1, 1)
    return torch.floor(images / step) * step


def _solarize(_: BatchAutoAugment, images: Tensor, threshold: Tensor) -> Tensor:
    return torch.where(images >= threshold.view(-1, 1, 1, 1), 255.0 - images, images)


def _autocontrast(_: BatchAutoAugment, images: Tensor, __: Tensor) -> Tensor:
    low = images.amin(dim=(-2, -1), keepdim=True)
    high = images.amax(dim=(-2, -1), keepdim=True)
    scale = 255.0 / torch.where(high > low, high - low, torch.ones_like(high))
    return torch.where(high > low, torch.floor((images - low) * scale), images)


def _equalize(_: BatchAutoAugment, images: Tensor, __: Tensor) -> Tensor:
    """PIL's ``ImageOps.equalize`` per channel: ``lut[i] = (step // 2 + pixels below i) // step`` with
    ``step = (pixels - pixels of the brightest level present) // 255``; identity where ``step`` is 0."""
    count, channels, height, width = images.shape
    values = images.reshape(count * channels, height * width).long()
    histogram = torch.zeros(count * channels, 256, device=images.device, dtype=torch.long)
    histogram.scatter_add_(1, values, torch.ones_like(values))
    levels = torch.arange(256, device=images.device)
    brightest = torch.where(histogram > 0, levels, -1).amax(dim=1, keepdim=True)
    step = torch.div(height * width - histogram.gather(1, brightest), 255, rounding_mode="floor")
    below = torch.cumsum(histogram, dim=1) - histogram
    lut = torch.div(torch.div(step, 2, rounding_mode="floor") + below, step.clamp(min=1), rounding_mode="floor")
    lut = torch.where(step > 0, lut.clamp(max=255), levels)
    return lut.gather(1, values).to(images.dtype).view(count, channels, height, width)


def _invert(_: BatchAutoAugment, images: Tensor, __: Tensor) -> Tensor:
    return 255.0 - images


def _color(_: BatchAutoAugment, images: Tensor, factor: Tensor) -> Tensor:
    return adjust_saturation(images, factor, 255.0)


def _contrast(_: BatchAutoAugment, images: Tensor, factor: Tensor) -> Tensor:
    mean = torch.floor(grayscale(images).round().mean(dim=(-3, -2, -1), keepdim=True) + 0.5)
    ratio = factor.view(-1, 1, 1, 1)
    return (ratio * images + (1.0 - ratio) * mean).clamp_(0.0, 255.0)


def _brightness(_: BatchAutoAugment, images: Tensor, factor: Tensor) -> Tensor:
    return adjust_brightness(images, factor, 255.0)


def _sharpness(_: BatchAutoAugment, images: Tensor, factor: Tensor) -> Tensor:
    """PIL's ``ImageEnhance.Sharpness``: a blend with the image smoothed by the 3x3 kernel
    ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`` (the border pixels kept)."""
    kernel = torch.ones(3, 3, device=images.device, dtype=images.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(3, 1, 3, 3)
    degenerate = images.clone()
    degenerate[..., 1:-1, 1:-1] = torch.nn.functional.conv2d(images, kernel, groups=3).round()
    ratio = factor.view(-1, 1, 1, 1)
    return (ratio * images + (1.0 - ratio) * degenerate).clamp_(0.0, 255.0)


def _matrices(values: Tensor, index: int) -> Tensor:
    """Identity matrices ``(B, 2, 3)`` with entry ``index`` (row-major) set to ``values`` (built on the
    device, no host copy)."""
    base = torch.zeros(len(values), 6, device=values.device)
    base[:, 0] = 1.0
    base[:, 4] = 1.0
    base[:, index] = values.float()
    return base.view(-1, 2, 3)


def _rotate(augment: BatchAutoAugment, images: Tensor, degrees: Tensor) -> Tensor:
    """PIL's ``rotate(degrees)``: counter-clockwise about the image centre."""
    _, _, height, width = images.shape
    angle = -degrees.float() * (math.pi / 180.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    centre_x, centre_y = width / 2.0, height / 2.0
    matrices = torch.stack(
        [
            torch.stack([cos, sin, centre_x - cos * centre_x - sin * centre_y], dim=1),
            torch.stack([-sin, cos, centre_y + sin * centre_x - cos * centre_y], dim=1),
        ],
        dim=1,
    )
    return augment.warp(images, matrices)


def _shear_x(augment: BatchAutoAugment, images: Tensor, factor: Tensor) -> Tensor:
    """Shear along x about the top edge (PIL's ``(1, factor, 0, 0, 1, 0)``, timm's and torchvision's)."""
    return augment.warp(images, _matrices(factor, 1))


def _shear_y(augment: BatchAutoAugment, images: Tensor, factor: Tensor) -> Tensor:
    """Shear along y about the left edge."""
    return augment.warp(images, _matrices(factor, 3))


def _translate_x(augment: BatchAutoAugment, images: Tensor, pixels: Tensor) -> Tensor:
    return augment.warp(images, _matrices(-pixels, 2))


def _translate_y(augment: BatchAutoAugment, images: Tensor, pixels: Tensor) -> Tensor:
    return augment.warp(images, _matrices(-pixels, 5))


_OPERATIONS = {
    "posterize": _posterize,
    "solarize": _solarize,
    "autocontrast": _autocontrast,
    "equalize": _equalize,
    "invert": _invert,
    "color": _color,
    "contrast": _contrast,
    "brightness": _brightness,
    "sharpness": _sharpness,
    "rotate": _rotate,
    "shear_x": _shear_x,
    "shear_y": _shear_y,
    "translate_x": _translate_x,
    "translate_y": _translate_y,
}
