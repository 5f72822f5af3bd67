"""Evaluation: kNN and linear probe for teachers; accuracy, 10-crop, ensembles and submissions for
students; the per-epoch validation of training."""

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import Tensor, nn
from tqdm.auto import tqdm

from .config import check_settings
from .data import (
    DataConfig,
    ExampleStream,
    ResumableLoader,
    eval_transform,
    load_data,
    load_split_lists,
    ten_crop_transform,
)
from .errors import VipriorsError
from .hub import file_sha256, load_model_folder
from .outputs import check_results_destination, is_results_file, is_submission_file, write_text_atomically

__all__ = [
    "TeacherEvalConfig",
    "evaluate_students",
    "evaluate_teacher",
    "extract_features",
    "knn_scores",
    "linear_probe_scores",
    "predict_probabilities",
    "read_submission",
    "topk",
    "validation_scores",
    "write_submission",
]


@dataclass
class TeacherEvalConfig:
    """Settings of ``vipriors-hub eval-teacher``."""

    checkpoint: str = field(default="runs/teacher/final", metadata={"help": "a teacher folder (OUTPUT/final)"})
    output: str = field(default="teacher_eval.json", metadata={"help": "results JSON file"})
    split: str = field(
        default="val", metadata={"help": "split to score: val or test", "choices": ("train", "val", "test")}
    )
    resolution: int | None = field(
        default=None, metadata={"help": "input size (default: the training size)", "min": 8, "max": 4096}
    )
    batch_size: int = field(default=256, metadata={"help": "images per forward pass", "min": 1})
    knn_k: int = field(default=200, metadata={"help": "neighbours of the kNN classifier", "min": 1})
    knn_temperature: float = field(default=0.07, metadata={"help": "temperature of the kNN votes", "above": 0})
    linear_epochs: int = field(default=100, metadata={"help": "L-BFGS iterations of the linear probe", "min": 1})
    linear_weight_decay: float = field(default=1e-4, metadata={"help": "L2 penalty of the linear probe", "min": 0})
    num_workers: int = field(default=2, metadata={"help": "DataLoader workers", "min": 0, "max": 256})

    def __post_init__(self) -> None:
        check_settings(self)


def topk(scores: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Top-k accuracies in percent of ``scores`` ``(N, C)`` against ``labels`` ``(N,)`` (k capped at C)."""
    ranked = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hits = ranked == labels[:, None]
    return {f"top{k}": 100.0 * int(hits[:, :k].any(dim=1).sum()) / len(labels) for k in ks}


@torch.no_grad()
def extract_features(
    model: nn.Module, split, resolution: int, batch_size: int, num_workers: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Model outputs on every image of ``split`` (centre crop): ``(N, F)`` features and ``(N,)`` labels."""
    data_config = timm.data.resolve_data_config({}, model=model)
    stream = ExampleStream(split, eval_transform(resolution, data_config), shuffle=False, batch_size=batch_size)
    model.eval().to(device)
    features, labels = [], []
    loader = ResumableLoader(stream, num_workers=num_workers, prefetch_factor=1)
    for images, batch_labels in tqdm(loader, desc="features", unit="batch", leave=False):
        features.append(model(images.to(device)).float().cpu())
        labels.append(batch_labels)
    return torch.cat(features), torch.cat(labels)


def knn_scores(
    bank: Tensor, bank_labels: Tensor, queries: Tensor, num_classes: int, k: int = 200, temperature: float = 0.07
) -> Tensor:
    """Weighted kNN class scores ``(Q, C)``: the ``k`` most cosine-similar bank features vote for their
    class with weight ``exp(similarity / temperature)`` (InstDisc / MoCo protocol).

    Args:
        bank: ``(N, F)`` features with labels ``(N,)``; queries: ``(Q, F)``.
    """
    bank = F.normalize(bank, dim=1)
    k = min(k, bank.shape[0])
    scores = []
    for chunk in F.normalize(queries, dim=1).split(1024):
        similarity, index = (chunk @ bank.T).topk(k, dim=1)
        votes = torch.zeros(chunk.shape[0], num_classes).scatter_add_(
            1, bank_labels[index], (similarity / temperature).exp()
        )
        scores.append(votes)
    return torch.cat(scores)


def linear_probe_scores(
    train: Tensor, train_labels: Tensor, queries: Tensor, num_classes: int, iterations: int, weight_decay: float
) -> Tensor:
    """Fit a multinomial logistic regression on frozen, standardised features with L-BFGS and return
    the class scores ``(Q, C)`` of ``queries``. Shapes: ``train`` ``(N, F)``, ``queries`` ``(Q, F)``."""
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    inputs = (train - mean) / std
    classifier = nn.Linear(train.shape[1], num_classes)
    optimizer = torch.optim.LBFGS(classifier.parameters(), lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(classifier(inputs), train_labels) + weight_decay * classifier.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return classifier((queries - mean) / std)


def evaluate_teacher(config: TeacherEvalConfig, data_config: DataConfig) -> dict[str, object]:
    """kNN and linear-probe accuracy of a teacher's frozen features; writes and returns the results.

    The training split is the kNN bank and the probe's training set; ``config.split`` is scored.
    """
    check_results_destination(Path(config.output), is_results_file)
    model = load_model_folder(config.checkpoint, expect="teacher")
    data = load_data(data_config)
    if config.split not in data.splits:
        raise VipriorsError(f"The data source has no '{config.split}' split (it has: {', '.join(data.splits)}).")
    resolution = config.resolution or model.pretrained_cfg["input_size"][-1]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, train_labels = extract_features(
        model, data.splits["train"], resolution, config.batch_size, config.num_workers, device
    )
    scored, labels = extract_features(
        model, data.splits[config.split], resolution, config.batch_size, config.num_workers, device
    )
    classes = len(data.class_names)
    knn = knn_scores(train, train_labels, scored, classes, config.knn_k, config.knn_temperature)
    linear = linear_probe_scores(train, train_labels, scored, classes, config.linear_epochs, config.linear_weight_decay)
    results = {
        "checkpoint": str(config.checkpoint),
        "checkpoint_sha256": file_sha256(Path(config.checkpoint) / "model.safetensors"),
        "split": config.split,
        "images": len(labels),
        "resolution": resolution,
        "knn": {**topk(knn, labels), "k": min(config.knn_k, len(train_labels)), "temperature": config.knn_temperature},
        "linear": topk(linear, labels),
    }
    write_text_atomically(Path(config.output), json.dumps(results, indent=2))
    return results


@torch.no_grad()
def validation_scores(
    model: nn.Module, split, resolution: int, batch_size: int, num_workers: int, accelerator: Accelerator
) -> dict[str, float]:
    """Top-1 / top-5 (percent) of a classifier on ``split`` (centre crop), each process scoring its share;
    the scores are summed over processes (a process may hold none of the images, so ``model`` must be
    unwrapped: a DDP module would wait for the missing forward pass). ``model`` is left in the mode it
    was in.

    Raises:
        VipriorsError: no process read any image.
    """
    stream = ExampleStream(
        split,
        eval_transform(resolution, timm.data.resolve_data_config({}, model=model)),
        shuffle=False,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        batch_size=batch_size,
    )
    counts = torch.zeros(3, dtype=torch.long, device=accelerator.device)
    was_training = model.training
    model.eval()
    for images, labels in ResumableLoader(stream, num_workers=num_workers, allow_empty=True):
        images, labels = images.to(accelerator.device), labels.to(accelerator.device)
        with accelerator.autocast():
            logits = model(images)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
        counts += torch.stack([top5[:, 0].sum(), top5.any(dim=1).sum(), labels.new_tensor(len(labels))]).to(counts)
    model.train(was_training)
    top1, top5, total = accelerator.reduce(counts, reduction="sum").tolist()
    if total == 0:
        raise VipriorsError("The validation split has no readable image: check --val-per-class and the data.")
    return {"top1": 100.0 * top1 / total, "top5": 100.0 * top5 / total}


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    split,
    resolution: int,
    ten_crop: bool,
    batch_size: int,
    num_workers: int,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """Softmax probabilities of ``model`` on every readable image of ``split``.

    With ``ten_crop`` each image is seen in ten views (corners, centre, flipped) whose probabilities
    are averaged; a forward pass then takes ``batch_size // 10`` images (at least one), so at most
    ``batch_size`` views (10 for ``batch_size`` < 10), and each worker prefetches one batch: memory
    is bounded by ``batch_size`` whatever the split size. Returns probabilities ``(N, C)``, labels
    ``(N,)`` and row indices into ``split`` ``(N,)`` (unreadable images are skipped).
    """
    data_config = timm.data.resolve_data_config({}, model=model)
    transform = (ten_crop_transform if ten_crop else eval_transform)(resolution, data_config)
    images_per_batch = max(1, batch_size // 10) if ten_crop else batch_size
    stream = ExampleStream(split, transform, shuffle=False, batch_size=images_per_batch, with_index=True)
    model.eval().to(device)
    probabilities, labels, indices = [], [], []
    loader = ResumableLoader(stream, num_workers=num_workers, prefetch_factor=1)
    for images, batch_labels, batch_indices in tqdm(loader, desc="predict", unit="batch", leave=False):
        images = images.to(device)
        if ten_crop:
            views = images.shape[1]
            scores = model(images.flatten(0, 1)).float().softmax(dim=1)
            probabilities.append(scores.view(-1, views, scores.shape[1]).mean(dim=1).cpu())
        else:
            probabilities.append(model(images).float().softmax(dim=1).cpu())
        labels.append(batch_labels)
        indices.append(batch_indices)
    return torch.cat(probabilities), torch.cat(labels), torch.cat(indices)


def write_submission(path: Path, image_ids: list[str], predictions: list[int]) -> None:
    """Write the VIPriors submission CSV: header ``Image IDs,Predictions``, one row per image."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Image IDs", "Predictions"])
    writer.writerows(zip(image_ids, predictions, strict=True))
    write_text_atomically(Path(path), buffer.getvalue())


def read_submission(path: Path) -> dict[str, int]:
    """Read a submission CSV back: image id -> predicted class index."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.reader(handle))
    if rows[:1] != [["Image IDs", "Predictions"]]:
        raise VipriorsError(f"{path} is not a VIPriors submission (header must be 'Image IDs,Predictions').")
    return {image_id: int(prediction) for image_id, prediction in rows[1:]}


def _image_ids(data_config: DataConfig, split_name: str, split, rows: Tensor) -> list[str]:
    """Submission ids of ``rows`` of ``split``: ``img_{i}.JPEG`` (position in the official list) for the
    VIPriors test split, else the split's ``id`` column, else the row index."""
    if data_config.dataset == "vipriors" and split_name == "test":
        position = {entry.stem: i for i, entry in enumerate(load_split_lists(data_config.split_lists).test)}
        return [f"img_{position[split[int(row)]['id']]}.JPEG" for row in rows]
    if "id" in split.column_names:
        ids = split["id"]
        return [str(ids[int(row)]) for row in rows]
    return [str(int(row)) for row in rows]


def evaluate_students(
    checkpoints: list[str],
    data_config: DataConfig,
    split: str,
    output: Path,
    ten_crop: bool = False,
    resolution: int | None = None,
    batch_size: int = 32,
    num_workers: int = 2,
    submission: Path | None = None,
) -> dict[str, object]:
    """Score one student or the ensemble of several (mean of their softmax) on ``split``.

    Writes and returns ``{"top1", "top5", "per_class", "members": [...], ...}``; with ``submission``
    also the VIPriors CSV of the ensemble's predictions.

    Raises:
        VipriorsError: a checkpoint is not a student, or its classes differ from the data's.
    """
    check_results_destination(Path(output), is_results_file)
    if submission is not None:
        check_results_destination(Path(submission), is_submission_file, "--submission")
        if Path(submission).absolute() == Path(output).absolute():
            raise VipriorsError("--submission and --output name the same file: give each its own.")
    models = [(checkpoint, load_model_folder(checkpoint, expect="student")) for checkpoint in checkpoints]
    data = load_data(data_config)
    if split not in data.splits:
        raise VipriorsError(f"The data source has no '{split}' split (it has: {', '.join(data.splits)}).")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    members, summed, labels, rows = [], None, None, None
    for checkpoint, model in models:
        if model.num_classes != len(data.class_names):
            raise VipriorsError(
                f"{checkpoint} classifies {model.num_classes} classes but the data has {len(data.class_names)}: "
                "evaluate it on the data it was trained for (--dataset, --data-dir)."
            )
        size = resolution or model.pretrained_cfg["input_size"][-1]
        probabilities, labels, rows = predict_probabilities(
            model, data.splits[split], size, ten_crop, batch_size, num_workers, device
        )
        weights_sha256 = file_sha256(Path(checkpoint) / "model.safetensors")
        members.append(
            {
                "checkpoint": str(checkpoint),
                "checkpoint_sha256": weights_sha256,
                "resolution": size,
                **topk(probabilities, labels),
            }
        )
        summed = probabilities if summed is None else summed + probabilities
    ensemble = summed / len(checkpoints)
    predictions = ensemble.argmax(dim=1)
    per_class = {
        name: 100.0 * int((predictions[labels == index] == index).sum()) / int((labels == index).sum())
        for index, name in enumerate(data.class_names)
        if (labels == index).any()
    }
    results = {
        "split": split,
        "images": len(labels),
        "ten_crop": ten_crop,
        "checkpoints": [str(c) for c in checkpoints],
        **topk(ensemble, labels),
        "members": members,
        "per_class": per_class,
    }
    write_text_atomically(Path(output), json.dumps(results, indent=2))
    if submission is not None:
        write_submission(submission, _image_ids(data_config, split, data.splits[split], rows), predictions.tolist())
    return results
