"""Divergence guard of a run: a non-finite loss or exploding weights stop it before a checkpoint keeps them."""

import torch
from accelerate import Accelerator

from ..errors import VipriorsError
from .checkpoints import CheckpointManager

__all__ = ["NonFiniteGuard"]


class NonFiniteGuard:
    """Watches a run for divergence without a host synchronisation per step.

    ``observe`` records the first step with a NaN / inf loss in a device tensor. ``check`` (called
    when the trainer synchronises anyway: logging, before a checkpoint, at the end) stops the run
    with a sentence naming that step, or when the weights are no longer finite or their norm grew
    past ``growth_limit`` times the norm at the start (a loss can stay finite while the weights
    explode: MoCo's normalised embeddings hide them), before a checkpoint could store them.
    """

    def __init__(self, accelerator: Accelerator, model: torch.nn.Module, growth_limit: float = 100.0) -> None:
        self.accelerator = accelerator
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.growth_limit = growth_limit
        self.start_norm = float(self.weight_norm())
        self.first_bad = torch.full((1,), -1, dtype=torch.long, device=accelerator.device)

    @torch.no_grad()
    def weight_norm(self) -> torch.Tensor:
        """The L2 norm of all trainable weights (a device scalar)."""
        return torch.nn.utils.get_total_norm(self.parameters, norm_type=2.0)

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Remember ``step`` if ``loss`` (a scalar tensor) is not finite and no earlier step was."""
        bad = ~torch.isfinite(loss.detach()).reshape(1) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad)

    def check(self, checkpoints: CheckpointManager, step: int) -> None:
        """Raise if any process saw a non-finite loss, or the weights diverged; the last good
        checkpoint is kept."""
        norm = self.weight_norm().reshape(1).to(self.first_bad.device, torch.float64)
        first, largest = (
            self.accelerator.gather(torch.cat([self.first_bad.double(), norm])).view(-1, 2).max(dim=0).values
        )
        last_good = checkpoints.latest() or "none"
        if first >= 0:
            raise VipriorsError(
                f"The loss became non-finite at step {int(first)}; training stopped. "
                f"Last good checkpoint: {last_good}. Lower the learning rate (--resume --base-lr ...) or check data."
            )
        if not torch.isfinite(largest) or largest > self.growth_limit * self.start_norm:
            raise VipriorsError(
                f"The weights diverged by step {step} (norm {float(largest):.3g}, {self.start_norm:.3g} at the start); "
                f"training stopped. Last good checkpoint: {last_good}. "
                "Lower the learning rate (--resume --base-lr ...)."
            )
