"""The ResNet members of the ``vipriors_*`` family: timm's own ``ResNet``, registered with timm.

The models are built with :func:`timm.models.build_model_with_cfg`, so ``timm.create_model``,
``pretrained_cfg_overlay``, ``features_only`` and timm's Hub loading all work unchanged. Each
member's plain-timm twin is declared in the family table (:mod:`vipriors_hub.models.family`).
"""

from typing import Any

from huggingface_hub.errors import EntryNotFoundError
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model, resolve_pretrained_cfg
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ..errors import PretrainedWeightsUnavailableError
from .family import add_member, pretrained_cfgs

__all__ = ["OUTPUT_STRIDE", "RESNET_MEMBERS"]

RESNET_MEMBERS: dict[str, tuple[str, dict[str, Any]]] = {
    "vipriors_resnet_tiny": ("resnet18", {"layers": [1, 1, 1, 1], "channels": [32, 64, 128, 256]}),
    "vipriors_resnet18": ("resnet18", {}),
    "vipriors_resnet50": ("resnet50", {}),
    "vipriors_resnet101": ("resnet101", {}),
    "vipriors_resnext101_32x8d": ("resnext101_32x8d", {}),
}
"""The members defined here: ``name -> (plain timm name, model_args)`` with identical weights."""

for _name, (_timm_name, _timm_args) in RESNET_MEMBERS.items():
    add_member(_name, ResNet, _timm_name, _timm_args)

OUTPUT_STRIDE = 32
"""The reduction of a timm ResNet's last stage (its ``feature_info[-1]["reduction"]``; a test checks it)."""

default_cfgs = generate_default_cfgs(
    pretrained_cfgs(list(RESNET_MEMBERS), classifier="fc", first_conv="conv1", reduction=OUTPUT_STRIDE)
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
