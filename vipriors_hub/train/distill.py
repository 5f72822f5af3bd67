"""The phase-2 model pieces: a frozen teacher and a student that carries OFD's connectors and loss."""

import timm
import torch
from torch import Tensor, nn

from ..errors import VipriorsError
from ..losses import OFDLoss
from ..models import forward_pre_relu_features, pre_relu_batchnorms, stage_channels
from .student_settings import TEACHER_BN_MODES

__all__ = ["TEACHER_BN_MODES", "FrozenTeacher", "StudentWithConnectors", "student_from_teacher"]


class FrozenTeacher(nn.Module):
    """A teacher that cannot learn: no gradients, forward without autograd, and a fixed mode whatever
    ``train()`` is called with.

    Args:
        model: the teacher backbone.
        bn_mode: ``eval`` (every layer in eval mode: BatchNorm uses its running statistics) or
            ``train`` (BatchNorm normalises with the batch's statistics, as in the original code; its
            running statistics are updated but never used, and its weights never change).
    """

    def __init__(self, model: nn.Module, bn_mode: str = "eval") -> None:
        super().__init__()
        if bn_mode not in TEACHER_BN_MODES:
            raise VipriorsError(f"--teacher-bn must be one of {', '.join(TEACHER_BN_MODES)}, got '{bn_mode}'.")
        self.bn_mode = bn_mode
        self.model = model.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> "FrozenTeacher":
        """Keep the fixed mode: eval, with the BatchNorms in train mode for ``bn_mode='train'``."""
        super().train(False)
        if self.bn_mode == "train":
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.train()
        return self

    @torch.no_grad()
    def forward(self, images: Tensor) -> list[Tensor]:
        """The teacher's four pre-ReLU stage features ``(B, C_i, H_i, W_i)`` for ``images`` ``(B, 3, H, W)``."""
        return forward_pre_relu_features(self.model, images)[1]


class StudentWithConnectors(nn.Module):
    """The student classifier plus OFD (connectors and margins), so one optimizer and one DDP wrapper
    hold both and the distillation loss is computed inside the wrapped forward.

    Args:
        student: a classifier of the family.
        teacher: the teacher backbone whose BatchNorms give OFD's margins; ``None`` trains without
            distillation (no connectors).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None) -> None:
        super().__init__()
        self.student = student
        self.ofd = OFDLoss(stage_channels(student), pre_relu_batchnorms(teacher)) if teacher is not None else None

    def forward(self, images: Tensor, teacher_features: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Logits ``(B, num_classes)`` and the OFD loss (scalar, before the overall weight) against
        ``teacher_features``. Without them the loss is zero, but the connectors still run (with weight
        0) so that DDP sees every parameter used."""
        if self.ofd is None:
            logits = self.student(images)
            return logits, logits.new_zeros((), dtype=torch.float32)
        logits, features = forward_pre_relu_features(self.student, images)
        if teacher_features is None:
            connected = self.ofd.connect(features)
            return logits, 0.0 * sum(
                (feature.float().sum() for feature in connected), logits.new_zeros((), dtype=torch.float32)
            )
        return logits, self.ofd(features, teacher_features)


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
    classifier = f"{student.pretrained_cfg['classifier']}."
    misfits += [k for k in student_state if k not in teacher_state and not k.startswith(classifier)]
    if misfits:
        raise VipriorsError(
            f"The teacher's weights do not fit a {architecture} student ({len(misfits)} tensors differ, e.g. "
            f"{', '.join(misfits[:3])}). Self-distillation needs the teacher's architecture; use --init scratch "
            "to distil into another architecture."
        )
    student.load_state_dict(teacher_state, strict=False)
    return student
