"""Hub-ready model folders: written atomically (``model.safetensors`` + timm's ``config.json``) and read back."""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import timm
from safetensors.torch import save_file
from torch import nn

from ..errors import VipriorsError

__all__ = ["load_model_folder", "pretrained_cfg_for", "write_model_folder"]

_SOURCE_KEYS = {"url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "architecture", "tag"}


def pretrained_cfg_for(architecture: str, tag: str, resolution: int, **overrides: Any) -> dict[str, Any]:
    """The family's pretrained cfg of ``architecture.tag`` for a model trained at ``resolution`` px."""
    cfg = {
        key: value
        for key, value in timm.models.get_pretrained_cfg(f"{architecture}.{tag}").to_dict().items()
        if key not in _SOURCE_KEYS
    }
    cfg.update(
        input_size=(3, resolution, resolution),
        test_input_size=(3, resolution, resolution),
        pool_size=(max(1, resolution // 32),) * 2,
        **overrides,
    )
    return cfg


def write_model_folder(
    model: nn.Module, folder: Path, architecture: str, pretrained_cfg: dict[str, Any], extra_files: dict[str, str]
) -> Path:
    """Write ``model`` as ``folder/model.safetensors`` + ``folder/config.json`` (+ ``extra_files``).

    The folder is assembled under a temporary name and swapped in, so an existing folder is only
    replaced by a complete one. ``timm.create_model("local-dir:FOLDER", pretrained=True)`` loads it.
    """
    folder = Path(folder)
    temporary = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, temporary / "model.safetensors", metadata={"format": "pt"})
    config = {
        "architecture": architecture,
        "num_classes": int(pretrained_cfg.get("num_classes", 0)),
        "num_features": int(getattr(model, "num_features", 0)),
        "global_pool": "avg",
        "pretrained_cfg": json.loads(json.dumps(pretrained_cfg, default=list)),
    }
    (temporary / "config.json").write_text(json.dumps(config, indent=2))
    for name, text in extra_files.items():
        (temporary / name).write_text(text)
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
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise VipriorsError(
            f"{folder} is not a model folder (config.json + model.safetensors): pass OUTPUT/final of a training run."
        )
    config = json.loads((folder / "config.json").read_text())
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
    return timm.create_model(f"local-dir:{folder}", pretrained=True)
