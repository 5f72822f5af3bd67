"""The phase-2 model pieces: a frozen teacher and a student that exposes connected pre-ReLU features."""

import timm
import torch
from torch import Tensor, nn

from ..errors import VipriorsError
from ..losses import OFDLoss
from ..models import forward_pre_relu_features, pre_relu_batchnorms, stage_channels

__all__ = ["FrozenTeacher", "StudentWithConnectors", "student_from_teacher"]


class FrozenTeacher(nn.Module):
    """A teacher that cannot change: no gradients, eval mode whatever ``train()`` is called with,
    forward without autograd. Its BatchNorm statistics therefore never drift during distillation."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "FrozenTeacher":
        """Stay in eval mode (BatchNorm uses, and keeps, its running statistics)."""
        return super().train(False)

    @torch.inference_mode()
    def forward(self, images: Tensor) -> list[Tensor]:
        """The teacher's four pre-ReLU stage features for ``images`` ``(B, 3, H, W)``."""
        return forward_pre_relu_features(self.model, images)[1]


class StudentWithConnectors(nn.Module):
    """The student classifier plus OFD's connectors, so one optimizer and one DDP wrapper hold both.

    Args:
        student: a classifier of the family.
        teacher: the teacher backbone whose BatchNorms give OFD's margins; ``None`` trains without
            distillation (no connectors).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None) -> None:
        super().__init__()
        self.student = student
        self.ofd = OFDLoss(stage_channels(student), pre_relu_batchnorms(teacher)) if teacher is not None else None

    def forward(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits ``(B, num_classes)`` and the connected pre-ReLU features (empty without teacher)."""
        if self.ofd is None:
            return self.student(images), []
        logits, features = forward_pre_relu_features(self.student, images)
        return logits, self.ofd.connect(features)


def student_from_teacher(architecture: str, teacher: nn.Module | None, num_classes: int, init: str) -> nn.Module:
    """A student classifier with ``num_classes`` outputs, initialised from ``teacher`` or at random.

    Raises:
        VipriorsError: an unknown ``init``, no teacher to start from, or a teacher of another architecture.
    """
    student = timm.create_model(architecture, num_classes=num_classes)
    if init == "scratch":
        return student
    if init != "teacher":
        raise VipriorsError(f"--init must be 'teacher' or 'scratch', got '{init}'.")
    if teacher is None:
        raise VipriorsError("--init teacher needs --teacher FOLDER (a train-teacher OUTPUT/final).")
    student_state, teacher_state = student.state_dict(), teacher.state_dict()
    misfits = [k for k, v in teacher_state.items() if k not in student_state or student_state[k].shape != v.shape]
    misfits += [k for k in student_state if k not in teacher_state and k not in ("fc.weight", "fc.bias")]
    if misfits:
        raise VipriorsError(
            f"The teacher's weights do not fit a {architecture} student ({len(misfits)} tensors differ, e.g. "
            f"{', '.join(misfits[:3])}). Self-distillation needs the teacher's architecture; use --init scratch "
            "to distil into another architecture."
        )
    student.load_state_dict(teacher_state, strict=False)
    return student
