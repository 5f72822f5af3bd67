"""OFD: "A Comprehensive Overhaul of Feature Distillation" (Heo et al., ICCV 2019).

The student's pre-ReLU stage features, mapped to the teacher's channels by a connector (1x1
convolution + BatchNorm), regress the teacher's pre-ReLU features with a *partial* L2 distance:

* the teacher target is clamped from below by a per-channel margin, the expected value of the
  channel's negative responses (from the teacher BatchNorm's shift ``beta`` and scale ``gamma``,
  taken as a Gaussian ``N(beta, gamma^2)``): ``E[x | x < 0] = beta - |gamma| phi(beta/|gamma|) / Phi(-beta/|gamma|)``,
  or ``-3 |gamma|`` where ``Phi(-beta/|gamma|) <= 0.001`` (the CDF underflows);
* no penalty where both the student and the (clamped) teacher are below zero and the student is
  below the teacher: negative responses only need to stay negative.

Stage ``i`` of ``n`` is weighted ``2^(i - n + 1)`` (1/8, 1/4, 1/2, 1 for four stages); the sum over
elements is divided by the batch size.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["OFDLoss", "make_connector", "ofd_loss", "ofd_margins", "partial_l2"]

_CDF_FLOOR = 1e-3


def ofd_margins(weight: Tensor, bias: Tensor) -> Tensor:
    """Per-channel margins ``(C,)`` from a BatchNorm's scale ``weight`` ``(C,)`` and shift ``bias`` ``(C,)``."""
    std = weight.abs().double().clamp_min(1e-12)
    mean = bias.double()
    cdf = torch.special.ndtr(-mean / std)
    density = torch.exp(-0.5 * (mean / std) ** 2) / math.sqrt(2 * math.pi)
    expected_negative = mean - std * density / cdf.clamp_min(1e-300)
    return torch.where(cdf > _CDF_FLOOR, expected_negative, -3 * std).to(weight.dtype)


def partial_l2(student: Tensor, teacher: Tensor, margin: Tensor) -> Tensor:
    """Sum of the partial L2 distance between ``student`` and ``teacher`` ``(B, C, H, W)``.

    ``margin`` ``(C,)`` clamps the teacher from below; positions where the student is below the
    clamped teacher and the teacher is not positive cost nothing. Written as
    ``mse(max(student, floor), target)`` with ``floor = target`` where ``target <= 0`` and ``-inf``
    elsewhere: two fused kernels on the student side and no mask kept for the backward pass.
    """
    with torch.no_grad():
        target = torch.maximum(teacher, margin.view(1, -1, 1, 1).to(teacher.dtype))
        floor = target.masked_fill(target > 0, float("-inf"))
    clamped = torch.maximum(student, floor.to(student.dtype))
    return F.mse_loss(clamped.float(), target.float(), reduction="sum")


def ofd_loss(
    student_features: list[Tensor],
    teacher_features: list[Tensor],
    margins: list[Tensor],
    stage_weights: list[float] | None = None,
    distance: Callable[[Tensor, Tensor, Tensor], Tensor] = partial_l2,
) -> Tensor:
    """OFD distillation loss (scalar), before the overall distillation weight.

    Args:
        student_features: connector outputs, stage ``i`` ``(B, C_i, H_i, W_i)``.
        teacher_features: the teacher's pre-ReLU outputs, same shapes.
        margins: per-stage margins ``(C_i,)``.
        stage_weights: default ``2^(i - n + 1)``.
        distance: :func:`partial_l2`, or a compiled version of it (``torch.compile`` fuses its
            element-wise passes: about 3x faster on an H100).

    Returns:
        ``sum_i w_i * partial_l2_i / B``.
    """
    count = len(student_features)
    weights = stage_weights or [2.0 ** (i - count + 1) for i in range(count)]
    batch = student_features[0].shape[0]
    total = student_features[0].new_zeros((), dtype=torch.float32)
    for student, teacher, margin, weight in zip(student_features, teacher_features, margins, weights, strict=True):
        total = total + weight * distance(student, teacher, margin)
    return total / batch


def make_connector(student_channels: int, teacher_channels: int) -> nn.Sequential:
    """1x1 convolution (no bias) + BatchNorm from student to teacher channels, He-initialised."""
    conv = nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    norm = nn.BatchNorm2d(teacher_channels)
    return nn.Sequential(conv, norm)


class OFDLoss(nn.Module):
    """Connectors plus margins (buffers) of OFD for one student / teacher pair.

    Args:
        student_channels: channels of the student's distilled stages.
        teacher_batchnorms: for each stage, the teacher BatchNorm before its pre-ReLU output.
        distance: :func:`partial_l2` or a compiled version of it.
    """

    def __init__(
        self,
        student_channels: list[int],
        teacher_batchnorms: list[nn.BatchNorm2d],
        distance: Callable[[Tensor, Tensor, Tensor], Tensor] = partial_l2,
    ) -> None:
        super().__init__()
        self.distance = distance
        self.connectors = nn.ModuleList(
            make_connector(s, bn.num_features) for s, bn in zip(student_channels, teacher_batchnorms, strict=True)
        )
        for index, norm in enumerate(teacher_batchnorms):
            self.register_buffer(f"margin_{index}", ofd_margins(norm.weight.detach(), norm.bias.detach()))

    @property
    def margins(self) -> list[Tensor]:
        """Per-stage margins ``(C_i,)``."""
        return [getattr(self, f"margin_{i}") for i in range(len(self.connectors))]

    def connect(self, student_features: list[Tensor]) -> list[Tensor]:
        """Map the student's pre-ReLU features to the teacher's channels."""
        return [connector(feature) for connector, feature in zip(self.connectors, student_features, strict=True)]

    def forward(self, student_features: list[Tensor], teacher_features: list[Tensor]) -> Tensor:
        """Scalar OFD loss of raw student pre-ReLU features ``(B, C_i, H_i, W_i)`` against the teacher's."""
        return ofd_loss(self.connect(student_features), teacher_features, self.margins, distance=self.distance)
