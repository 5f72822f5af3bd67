"""Distillation overhead: OFD + cross-entropy step time over a plain cross-entropy step.

The same student, batch and resolution; the two steps alternate for several rounds. The floor
is about 1 + the share of the frozen teacher's forward pass, also printed.

    python benchmarks/distill_step.py --architecture vipriors_resnet18 --resolution 64 --batch-size 64
"""

import argparse
import statistics
import time
from collections.abc import Callable

import timm
import torch
from accelerate import Accelerator

import vipriors_hub  # noqa: F401  (registers the family)
from vipriors_hub.losses import ofd_loss
from vipriors_hub.train.distill import FrozenTeacher, StudentWithConnectors, student_from_teacher


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_per_step(step: Callable[[torch.Tensor, torch.Tensor], None], batches: list, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for images, labels in batches:
        step(images, labels)
    synchronize(device)
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="vipriors_resnet18")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--mixed-precision", default="no")
    args = parser.parse_args()
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=not torch.cuda.is_available())
    device = accelerator.device
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    teacher = timm.create_model(args.architecture, num_classes=0)
    distilled = StudentWithConnectors(
        student_from_teacher(args.architecture, teacher, args.classes, "teacher"), teacher
    )
    distilled = distilled.to(device, memory_format=memory_format)
    frozen = FrozenTeacher(teacher).to(device, memory_format=memory_format)
    plain = timm.create_model(args.architecture, num_classes=args.classes).to(device, memory_format=memory_format)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizers = {
        name: torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        for name, model in (("distil", distilled), ("plain", plain))
    }

    def distil_step(images: torch.Tensor, labels: torch.Tensor) -> None:
        with accelerator.autocast():
            logits, connected = distilled(images)
            loss = criterion(logits.float(), labels) + 1e-4 * ofd_loss(connected, frozen(images), distilled.ofd.margins)
        loss.backward()
        optimizers["distil"].step()
        optimizers["distil"].zero_grad(set_to_none=True)

    def plain_step(images: torch.Tensor, labels: torch.Tensor) -> None:
        with accelerator.autocast():
            loss = criterion(plain(images).float(), labels)
        loss.backward()
        optimizers["plain"].step()
        optimizers["plain"].zero_grad(set_to_none=True)

    def teacher_forward(images: torch.Tensor, labels: torch.Tensor) -> None:
        with accelerator.autocast():
            frozen(images)

    shape = (args.batch_size, 3, args.resolution, args.resolution)
    batches = [
        (
            torch.randn(shape, device=device).contiguous(memory_format=memory_format),
            torch.randint(0, args.classes, (args.batch_size,), device=device),
        )
        for _ in range(args.steps)
    ]
    steps = {"distil": distil_step, "plain": plain_step, "teacher forward": teacher_forward}
    for step in steps.values():
        step(*batches[0])
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(seconds_per_step(step, batches, device))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"{args.architecture}, {args.resolution} px, batch {args.batch_size}, {device}, "
        f"mixed precision {args.mixed_precision}, channels_last {args.channels_last}"
    )
    for name, value in median.items():
        print(f"{name:<16} {1000 * value:9.1f} ms/step  {args.batch_size / value:8.1f} img/s")
    print(f"distil / plain step time: {median['distil'] / median['plain']:.3f}")
    print(f"floor 1 + teacher forward / plain: {1 + median['teacher forward'] / median['plain']:.3f}")


if __name__ == "__main__":
    main()
