"""Image transforms of both phases, built with timm's transform factory.

Mean, std and interpolation come from the model's pretrained cfg (``timm.data.resolve_data_config``).
"""

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from timm.data import create_transform
from torchvision import transforms

__all__ = ["TwoCrops", "eval_transform", "moco_v2_transform", "student_train_transform", "ten_crop_transform"]


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


def student_train_transform(
    resolution: int, data_config: dict[str, Any], auto_augment: bool
) -> Callable[[Image.Image], torch.Tensor]:
    """Supervised training: RandomResizedCrop, horizontal flip and, if asked, AutoAugment ('original')."""
    return create_transform(
        resolution,
        is_training=True,
        hflip=0.5,
        color_jitter=None,
        auto_augment="original" if auto_augment else None,
        interpolation=data_config["interpolation"],
        mean=data_config["mean"],
        std=data_config["std"],
    )


def eval_transform(
    resolution: int, data_config: dict[str, Any], crop_pct: float = 0.875
) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation: resize the short side to ``resolution / crop_pct``, then centre-crop ``resolution``."""
    return create_transform(
        resolution,
        is_training=False,
        crop_pct=crop_pct,
        interpolation=data_config["interpolation"],
        mean=data_config["mean"],
        std=data_config["std"],
    )


def ten_crop_transform(
    resolution: int, data_config: dict[str, Any], crop_pct: float = 0.875
) -> Callable[[Image.Image], torch.Tensor]:
    """10-crop test: resize the short side to ``resolution / crop_pct``, then the four corners and the
    centre, each also flipped. Returns ``(10, 3, resolution, resolution)``."""
    to_tensor = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(mean=data_config["mean"], std=data_config["std"])]
    )
    resize = transforms.Resize(
        int(resolution / crop_pct), interpolation=transforms.InterpolationMode(data_config["interpolation"])
    )
    return transforms.Compose([resize, transforms.TenCrop(resolution), _StackViews(to_tensor)])


class _StackViews:
    """Apply a per-view transform to a tuple of PIL views and stack them: ``(V, 3, H, W)``."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, views: tuple[Image.Image, ...]) -> torch.Tensor:
        return torch.stack([self.transform(view) for view in views])
