"""Phase 1: the MoCo v2 teacher trained with the margin contrastive loss, on ``accelerate``.

Runs on CPU, one GPU or many: ``vipriors-hub train-teacher ...`` or
``accelerate launch -m vipriors_hub train-teacher ...``. The learning rate follows the linear
scaling rule ``base_lr * effective_batch / 256`` with ``effective_batch = batch_size x processes x
gradient_accumulation_steps`` (MoCo v2: 0.03 for 256).
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from timm.scheduler import CosineLRScheduler
from tqdm.auto import tqdm

from ..data import DataConfig, ExampleStream, ResumableLoader, load_data, moco_v2_transform
from ..errors import VipriorsError
from ..models import hub_repo_id
from .hub import model_description, pretrained_cfg_for, render_model_card, write_model_folder
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
    step_generator,
    tracker_config,
)
from .moco import KeyQueue, build_key_encoder, build_query_encoder, contrastive_step, momentum_update

__all__ = ["TeacherConfig", "train_teacher"]


@dataclass
class TeacherConfig(RunSettings):
    """Phase-1 settings; defaults are the paper's (MoCo v2 + margin 0.4, queue 4096, 800 epochs)."""

    output: str = field(default="runs/teacher", metadata={"help": "output folder"})
    architecture: str = field(default="vipriors_resnet50", metadata={"help": "a vipriors_* model"})
    resolution: int = field(default=224, metadata={"help": "input size in px", "min": 8, "max": 4096})
    epochs: int = field(default=800, metadata={"help": "training epochs", "min": 1})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps", "min": 1})
    batch_size: int = field(default=256, metadata={"help": "images per process and step", "min": 1})
    base_lr: float = field(
        default=0.03, metadata={"help": "SGD learning rate for an effective batch of 256", "above": 0}
    )
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum", "min": 0, "below": 1})
    weight_decay: float = field(default=1e-4, metadata={"help": "SGD weight decay", "min": 0})
    temperature: float = field(default=0.2, metadata={"help": "softmax temperature T", "above": 0})
    margin: float = field(default=0.4, metadata={"help": "margin m subtracted from the positive logit", "min": 0})
    queue_size: int = field(
        default=4096, metadata={"help": "negative keys in the queue; 0: in-batch negatives", "min": 0, "max": 2**20}
    )
    key_momentum: float = field(default=0.999, metadata={"help": "momentum of the key encoder", "min": 0, "max": 1})
    projection_dim: int = field(
        default=128, metadata={"help": "output dimension of the MLP head", "min": 1, "max": 65536}
    )
    shuffle_bn_groups: int = field(
        default=2, metadata={"help": "one process: key batch chunks for shuffle-BN", "min": 1, "max": 256}
    )


def train_teacher(config: TeacherConfig, data_config: DataConfig) -> Path:
    """Train the teacher; return ``OUTPUT/final`` (backbone without head, Hub-ready).

    Raises:
        VipriorsError: bad configuration or data, a different run in the output folder, nothing to
            resume, or a non-finite loss (the last good checkpoint is kept).
    """
    output = Path(config.output)
    check_architecture(config.architecture)
    accelerator = start_run(output, config, data_config.seed)

    with accelerator.main_process_first():
        data = load_data(data_config)
    query_encoder = build_query_encoder(config.architecture, config.projection_dim)
    key_encoder = build_key_encoder(query_encoder)
    queue = KeyQueue(config.queue_size, config.projection_dim) if config.queue_size > 0 else None
    model_data_config = timm.data.resolve_data_config({}, model=query_encoder[0])
    stream = ExampleStream(
        data.splits["train"],
        moco_v2_transform(config.resolution, model_data_config),
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
    sections = open_run(accelerator, output, {"data": data_config, "train": config}, config)
    lr = scaled_lr(config.base_lr, config.batch_size, accelerator, config.gradient_accumulation_steps)
    optimizer = torch.optim.SGD(
        query_encoder.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = CosineLRScheduler(optimizer, t_initial=total_steps, lr_min=0.0, t_in_epochs=False)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    query_encoder = query_encoder.to(memory_format=memory_format)
    key_encoder = key_encoder.to(accelerator.device, memory_format=memory_format)
    if queue is not None:
        queue = queue.to(accelerator.device)
    query_encoder, optimizer = accelerator.prepare(query_encoder, optimizer)

    checkpoints = CheckpointManager(accelerator, output / "checkpoints")
    metrics = MetricsWriter(output / "metrics.jsonl", accelerator.is_main_process)
    guard = NonFiniteGuard(accelerator, query_encoder)
    step = micro_step = 0
    if config.resume:
        checkpoint = checkpoints.latest()
        if checkpoint is None:
            raise VipriorsError(f"--resume: no complete checkpoint in {output / 'checkpoints'}.")
        tensors, progress = checkpoints.load(checkpoint)
        key_encoder.load_state_dict({k[len("key_encoder.") :]: v for k, v in tensors.items() if k.startswith("key_")})
        if queue is not None:
            queue.load_state_dict({k[len("queue.") :]: v for k, v in tensors.items() if k.startswith("queue.")})
        step, micro_step = progress["step"], progress["micro_step"]
        loader.load_state_dict(progress["loader"])
        accelerator.print(f"Resumed from {checkpoint} at step {step}.")
    metrics.write(start_record(accelerator, config, config.batch_size, config.base_lr, lr, step, total_steps))
    scheduler.step_update(step)
    accelerator.init_trackers("teacher", config=tracker_config(sections))

    def save_checkpoint() -> None:
        tensors = {f"key_encoder.{k}": v for k, v in key_encoder.state_dict().items()}
        if queue is not None:
            tensors.update({f"queue.{k}": v for k, v in queue.state_dict().items()})
        progress = {"step": step, "micro_step": micro_step, "loader": loader.state_dict()}
        checkpoints.save(step, tensors, progress)

    with tqdm(
        total=total_steps, initial=step, disable=not accelerator.is_local_main_process, desc="teacher"
    ) as progress_bar:
        query_encoder.train()
        key_encoder.train()
        window_start, window_images = time.perf_counter(), 0
        while step < total_steps:
            for (images_q, images_k), _ in loader:
                images_q = images_q.to(accelerator.device, non_blocking=True, memory_format=memory_format)
                images_k = images_k.to(accelerator.device, non_blocking=True, memory_format=memory_format)
                with accelerator.accumulate(query_encoder):
                    loss, logits, target, keys = contrastive_step(
                        query_encoder,
                        key_encoder,
                        queue,
                        images_q,
                        images_k,
                        accelerator,
                        step_generator(data_config.seed, micro_step),
                        config.margin,
                        config.temperature,
                        config.shuffle_bn_groups,
                    )
                    accelerator.backward(loss)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                if queue is not None:
                    queue.enqueue(accelerator.gather(keys))
                micro_step += 1
                window_images += images_q.shape[0] * accelerator.num_processes
                if not accelerator.sync_gradients:
                    continue
                momentum_update(accelerator.unwrap_model(query_encoder), key_encoder, config.key_momentum)
                step += 1
                scheduler.step_update(step)
                guard.observe(loss, step)
                progress_bar.update(1)
                if step % config.log_every == 0 or step == total_steps:
                    guard.check(checkpoints, step)
                    loss_value = accelerator.reduce(loss.detach(), reduction="mean").item()
                    accuracy = accelerator.reduce((logits.argmax(dim=1) == target).float().mean(), reduction="mean")
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "step": step,
                        "epoch": step / steps_per_epoch,
                        "loss": loss_value,
                        "contrastive_accuracy": accuracy.item(),
                        "lr": optimizer.param_groups[0]["lr"],
                        "images_per_second": window_images / elapsed,
                    }
                    metrics.write(record)
                    accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
                    progress_bar.set_postfix(loss=f"{loss_value:.3f}", acc=f"{record['contrastive_accuracy']:.2f}")
                    window_start, window_images = time.perf_counter(), 0
                if step % config.checkpoint_every == 0 or step % steps_per_epoch == 0 or step == total_steps:
                    guard.check(checkpoints, step)
                    save_checkpoint()
                if step >= total_steps:
                    break

    final = output / "final"
    if accelerator.is_main_process:
        backbone = accelerator.unwrap_model(query_encoder)[0]
        repo_id = hub_repo_id(config.architecture, "teacher")
        card = render_model_card("teacher", config.architecture, document(sections), [], repo_id)
        description = model_description("teacher", 0, document(sections)["data"])
        write_model_folder(
            backbone,
            final,
            config.architecture,
            pretrained_cfg_for(config.architecture, "teacher", config.resolution, description=description),
            extra_files={"README.md": card},
            repo_id=repo_id,
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final
