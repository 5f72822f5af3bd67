"""Phase 1: the MoCo v2 teacher trained with the margin contrastive loss.

Runs on CPU, one GPU or many: ``vipriors-hub train-teacher ...`` or
``accelerate launch -m vipriors_hub train-teacher ...``. The learning rate follows the linear
scaling rule ``lr_base * effective_batch / 256`` with ``effective_batch = batch_size x processes x
grad_accum_steps`` (MoCo v2: 0.03 for 256).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import timm
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import Tensor, nn

from ..data import DataConfig, DataSplits, moco_v2_views
from ..hub import write_run_model
from ..losses import MarginContrastiveLoss
from .loop import fit
from .moco import KeyQueue, build_key_encoder, build_query_encoder, momentum_update, shuffled_key_forward
from .phase import RunContext, StepOutput, StepPosition, TrainingPhase
from .result import FitResult

if TYPE_CHECKING:
    from .dry_run import RunEstimate
from .run import step_generator
from .run_folder import document
from .settings import check_architecture
from .teacher_settings import TeacherConfig

__all__ = ["TeacherConfig", "TeacherPhase", "train_teacher"]


class TeacherPhase(TrainingPhase):
    """MoCo v2 with the margin loss: the query encoder is trained; the key encoder follows it by
    momentum and fills the queue of negatives. Batches are ``((views_q, views_k), labels)`` with
    views ``(B, 3, H, W)``; labels are not used."""

    name = "teacher"

    def __init__(self, config: TeacherConfig, accelerator: Accelerator, seed: int) -> None:
        self.config = config
        self.accelerator = accelerator
        self.seed = seed
        self.model = build_query_encoder(config.architecture, config.projection_dim)
        self.key_encoder = build_key_encoder(self.model).to(accelerator.device)
        self.queue = KeyQueue(config.queue_size, config.projection_dim).to(accelerator.device)
        self.criterion = MarginContrastiveLoss(config.margin, config.temperature)
        self.views = moco_v2_views(config.resolution, timm.data.resolve_data_config({}, model=self.model[0]))
        self.keys: Tensor | None = None

    def start(self, context: RunContext, model: nn.Module) -> None:
        super().start(context, model)
        self.key_encoder.to(memory_format=context.memory_format)

    def train(self) -> None:
        self.model.train()
        self.key_encoder.train()

    def compile(self) -> None:
        super().compile()
        self.key_encoder.compile()

    def training_step(self, batch: Any, position: StepPosition) -> StepOutput:
        """Margin contrastive loss of the query view against its key and the queue (or the other keys)."""
        (images_q, images_k), _ = batch
        device, memory_format = self.accelerator.device, self.context.memory_format
        images_q = images_q.to(device, non_blocking=True, memory_format=memory_format)
        images_k = images_k.to(device, non_blocking=True, memory_format=memory_format)
        generator = step_generator(self.seed, position.micro_step)
        with self.accelerator.autocast():
            query = F.normalize(self.model(images_q).float(), dim=1)
            keys = shuffled_key_forward(
                self.key_encoder, images_k, self.accelerator, generator, self.config.shuffle_bn_groups
            )
        keys = F.normalize(keys.float(), dim=1)
        negatives = self.queue.keys if self.config.queue_size > 0 else None
        loss = self.criterion(query, keys, negatives)
        with torch.no_grad():
            positive = (query * keys).sum(dim=1) - self.config.margin
            others = query @ (negatives if negatives is not None else keys).T
            if negatives is None:
                others.fill_diagonal_(float("-inf"))
            accuracy = (positive > others.max(dim=1).values).float().mean()
        self.keys = keys
        return StepOutput(loss, {"contrastive_accuracy": accuracy})

    def after_micro_step(self) -> None:
        if self.config.queue_size > 0:
            self.queue.enqueue(self.accelerator.gather(self.keys))

    def after_optimizer_step(self) -> None:
        momentum_update(self.accelerator.unwrap_model(self.model), self.key_encoder, self.config.key_momentum)

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {f"key_encoder.{k}": v for k, v in self.key_encoder.state_dict().items()}
        tensors.update({f"queue.{k}": v for k, v in self.queue.state_dict().items()})
        return tensors, {}

    def load_state(self, tensors: Mapping[str, Tensor], progress: Mapping[str, Any]) -> None:
        self.key_encoder.load_state_dict(
            {k[len("key_encoder.") :]: v for k, v in tensors.items() if k.startswith("key_")}
        )
        queue = {k[len("queue.") :]: v for k, v in tensors.items() if k.startswith("queue.")}
        if queue:
            self.queue.load_state_dict(queue)

    def write_final(self, folder: Path, epochs: float) -> None:
        """The backbone without the MLP head, with its card."""
        backbone = self.accelerator.unwrap_model(self.model)[0]
        run_config = document(self.context.sections)
        write_run_model(
            backbone,
            folder,
            "teacher",
            self.config.architecture,
            self.config.resolution,
            run_config,
            epochs,
        )


def train_teacher(config: TeacherConfig, data_config: DataConfig) -> "FitResult | RunEstimate":
    """Train the teacher; return what the run did (its ``final``: ``OUTPUT/final``, the backbone
    without head, Hub-ready).

    With ``--dry-run`` it returns the run's :class:`~vipriors_hub.train.dry_run.RunEstimate` instead
    (nothing written).

    Raises:
        VipriorsError: bad configuration or data, a different run in the output folder (or one still
            running there), nothing to resume, divergence or a write the disk refused (the last good
            checkpoint is kept).
        RunPreempted: SIGTERM / SIGUSR1; ``--resume`` continues from the checkpoint it names.
    """
    check_architecture(config.architecture)

    def build(accelerator: Accelerator, data: DataSplits, settings: TeacherConfig) -> TeacherPhase:
        return TeacherPhase(settings, accelerator, settings.seed)

    if config.dry_run:
        from .dry_run import estimate_run

        return estimate_run(config, data_config, build)
    return fit(config, data_config, build)
