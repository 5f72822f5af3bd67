"""Atomic checkpoints of a run under ``OUTPUT/checkpoints/step-XXXXXXXX``, on every process."""

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import VipriorsError
from ..outputs import write_failure

__all__ = ["CHECKPOINT_NAME", "WRITE_ERRORS", "CheckpointManager"]

CHECKPOINT_NAME = re.compile(r"^step-(\d{8})$")
WRITE_ERRORS = (OSError, SafetensorError, RuntimeError)
"""What a write that the disk refused raises: ``OSError`` (open, pickle), ``SafetensorError``
(safetensors) and ``RuntimeError`` (``torch.save``'s stream writer)."""


class CheckpointManager:
    """Atomic ``accelerator.save_state`` checkpoints under ``OUTPUT/checkpoints/step-XXXXXXXX``.

    A checkpoint is written into a temporary folder and renamed once complete, so a kill during a
    save leaves the previous checkpoint intact and :meth:`latest` never returns a partial one; a
    write the disk refuses (full, quota, read-only) on any process removes the partial folder and
    stops the run with one line on every process. Besides accelerate's state, a checkpoint holds
    ``extra.safetensors`` (tensors outside the prepared objects, e.g. the key encoder and queue) and
    ``progress.json`` (counters, loader state).
    """

    def __init__(self, accelerator: Accelerator, directory: Path, keep: int = 2) -> None:
        self.accelerator = accelerator
        self.directory = directory
        self.keep = keep

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or ``None``."""
        if not self.directory.is_dir():
            return None
        complete = sorted(p for p in self.directory.iterdir() if CHECKPOINT_NAME.match(p.name) and p.is_dir())
        return complete[-1] if complete else None

    def _failed_anywhere(self, failed: bool) -> bool:
        """Whether a process failed to write its part (every process learns the same answer)."""
        if self.accelerator.num_processes == 1:
            return failed
        flag = torch.tensor([float(failed)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def save(self, step: int, tensors: Mapping[str, torch.Tensor], progress: Mapping[str, Any]) -> Path:
        """Save the accelerator state plus ``tensors`` and ``progress`` as checkpoint ``step``.

        Raises:
            VipriorsError: the disk refused a write on some process (the partial checkpoint is
                removed, the previous checkpoints are intact).
        """
        final = self.directory / f"step-{step:08d}"
        temporary = self.directory / f".partial-step-{step:08d}"
        error: BaseException | None = None
        if self.accelerator.is_main_process:
            shutil.rmtree(temporary, ignore_errors=True)
            try:
                temporary.mkdir(parents=True)
            except OSError as raised:
                error = raised
        if not self._failed_anywhere(error is not None):
            try:
                self.accelerator.save_state(str(temporary))
                if self.accelerator.is_main_process:
                    extra = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
                    save_file(extra, temporary / "extra.safetensors")
                    (temporary / "progress.json").write_text(json.dumps(dict(progress)))
            except WRITE_ERRORS as raised:
                error = raised
        if self._failed_anywhere(error is not None):
            if self.accelerator.is_main_process:
                shutil.rmtree(temporary, ignore_errors=True)
            last = self.latest()
            raise write_failure(
                f"checkpoint {final.name}",
                self.directory,
                error or OSError("another process could not write its part"),
                f"The partial checkpoint was removed; free space, then --resume continues from "
                f"{last.name if last else 'the start (no complete checkpoint yet)'}.",
            ) from error
        if self.accelerator.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(temporary, final)
            for old in sorted(p for p in self.directory.iterdir() if CHECKPOINT_NAME.match(p.name))[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return final

    def discard_after(self, step: int) -> list[Path]:
        """Delete this run's checkpoints of steps after ``step`` (main process): a run continued from an
        older checkpoint replaces its abandoned future, so that ``latest`` never returns to it."""
        later = [p for p in self.directory.glob("step-*") if CHECKPOINT_NAME.match(p.name) and int(p.name[5:]) > step]
        if self.accelerator.is_main_process:
            for path in later:
                shutil.rmtree(path, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return later

    def load(self, checkpoint: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Restore the accelerator state of ``checkpoint``; return its extra tensors and progress.

        Raises:
            VipriorsError: the folder is not a complete checkpoint of this package.
        """
        if not (checkpoint / "progress.json").is_file() or not (checkpoint / "extra.safetensors").is_file():
            raise VipriorsError(
                f"{checkpoint} is not a complete checkpoint (progress.json and extra.safetensors): "
                "resume from another one (--resume RUN continues from the newest)."
            )
        self.accelerator.load_state(str(checkpoint))
        tensors = load_file(checkpoint / "extra.safetensors", device=str(self.accelerator.device))
        return tensors, json.loads((checkpoint / "progress.json").read_text())
