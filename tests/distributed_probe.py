"""Run by ``torchrun --nproc_per_node 2`` from test_teacher.py: a few MoCo steps on 2 CPU processes.

Each rank writes what it holds afterwards to ``OUT/rank{r}.safetensors`` for the test to compare.
"""

import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import save_file

from vipriors_hub.train.loop import step_generator
from vipriors_hub.train.moco import (
    KeyQueue,
    build_key_encoder,
    build_query_encoder,
    contrastive_step,
    momentum_update,
    shuffled_key_forward,
)


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def main(out: Path) -> None:
    accelerator = Accelerator(cpu=True)
    rank = accelerator.process_index
    set_seed(0)
    query = build_query_encoder("vipriors_resnet_tiny", projection_dim=16)
    key = build_key_encoder(query)
    queue = KeyQueue(size=20, dim=16)
    optimizer = torch.optim.SGD(query.parameters(), lr=0.1, momentum=0.9)
    query, optimizer = accelerator.prepare(query, optimizer)
    initial_key = flat(key).clone()
    for step in range(4):
        generator = torch.Generator().manual_seed(1000 * rank + step)
        images_q = torch.randn(3, 3, 32, 32, generator=generator)
        images_k = torch.randn(3, 3, 32, 32, generator=generator)
        out_step = contrastive_step(
            query, key, queue, images_q, images_k, accelerator, step_generator(0, step), 0.4, 0.2
        )
        accelerator.backward(out_step.loss)
        optimizer.step()
        optimizer.zero_grad()
        queue.enqueue(accelerator.gather(out_step.keys))
        momentum_update(accelerator.unwrap_model(query), key, 0.99)

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
            "last_local_keys": out_step.keys,
            "query_params": flat(query),
            "key_params": flat(key),
            "initial_key_params": initial_key,
            "shuffle_round_trip_error": (shuffled - images.flatten(1)[:, :4] * 3).abs().max().reshape(1),
            "shuffle_saw_ranks": torch.unique(seen[0].flatten().floor()),
        },
        str(out / f"rank{rank}.safetensors"),
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
