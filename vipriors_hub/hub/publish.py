"""Export a training run as a Hub-ready folder and push folders to the Hugging Face Hub."""

import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id
from torch import nn

from ..errors import VipriorsError
from ..models import hub_repo_id
from ..outputs import check_model_destination
from ..train.result import read_fit_result
from ..version import __version__
from .cards import model_description, render_model_card
from .folders import (
    family_architecture,
    file_sha256,
    load_model_folder,
    pretrained_cfg_for,
    read_model_config,
    write_model_folder,
)

__all__ = ["export_run", "push_to_hub", "write_run_model"]


def write_run_model(
    model: nn.Module,
    folder: Path,
    phase: str,
    architecture: str,
    resolution: int,
    run_config: Mapping[str, Any],
    epochs: float,
    results: list[Mapping[str, Any]] = (),
    class_names: list[str] | None = None,
) -> Path:
    """Write the Hub-ready folder of a model a trainer just trained (its ``final/`` or ``best/``):
    weights, plain-timm config for ``resolution`` px and the card, from the run's recorded
    configuration ``run_config`` (``{"data": ..., "train": ...}``), the ``epochs`` it trained and ``results``."""
    num_classes = len(class_names or [])
    description = model_description(phase, num_classes, run_config["data"])
    cfg = pretrained_cfg_for(architecture, phase, resolution, num_classes=num_classes, description=description)
    if class_names:
        cfg["label_names"] = list(class_names)
    repo_id = hub_repo_id(architecture, phase)
    card = render_model_card(phase, architecture, run_config, list(results), repo_id, None, num_classes, epochs)
    return write_model_folder(model, folder, architecture, cfg, {"README.md": card}, repo_id=repo_id)


def _read_results(path: Path, weights_sha256: str, model_folder: Path) -> dict[str, Any]:
    """An evaluation file, refused unless it scored the checkpoint being exported."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise VipriorsError(f"--results {path} could not be read as JSON ({error}).") from error
    if not isinstance(result, dict) or "split" not in result:
        raise VipriorsError(f"--results {path} is not an evaluation file of eval-teacher or evaluate.")
    scored = result.get("checkpoint_sha256") or [m.get("checkpoint_sha256") for m in result.get("members", [])]
    scored = [scored] if isinstance(scored, str) else scored
    if len(scored) > 1:
        raise VipriorsError(
            f"--results {path} scored an ensemble of {len(scored)} checkpoints, not this one alone: "
            "evaluate this checkpoint by itself for its card."
        )
    if weights_sha256 not in scored:
        raise VipriorsError(
            f"--results {path} scored another checkpoint than {model_folder} (its model.safetensors has another "
            "sha256, or the file predates checkpoint hashes): evaluate this checkpoint and pass that file."
        )
    return result


def export_run(
    run_dir: str | Path,
    output: str | Path,
    results_files: list[str | Path] = (),
    repo_id: str | None = None,
    base_model: str | None = None,
    source: str = "final",
) -> Path:
    """Write the Hub-ready folder of a training run: weights, plain-timm config and model card.

    Args:
        run_dir: a trainer's OUTPUT (holds ``config.yaml`` and ``final/``).
        output: the folder to write: new, empty, or a model folder written before by export or convert.
        results_files: evaluation JSON files (``eval-teacher`` / ``evaluate``) of this very checkpoint,
            whose numbers go into the card.
        repo_id: the Hub repository the folder is meant for (default: the family's id for this phase).
        base_model: a student's teacher on the Hub (the card names no teacher repository without it).
        source: which model folder of the run to export (``final`` or ``best``).

    Raises:
        VipriorsError: not a finished run, an output that could destroy something, or results of
            another checkpoint.
    """
    run_dir, output = Path(run_dir), Path(output)
    model_folder = run_dir / source
    if not (run_dir / "config.yaml").is_file() or not (model_folder / "model.safetensors").is_file():
        raise VipriorsError(f"{run_dir} is not a finished training run (config.yaml and {source}/model.safetensors).")
    check_model_destination(output)
    config = read_model_config(model_folder)
    phase = config.get("phase", "student" if config.get("num_classes", 0) else "teacher")
    architecture = family_architecture(model_folder)
    model = load_model_folder(model_folder, expect=phase)
    weights_sha256 = file_sha256(model_folder / "model.safetensors")
    results = [_read_results(Path(path), weights_sha256, model_folder) for path in results_files]
    repo_id = repo_id or hub_repo_id(architecture, phase)
    card = render_model_card(
        phase,
        architecture,
        yaml.safe_load((run_dir / "config.yaml").read_text()),
        results,
        repo_id,
        base_model if phase == "student" else None,
        int(config.get("num_classes", 0)),
        read_fit_result(run_dir).epochs if phase == "student" else 0.0,
    )
    cfg = dict(config["pretrained_cfg"])
    if config.get("label_names"):
        cfg["label_names"] = config["label_names"]
    return write_model_folder(model, output, architecture, cfg, {"README.md": card}, repo_id=repo_id)


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    api: HfApi | None = None,
) -> str:
    """Upload a model folder (or the export of a run folder) to ``repo_id`` and return the commit URL.

    The card and config are rendered for ``repo_id`` (a folder exported for another repository is
    uploaded from a copy with the repository id replaced). The token comes from ``hf auth login`` or
    ``HF_TOKEN``; it is never printed or written.

    Raises:
        VipriorsError: an invalid repository id, offline mode, nothing to push, or a Hub error.
    """
    folder = Path(folder)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise VipriorsError(f"--repo-id {repo_id!r} is not a Hub repository id (ORG/NAME): {error}") from error
    api = api or HfApi()
    with tempfile.TemporaryDirectory() as tmp:
        if (folder / "config.yaml").is_file():
            folder = export_run(folder, Path(tmp) / "export", repo_id=repo_id)
        if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
            raise VipriorsError(f"{folder} is neither a model folder nor a training run: nothing to push.")
        folder = _retarget(folder, repo_id, Path(tmp) / "retarget")
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, repo_type="model", branch=revision, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type="model",
                folder_path=str(folder),
                revision=revision,
                commit_message=commit_message or f"Upload {folder.name} with vipriors_hub {__version__}",
            )
        except OfflineModeIsEnabled as error:
            raise VipriorsError(
                "HF_HUB_OFFLINE is set, so nothing can be pushed: unset it (and log in: hf auth login)."
            ) from error
        except (HfHubHTTPError, OSError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise VipriorsError(
                f"Pushing to {repo_id} failed: {reason}. Check the id, the login (hf auth login) and the connection."
            ) from error
    return getattr(commit, "commit_url", str(commit))


def _retarget(folder: Path, repo_id: str, scratch: Path) -> Path:
    """``folder`` itself when it was written for ``repo_id``; else a copy of it in ``scratch`` whose
    card and config name ``repo_id`` instead."""
    config = read_model_config(folder)
    written_for = config.get("vipriors_repo_id")
    if not written_for or written_for == repo_id:
        return folder
    shutil.copytree(folder, scratch)
    whole_id = re.compile(rf"(?<![\w./-]){re.escape(written_for)}(?![\w./-])")
    for name in ("README.md", "config.json"):
        if (scratch / name).is_file():
            (scratch / name).write_text(whole_id.sub(repo_id, (scratch / name).read_text()))
    return scratch
