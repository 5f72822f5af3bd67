"""Teacher step throughput: the trainer's MoCo + margin step against one built from lightly's MoCo v2 blocks.

Ours is the teacher phase's optimizer step exactly as ``train-teacher`` runs it
(``vipriors_hub.train.loop.train_micro_step`` over ``TeacherPhase``). Both use the same timm
backbone, batch, resolution, SGD and queue size; they run in alternation for several rounds and the
median img/s of each is printed. Then the share of our step spent in the loss, the queue update and
the momentum update is measured.

    pip install -e ".[bench]"
    python benchmarks/teacher_step.py --architecture vipriors_resnet18 --resolution 64 --batch-size 64
"""

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from common import TrainerStep, synchronize, teacher_step
from lightly.loss import NTXentLoss
from lightly.models.modules import MoCoProjectionHead
from lightly.models.utils import batch_shuffle, batch_unshuffle, deactivate_requires_grad, update_momentum
from timm import create_model
from torch import nn


def ours(args: argparse.Namespace, accelerator: Accelerator) -> TrainerStep:
    return teacher_step(
        accelerator,
        architecture=args.architecture,
        resolution=args.resolution,
        batch_size=args.batch_size,
        queue_size=args.queue_size,
        shuffle_bn_groups=args.groups,
        channels_last=args.channels_last,
        lr=0.03,
    )


class LightlyMoCo(nn.Module):
    """MoCo v2 from lightly's blocks on the same timm backbone (lightly's example, with batch shuffle)."""

    def __init__(self, architecture: str) -> None:
        super().__init__()
        self.backbone = create_model(architecture, num_classes=0, zero_init_last=False)
        width = self.backbone.num_features
        self.projection_head = MoCoProjectionHead(width, width, 128)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(images))

    @torch.no_grad()
    def forward_momentum(self, images: torch.Tensor) -> torch.Tensor:
        shuffled, shuffle = batch_shuffle(images)
        keys = self.projection_head_momentum(self.backbone_momentum(shuffled))
        return batch_unshuffle(keys, shuffle)


def lightly_step(args: argparse.Namespace, accelerator: Accelerator) -> Callable[[tuple], None]:
    model = LightlyMoCo(args.architecture).to(accelerator.device, memory_format=args.memory_format)
    criterion = NTXentLoss(temperature=0.2, memory_bank_size=(args.queue_size, 128)).to(accelerator.device)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.03, momentum=0.9, weight_decay=1e-4
    )

    def run(batch: tuple) -> None:
        (images_q, images_k), _ = batch
        update_momentum(model.backbone, model.backbone_momentum, m=0.999)
        update_momentum(model.projection_head, model.projection_head_momentum, m=0.999)
        with accelerator.autocast():
            query = model(images_q)
            keys = model.forward_momentum(images_k)
        loss = criterion(query.float(), keys.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def images_per_second(step: Callable, batches: list, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    synchronize(device)
    return len(batches) * len(batches[0][1]) / (time.perf_counter() - start)


def overhead_share(step: TrainerStep, batches: list, device: torch.device) -> dict[str, float]:
    """Median time of our whole step and of its loss / queue / momentum parts (each part timed again
    on its own after the step, with the phase's own modules)."""
    phase = step.phase
    parts: dict[str, list[float]] = {"step": [], "loss": [], "queue": [], "momentum": []}
    for batch in batches:
        synchronize(device)
        start = time.perf_counter()
        step(batch)
        synchronize(device)
        t0 = time.perf_counter()
        phase.after_micro_step()
        synchronize(device)
        t1 = time.perf_counter()
        phase.after_optimizer_step()
        synchronize(device)
        t2 = time.perf_counter()
        query = F.normalize(torch.randn_like(phase.keys), dim=1).requires_grad_()
        phase.criterion(query, phase.keys, phase.queue.keys).backward()
        synchronize(device)
        t3 = time.perf_counter()
        parts["step"].append(t0 - start)
        parts["queue"].append(t1 - t0)
        parts["momentum"].append(t2 - t1)
        parts["loss"].append(t3 - t2)
    return {name: statistics.median(values) for name, values in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="vipriors_resnet18")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--queue-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--groups", type=int, default=2, help="our shuffle-BN chunks in one process")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--mixed-precision", default="no")
    args = parser.parse_args()
    args.memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=not torch.cuda.is_available())
    device = accelerator.device
    shape = (args.batch_size, 3, args.resolution, args.resolution)
    batches = [
        (
            (
                torch.randn(shape, device=device).contiguous(memory_format=args.memory_format),
                torch.randn(shape, device=device).contiguous(memory_format=args.memory_format),
            ),
            torch.zeros(args.batch_size, dtype=torch.long),
        )
        for _ in range(args.steps)
    ]
    steps = {"vipriors_hub": ours(args, accelerator), "lightly": lightly_step(args, accelerator)}
    for step in steps.values():
        step(batches[0])
    results: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            results[name].append(images_per_second(step, batches, device))
    print(
        f"{args.architecture}, {args.resolution} px, batch {args.batch_size}, queue {args.queue_size}, "
        f"{device}, mixed precision {args.mixed_precision}, channels_last {args.channels_last}"
    )
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, value in medians.items():
        print(f"{name:<14} {value:9.1f} img/s (median of {args.rounds} rounds x {args.steps} steps)")
    print(f"ratio vipriors_hub / lightly: {medians['vipriors_hub'] / medians['lightly']:.2f}")
    parts = overhead_share(steps["vipriors_hub"], batches, device)
    for name in ("loss", "queue", "momentum"):
        print(f"{name:<9} {1000 * parts[name]:8.3f} ms  {100 * parts[name] / parts['step']:5.2f}% of the step")
    share = (parts["loss"] + parts["queue"] + parts["momentum"]) / parts["step"]
    print(f"loss + queue + momentum: {100 * share:.2f}% of a {1000 * parts['step']:.1f} ms step")


if __name__ == "__main__":
    main()
