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
from .consensus import raise_on_any

__all__ = ["CHECKPOINT_NAME", "CheckpointManager", "is_write_error"]

CHECKPOINT_NAME = re.compile(r"^step-(\d{8})$")


_WRITER_MARKS = ("write", "iostream", "inline_container", "stream", "file", "space")
"""Words of the errors that torch's stream writer raises when the disk refuses it: on a full disk
``torch.save`` raises ``RuntimeError('basic_ios::clear: iostream error')``, then ``[enforce fail at
inline_container.cc] . unexpected pos ...`` while closing the archive, neither an ``OSError``."""


def is_write_error(error: BaseException) -> bool:
    """Whether ``error`` is a write the disk refused: ``OSError`` (open, pickle, rename),
    ``SafetensorError`` (safetensors) or a ``RuntimeError`` of ``torch.save``'s stream writer; any
    other error (a CUDA fault, a bug) is not."""
    if isinstance(error, OSError | SafetensorError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(mark in text for mark in _WRITER_MARKS)


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

    def save(self, step: int, tensors: Mapping[str, torch.Tensor], progress: Mapping[str, Any]) -> Path:
        """Save the accelerator state plus ``tensors`` and ``progress`` as checkpoint ``step``.

        Raises:
            VipriorsError: the disk refused a write on some process (the partial checkpoint is
                removed, the previous checkpoints are intact).
        """
        final = self.directory / f"step-{step:08d}"
        temporary = self.directory / f".partial-step-{step:08d}"
        main = self.accelerator.is_main_process

        def failure_of(error: BaseException) -> VipriorsError:
            last = self.latest()
            failure = write_failure(
                f"checkpoint {final.name}",
                self.directory,
                error,
                f"The partial checkpoint was removed; free space, then --resume continues from "
                f"{last.name if last else 'the start (no complete checkpoint yet)'}.",
            )
            failure.__cause__ = error
            return failure

        def agree(failure: VipriorsError | None) -> None:
            try:
                raise_on_any(self.accelerator, failure)
            except VipriorsError:
                if main:
                    shutil.rmtree(temporary, ignore_errors=True)
                raise

        failure = None
        if main:
            shutil.rmtree(temporary, ignore_errors=True)
            try:
                temporary.mkdir(parents=True)
            except OSError as error:
                failure = failure_of(error)
        agree(failure)
        try:
            self.accelerator.save_state(str(temporary))
            if main:
                extra = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
                save_file(extra, temporary / "extra.safetensors")
                (temporary / "progress.json").write_text(json.dumps(dict(progress)))
        except Exception as error:
            if not is_write_error(error):
                raise
            failure = failure_of(error)
        agree(failure)  # every process wrote its part before the checkpoint becomes complete
        if main:
            try:
                shutil.rmtree(final, ignore_errors=True)
                os.replace(temporary, final)
            except OSError as error:
                failure = failure_of(error)
        agree(failure)
        if main:
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
        # Loaded on the CPU, then moved: safetensors refuses the "cpu:0" of a multi-process CPU run.
        device = self.accelerator.device
        tensors = {name: tensor.to(device) for name, tensor in load_file(checkpoint / "extra.safetensors").items()}
        return tensors, json.loads((checkpoint / "progress.json").read_text())
