"""Distillation overhead: OFD + cross-entropy step time over a plain cross-entropy step.

Both are the student phase's optimizer step exactly as ``train-student`` runs it
(``train_micro_step`` over ``StudentPhase``): distilling from a teacher from the first step, and
from scratch without a teacher (the baseline). The same student, batch and resolution; the two
steps alternate for several rounds. The floor is about 1 + the share of the frozen teacher's
forward pass, also printed.

    python benchmarks/distill_step.py --architecture vipriors_resnet18 --resolution 64 --batch-size 64
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from accelerate import Accelerator
from common import random_teacher, student_step, synchronize


def seconds_per_step(step: Callable[[tuple], object], batches: list, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
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
    parser.add_argument("--compile-loss", action="store_true", help="train-student --compile-loss")
    args = parser.parse_args()
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=not torch.cuda.is_available())
    device = accelerator.device
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    common = dict(
        architecture=args.architecture,
        resolution=args.resolution,
        batch_size=args.batch_size,
        channels_last=args.channels_last,
        compile_loss=args.compile_loss,
        lr=0.01,
    )
    distil = student_step(accelerator, args.classes, random_teacher(args.architecture), **common)
    plain = student_step(accelerator, args.classes, None, init="scratch", distill_weight=0.0, **common)

    def teacher_forward(batch: tuple) -> None:
        with accelerator.autocast():
            distil.phase.teacher(batch[0].to(device))

    shape = (args.batch_size, 3, args.resolution, args.resolution)
    batches = [
        (
            torch.randn(shape, device=device).contiguous(memory_format=memory_format),
            torch.randint(0, args.classes, (args.batch_size,), device=device),
        )
        for _ in range(args.steps)
    ]
    steps = {"distil": distil, "plain": plain, "teacher forward": teacher_forward}
    for step in steps.values():
        step(batches[0])
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
