"""MoCo v2 building blocks: projection head, momentum encoder, key queue and shuffle-BN.

The query encoder (backbone + head) is the only module trained by the optimizer; the key encoder
and the queue live outside of it, so that DDP neither wraps nor broadcasts them.
"""

import copy
from collections.abc import Callable

import timm
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import Tensor, nn

from ..models.family import constructor_takes

__all__ = [
    "KeyQueue",
    "build_key_encoder",
    "build_query_encoder",
    "momentum_update",
    "shuffled_key_forward",
]


def build_query_encoder(architecture: str, projection_dim: int = 128, **model_kwargs: object) -> nn.Sequential:
    """Backbone of the family without classifier, followed by MoCo v2's MLP head.

    Returns ``nn.Sequential(backbone, head)``: images ``(B, 3, H, W)`` -> embeddings ``(B, projection_dim)``
    (not normalised). The head is ``Linear(F, F) - ReLU - Linear(F, projection_dim)`` with ``F`` the
    backbone's ``num_features``. As in MoCo, the last BatchNorm of each residual branch starts at
    one, not at timm's zero (``zero_init_last=False``, for members whose constructor takes it):
    with zero-initialised branches all images start with nearly the same embedding and the
    contrastive task barely gets going on small data.
    """
    if constructor_takes(architecture, "zero_init_last"):
        model_kwargs.setdefault("zero_init_last", False)
    backbone = timm.create_model(architecture, num_classes=0, **model_kwargs)
    width = backbone.num_features
    head = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, projection_dim))
    return nn.Sequential(backbone, head)


def build_key_encoder(query_encoder: nn.Module) -> nn.Module:
    """A frozen copy of the query encoder, updated only by :func:`momentum_update`."""
    key_encoder = copy.deepcopy(query_encoder)
    key_encoder.requires_grad_(False)
    return key_encoder


@torch.no_grad()
def momentum_update(query_encoder: nn.Module, key_encoder: nn.Module, momentum: float) -> None:
    """``key = momentum * key + (1 - momentum) * query`` over all parameters, in one fused call."""
    query_params = [p.detach() for p in query_encoder.parameters()]
    key_params = list(key_encoder.parameters())
    torch._foreach_lerp_(key_params, query_params, 1.0 - momentum)


class KeyQueue(nn.Module):
    """FIFO queue of ``size`` L2-normalised keys of dimension ``dim`` (MoCo's dictionary).

    Any size works: there is no ``size % batch == 0`` condition, a partial last batch wraps around.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        """Number of keys held."""
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Replace the oldest entries with ``keys`` ``(N, dim)``, wrapping around the end."""
        count = keys.shape[0]
        if count > self.size:
            keys = keys[-self.size :]
        slots = (self.pointer + count - keys.shape[0] + torch.arange(keys.shape[0], device=keys.device)) % self.size
        self.keys.index_copy_(0, slots, keys.to(self.keys.dtype))
        self.pointer.copy_((self.pointer + count) % self.size)


@torch.no_grad()
def shuffled_key_forward(
    encode: Callable[[Tensor], Tensor],
    images: Tensor,
    accelerator: Accelerator,
    generator: torch.Generator,
    groups: int = 2,
) -> Tensor:
    """Compute keys with shuffle-BN, so BatchNorm statistics cannot leak which key matches which query.

    With several processes (MoCo's scheme) the key images of all processes are gathered, permuted
    with a permutation every process draws identically from ``generator``, encoded in slices (one per
    process, so each BatchNorm sees a random mix of the global batch), and put back in order. In one
    process the batch is permuted and encoded in ``groups`` chunks, each with its own BatchNorm
    statistics, which emulates ``groups`` devices.

    Args:
        encode: images ``(b, 3, H, W)`` -> keys ``(b, D)``.
        images: this process's key images ``(B, 3, H, W)`` (the same ``B`` on every process).
        generator: seeded identically on every process.

    Returns:
        keys ``(B, D)`` in the order of ``images``.
    """
    batch = images.shape[0]
    if accelerator.num_processes > 1:
        everything = accelerator.gather(images.contiguous())
        permutation = torch.randperm(everything.shape[0], generator=generator).to(images.device, non_blocking=True)
        mine = slice(accelerator.process_index * batch, (accelerator.process_index + 1) * batch)
        keys = accelerator.gather(encode(everything[permutation][mine]).contiguous())
        return keys[torch.argsort(permutation)][mine]
    permutation = torch.randperm(batch, generator=generator).to(images.device, non_blocking=True)
    chunks = torch.chunk(images[permutation], max(1, min(groups, batch)))
    keys = torch.cat([encode(chunk) for chunk in chunks])
    return keys[torch.argsort(permutation)]
