"""Image transforms of both phases, built with timm's transform factory.

Mean, std and interpolation come from the model's pretrained cfg (``timm.data.resolve_data_config``).
timm's last two steps, ``ToTensor`` then ``Normalize`` (five passes over float pixels), are fused
into :class:`ToNormalizedTensor` (one pass over bytes, two over floats; the same values to within
float rounding), which makes the data path faster (`benchmarks/README.md`).
"""

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter
from timm.data import create_transform
from timm.data.transforms import MaybeToTensor, RandomResizedCropAndInterpolation
from torchvision import transforms

from ..errors import VipriorsError
from .settings import CIFAR10_POLICY

__all__ = [
    "CIFAR10_POLICY",
    "RandomGaussianBlur",
    "ToNormalizedTensor",
    "TwoCrops",
    "check_auto_augment",
    "fuse_to_normalized_tensor",
    "eval_transform",
    "moco_v2_transform",
    "student_train_transform",
    "ten_crop_transform",
]


class ToNormalizedTensor:
    """PIL image (or ``HxW[xC]`` uint8 array) -> float tensor ``(C, H, W)`` normalised with ``mean`` and
    ``std``: what ``ToTensor()`` followed by ``Normalize(mean, std)`` gives, computed as
    ``pixel * (1 / (255 std)) - mean / std`` in two in-place float passes."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.scale = torch.tensor([1.0 / (255.0 * s) for s in self.std]).view(-1, 1, 1)
        self.shift = torch.tensor([m / s for m, s in zip(self.mean, self.std, strict=True)]).view(-1, 1, 1)

    def __call__(self, picture: Image.Image | np.ndarray) -> torch.Tensor:
        """The normalised ``(C, H, W)`` float32 tensor of ``picture``."""
        pixels = np.array(picture, dtype=np.uint8)
        pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous().float()
        return tensor.mul_(self.scale[: tensor.shape[0]]).sub_(self.shift[: tensor.shape[0]])

    def __repr__(self) -> str:
        mean, std = (", ".join(f"{value:.4g}" for value in values) for values in (self.mean, self.std))
        return f"ToNormalizedTensor(mean=({mean}), std=({std}))"


def fuse_to_normalized_tensor(transform: Any) -> Any:
    """``transform`` with every ``ToTensor``, ``Normalize`` pair of its ``Compose`` lists (nested ones
    included) replaced by one :class:`ToNormalizedTensor`; other transforms are returned as they are."""
    if not isinstance(transform, transforms.Compose):
        return transform
    steps = [fuse_to_normalized_tensor(step) for step in transform.transforms]
    fused = []
    for step in steps:
        previous = fused[-1] if fused else None
        if isinstance(step, transforms.Normalize) and type(previous) in (MaybeToTensor, transforms.ToTensor):
            fused[-1] = ToNormalizedTensor(step.mean.tolist(), step.std.tolist())
        else:
            fused.append(step)
    return transforms.Compose(fused)


class TwoCrops:
    """Apply one random transform twice: the query and key views of MoCo."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent views, each ``(3, H, W)``."""
        return self.transform(image), self.transform(image)

    def __repr__(self) -> str:
        return f"TwoCrops({self.transform!r})"


class RandomGaussianBlur:
    """Blur with PIL's Gaussian filter, sigma drawn uniformly from ``sigma``: MoCo v2's own blur, much
    cheaper on the CPU than the 23-tap torchvision convolution that timm's factory builds."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        self.sigma = sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        """``image`` blurred with a random sigma."""
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))

    def __repr__(self) -> str:
        return f"RandomGaussianBlur(sigma={self.sigma})"


def moco_v2_transform(resolution: int, data_config: dict[str, Any]) -> TwoCrops:
    """MoCo v2 augmentation, two views ``(3, resolution, resolution)`` each, in MoCo's order:
    RandomResizedCrop (scale 0.2-1), colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2,
    Gaussian blur (sigma 0.1-2) p 0.5, horizontal flip."""
    crop = RandomResizedCropAndInterpolation(resolution, scale=(0.2, 1.0), interpolation=data_config["interpolation"])
    return TwoCrops(
        transforms.Compose(
            [
                crop,
                transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                transforms.RandomGrayscale(p=0.2),
                transforms.RandomApply([RandomGaussianBlur((0.1, 2.0))], p=0.5),
                transforms.RandomHorizontalFlip(),
                ToNormalizedTensor(data_config["mean"], data_config["std"]),
            ]
        )
    )


def student_train_transform(
    resolution: int, data_config: dict[str, Any], auto_augment: str | None, reprob: float = 0.0
) -> Callable[[Image.Image], torch.Tensor]:
    """Supervised training: RandomResizedCrop, horizontal flip, AutoAugment and random erasing.

    ``auto_augment`` is a timm policy (``original``, ``rand-m9-mstd0.5``, ``augmix-m5-w3``, ...),
    :data:`CIFAR10_POLICY`, or ``None``; ``reprob`` is timm's random-erasing probability (pixel
    mode), which covers the original code's cutout. Returns images ``(3, resolution, resolution)``.

    Raises:
        ValueError / AssertionError: timm does not know the policy.
    """
    common = dict(
        is_training=True,
        hflip=0.5,
        color_jitter=None,
        re_prob=reprob,
        re_mode="pixel",
        interpolation=data_config["interpolation"],
        mean=data_config["mean"],
        std=data_config["std"],
    )
    if auto_augment != CIFAR10_POLICY:
        return fuse_to_normalized_tensor(create_transform(resolution, auto_augment=auto_augment, **common))
    crop_and_flip, _, to_tensor = create_transform(resolution, auto_augment=None, separate=True, **common)
    policy = transforms.AutoAugment(transforms.AutoAugmentPolicy.CIFAR10)
    return fuse_to_normalized_tensor(transforms.Compose([crop_and_flip, policy, to_tensor]))


def check_auto_augment(policy: str | None) -> None:
    """Refuse an AutoAugment policy that :func:`student_train_transform` cannot build.

    Raises:
        VipriorsError: one line naming the policy and some that work.
    """
    try:
        student_train_transform(8, {"interpolation": "bilinear", "mean": (0.0,) * 3, "std": (1.0,) * 3}, policy)
    except (AssertionError, ValueError, KeyError, IndexError) as error:
        raise VipriorsError(
            f"--aa {policy!r}: not an AutoAugment policy timm knows ({error}); try original, "
            f"rand-m9-mstd0.5, {CIFAR10_POLICY} or none."
        ) from error


def eval_transform(resolution: int, data_config: dict[str, Any]) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation: resize the short side to ``resolution / crop_pct`` (``crop_pct`` of ``data_config``,
    timm's ``resolve_data_config``), then centre-crop ``resolution``. Returns ``(3, resolution, resolution)``."""
    return fuse_to_normalized_tensor(
        create_transform(
            resolution,
            is_training=False,
            crop_pct=data_config["crop_pct"],
            interpolation=data_config["interpolation"],
            mean=data_config["mean"],
            std=data_config["std"],
        )
    )


def ten_crop_transform(resolution: int, data_config: dict[str, Any]) -> Callable[[Image.Image], torch.Tensor]:
    """10-crop test: resize the short side to ``resolution / crop_pct`` (as :func:`eval_transform`), then
    the four corners and the centre, each also flipped. Returns ``(10, 3, resolution, resolution)``."""
    to_tensor = ToNormalizedTensor(data_config["mean"], data_config["std"])
    resize = transforms.Resize(
        int(resolution / data_config["crop_pct"]),
        interpolation=transforms.InterpolationMode(data_config["interpolation"]),
    )
    return transforms.Compose([resize, transforms.TenCrop(resolution), _StackViews(to_tensor)])


class _StackViews:
    """Apply a per-view transform to a tuple of PIL views and stack them: ``(V, 3, H, W)``."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, views: tuple[Image.Image, ...]) -> torch.Tensor:
        return torch.stack([self.transform(view) for view in views])
