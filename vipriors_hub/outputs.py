"""Where the package may write: checks made before anything is written, and atomic writes.

The rule is that nothing a user owns is ever deleted or overwritten. A command writes

* a training run into a new or empty folder, or continues (``--resume``) or replaces
  (``--overwrite``) a folder that holds a training run of this package and nothing else;
* a model folder (export, convert) into a new or empty folder, or over a model folder this
  package wrote before (recognised by its ``config.json``), never into a training run;
* a results file (JSON, submission CSV) as a new file or over a results file of the same kind.

Every check raises :class:`~vipriors_hub.errors.VipriorsError` with the folder and the way out,
and is made before any computation whose result would then be lost.
"""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import VipriorsError

__all__ = [
    "MODEL_FOLDER_FILES",
    "RUN_ENTRIES",
    "check_model_destination",
    "check_results_destination",
    "check_run_destination",
    "is_model_folder",
    "is_training_run",
    "recover_model_folder",
    "write_text_atomically",
]

# What a trainer writes into its output folder (hidden names: the swaps of model folders).
RUN_ENTRIES = frozenset(
    {"config.yaml", "metrics.jsonl", "checkpoints", "final", "best", "logs", "history.jsonl"}
    | {f".{name}.{suffix}" for name in ("final", "best") for suffix in ("partial", "previous")}
    | {".config.yaml.tmp"}
)
MODEL_FOLDER_FILES = frozenset({"model.safetensors", "config.json", "README.md"})


def _entries(folder: Path) -> set[str]:
    return {entry.name for entry in folder.iterdir()}


def is_training_run(folder: Path) -> bool:
    """Whether ``folder`` holds a training run of this package (its ``config.yaml`` and nothing
    but what a trainer writes)."""
    return (folder / "config.yaml").is_file() and _entries(folder) <= RUN_ENTRIES


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` is a model folder this package wrote: ``config.json`` naming a family
    member, and no file besides weights, config and model card."""
    config = folder / "config.json"
    if not config.is_file() or not _entries(folder) <= MODEL_FOLDER_FILES:
        return False
    try:
        return "vipriors_architecture" in json.loads(config.read_text())
    except (OSError, ValueError, TypeError):
        return False


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _check_writable(path: Path, flag: str) -> None:
    """Refuse ``path`` when the folder that will hold it cannot be written."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise VipriorsError(f"{flag} {path}: {existing} is a file, not a folder. Choose another {flag}.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise VipriorsError(f"{flag} {path}: {existing} is not writable. Choose another {flag}.")


def check_run_destination(output: Path, resume: bool, overwrite: bool) -> None:
    """Check, without writing, that a trainer may write its run into ``output``.

    Allowed: a new or empty folder; a folder holding a run of this package with ``resume`` (continue)
    or ``overwrite`` (replace). Everything else is refused.
    """
    _check_writable(output, "--output")
    if resume and overwrite:
        raise VipriorsError("--resume continues a run and --overwrite replaces it: pass only one of them.")
    if not output.exists() or not any(output.iterdir()):
        if resume:
            raise VipriorsError(f"--resume: {output} holds no training run to continue. Drop --resume to start one.")
        return
    if not (output / "config.yaml").is_file():
        raise VipriorsError(
            f"--output {output} is a folder that holds files of its own, not a training run: "
            "choose a new or empty folder (nothing in it is deleted)."
        )
    if not is_training_run(output):
        foreign = sorted(_entries(output) - RUN_ENTRIES)
        raise VipriorsError(
            f"--output {output} holds a training run and other files ({', '.join(foreign[:5])}) that no trainer "
            "writes: it is neither continued nor replaced. Move those files away or choose another --output."
        )
    if not (resume or overwrite):
        raise VipriorsError(
            f"{output} already holds a training run. Pass --resume to continue it, --overwrite to delete it "
            "and start again, or choose another --output."
        )


def check_model_destination(output: Path, flag: str = "--output") -> None:
    """Check, without writing, that a model folder may be written at ``output``: a new or empty
    folder, or a model folder this package wrote, outside any training run."""
    output = Path(output).absolute()
    _check_writable(output, flag)
    recover_model_folder(output)
    for parent in output.absolute().parents:
        if is_training_run(parent):
            raise VipriorsError(
                f"{flag} {output} lies inside the training run {parent}: export into a folder of its own."
            )
    if not output.exists():
        return
    if not output.is_dir():
        raise VipriorsError(f"{flag} {output} is a file: name a folder to write the model into.")
    if any(output.iterdir()) and not is_model_folder(output):
        kind = "a training run" if (output / "config.yaml").is_file() else "files this command did not write"
        raise VipriorsError(
            f"{flag} {output} holds {kind}: choose a new or empty folder, or a model folder written before "
            "by export or convert (nothing in it is deleted)."
        )


def check_results_destination(output: Path, is_own: Callable[[Path], bool], flag: str = "--output") -> None:
    """Check, without writing, that a results file may be written at ``output``: a new file, or one
    that ``is_own`` recognises as a results file of the same kind."""
    output = Path(output)
    _check_writable(output.parent if output.is_file() else output, flag)
    if output.is_dir():
        raise VipriorsError(f"{flag} {output} is a folder: name the file to write (e.g. {output / 'results.json'}).")
    if output.exists() and not is_own(output):
        raise VipriorsError(
            f"{flag} {output} exists and is not a results file of this command: choose another file name."
        )


def recover_model_folder(folder: Path) -> None:
    """Finish a model-folder swap that a kill interrupted: a complete ``.NAME.previous`` takes its
    place again when ``NAME`` is missing; a half-written ``.NAME.partial`` is removed."""
    folder = Path(folder).absolute()
    previous = folder.with_name(f".{folder.name}.previous")
    partial = folder.with_name(f".{folder.name}.partial")
    if not folder.exists() and previous.is_dir():
        os.replace(previous, folder)
    if partial.is_dir():
        shutil.rmtree(partial)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it (never half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
