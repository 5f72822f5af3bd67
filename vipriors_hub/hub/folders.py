"""Hub-ready model folders: ``model.safetensors``, timm's ``config.json`` and, from export, a card.

``config.json`` names the *plain* timm architecture whose weights are identical to the family
member (``vipriors_resnet50`` -> ``resnet50``; the tiny member adds ``model_args``), so a pushed
checkpoint loads with ``timm.create_model("hf-hub:...")`` and with transformers'
``AutoModelForImageClassification`` / ``pipeline`` even where this package is not installed; the
family name is kept in ``vipriors_architecture`` and ``phase``.
"""

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from ..errors import VipriorsError
from ..models import TIMM_EQUIVALENTS
from ..outputs import recover_model_folder

__all__ = [
    "family_architecture",
    "file_sha256",
    "load_model_folder",
    "pretrained_cfg_for",
    "read_model_config",
    "write_model_folder",
]

_SOURCE_KEYS = {"url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "architecture", "tag"}


def pretrained_cfg_for(architecture: str, tag: str, resolution: int, **overrides: Any) -> dict[str, Any]:
    """The family's pretrained cfg of ``architecture.tag`` for a model trained at ``resolution`` px (its
    ``pool_size`` from the member's output stride, as its registered cfg declares it)."""
    cfg = {
        key: value
        for key, value in timm.models.get_pretrained_cfg(f"{architecture}.{tag}").to_dict().items()
        if key not in _SOURCE_KEYS
    }
    reduction = cfg["input_size"][-1] // cfg["pool_size"][-1]
    cfg.update(
        input_size=(3, resolution, resolution),
        test_input_size=(3, resolution, resolution),
        pool_size=(max(1, resolution // reduction),) * 2,
        **overrides,
    )
    return cfg


def _pool_type(model: nn.Module) -> str:
    """timm's ``global_pool`` name of ``model`` (a pooling module's ``pool_type`` or the string itself)."""
    pool = getattr(model, "global_pool", "avg")
    return str(getattr(pool, "pool_type", pool)) or "avg"


def _timm_config(model: nn.Module, architecture: str, pretrained_cfg: Mapping[str, Any]) -> dict[str, Any]:
    timm_name, model_args = TIMM_EQUIVALENTS[architecture]
    cfg = json.loads(json.dumps(dict(pretrained_cfg), default=list))
    label_names = cfg.pop("label_names", None)
    num_classes = int(cfg.get("num_classes", 0))
    config: dict[str, Any] = {
        "architecture": timm_name,
        "num_classes": num_classes,
        "num_features": int(getattr(model, "num_features", 0)),
        "global_pool": _pool_type(model),
        "vipriors_architecture": architecture,
        "phase": "student" if num_classes > 0 else "teacher",
    }
    if model_args:
        config["model_args"] = model_args
    if label_names:
        config["label_names"] = list(label_names)
    config["pretrained_cfg"] = cfg
    return config


def write_model_folder(
    model: nn.Module,
    folder: Path,
    architecture: str,
    pretrained_cfg: Mapping[str, Any],
    extra_files: Mapping[str, str],
    repo_id: str | None = None,
) -> Path:
    """Write ``model`` as ``folder/model.safetensors`` + ``folder/config.json`` (+ ``extra_files``);
    ``repo_id`` (the Hub repository the card was rendered for) is kept in ``vipriors_repo_id``.

    The folder is assembled under a temporary name and swapped in, so an existing folder is only
    replaced by a complete one; a swap cut short by a kill is finished by the next call
    (:func:`~vipriors_hub.outputs.recover_model_folder`). Callers check the destination first
    (:func:`~vipriors_hub.outputs.check_model_destination`).
    ``timm.create_model("local-dir:FOLDER", pretrained=True)`` loads it.
    """
    folder = Path(folder).absolute()
    recover_model_folder(folder)
    temporary = folder.with_name(f".{folder.name}.partial")
    # A partial folder left beside no folder is a write that never reached its swap: ours, incomplete.
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
        save_file(state, temporary / "model.safetensors", metadata={"format": "pt"})
        config = _timm_config(model, architecture, pretrained_cfg)
        if repo_id:
            config["vipriors_repo_id"] = repo_id
        (temporary / "config.json").write_text(json.dumps(config, indent=2))
        for name, text in extra_files.items():
            (temporary / name).write_text(text)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    previous = folder.with_name(f".{folder.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if folder.exists():
        os.replace(folder, previous)
    os.replace(temporary, folder)
    shutil.rmtree(previous, ignore_errors=True)
    return folder


def load_model_folder(folder: str | Path, expect: str) -> nn.Module:
    """Load a model folder written by a trainer (or any timm folder) and check its phase.

    Args:
        folder: holds ``config.json`` and ``model.safetensors``.
        expect: ``"teacher"`` (a backbone without classifier) or ``"student"`` (a classifier).

    Raises:
        VipriorsError: the folder is missing, incomplete, or holds the other phase.
    """
    folder = Path(folder)
    with contextlib.suppress(OSError):
        recover_model_folder(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise VipriorsError(
            f"{folder} is not a model folder (config.json + model.safetensors): pass OUTPUT/final of a training run."
        )
    config = read_model_config(folder)
    is_student = int(config.get("num_classes", 0)) > 0
    if expect == "teacher" and is_student:
        raise VipriorsError(
            f"{folder} holds a student classifier ({config['num_classes']} classes) where a teacher backbone is "
            "expected: pass the teacher's OUTPUT/final (train-teacher), or use `vipriors-hub evaluate` for students."
        )
    if expect == "student" and not is_student:
        raise VipriorsError(
            f"{folder} holds a teacher backbone (no classifier) where a student classifier is expected: pass the "
            "student's OUTPUT/final (train-student), or use `vipriors-hub eval-teacher` for teachers."
        )
    try:
        return timm.create_model(f"local-dir:{folder}", pretrained=True)
    except (SafetensorError, RuntimeError, OSError, ValueError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise VipriorsError(
            f"{folder} could not be loaded ({reason}): its model.safetensors is damaged or does not fit its "
            "config.json. Write the folder again (export, convert or the trainer's final/)."
        ) from error


def read_model_config(folder: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a model folder, refused with one line when it is not a timm config."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise VipriorsError(f"{path} could not be read as JSON ({error}): the model folder is damaged.") from error
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise VipriorsError(f"{path} is not a timm model config (no 'architecture'): the model folder is damaged.")
    return config


def family_architecture(folder: str | Path) -> str:
    """The ``vipriors_*`` member a model folder holds."""
    config = read_model_config(folder)
    return config.get("vipriors_architecture", config["architecture"])


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file (read in 1 MiB blocks): how evaluation results name the checkpoint they scored."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
