"""Model cards: every number and claim in a card is read from the run's files."""

import importlib.resources
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.split_lists import SPLIT_LIST_COMMIT, SPLIT_LIST_SHA256
from ..models import PAPER_ID, TIMM_EQUIVALENTS
from ..version import __version__

__all__ = ["CITATION", "model_description", "render_model_card"]

CITATION = """@inproceedings{zhao2020distilling,
  title     = {Distilling Visual Priors from Self-Supervised Learning},
  author    = {Zhao, Bingchen and Wen, Xin},
  booktitle = {ECCV 2020 Workshops (VIPriors)},
  year      = {2020},
  eprint    = {2008.00261},
  archivePrefix = {arXiv}
}"""


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


def _student_method(train: Mapping[str, Any], epochs: float) -> dict[str, Any]:
    """What a student run did, from its configuration and the ``epochs`` it trained: how it started,
    how many epochs it trained and for how many of them the teacher was distilled."""
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
    epochs: float = 0.0,
) -> str:
    """The model card (``README.md``) of a teacher or student folder, from the run's configuration,
    the ``epochs`` it trained (a student's card says whether and how long it was distilled) and
    evaluation files;
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
    method = _student_method(train, epochs) if phase == "student" else {}
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
