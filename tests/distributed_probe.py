"""Run by ``torchrun --nproc_per_node 2`` from test_teacher.py: a few steps of the trainer's MoCo phase
on 2 CPU processes.

Each rank writes what it holds afterwards to ``OUT/rank{r}.safetensors`` for the test to compare.
"""

import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import save_file

from vipriors_hub.train.loop import train_micro_step
from vipriors_hub.train.moco import shuffled_key_forward
from vipriors_hub.train.phase import StepPosition
from vipriors_hub.train.prepare import prepare_phase
from vipriors_hub.train.run import step_generator
from vipriors_hub.train.teacher import TeacherConfig, TeacherPhase


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def main(out: Path) -> None:
    accelerator = Accelerator(cpu=True)
    rank = accelerator.process_index
    set_seed(0)
    config = TeacherConfig(
        architecture="vipriors_resnet_tiny",
        resolution=32,
        batch_size=3,
        projection_dim=16,
        queue_size=20,
        key_momentum=0.99,
        lr=0.1,
        gradient_accumulation_steps=1,
        cpu=True,
    )
    phase = TeacherPhase(config, accelerator, seed=0)
    model, optimizer, _ = prepare_phase(phase, config, accelerator, steps_per_epoch=4, total_steps=4)
    initial_key = flat(phase.key_encoder).clone()
    for step in range(4):
        generator = torch.Generator().manual_seed(1000 * rank + step)
        views = (torch.randn(3, 3, 32, 32, generator=generator), torch.randn(3, 3, 32, 32, generator=generator))
        train_micro_step(accelerator, phase, model, optimizer, (views, torch.zeros(3)), StepPosition(step, 0))
    queue, key = phase.queue, phase.key_encoder

    seen: list[torch.Tensor] = []

    def encode(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch)
        return batch.flatten(1)[:, :4] * 3

    images = torch.full((4, 1, 2, 2), float(rank)) + torch.arange(4.0)[:, None, None, None] / 10
    shuffled = shuffled_key_forward(encode, images, accelerator, step_generator(0, 99))
    save_file(
        {
            "queue": queue.keys,
            "pointer": queue.pointer.reshape(1),
            "last_local_keys": phase.keys,
            "query_params": flat(model),
            "key_params": flat(key),
            "initial_key_params": initial_key,
            "shuffle_round_trip_error": (shuffled - images.flatten(1)[:, :4] * 3).abs().max().reshape(1),
            "shuffle_saw_ranks": torch.unique(seen[0].flatten().floor()),
        },
        str(out / f"rank{rank}.safetensors"),
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
