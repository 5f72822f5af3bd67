"""Phase 2: self-distillation of the teacher into a student classifier (OFD + cross-entropy).

The student has the teacher's architecture and starts from its weights (``--init teacher``); the
frozen teacher's pre-ReLU stage features are distilled with OFD from epoch ``no_distill_epochs``
on, next to label-smoothed cross-entropy. With ``--init scratch --distill-weight 0`` and no
teacher it is the plain supervised baseline.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from accelerate import Accelerator
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.scheduler import CosineLRScheduler, StepLRScheduler
from tqdm.auto import tqdm

from ..data import DataConfig, ExampleStream, ResumableLoader, eval_transform, load_data, student_train_transform
from ..errors import VipriorsError
from ..losses import ofd_loss, partial_l2
from ..models import hub_repo_id
from .distill import FrozenTeacher, StudentWithConnectors, student_from_teacher
from .hub import (
    family_architecture,
    load_model_folder,
    model_description,
    pretrained_cfg_for,
    read_metrics,
    render_model_card,
    write_model_folder,
)
from .loop import (
    CheckpointManager,
    MetricsWriter,
    NonFiniteGuard,
    RunSettings,
    check_architecture,
    document,
    open_run,
    plan_steps,
    scaled_lr,
    start_record,
    start_run,
    tracker_config,
)

__all__ = ["StudentConfig", "train_student"]


@dataclass
class StudentConfig(RunSettings):
    """Phase-2 settings; defaults are the paper's (448 px, 100 epochs, OFD weight 1e-4, step schedule)."""

    output: str = field(default="runs/student", metadata={"help": "output folder"})
    teacher: str | None = field(default=None, metadata={"help": "teacher folder (train-teacher OUTPUT/final)"})
    architecture: str | None = field(default=None, metadata={"help": "student model (default: the teacher's)"})
    init: str = field(
        default="teacher",
        metadata={"help": "teacher (self-distillation) or scratch", "choices": ("teacher", "scratch")},
    )
    resolution: int = field(
        default=448, metadata={"help": "training and validation input size in px", "min": 8, "max": 4096}
    )
    epochs: int = field(default=100, metadata={"help": "training epochs", "min": 1})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps", "min": 1})
    no_distill_epochs: int = field(default=5, metadata={"help": "first epochs with cross-entropy only", "min": 0})
    distill_weight: float = field(
        default=1e-4, metadata={"help": "weight of the OFD loss; 0: no distillation", "min": 0}
    )
    batch_size: int = field(default=64, metadata={"help": "images per process and step", "min": 1})
    base_lr: float = field(
        default=0.1, metadata={"help": "SGD (Nesterov) learning rate for an effective batch of 256", "above": 0}
    )
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum", "min": 0, "below": 1})
    weight_decay: float = field(default=1e-4, metadata={"help": "SGD weight decay", "min": 0})
    schedule: str = field(
        default="step", metadata={"help": "step (x0.1 every --step-epochs) or cosine", "choices": ("step", "cosine")}
    )
    step_epochs: int = field(default=30, metadata={"help": "epochs between learning-rate drops (step)", "min": 1})
    warmup_epochs: int = field(default=0, metadata={"help": "linear warm-up epochs", "min": 0})
    label_smoothing: float = field(
        default=0.1, metadata={"help": "label smoothing of the cross-entropy", "min": 0, "below": 1}
    )
    auto_augment: bool = field(default=True, metadata={"help": "AutoAugment ('original' policy)"})
    mixup: float = field(default=0.0, metadata={"help": "mixup alpha (0: off)", "min": 0})
    cutmix: float = field(default=0.0, metadata={"help": "cutmix alpha (0: off)", "min": 0})
    compile_loss: bool = field(default=False, metadata={"help": "torch.compile the OFD distance (GPU: ~3x faster)"})


@torch.no_grad()
def _validate(
    model: torch.nn.Module, split, resolution: int, config: StudentConfig, accelerator: Accelerator
) -> dict[str, float]:
    """Top-1 / top-5 (percent) of ``model`` on ``split``, each process scoring its share."""
    data_config = timm.data.resolve_data_config({}, model=model)
    stream = ExampleStream(
        split,
        eval_transform(resolution, data_config),
        shuffle=False,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        batch_size=config.batch_size,
    )
    counts = torch.zeros(3, dtype=torch.long, device=accelerator.device)
    was_training = model.training
    model.eval()
    for images, labels in ResumableLoader(stream, num_workers=config.num_workers):
        images, labels = images.to(accelerator.device), labels.to(accelerator.device)
        with accelerator.autocast():
            logits = model(images)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
        counts += torch.stack([top5[:, 0].sum(), top5.any(dim=1).sum(), labels.new_tensor(len(labels))]).to(counts)
    model.train(was_training)
    top1, top5, total = accelerator.reduce(counts, reduction="sum").tolist()
    return {"top1": 100.0 * top1 / total, "top5": 100.0 * top5 / total}


def _scheduler(optimizer: torch.optim.Optimizer, config: StudentConfig, steps_per_epoch: int, total_steps: int):
    warmup = config.warmup_epochs * steps_per_epoch
    if config.schedule == "cosine":
        return CosineLRScheduler(optimizer, t_initial=total_steps, warmup_t=warmup, t_in_epochs=False)
    if config.schedule == "step":
        return StepLRScheduler(
            optimizer, decay_t=config.step_epochs * steps_per_epoch, decay_rate=0.1, warmup_t=warmup, t_in_epochs=False
        )
    raise VipriorsError(f"--schedule must be 'step' or 'cosine', got '{config.schedule}'.")


def train_student(config: StudentConfig, data_config: DataConfig) -> Path:
    """Train the student; return ``OUTPUT/final`` (the classifier of the last epoch, Hub-ready).

    ``OUTPUT/best`` holds the classifier with the best validation top-1.

    Raises:
        VipriorsError: bad configuration or data, a different run in the output folder, nothing to
            resume, or a non-finite loss (the last good checkpoint is kept).
    """
    output = Path(config.output)
    teacher = load_model_folder(config.teacher, expect="teacher") if config.teacher else None
    architecture = config.architecture or (family_architecture(config.teacher) if teacher is not None else None)
    if architecture is None:
        raise VipriorsError("Without --teacher, name the student's --architecture.")
    check_architecture(architecture)
    distill = teacher is not None and config.distill_weight > 0
    accelerator = start_run(output, config, data_config.seed)
    with accelerator.main_process_first():
        data = load_data(data_config)
    num_classes = len(data.class_names)
    student = student_from_teacher(architecture, teacher, num_classes, config.init)
    model = StudentWithConnectors(student, teacher if distill else None)
    frozen_teacher = FrozenTeacher(teacher).to(accelerator.device) if distill else None
    model_data_config = timm.data.resolve_data_config({}, model=student)
    stream = ExampleStream(
        data.splits["train"],
        student_train_transform(config.resolution, model_data_config, config.auto_augment),
        shuffle=True,
        seed=data_config.seed,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        batch_size=config.batch_size,
    )
    loader = ResumableLoader(stream, num_workers=config.num_workers, drop_last=True)
    steps_per_epoch, total_steps = plan_steps(
        len(loader), len(stream), config.batch_size, config.gradient_accumulation_steps, config.epochs, config.max_steps
    )
    mixup = (
        Mixup(
            mixup_alpha=config.mixup,
            cutmix_alpha=config.cutmix,
            label_smoothing=config.label_smoothing,
            num_classes=num_classes,
        )
        if config.mixup > 0 or config.cutmix > 0
        else None
    )
    sections = open_run(accelerator, output, {"data": data_config, "train": config}, config)
    criterion = SoftTargetCrossEntropy() if mixup else LabelSmoothingCrossEntropy(smoothing=config.label_smoothing)
    lr = scaled_lr(config.base_lr, config.batch_size, accelerator, config.gradient_accumulation_steps)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
    )
    scheduler = _scheduler(optimizer, config, steps_per_epoch, total_steps)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    if frozen_teacher is not None:
        frozen_teacher = frozen_teacher.to(memory_format=memory_format)
    model, optimizer = accelerator.prepare(model, optimizer)

    checkpoints = CheckpointManager(accelerator, output / "checkpoints")
    metrics = MetricsWriter(output / "metrics.jsonl", accelerator.is_main_process)
    guard = NonFiniteGuard(accelerator, model)
    step, best_top1, scores = 0, -1.0, {}
    if config.resume:
        checkpoint = checkpoints.latest()
        if checkpoint is None:
            raise VipriorsError(f"--resume: no complete checkpoint in {output / 'checkpoints'}.")
        _, progress = checkpoints.load(checkpoint)
        step, best_top1 = progress["step"], progress["best_top1"]
        loader.load_state_dict(progress["loader"])
        accelerator.print(f"Resumed from {checkpoint} at step {step}.")
    metrics.write(start_record(accelerator, config, config.batch_size, config.base_lr, lr, step, total_steps))
    scheduler.step_update(step)
    accelerator.init_trackers("student", config=tracker_config(sections))
    description = model_description("student", num_classes, document(sections)["data"])
    cfg = pretrained_cfg_for(
        architecture, "student", config.resolution, num_classes=num_classes, description=description
    )
    cfg["label_names"] = list(data.class_names)

    def export(folder: Path, scores: dict[str, float]) -> None:
        if accelerator.is_main_process:
            results = [{"split": "val", **scores}] if scores else []
            repo_id = hub_repo_id(architecture, "student")
            card = render_model_card(
                "student", architecture, document(sections), results, repo_id, None, num_classes, read_metrics(output)
            )
            student_model = accelerator.unwrap_model(model).student
            write_model_folder(student_model, folder, architecture, cfg, {"README.md": card}, repo_id=repo_id)

    distance = torch.compile(partial_l2) if config.compile_loss else partial_l2
    with tqdm(
        total=total_steps, initial=step, disable=not accelerator.is_local_main_process, desc="student"
    ) as progress_bar:
        model.train()
        window_start, window_images = time.perf_counter(), 0
        while step < total_steps:
            for images, labels in loader:
                epoch = step // steps_per_epoch
                images = images.to(accelerator.device, non_blocking=True, memory_format=memory_format)
                labels = labels.to(accelerator.device, non_blocking=True)
                targets = labels
                if mixup is not None:
                    images, targets = mixup(images, labels)
                distilling = distill and epoch >= config.no_distill_epochs
                with accelerator.accumulate(model):
                    with accelerator.autocast():
                        logits, connected = model(images)
                        cross_entropy = criterion(logits.float(), targets)
                        if distilling:
                            teacher_features = frozen_teacher(images)
                            margins = accelerator.unwrap_model(model).ofd.margins
                            distillation = config.distill_weight * ofd_loss(
                                connected, teacher_features, margins, distance=distance
                            )
                        else:
                            # Connectors join the graph with weight 0 so that DDP sees all parameters used.
                            distillation = 0.0 * sum((feature.sum() for feature in connected), logits.new_zeros(()))
                        loss = cross_entropy + distillation
                    accelerator.backward(loss)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                window_images += images.shape[0] * accelerator.num_processes
                if not accelerator.sync_gradients:
                    continue
                step += 1
                scheduler.step_update(step)
                guard.observe(loss, step)
                progress_bar.update(1)
                if step % config.log_every == 0 or step == total_steps:
                    guard.check(checkpoints, step)
                    loss_value = accelerator.reduce(loss.detach(), reduction="mean").item()
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "step": step,
                        "epoch": step / steps_per_epoch,
                        "loss": loss_value,
                        "cross_entropy": accelerator.reduce(cross_entropy.detach(), reduction="mean").item(),
                        "distillation": accelerator.reduce(distillation.detach().float(), reduction="mean").item(),
                        "lr": optimizer.param_groups[0]["lr"],
                        "images_per_second": window_images / elapsed,
                    }
                    metrics.write(record)
                    accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
                    progress_bar.set_postfix(loss=f"{loss_value:.3f}")
                    window_start, window_images = time.perf_counter(), 0
                end_of_epoch = step % steps_per_epoch == 0 or step == total_steps
                if end_of_epoch or step % config.checkpoint_every == 0:
                    guard.check(checkpoints, step)
                if end_of_epoch and "val" in data.splits:
                    scores = _validate(
                        accelerator.unwrap_model(model).student,
                        data.splits["val"],
                        config.resolution,
                        config,
                        accelerator,
                    )
                    metrics.write(
                        {"step": step, "epoch": step / steps_per_epoch, **{f"val_{k}": v for k, v in scores.items()}}
                    )
                    accelerator.log({f"val_{k}": v for k, v in scores.items()}, step=step)
                    if scores["top1"] > best_top1:
                        best_top1 = scores["top1"]
                        export(output / "best", scores)
                if step % config.checkpoint_every == 0 or end_of_epoch:
                    checkpoints.save(step, {}, {"step": step, "best_top1": best_top1, "loader": loader.state_dict()})
                if step >= total_steps:
                    break
    export(output / "final", scores)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output / "final"
