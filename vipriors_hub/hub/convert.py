"""Import checkpoints of the original research code into model folders of the family."""

import pickle
import zipfile
from pathlib import Path

import timm
import torch

from ..errors import VipriorsError
from ..models import TAG_RESOLUTIONS
from ..outputs import check_model_destination
from .folders import pretrained_cfg_for, write_model_folder

__all__ = ["convert_checkpoint"]

_PREFIXES = ("module.encoder_q.", "encoder_q.", "module.s_net.", "s_net.", "module.student.", "student.", "module.", "")


def convert_checkpoint(checkpoint: str | Path, architecture: str, output: str | Path, num_classes: int = 0) -> dict:
    """Import a checkpoint of the original research code (MoCo ``.pth.tar`` with ``module.encoder_q.*``
    keys, or a phase-2 student) into a model folder of the family.

    The file is read with ``torch.load(weights_only=True)`` only. ``num_classes=0`` imports a teacher
    backbone (MoCo's MLP head, under the member's classifier keys, is dropped); otherwise a
    classifier of that many classes.

    Returns:
        ``{"prefix", "loaded", "missing", "unexpected"}``.

    Raises:
        VipriorsError: the file is not weights-only safe, or its keys do not fit ``architecture``.
    """
    if architecture not in timm.list_models("vipriors_*"):
        raise VipriorsError(
            f"--model {architecture}: not a member of the family; choose one of "
            f"{', '.join(timm.list_models('vipriors_*'))}."
        )
    check_model_destination(Path(output))
    if not Path(checkpoint).is_file():
        raise VipriorsError(f"{checkpoint} is not a file: pass the .pth.tar checkpoint to convert.")
    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (EOFError, IndexError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise VipriorsError(
            f"{checkpoint} is not a PyTorch checkpoint (empty, truncated or another format)."
        ) from error
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in lines if "GLOBAL" in line or "global" in line), lines[0] if lines else "")
        raise VipriorsError(
            f"{checkpoint} was refused: it is not a weights-only checkpoint ({reason}). "
            "Only load checkpoints you trust with plain torch.load; convert refuses them."
        ) from error
    except OSError as error:
        raise VipriorsError(f"{checkpoint} could not be read: {error}") from error
    state = loaded.get("state_dict", loaded.get("model", loaded)) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VipriorsError(f"{checkpoint} holds no state dict of tensors.")
    model = timm.create_model(architecture, num_classes=num_classes)
    expected = model.state_dict()
    best_prefix, best = "", {}
    for prefix in _PREFIXES:
        mapped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        mapped = {k: v for k, v in mapped.items() if k in expected}
        if len(mapped) > len(best):
            best_prefix, best = prefix, mapped
    classifier = f"{best_prefix}{model.pretrained_cfg['classifier']}."
    ignored_head = {k for k in state if k.startswith(classifier)} if num_classes == 0 else set()
    missing = sorted(k for k in expected if k not in best)
    unexpected = sorted(
        k[len(best_prefix) :]
        for k in state
        if k.startswith(best_prefix) and k[len(best_prefix) :] not in expected and k not in ignored_head
    )
    mismatched = sorted(k for k, v in best.items() if v.shape != expected[k].shape)
    if missing or mismatched:
        raise VipriorsError(
            f"{checkpoint} does not fit {architecture} (num_classes={num_classes}) under the prefix "
            f"'{best_prefix}': {len(missing)} missing keys (e.g. {', '.join(missing[:3])}), "
            f"{len(mismatched)} with other shapes (e.g. {', '.join(mismatched[:3])}). "
            "Pass the architecture it was trained with (--model) and --num-classes."
        )
    model.load_state_dict(best)
    tag = "student" if num_classes > 0 else "teacher"
    cfg = pretrained_cfg_for(architecture, tag, TAG_RESOLUTIONS[tag], num_classes=num_classes)
    cfg["description"] = f"{architecture} {tag} imported from {Path(checkpoint).name} (original research code)."
    if num_classes != 1000:
        cfg.pop("label_names", None)
    write_model_folder(model, Path(output), architecture, cfg, {})
    return {"prefix": best_prefix, "loaded": len(best), "missing": missing, "unexpected": unexpected}
