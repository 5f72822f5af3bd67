"""Where the package may write: checks made before anything is written, and atomic writes.

The rule is that nothing a user owns is ever deleted or overwritten. A command writes

* a training run into a new or empty folder, or continues (``--resume``) or replaces
  (``--overwrite``) a folder that holds a training run of this package and nothing else;
* a model folder (export, convert) into a new or empty folder, or over a model folder this
  package wrote before (recognised by its ``config.json``), never into a training run;
* a results file (JSON, submission CSV) as a new file or over a results file of the same kind
  (a run folder may hold them: they are part of the run).

Every check raises :class:`~vipriors_hub.errors.VipriorsError` with the folder and the way out,
and is made before any computation whose result would then be lost.
"""

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from .errors import VipriorsError

__all__ = [
    "LOCK_FILE",
    "MODEL_FOLDER_FILES",
    "RUN_ENTRIES",
    "check_model_destination",
    "check_results_destination",
    "check_run_destination",
    "is_model_folder",
    "is_results_file",
    "is_submission_file",
    "is_training_run",
    "recover_model_folder",
    "write_failure",
    "write_text_atomically",
]

LOCK_FILE = ".run.lock"
"""The file in a run folder whose ``flock`` the running trainer holds (one writer per run folder)."""
# What a trainer writes into its output folder (hidden names: the swaps of model folders, the lock).
RUN_ENTRIES = frozenset(
    {"config.yaml", "metrics.jsonl", "checkpoints", "final", "best", "logs", "history.jsonl", "result.json", LOCK_FILE}
    | {f".{name}.{suffix}" for name in ("final", "best") for suffix in ("partial", "previous")}
    | {".config.yaml.tmp", ".result.json.tmp"}
)
MODEL_FOLDER_FILES = frozenset({"model.safetensors", "config.json", "README.md"})


def _entries(folder: Path) -> set[str]:
    return {entry.name for entry in folder.iterdir()}


def is_results_file(path: Path) -> bool:
    """Whether ``path`` is an evaluation JSON of eval-teacher or evaluate (which may be replaced)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(result, dict) and "split" in result and ("knn" in result or "top1" in result)


def is_submission_file(path: Path) -> bool:
    """Whether ``path`` is a VIPriors submission CSV (which may be replaced)."""
    try:
        with Path(path).open(newline="") as handle:
            return handle.readline().strip() == "Image IDs,Predictions"
    except (OSError, UnicodeDecodeError):
        return False


def _is_run_entry(path: Path) -> bool:
    """Whether ``path``, directly under a run folder, is something this package writes there."""
    name = path.name
    if name == "checkpoints":
        return path.is_dir() and all(re.fullmatch(r"\.?(partial-)?step-\d{8}", p.name) for p in path.iterdir())
    if name in ("final", "best"):
        return path.is_dir() and (is_model_folder(path) or not any(path.iterdir()))
    if name in RUN_ENTRIES:
        return True
    return path.is_file() and (is_results_file(path) or is_submission_file(path))


def is_training_run(folder: Path) -> bool:
    """Whether ``folder`` holds a training run of this package and nothing else: a ``config.yaml``
    with ``data`` and ``train`` sections, checkpoints, model folders, logs and evaluation files."""
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(config, dict) or not {"data", "train"} <= set(config):
        return False
    return all(_is_run_entry(entry) for entry in folder.iterdir())


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
    if not output.exists() or all(entry.name == LOCK_FILE for entry in output.iterdir()):
        if resume:
            raise VipriorsError(f"--resume: {output} holds no training run to continue. Drop --resume to start one.")
        return
    if not (output / "config.yaml").is_file():
        raise VipriorsError(
            f"--output {output} is a folder that holds files of its own, not a training run: "
            "choose a new or empty folder (nothing in it is deleted)."
        )
    if not is_training_run(output):
        foreign = sorted(entry.name for entry in output.iterdir() if not _is_run_entry(entry))
        detail = f"files that no trainer writes ({', '.join(foreign[:5])})" if foreign else "another program's config"
        raise VipriorsError(
            f"--output {output} is not a training run of this package: it holds {detail}. It is neither "
            "continued nor replaced: move those files away or choose another --output."
        )
    if resume and not any(re.fullmatch(r"step-\d{8}", p.name) for p in (output / "checkpoints").glob("step-*")):
        raise VipriorsError(f"--resume: {output} holds no complete checkpoint to continue from.")
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
    for parent in output.parents:
        if (parent / "config.yaml").is_file():
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
    recover_model_folder(output)


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
    """Finish a model-folder swap that a kill interrupted: a complete ``.NAME.previous`` (a model
    folder of this package) takes its place again when ``NAME`` is missing; then a half-written
    ``.NAME.partial`` is removed."""
    folder = Path(folder).absolute()
    previous = folder.with_name(f".{folder.name}.previous")
    partial = folder.with_name(f".{folder.name}.partial")
    if not folder.exists() and previous.is_dir() and is_model_folder(previous):
        os.replace(previous, folder)
    if partial.is_dir() and folder.exists():
        shutil.rmtree(partial)


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def write_failure(what: str, where: Path, error: BaseException, hint: str) -> VipriorsError:
    """The one-line error for ``what`` that could not be written under ``where`` (a full disk, a quota,
    a vanished mount): the reason, the space still free there, and ``hint`` (what to do next). A
    writer's error that names no cause (torch's archive writer) on a disk with under 1 MB left is
    called what it is, a full disk."""
    reason = (str(error).splitlines() or [type(error).__name__])[0]
    try:
        free_bytes = shutil.disk_usage(_nearest_existing(Path(where))).free
    except OSError:
        return VipriorsError(f"Could not write {what} in {where}: {reason} (free space unknown). {hint}")
    if not isinstance(error, OSError) and free_bytes < 1_000_000:
        reason = f"No space left on device ({type(error).__name__}: {reason})"
    return VipriorsError(f"Could not write {what} in {where}: {reason} ({_size(free_bytes)} free there). {hint}")


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it (never half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
