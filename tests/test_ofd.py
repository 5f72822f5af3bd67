"""OFD: margins, partial L2, connectors and the frozen teacher."""

import math

import pytest
import timm
import torch

from vipriors_hub.losses import OFDLoss, ofd_loss, ofd_margins, partial_l2
from vipriors_hub.models import forward_pre_relu_features, pre_relu_batchnorms, stage_channels
from vipriors_hub.train.distill import FrozenTeacher, StudentWithConnectors, student_from_teacher


def closed_form_margin(gamma: float, beta: float) -> float:
    """E[x | x < 0] of N(beta, gamma^2), or -3|gamma| where P(x < 0) <= 0.001."""
    std = abs(gamma)
    cdf = 0.5 * math.erfc(beta / std / math.sqrt(2))
    if cdf <= 1e-3:
        return -3 * std
    return beta - std * math.exp(-0.5 * (beta / std) ** 2) / math.sqrt(2 * math.pi) / cdf


def test_margins_match_the_closed_form_including_an_underflowing_cdf() -> None:
    gamma = [1.0, 2.0, 0.5, -1.5, 1.0, 1e-3, 0.1]
    beta = [0.0, 1.0, -0.3, 0.2, 40.0, -1.0, 3.0]
    margins = ofd_margins(torch.tensor(gamma), torch.tensor(beta))
    expected = [closed_form_margin(g, b) for g, b in zip(gamma, beta, strict=True)]
    assert margins.tolist() == pytest.approx(expected, rel=1e-5)
    assert margins[0].item() == pytest.approx(-math.sqrt(2 / math.pi), rel=1e-6)
    assert margins[4].item() == -3.0  # Phi(-40) underflows to 0: the fallback, not a NaN
    assert torch.isfinite(margins).all() and (margins < 0).all()


def test_partial_l2_penalises_exactly_the_expected_positions() -> None:
    margin = torch.tensor([-1.0])
    teacher = torch.tensor([2.0, 2.0, -0.5, -0.5, -3.0, -3.0]).view(1, 1, 1, 6)
    student = torch.tensor([1.0, 3.0, -2.0, 0.5, -2.0, -0.5]).view(1, 1, 1, 6)
    # targets: max(teacher, -1) = [2, 2, -0.5, -0.5, -1, -1]
    # penalised where student > target or target > 0: [yes, yes, no, yes, no, yes]
    expected = (1 - 2) ** 2 + (3 - 2) ** 2 + (0.5 + 0.5) ** 2 + (-0.5 + 1) ** 2
    assert partial_l2(student, teacher, margin).item() == pytest.approx(expected)


def test_ofd_loss_weights_stages_and_divides_by_the_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 3, 8, 8), (2, 4, 4, 4), (2, 5, 2, 2), (2, 6, 1, 1)]
    students = [torch.randn(s, generator=generator) for s in shapes]
    teachers = [torch.randn(s, generator=generator) for s in shapes]
    margins = [-torch.rand(s[1], generator=generator) for s in shapes]
    expected = sum(
        w * partial_l2(s, t, m)
        for w, s, t, m in zip([1 / 8, 1 / 4, 1 / 2, 1], students, teachers, margins, strict=False)
    )
    assert ofd_loss(students, teachers, margins).item() == pytest.approx(expected.item() / 2, rel=1e-6)


@pytest.mark.parametrize(
    ("teacher_name", "student_name"),
    [
        ("vipriors_resnet18", "vipriors_resnet18"),
        ("vipriors_resnet50", "vipriors_resnet50"),
        ("vipriors_resnet50", "vipriors_resnet18"),
    ],
)
def test_connectors_map_any_pair_of_the_family(teacher_name: str, student_name: str) -> None:
    teacher = timm.create_model(teacher_name, num_classes=0).eval()
    student = timm.create_model(student_name, num_classes=7)
    ofd = OFDLoss(stage_channels(student), pre_relu_batchnorms(teacher))
    images = torch.randn(2, 3, 64, 64)
    _, student_features = forward_pre_relu_features(student, images)
    with torch.no_grad():
        _, teacher_features = forward_pre_relu_features(teacher, images)
    connected = ofd.connect(student_features)
    assert [c.shape for c in connected] == [t.shape for t in teacher_features]
    loss = ofd(student_features, teacher_features)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is not None for p in ofd.connectors.parameters())
    assert [m.shape[0] for m in ofd.margins] == stage_channels(teacher)


def test_frozen_teacher_does_not_change_while_the_student_trains() -> None:
    teacher = timm.create_model("vipriors_resnet_tiny", num_classes=0, zero_init_last=False)
    teacher.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    frozen = FrozenTeacher(teacher)
    model = StudentWithConnectors(student_from_teacher("vipriors_resnet_tiny", teacher, 5, "teacher"), teacher)
    wrapper = torch.nn.ModuleDict({"model": model, "teacher": frozen}).train()
    optimizer = torch.optim.SGD(wrapper.parameters(), lr=0.5)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    for _ in range(3):
        images = torch.randn(4, 3, 32, 32)
        logits, distillation = model(images, frozen(images))
        loss = logits.logsumexp(1).mean() + distillation
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "teacher weights or BN statistics changed"
    assert not torch.equal(model.student.conv1.weight, before["conv1.weight"])


def test_student_loss_is_the_ofd_module_on_connected_features() -> None:
    teacher = timm.create_model("vipriors_resnet_tiny", num_classes=0, zero_init_last=False).eval()
    model = StudentWithConnectors(student_from_teacher("vipriors_resnet_tiny", teacher, 5, "teacher"), teacher)
    images = torch.randn(3, 3, 32, 32)
    teacher_features = FrozenTeacher(teacher)(images)
    logits, distillation = model(images, teacher_features)
    expected_logits, features = forward_pre_relu_features(model.student, images)
    connected = model.ofd.connect(features)
    assert torch.equal(logits, expected_logits)
    assert torch.allclose(distillation, ofd_loss(connected, teacher_features, model.ofd.margins))
    _, without_teacher = model(images)
    assert without_teacher.item() == 0.0
    without_teacher.backward()
    assert all(p.grad is not None for p in model.ofd.connectors.parameters()), "DDP needs every connector used"


def test_teacher_bn_train_normalises_with_the_batch_and_never_learns() -> None:
    teacher = timm.create_model("vipriors_resnet_tiny", num_classes=0, zero_init_last=False)
    weights = {k: v.clone() for k, v in teacher.named_parameters()}
    images = torch.randn(6, 3, 32, 32) * 3 + 1
    batch_stats = FrozenTeacher(teacher, bn_mode="train").train()
    assert not batch_stats.training and all(
        m.training for m in batch_stats.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )
    features = batch_stats(images)
    _, expected = forward_pre_relu_features(teacher.train(), images)
    assert all(torch.allclose(f, e) for f, e in zip(features, expected, strict=True))
    running_stats = FrozenTeacher(teacher, bn_mode="eval")
    assert not any(torch.allclose(f, r) for f, r in zip(features, running_stats(images), strict=True))
    assert all(torch.equal(weights[k], v) for k, v in teacher.named_parameters())
    assert not any(p.requires_grad for p in teacher.parameters())


def test_student_starts_from_the_teacher_backbone() -> None:
    teacher = timm.create_model("vipriors_resnet_tiny", num_classes=0, zero_init_last=False)
    student = student_from_teacher("vipriors_resnet_tiny", teacher, 10, "teacher")
    assert student.num_classes == 10
    assert all(torch.equal(student.state_dict()[k], v) for k, v in teacher.state_dict().items())
    with pytest.raises(Exception, match="do not fit"):
        student_from_teacher("vipriors_resnet18", teacher, 10, "teacher")
