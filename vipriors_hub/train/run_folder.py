"""A run's folder: where it is, what it may change on ``--resume``, its ``config.yaml``, its lock.

The layout of the folder is described once, in :mod:`vipriors_hub.train.loop`.
"""

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from accelerate import Accelerator

from ..config import primary_flag, recorded_settings, upgrade_settings
from ..errors import VipriorsError
from ..outputs import LOCK_FILE, check_run_destination, write_failure, write_text_atomically
from .checkpoints import CHECKPOINT_NAME
from .consensus import raise_on_any
from .run_lock import RunLock
from .settings import LATEST_CHECKPOINT, RunSettings, TrainSettings

__all__ = [
    "RESUMABLE_CHANGES",
    "document",
    "hold_run_folder",
    "open_run",
    "prepare_output_dir",
    "resume_checkpoint_path",
]


RESUMABLE_CHANGES = (
    "base_lr",
    "lr",
    "epochs",
    "max_steps",
    "log_every",
    "checkpoint_every",
    "num_workers",
    "report_to",
    "mixed_precision",
    "channels_last",
    "torch_compile",
)
_NOT_COMPARED = {"output"}


def document(sections: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The configuration sections as plain dictionaries (the content of ``config.yaml``): settings
    only, no action flags such as ``resume``."""
    return {name: recorded_settings(value) for name, value in sections.items()}


def prepare_output_dir(output: Path, sections: Mapping[str, Any], resume: bool, overwrite: bool) -> None:
    """Create ``output`` and write ``config.yaml``, once every check of the run has passed.

    A folder that holds a run is continued only with ``resume`` and the same configuration but for
    :data:`RESUMABLE_CHANGES` (each change appended to ``OUTPUT/history.jsonl`` and written into
    ``config.yaml``; settings its ``config.yaml`` does not hold, added by a later version, are not
    compared), and replaced only with ``overwrite`` when it holds that run and nothing else
    (:func:`~vipriors_hub.outputs.check_run_destination`). Call it on the main process only.
    """
    check_run_destination(output, resume, overwrite)
    config_file = output / "config.yaml"
    resolved = document(sections)
    if resume:
        previous = {
            section: upgrade_settings(values) if isinstance(values, dict) else values
            for section, values in (yaml.safe_load(config_file.read_text()) or {}).items()
        }
        # A setting the run's config.yaml does not hold did not exist in the version that wrote it.
        changed = {
            f"{section}.{key}": [previous.get(section, {}).get(key), value]
            for section, fields in resolved.items()
            for key, value in fields.items()
            if key not in _NOT_COMPARED
            and key in previous.get(section, {})
            and previous.get(section, {}).get(key) != value
        }
        refused = sorted(name for name in changed if name.split(".", 1)[1] not in RESUMABLE_CHANGES)
        if refused:
            flags = ", ".join(primary_flag(TrainSettings.__dataclass_fields__[name]) for name in RESUMABLE_CHANGES)
            raise VipriorsError(
                f"Cannot resume {output}: its run was configured differently ({', '.join(refused)}); a resumption "
                f"may only change {flags}. "
                f"Resume with --config {config_file}, or start a new run in another --output."
            )
        for section in resolved:
            resolved[section].update(
                {key: previous.get(section, {}).get(key) for key in _NOT_COMPARED & set(resolved[section])}
            )
    try:
        if resume and changed:
            with (output / "history.jsonl").open("a") as handle:
                handle.write(json.dumps({"event": "resume", "changed": changed, "time": round(time.time(), 3)}) + "\n")
        elif overwrite and config_file.is_file():
            for entry in output.iterdir():
                if entry.name != LOCK_FILE:  # held by this run
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        write_text_atomically(config_file, yaml.safe_dump(resolved, sort_keys=False))
    except OSError as error:
        raise write_failure("the run's config.yaml", output, error, "Free space or choose another --output.") from error


def resume_checkpoint_path(settings: RunSettings) -> tuple[Path, Path | None]:
    """The run folder a start writes into and, for ``--resume PATH`` naming a checkpoint, that checkpoint.

    ``--resume`` alone continues ``--output`` from its newest checkpoint; ``--resume RUN`` continues the
    run in ``RUN`` (``--output`` is then that folder) and ``--resume RUN/checkpoints/step-N`` that run
    from step ``N``.

    Raises:
        VipriorsError: a PATH that is neither a training run nor one of its complete checkpoints.
    """
    output = Path(settings.output)
    if settings.resume in (None, LATEST_CHECKPOINT):
        return output, None
    path = Path(settings.resume).resolve()
    if CHECKPOINT_NAME.match(path.name) and path.parent.name == "checkpoints" and path.is_dir():
        return path.parent.parent, path
    if (path / "config.yaml").is_file():
        return path, None
    raise VipriorsError(
        f"--resume {path}: neither a training run (a folder with config.yaml) nor one of its complete "
        "checkpoints (RUN/checkpoints/step-NNNNNNNN). Pass --resume alone to continue --output."
    )


@contextlib.contextmanager
def hold_run_folder(accelerator: Accelerator, output: Path, settings: RunSettings) -> Iterator[None]:
    """Hold the run folder's lock (main process) while the block runs: one writer per run folder.

    Under the lock the destination is checked again, so of two runs started into one folder at the
    same moment the second is refused with the first's process named, or finds the first's run.
    Every process learns the outcome, so all of them stop with the same line.

    Raises:
        VipriorsError: another process holds the folder, the folder cannot be created, or the
            second check fails.
    """
    lock = RunLock(output) if accelerator.is_main_process else None
    refusal = None
    if lock is not None:
        try:
            lock.acquire()
            check_run_destination(output, bool(settings.resume), settings.overwrite)
        except (VipriorsError, OSError) as error:
            lock.release()
            refusal = error if isinstance(error, VipriorsError) else VipriorsError(f"--output {output}: {error}")
    raise_on_any(accelerator, refusal)
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def open_run(accelerator: Accelerator, output: Path, sections: Mapping[str, Any], settings: RunSettings) -> dict:
    """Write the run's ``config.yaml`` (main process) with the precision in effect, and say it.

    Returns the sections as recorded.
    """
    sections = {
        name: dataclasses.replace(value, mixed_precision=accelerator.mixed_precision)
        if isinstance(value, RunSettings)
        else value
        for name, value in sections.items()
    }
    refusal = None
    if accelerator.is_main_process:
        try:
            prepare_output_dir(output, sections, settings.resume, settings.overwrite)
        except VipriorsError as error:
            refusal = error
        except (OSError, yaml.YAMLError) as error:
            refusal = VipriorsError(f"{output / 'config.yaml'} could not be read ({error}): the run folder is damaged.")
    raise_on_any(accelerator, refusal)
    accelerator.print(
        f"{accelerator.num_processes} process(es) on {accelerator.device}, mixed precision: "
        f"{accelerator.mixed_precision}, tracker: {settings.report_to}"
    )
    return sections
