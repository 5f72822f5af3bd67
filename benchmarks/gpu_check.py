"""GPU check: teacher and student steps of ResNet-50 at 224 px, bf16 + channels_last against fp32.

For each precision it runs a few hundred steps of the phase-1 step (MoCo + margin loss, queue,
momentum encoder, shuffle-BN) and of the phase-2 step (student + frozen teacher + OFD +
label-smoothed cross-entropy) on a fixed pool of synthetic batches, and prints img/s, peak GPU
memory, and whether the loss stayed finite and went down. With more than one GPU it also runs
the teacher step in one process per GPU and checks that the queue and the weights agree.
Each precision runs in its own process (accelerate fixes the precision once per process).

    python benchmarks/gpu_check.py                       # on a CUDA machine, under 5 minutes on one H100
    python benchmarks/gpu_check.py --dry-run             # tiny model on CPU: checks the script itself
    python benchmarks/gpu_check.py --json-out results.json
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import timm
import torch
from accelerate import Accelerator

import vipriors_hub  # noqa: F401  (registers the family)
from vipriors_hub.losses import ofd_loss
from vipriors_hub.train.distill import FrozenTeacher, StudentWithConnectors, student_from_teacher
from vipriors_hub.train.loop import step_generator
from vipriors_hub.train.moco import KeyQueue, build_key_encoder, build_query_encoder, contrastive_step, momentum_update


def synthetic_pool(args: argparse.Namespace, device: torch.device, memory_format: torch.memory_format) -> list:
    """A few fixed batches (images, labels): the steps cycle through them, so the losses can go down."""
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 3, args.resolution, args.resolution)
    return [
        (
            torch.randn(shape, generator=generator).to(device).contiguous(memory_format=memory_format),
            torch.randint(0, args.classes, (args.batch_size,), generator=generator).to(device),
        )
        for _ in range(args.pool)
    ]


def teacher_step(args: argparse.Namespace, accelerator: Accelerator, memory_format: torch.memory_format):
    query = build_query_encoder(args.architecture).to(accelerator.device, memory_format=memory_format)
    key = build_key_encoder(query)
    queue = KeyQueue(args.queue_size, 128).to(accelerator.device)
    optimizer = torch.optim.SGD(query.parameters(), lr=0.03 * args.batch_size / 256, momentum=0.9, weight_decay=1e-4)
    query, optimizer = accelerator.prepare(query, optimizer)
    state = {"step": 0}

    def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(images) * 0.1
        out = contrastive_step(
            query,
            key,
            queue,
            images + noise,
            images.flip(-1) - noise,
            accelerator,
            step_generator(0, state["step"]),
            0.4,
            0.2,
        )
        accelerator.backward(out.loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        queue.enqueue(accelerator.gather(out.keys))
        momentum_update(accelerator.unwrap_model(query), key, 0.99)
        state["step"] += 1
        return out.loss.detach()

    return step, (query, key, queue)


def student_step(args: argparse.Namespace, accelerator: Accelerator, memory_format: torch.memory_format):
    teacher = timm.create_model(args.architecture, num_classes=0, zero_init_last=False)
    model = StudentWithConnectors(student_from_teacher(args.architecture, teacher, args.classes, "teacher"), teacher)
    model = model.to(accelerator.device, memory_format=memory_format)
    frozen = FrozenTeacher(teacher).to(accelerator.device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1 * args.batch_size / 256, momentum=0.9, nesterov=True)
    model, optimizer = accelerator.prepare(model, optimizer)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

    def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with accelerator.autocast():
            logits, connected = model(images)
            margins = accelerator.unwrap_model(model).ofd.margins
            loss = criterion(logits.float(), labels) + 1e-4 * ofd_loss(connected, frozen(images), margins)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step, (model,)


def run_steps(step, pool: list, steps: int, warmup: int, device: torch.device, batch_size: int) -> dict:
    """Warm up, then time ``steps`` steps: img/s (this process), peak memory, loss checks."""
    for index in range(warmup):
        step(*pool[index % len(pool)])
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    losses = []
    start = time.perf_counter()
    for index in range(steps):
        losses.append(step(*pool[index % len(pool)]))
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    values = torch.stack(losses).float().cpu()
    window = max(1, steps // 5)
    return {
        "images_per_second": steps * batch_size / elapsed,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0,
        "loss_first": values[:window].mean().item(),
        "loss_last": values[-window:].mean().item(),
        "loss_finite": bool(torch.isfinite(values).all()),
        "loss_decreasing": bool(values[-window:].mean() < values[window : 2 * window].mean()),
    }


def one_precision(args: argparse.Namespace) -> dict:
    """Teacher and student steps in this process, at ``args.precision``."""
    cpu = args.dry_run or not torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision="no" if cpu else args.precision, cpu=cpu)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    pool = synthetic_pool(args, accelerator.device, memory_format)
    results = {
        "precision": accelerator.mixed_precision,
        "channels_last": args.channels_last,
        "processes": accelerator.num_processes,
    }
    for name, build in (("teacher", teacher_step), ("student", student_step)):
        torch.manual_seed(0)
        step, modules = build(args, accelerator, memory_format)
        results[name] = run_steps(step, pool, args.steps, args.warmup, accelerator.device, args.batch_size)
        if name == "teacher" and accelerator.num_processes > 1:
            query, key, queue = modules
            gathered = accelerator.gather(queue.keys[None]).cpu()
            weights = accelerator.gather(torch.cat([p.detach().flatten()[:1000] for p in key.parameters()])[None])
            results["teacher"]["queues_agree"] = bool((gathered == gathered[0]).all())
            results["teacher"]["key_weights_agree"] = bool((weights == weights[0]).all())
        del step, modules
        if accelerator.device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny model, 32 px, a few steps, on CPU")
    parser.add_argument("--architecture", default="vipriors_resnet50")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--queue-size", type=int, help="default: (pool - 1) x batch, so no image meets itself")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--pool", type=int, default=4, help="fixed synthetic batches cycled through")
    parser.add_argument("--precision", help="run one precision in this process (internal)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json-out", help="also write the results here")
    args = parser.parse_args()
    if args.dry_run:
        args.architecture, args.resolution, args.batch_size = "vipriors_resnet_tiny", 32, 8
        args.classes, args.steps, args.warmup = 10, 10, 2
    args.queue_size = args.queue_size or (args.pool - 1) * args.batch_size
    if args.precision:
        print(json.dumps(one_precision(args)))
        return

    results = []
    passed = sys.argv[1:]
    if "--json-out" in passed:
        index = passed.index("--json-out")
        passed = passed[:index] + passed[index + 2 :]
    base = [sys.executable, os.path.abspath(__file__), *passed]
    for precision in ("bf16", "no"):
        output = subprocess.run([*base, "--precision", precision], capture_output=True, text=True, check=True)
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    gpus = torch.cuda.device_count()
    if gpus > 1 and not args.dry_run:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"]
        command += [os.path.abspath(__file__), "--precision", "bf16", "--steps", "30"]
        output = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append({**json.loads(output.stdout.strip().splitlines()[-1]), "note": f"{gpus} processes"})

    device = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.dry_run else "cpu"
    print(
        f"{args.architecture}, {args.resolution} px, batch {args.batch_size} per process, {args.steps} steps, {device}"
    )
    header = f"{'phase':<8} {'precision':<10} {'procs':>5} {'img/s':>9} {'peak GiB':>9}"
    print(f"{header} {'loss first':>10} {'last':>7}  checks")
    for result in results:
        for phase in ("teacher", "student"):
            r = result[phase]
            checks = "finite" if r["loss_finite"] else "NON-FINITE"
            checks += ", decreasing" if r["loss_decreasing"] else ", not decreasing"
            for flag in ("queues_agree", "key_weights_agree"):
                if flag in r:
                    checks += f", {flag}={r[flag]}"
            precision = result["precision"] if result["precision"] != "no" else "fp32/tf32"
            print(
                f"{phase:<8} {precision:<10} {result['processes']:>5} {r['images_per_second']:>9.1f} "
                f"{r['peak_memory_gib']:>9.2f} {r['loss_first']:>10.3f} {r['loss_last']:>7.3f}  {checks}"
            )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"device": device, "results": results}, indent=2))
    ok = all(r[p]["loss_finite"] for r in results for p in ("teacher", "student"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
