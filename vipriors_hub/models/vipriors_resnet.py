"""The ``vipriors_*`` model family: timm's own ``ResNet`` with the paper's pretrained tags.

Every architecture has two pretrained tags, one per phase of the method:

* ``student`` (the default): the 1000-class classifier distilled in phase 2 on the VIPriors
  ImageNet subset (50 images per class), evaluated at the paper's larger input resolution.
* ``teacher``: the phase-1 MoCo v2 backbone trained with the margin loss, without classifier
  (``num_classes=0``), for feature extraction, linear probes and as the phase-2 starting point.

The models are built with :func:`timm.models.build_model_with_cfg`, so ``timm.create_model``,
``pretrained_cfg_overlay``, ``features_only`` and timm's Hub loading all work unchanged.
"""

from typing import Any

from huggingface_hub.errors import EntryNotFoundError
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, ImageNetInfo
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model, resolve_pretrained_cfg
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ..errors import PretrainedWeightsUnavailableError

__all__ = ["ARCHITECTURES", "HUB_ORGANIZATION", "PAPER_ID", "PRETRAINED_TAGS", "TIMM_EQUIVALENTS", "hub_repo_id"]

HUB_ORGANIZATION = "vipriors-hub"
"""The Hugging Face Hub organisation that hosts every published checkpoint of the family."""

PAPER_ID = "arXiv:2008.00261"
PAPER_NAME = "Distilling Visual Priors from Self-Supervised Learning"

PRETRAINED_TAGS = ("student", "teacher")
"""Tags of each architecture, the default (phase-2 student) first."""

ARCHITECTURES = (
    "vipriors_resnet_tiny",
    "vipriors_resnet18",
    "vipriors_resnet50",
    "vipriors_resnet101",
    "vipriors_resnext101_32x8d",
)

TIMM_EQUIVALENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "vipriors_resnet_tiny": ("resnet18", {"layers": [1, 1, 1, 1], "channels": [32, 64, 128, 256]}),
    "vipriors_resnet18": ("resnet18", {}),
    "vipriors_resnet50": ("resnet50", {}),
    "vipriors_resnet101": ("resnet101", {}),
    "vipriors_resnext101_32x8d": ("resnext101_32x8d", {}),
}
"""Each member as a plain timm model with identical weights: ``(timm name, model_args)``. Exported
``config.json`` files name these, so checkpoints load in timm and transformers without this package."""

STUDENT_RESOLUTION = 448
TEACHER_RESOLUTION = 224


def hub_repo_id(architecture: str, tag: str) -> str:
    """Return the Hub repository id that hosts ``architecture.tag``, e.g. ``vipriors-hub/vipriors_resnet50.teacher``."""
    return f"{HUB_ORGANIZATION}/{architecture}.{tag}"


def _cfg(architecture: str, tag: str) -> dict[str, Any]:
    resolution = STUDENT_RESOLUTION if tag == "student" else TEACHER_RESOLUTION
    phase = (
        "phase-2 self-distilled student, 1000-class VIPriors ImageNet classifier"
        if tag == "student"
        else "phase-1 MoCo v2 teacher trained with the margin loss (backbone without classifier)"
    )
    return {
        "hf_hub_id": hub_repo_id(architecture, tag),
        "num_classes": 1000 if tag == "student" else 0,
        "label_names": tuple(ImageNetInfo().label_names()) if tag == "student" else None,
        "input_size": (3, resolution, resolution),
        "test_input_size": (3, resolution, resolution),
        "pool_size": (resolution // 32, resolution // 32),
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "apache-2.0",
        "description": f"{architecture}: {phase}.",
        "paper_name": PAPER_NAME,
        "paper_ids": PAPER_ID,
    }


default_cfgs = generate_default_cfgs(
    {f"{arch}.{tag}": _cfg(arch, tag) for arch in ARCHITECTURES for tag in PRETRAINED_TAGS}
)


def _create_vipriors_resnet(variant: str, pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Build ``variant`` with timm's builder, turning "weights not found" into one clear error."""
    try:
        return build_model_with_cfg(ResNet, variant, pretrained, **kwargs)
    except (OSError, EntryNotFoundError) as error:
        if not pretrained:
            raise
        cfg = resolve_pretrained_cfg(
            variant,
            pretrained_cfg=kwargs.get("pretrained_cfg"),
            pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"),
        )
        where = f"the local file {cfg.file}" if cfg.file else f"the Hub repository '{cfg.hf_hub_id}'"
        raise PretrainedWeightsUnavailableError(
            f"Pretrained weights for '{variant}.{cfg.tag}' could not be loaded from {where} "
            f"({type(error).__name__}: {error}). Ways out: connect to the Hub (or unset HF_HUB_OFFLINE) "
            f"if the repository exists; train the weights with `vipriors-hub train-teacher` / "
            f"`vipriors-hub train-student`; or pass a local file with "
            f"timm.create_model('{variant}', pretrained=True, "
            f"pretrained_cfg_overlay=dict(file='path/to/model.safetensors'))."
        ) from error


@register_model
def vipriors_resnet_tiny(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Tiny ResNet (one BasicBlock per stage, channels 32-256) for fast tests and CPU demos."""
    model_args = dict(block=BasicBlock, layers=(1, 1, 1, 1), channels=(32, 64, 128, 256))
    return _create_vipriors_resnet("vipriors_resnet_tiny", pretrained, **dict(model_args, **kwargs))


@register_model
def vipriors_resnet18(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-18 (BasicBlock, layers 2-2-2-2)."""
    model_args = dict(block=BasicBlock, layers=(2, 2, 2, 2))
    return _create_vipriors_resnet("vipriors_resnet18", pretrained, **dict(model_args, **kwargs))


@register_model
def vipriors_resnet50(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-50 (Bottleneck, layers 3-4-6-3), the VIPriors challenge baseline architecture."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3))
    return _create_vipriors_resnet("vipriors_resnet50", pretrained, **dict(model_args, **kwargs))


@register_model
def vipriors_resnet101(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-101 (Bottleneck, layers 3-4-23-3)."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 23, 3))
    return _create_vipriors_resnet("vipriors_resnet101", pretrained, **dict(model_args, **kwargs))


@register_model
def vipriors_resnext101_32x8d(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNeXt-101 32x8d, the paper's strongest backbone."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 23, 3), cardinality=32, base_width=8)
    return _create_vipriors_resnet("vipriors_resnext101_32x8d", pretrained, **dict(model_args, **kwargs))
