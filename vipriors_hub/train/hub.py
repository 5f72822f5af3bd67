"""Hub-ready model folders: export with a model card, push to the Hub, convert original checkpoints.

A model folder holds ``model.safetensors``, timm's ``config.json`` and ``README.md`` (the model
card). ``config.json`` names the *plain* timm architecture whose weights are identical to the
family member (``vipriors_resnet50`` -> ``resnet50``; the tiny member adds ``model_args``), so a
pushed checkpoint loads with ``timm.create_model("hf-hub:...")`` and with transformers'
``AutoModelForImageClassification`` / ``pipeline`` even where this package is not installed; the
family name is kept in ``vipriors_architecture`` and ``phase``.
"""

import contextlib
import hashlib
import importlib.resources
import json
import os
import pickle
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from ..data.split_lists import SPLIT_LIST_COMMIT, SPLIT_LIST_SHA256
from ..errors import VipriorsError
from ..models import PAPER_ID, TIMM_EQUIVALENTS, hub_repo_id
from ..outputs import check_model_destination, recover_model_folder
from ..version import __version__

__all__ = [
    "convert_checkpoint",
    "export_run",
    "family_architecture",
    "file_sha256",
    "load_model_folder",
    "read_model_config",
    "pretrained_cfg_for",
    "push_to_hub",
    "render_model_card",
    "write_model_folder",
]

_SOURCE_KEYS = {"url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "architecture", "tag"}
CITATION = """@inproceedings{zhao2020distilling,
  title     = {Distilling Visual Priors from Self-Supervised Learning},
  author    = {Zhao, Bingchen and Wen, Xin},
  booktitle = {ECCV 2020 Workshops (VIPriors)},
  year      = {2020},
  eprint    = {2008.00261},
  archivePrefix = {arXiv}
}"""


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


def _timm_config(model: nn.Module, architecture: str, pretrained_cfg: Mapping[str, Any]) -> dict[str, Any]:
    timm_name, model_args = TIMM_EQUIVALENTS[architecture]
    cfg = json.loads(json.dumps(dict(pretrained_cfg), default=list))
    label_names = cfg.pop("label_names", None)
    num_classes = int(cfg.get("num_classes", 0))
    config: dict[str, Any] = {
        "architecture": timm_name,
        "num_classes": num_classes,
        "num_features": int(getattr(model, "num_features", 0)),
        "global_pool": "avg",
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
    temporary.mkdir(parents=True)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, temporary / "model.safetensors", metadata={"format": "pt"})
    config = _timm_config(model, architecture, pretrained_cfg)
    if repo_id:
        config["vipriors_repo_id"] = repo_id
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


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _result_rows(results: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Table rows from evaluation files: eval-teacher (kNN, linear) or evaluate (a student)."""
    rows = []
    for result in results:
        if "knn" in result:
            rows.append({"protocol": f"kNN (k={result['knn']['k']})", "split": result["split"], **result["knn"]})
            rows.append({"protocol": "linear probe", "split": result["split"], **result["linear"]})
        else:
            protocol = "10-crop" if result.get("ten_crop") else "centre crop"
            if len(result.get("checkpoints", [])) > 1:
                protocol += f", ensemble of {len(result['checkpoints'])}"
            rows.append(
                {"protocol": protocol, "split": result["split"], "top1": result["top1"], "top5": result["top5"]}
            )
    return rows


# Settings that name local files or folders: never written into a card.
_LOCAL_PATH_SETTINGS = {"output", "teacher", "data_dir", "split_lists", "cache_dir"}


def _student_method(train: Mapping[str, Any], metrics: list[Mapping[str, Any]]) -> dict[str, Any]:
    """What a student run did, read from its configuration and ``metrics.jsonl``: how it started,
    how many epochs it trained and for how many of them the teacher was distilled."""
    epochs = max((float(record["epoch"]) for record in metrics if "epoch" in record), default=0.0)
    has_teacher = bool(train.get("teacher"))
    from_teacher = train.get("init") == "teacher" and has_teacher
    distill_epochs = max(0.0, epochs - float(train.get("no_distill_epochs") or 0))
    distilled = has_teacher and float(train.get("distill_weight") or 0) > 0 and distill_epochs > 0
    return {
        "from_teacher": from_teacher,
        "distilled": distilled,
        "epochs": round(epochs, 2),
        "distill_epochs": round(distill_epochs, 2) if distilled else 0,
        "distill_weight": train.get("distill_weight"),
    }


def _data_description(data: Mapping[str, Any]) -> tuple[str, str, str]:
    """Words for the data of a run, its Hub dataset type and its name; no local path."""
    dataset = data.get("dataset", "vipriors")
    if dataset == "vipriors":
        return "the VIPriors ImageNet subset (1000 classes x 50 training images)", dataset, "VIPriors ImageNet subset"
    if dataset == "fashion-mnist":
        per_class = data.get("per_class") or 50
        held_out = data.get("val_per_class")
        held_out = per_class // 5 if held_out is None else held_out
        text = f"Fashion-MNIST, {per_class - held_out} training images per class ({held_out} more held out)"
        return text, dataset, "Fashion-MNIST"
    name = data.get("hub_id") or Path(str(data.get("data_dir") or dataset)).name
    return f"the {dataset} dataset '{name}'", dataset, name


def render_model_card(
    phase: str,
    architecture: str,
    run_config: Mapping[str, Any],
    results: list[Mapping[str, Any]],
    repo_id: str,
    base_model: str | None = None,
    num_classes: int = 0,
    metrics: list[Mapping[str, Any]] = (),
) -> str:
    """The model card (``README.md``) of a teacher or student folder, from the run's configuration,
    its ``metrics`` (a student's card says whether and how long it was distilled) and evaluation files;
    every number in it comes from these files, and no local path is written into it."""
    data, train = run_config.get("data", {}), run_config.get("train", {})
    data_description, dataset, dataset_name = _data_description(data)
    rows = _result_rows(results)
    eval_results = []
    for row in rows:
        for metric in ("top1", "top5"):
            eval_results.append(
                EvalResult(
                    task_type="image-classification",
                    dataset_type=dataset,
                    dataset_name=dataset_name,
                    dataset_split=row["split"],
                    metric_type="accuracy",
                    metric_name=f"{metric} ({row['protocol']})",
                    metric_value=float(row[metric]),
                )
            )
    provenance = {
        "vipriors_hub version": __version__,
        "git commit": _git_commit(),
        "family member": architecture,
    }
    if dataset == "vipriors":
        provenance["split lists"] = f"VIPriors toolkit @ {SPLIT_LIST_COMMIT[:8]}"
        provenance.update({f"{split}.pickle sha256": digest for split, digest in SPLIT_LIST_SHA256.items()})
    method = _student_method(train, list(metrics)) if phase == "student" else {}
    if phase == "student" and not (method["from_teacher"] or method["distilled"]):
        base_model = None
    tags = ["timm", "vipriors", f"arxiv:{PAPER_ID.split(':')[1]}"]
    tags += (["knowledge-distillation"] if method.get("distilled") else []) if phase == "student" else ["moco"]
    card_data = ModelCardData(
        library_name="timm",
        license="apache-2.0",
        tags=tags + (["self-supervised"] if phase == "teacher" else []),
        datasets=["ILSVRC/imagenet-1k"]
        if dataset == "vipriors"
        else ["zalando-datasets/fashion_mnist"]
        if dataset == "fashion-mnist"
        else None,
        base_model=base_model,
        model_name=repo_id.split("/")[-1],
        pipeline_tag="image-classification" if phase == "student" else "image-feature-extraction",
        eval_results=eval_results or None,
    )
    template = importlib.resources.files("vipriors_hub.model_cards").joinpath(f"{phase}.md.j2").read_text()
    return ModelCard.from_template(
        card_data,
        template_str=template,
        model_name=repo_id.split("/")[-1],
        architecture=architecture,
        timm_architecture=TIMM_EQUIVALENTS[architecture][0],
        repo_id=repo_id,
        data_description=data_description,
        results=rows,
        hyperparameters={
            key: value for key, value in train.items() if value is not None and key not in _LOCAL_PATH_SETTINGS
        },
        provenance=provenance,
        citation=CITATION,
        base_model=base_model,
        num_classes=num_classes,
        method=method,
    ).content


def model_description(phase: str, num_classes: int, data: Mapping[str, Any]) -> str:
    """The ``pretrained_cfg.description`` of a trained model: what it is and what it learned from."""
    words = _data_description(data)[0]
    if phase == "teacher":
        return f"Self-supervised backbone (MoCo v2 + margin loss, no classifier) trained on {words}."
    return f"{num_classes}-class classifier trained on {words}."


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


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (none when it is missing)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))  # a line torn by a kill is skipped
    return records


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
        read_metrics(run_dir),
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


_PREFIXES = ("module.encoder_q.", "encoder_q.", "module.s_net.", "s_net.", "module.student.", "student.", "module.", "")


def convert_checkpoint(checkpoint: str | Path, architecture: str, output: str | Path, num_classes: int = 0) -> dict:
    """Import a checkpoint of the original research code (MoCo ``.pth.tar`` with ``module.encoder_q.*``
    keys, or a phase-2 student) into a model folder of the family.

    The file is read with ``torch.load(weights_only=True)`` only. ``num_classes=0`` imports a teacher
    backbone (MoCo's MLP head in ``fc.*`` is dropped); otherwise a classifier of that many classes.

    Returns:
        ``{"prefix", "loaded", "missing", "unexpected"}``.

    Raises:
        VipriorsError: the file is not weights-only safe, or its keys do not fit ``architecture``.
    """
    if architecture not in timm.list_models("vipriors_*"):
        raise VipriorsError(
            f"--architecture {architecture}: not a member of the family; choose one of "
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
    ignored_head = {k for k in state if k.startswith(best_prefix + "fc.")} if num_classes == 0 else set()
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
            "Pass the architecture it was trained with (--architecture) and --num-classes."
        )
    model.load_state_dict(best)
    tag = "student" if num_classes > 0 else "teacher"
    resolution = 448 if num_classes > 0 else 224
    cfg = pretrained_cfg_for(architecture, tag, resolution, num_classes=num_classes)
    cfg["description"] = f"{architecture} {tag} imported from {Path(checkpoint).name} (original research code)."
    if num_classes != 1000:
        cfg.pop("label_names", None)
    write_model_folder(model, Path(output), architecture, cfg, {})
    return {"prefix": best_prefix, "loaded": len(best), "missing": missing, "unexpected": unexpected}
