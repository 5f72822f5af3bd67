"""Pre-ReLU stage features: exact relation to timm's stage outputs, no side effects."""

import pytest
import timm
import torch
from torch import nn

from vipriors_hub.models import forward_pre_relu_features, stage_channels

# BasicBlock (resnet18-shaped), Bottleneck (resnet50-shaped) and grouped Bottleneck (ResNeXt).
SHAPES = ["vipriors_resnet_tiny", "vipriors_resnet18", "vipriors_resnet50", "vipriors_resnext101_32x8d"]


def stage_outputs(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Each stage's output as timm computes it, recorded by forward hooks on layer1..layer4."""
    outputs: list[torch.Tensor] = []
    handles = [
        model.get_submodule(f"layer{i}").register_forward_hook(lambda m, i, out: outputs.append(out.clone()))
        for i in range(1, 5)
    ]
    model(images)
    for handle in handles:
        handle.remove()
    return outputs


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_relu_of_pre_relu_feature_equals_stage_output(name: str, num_classes: int) -> None:
    torch.manual_seed(0)
    # zero_init_last=False: like a trained model, the residual branch is not zero (it is at timm's init).
    model = timm.create_model(name, num_classes=num_classes, zero_init_last=False).eval()
    images = torch.randn(2, 3, 64, 64)

    with torch.no_grad():
        expected_output = model(images)
        expected_stages = stage_outputs(model, images)
        output, features = forward_pre_relu_features(model, images)
        output_after = model(images)

    assert torch.equal(output, expected_output) and torch.equal(output_after, expected_output)
    assert len(features) == 4
    for feature, stage, channels in zip(features, expected_stages, stage_channels(model), strict=True):
        assert feature.shape == stage.shape and feature.shape[1] == channels
        assert (feature < 0).any(), "a pre-ReLU feature must keep its negative responses"
        assert torch.equal(torch.relu(feature), stage)


def test_stage_channels_follow_feature_info() -> None:
    model = timm.create_model("vipriors_resnet50", num_classes=0)
    info = [entry["num_chs"] for entry in model.feature_info if entry["module"].startswith("layer")]
    assert stage_channels(model) == info
    assert stage_channels(model)[-1] == model.num_features


def test_in_place_relus_are_restored_and_gradients_flow() -> None:
    model = timm.create_model("vipriors_resnet_tiny", num_classes=5).train()
    inplace_before = [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)]

    output, features = forward_pre_relu_features(model, torch.randn(2, 3, 32, 32))
    (output.sum() + sum(f.square().mean() for f in features)).backward()

    assert [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)] == inplace_before
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
