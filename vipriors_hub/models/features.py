"""Pre-ReLU stage features of the family, as the OFD distillation loss needs them.

OFD (Heo et al., 2019) distils each stage's output *before* the final ReLU of the stage's last
residual block, where negative responses still carry information. timm's blocks apply that ReLU
in place (``x += shortcut; x = act(x)``), so a hook that only keeps a reference to the ReLU's
input would see the tensor after the ReLU has overwritten it. We switch the four final ReLUs to
out-of-place for the duration of one forward pass, which keeps the pre-activation tensor intact
at no extra copy and leaves the model's output unchanged.
"""

from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import Tensor, nn

__all__ = ["forward_pre_relu_features", "pre_relu_batchnorms", "stage_channels"]


def _stage_names(model: ResNet) -> list[str]:
    return [info["module"] for info in model.feature_info if info["module"].startswith("layer")]


def stage_channels(model: ResNet) -> list[int]:
    """Channel counts of the four stage outputs, read from ``model.feature_info``."""
    return [info["num_chs"] for info in model.feature_info if info["module"].startswith("layer")]


def _final_activation(block: nn.Module) -> nn.Module:
    if isinstance(block, Bottleneck):
        return block.act3
    if isinstance(block, BasicBlock):
        return block.act2
    raise TypeError(f"Pre-ReLU features need BasicBlock or Bottleneck stages, got {type(block).__name__}.")


def pre_relu_batchnorms(model: ResNet) -> list[nn.BatchNorm2d]:
    """For each stage, the BatchNorm of the last block's residual branch, just before the pre-ReLU sum
    (``bn2`` of a BasicBlock, ``bn3`` of a Bottleneck): OFD derives its margins from it."""
    norms = []
    for name in _stage_names(model):
        block = model.get_submodule(name)[-1]
        if isinstance(block, Bottleneck):
            norms.append(block.bn3)
        elif isinstance(block, BasicBlock):
            norms.append(block.bn2)
        else:
            raise TypeError(f"OFD margins need BasicBlock or Bottleneck stages, got {type(block).__name__}.")
    return norms


def forward_pre_relu_features(model: ResNet, images: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Run ``model(images)`` and also return the four stage outputs taken before their last ReLU.

    Args:
        model: a ResNet of the family (BasicBlock or Bottleneck, ResNeXt included), with or
            without classifier.
        images: input batch, shape ``(B, C, H, W)``.

    Returns:
        ``(output, features)``: ``output`` is exactly ``model(images)`` (``(B, num_classes)``, or
        ``(B, num_features)`` without classifier); ``features[i]`` has shape
        ``(B, stage_channels(model)[i], H / r_i, W / r_i)`` with reductions 4, 8, 16, 32, and
        ``relu(features[i])`` equals the output of stage ``i``. Gradients flow through both.
    """
    activations = [_final_activation(model.get_submodule(name)[-1]) for name in _stage_names(model)]
    captured: dict[int, Tensor] = {}

    def capture(index: int):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            captured[index] = inputs[0]

        return hook

    was_inplace = [getattr(act, "inplace", False) for act in activations]
    handles = [act.register_forward_pre_hook(capture(i)) for i, act in enumerate(activations)]
    try:
        for act in activations:
            if hasattr(act, "inplace"):
                act.inplace = False
        output = model(images)
    finally:
        for handle in handles:
            handle.remove()
        for act, inplace in zip(activations, was_inplace, strict=True):
            if hasattr(act, "inplace"):
                act.inplace = inplace
    return output, [captured[i] for i in range(len(activations))]
