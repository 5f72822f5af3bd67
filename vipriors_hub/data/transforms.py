"""Image transforms of both phases, built with timm's transform factory.

Mean, std and interpolation come from the model's pretrained cfg (``timm.data.resolve_data_config``).
"""

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from timm.data import create_transform
from torchvision import transforms

from ..errors import VipriorsError

__all__ = [
    "CIFAR10_POLICY",
    "TwoCrops",
    "check_auto_augment",
    "eval_transform",
    "moco_v2_transform",
    "student_train_transform",
    "ten_crop_transform",
]


class TwoCrops:
    """Apply one random transform twice: the query and key views of MoCo."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent views, each ``(3, H, W)``."""
        return self.transform(image), self.transform(image)

    def __repr__(self) -> str:
        return f"TwoCrops({self.transform!r})"


def moco_v2_transform(resolution: int, data_config: dict[str, Any]) -> TwoCrops:
    """MoCo v2 augmentation, two views: RandomResizedCrop (scale 0.2-1), colour jitter 0.4/0.4/0.4/0.1
    with p 0.8, grayscale p 0.2, Gaussian blur (sigma 0.1-2) p 0.5, horizontal flip."""
    return TwoCrops(
        create_transform(
            resolution,
            is_training=True,
            scale=(0.2, 1.0),
            hflip=0.5,
            color_jitter=(0.4, 0.4, 0.4, 0.1),
            color_jitter_prob=0.8,
            grayscale_prob=0.2,
            gaussian_blur_prob=0.5,
            interpolation=data_config["interpolation"],
            mean=data_config["mean"],
            std=data_config["std"],
        )
    )


CIFAR10_POLICY = "cifar10"
"""``--aa cifar10``: torchvision's AutoAugment CIFAR-10 policy, the policy of the original code."""


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
        return create_transform(resolution, auto_augment=auto_augment, **common)
    crop_and_flip, _, to_tensor = create_transform(resolution, auto_augment=None, separate=True, **common)
    policy = transforms.AutoAugment(transforms.AutoAugmentPolicy.CIFAR10)
    return transforms.Compose([crop_and_flip, policy, to_tensor])


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
    return create_transform(
        resolution,
        is_training=False,
        crop_pct=data_config["crop_pct"],
        interpolation=data_config["interpolation"],
        mean=data_config["mean"],
        std=data_config["std"],
    )


def ten_crop_transform(resolution: int, data_config: dict[str, Any]) -> Callable[[Image.Image], torch.Tensor]:
    """10-crop test: resize the short side to ``resolution / crop_pct`` (as :func:`eval_transform`), then
    the four corners and the centre, each also flipped. Returns ``(10, 3, resolution, resolution)``."""
    to_tensor = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(mean=data_config["mean"], std=data_config["std"])]
    )
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
