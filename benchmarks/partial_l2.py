"""OFD's partial L2 over the four stage features: forward + backward time of its formulations.

* reference: the textbook formula, ``((s - t)^2 * mask).sum()`` with an explicit mask;
* ours: :func:`vipriors_hub.losses.partial_l2`, ``mse(max(s, floor), t)``;
* each also under ``torch.compile`` (what ``train-student --compile-loss`` uses).

    python benchmarks/partial_l2.py --architecture vipriors_resnet50 --resolution 224 --batch-size 256
"""

import argparse
import statistics
import time

import timm
import torch

import vipriors_hub  # noqa: F401  (registers the family)
from vipriors_hub.losses import partial_l2
from vipriors_hub.models import stage_channels


def reference_partial_l2(student: torch.Tensor, teacher: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """The formula as written in the OFD paper, for comparison."""
    student, teacher = student.float(), teacher.float()
    target = torch.maximum(teacher, margin.view(1, -1, 1, 1))
    mask = (student > target) | (target > 0)
    return ((student - target).square() * mask).sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="vipriors_resnet50")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = timm.create_model(args.architecture, num_classes=0)
    reductions = [i["reduction"] for i in model.feature_info if i["module"].startswith("layer")]
    shapes = [
        (args.batch_size, c, args.resolution // r, args.resolution // r)
        for c, r in zip(stage_channels(model), reductions, strict=True)
    ]
    variants = {"reference": reference_partial_l2, "ours": partial_l2}
    if not args.no_compile:
        variants.update({f"{name}, compiled": torch.compile(fn) for name, fn in list(variants.items())})
    generator = torch.Generator().manual_seed(0)
    students = [torch.randn(s, generator=generator).to(device, dtype).requires_grad_() for s in shapes]
    teachers = [torch.randn(s, generator=generator).to(device, dtype) for s in shapes]
    margins = [-torch.rand(s[1], generator=generator).to(device) for s in shapes]
    print(f"{args.architecture} stage features at {args.resolution} px, batch {args.batch_size}, {device}, {dtype}")
    for name, fn in variants.items():

        def run(function=fn) -> float:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            sum(function(s, t, m) for s, t, m in zip(students, teachers, margins, strict=True)).backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start

        for _ in range(3):
            run()
        times = [run() for _ in range(args.repeats)]
        print(f"{name:<22} {1000 * statistics.median(times):8.2f} ms forward + backward (median of {args.repeats})")


if __name__ == "__main__":
    main()
