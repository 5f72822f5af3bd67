"""Evaluation: kNN and linear probe for teachers; accuracy, 10-crop, ensembles and submissions for
students; the per-epoch validation of training."""

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
import timm
import torch
from accelerate import Accelerator
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data import DataConfig, DataSplits, DecodedSplit, ResumableLoader, Views, eval_views, load_data
from .data.pipeline import decode_splits, make_stream, resolve_pipeline
from .errors import VipriorsError
from .eval_settings import EvaluateConfig, TeacherEvalConfig
from .hub import file_sha256, load_model_folder
from .outputs import check_results_destination, is_results_file, is_submission_file, write_text_atomically
from .probes import knn_scores, linear_probe_scores
from .submission import image_ids, read_submission, write_submission

__all__ = [
    "EvaluateConfig",
    "TeacherEvalConfig",
    "evaluate_students",
    "evaluate_teacher",
    "extract_features",
    "knn_scores",
    "linear_probe_scores",
    "model_outputs",
    "predict_probabilities",
    "read_submission",
    "topk",
    "validation_scores",
    "write_submission",
]


def _device() -> torch.device:
    """The device evaluations run on: the GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _load_data(data_config: DataConfig, names: tuple[str, ...], workers: int) -> DataSplits:
    """The data of an evaluation, with the splits ``names`` decoded into the cache when the data
    pipeline on this machine's device is ``device``."""
    data = load_data(data_config)
    if resolve_pipeline(data_config.data_pipeline, _device()) == "device":
        data = decode_splits(data, names, data_config, workers)
    return data


def _split(data: DataSplits, name: str) -> datasets.Dataset | DecodedSplit:
    """The split ``name`` of the loaded ``data``.

    Raises:
        VipriorsError: the source has no such split.
    """
    if name not in data.splits:
        raise VipriorsError(f"The data source has no '{name}' split (it has: {', '.join(data.splits)}).")
    return data.splits[name]


@torch.no_grad()
def model_outputs(
    model: nn.Module,
    split: datasets.Dataset | DecodedSplit,
    views: Views,
    batch_size: int,
    num_workers: int,
    device: torch.device | str,
    *,
    rank: int = 0,
    world_size: int = 1,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    allow_empty: bool = False,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """The one inference loop of every evaluation: ``model``'s outputs on this process's share of
    ``split`` in order, batch by batch, with the model in eval mode (its mode is restored after).

    Yields ``(outputs, labels, rows)``: outputs ``(B, C)`` on ``device``, or ``(B, V, C)`` when the
    views give ``V`` views of an image (10-crop); labels ``(B,)`` and row indices into
    ``split`` ``(B,)`` on the CPU (unreadable images are skipped). Each worker prefetches one batch,
    so memory is bounded by ``batch_size``. ``allow_empty``: this process's share may hold no image
    (another process may hold them all) instead of being refused.
    """
    device = torch.device(device)
    stream = make_stream(
        split, views, shuffle=False, rank=rank, world_size=world_size, batch_size=batch_size, with_index=True
    )
    loader = ResumableLoader(
        stream,
        num_workers=num_workers,
        prefetch_factor=1,
        allow_empty=allow_empty,
        pin_memory=device.type == "cuda",
        device=device,
    )
    was_training = model.training
    model.eval()
    try:
        for images, labels, rows in tqdm(loader, desc="inference", unit="batch", leave=False, disable=rank > 0):
            images = images.to(device, non_blocking=True)
            with autocast():
                if images.ndim == 5:
                    outputs = model(images.flatten(0, 1))
                    outputs = outputs.view(images.shape[0], images.shape[1], -1)
                else:
                    outputs = model(images)
            yield outputs, labels, rows
    finally:
        model.train(was_training)


def topk(scores: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Top-k accuracies in percent of ``scores`` ``(N, C)`` against ``labels`` ``(N,)`` (k capped at C)."""
    ranked = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hits = ranked == labels[:, None]
    return {f"top{k}": 100.0 * int(hits[:, :k].any(dim=1).sum()) / len(labels) for k in ks}


def extract_features(
    model: nn.Module,
    split: datasets.Dataset | DecodedSplit,
    resolution: int,
    batch_size: int,
    num_workers: int,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Model outputs on every image of ``split`` (centre crop): ``(N, F)`` features and ``(N,)`` labels."""
    views = eval_views(resolution, timm.data.resolve_data_config({}, model=model))
    model.to(device)
    features, labels = [], []
    for outputs, batch_labels, _ in model_outputs(model, split, views, batch_size, num_workers, device):
        features.append(outputs.float().cpu())
        labels.append(batch_labels)
    return torch.cat(features), torch.cat(labels)


def evaluate_teacher(config: TeacherEvalConfig, data_config: DataConfig) -> dict[str, object]:
    """kNN and linear-probe accuracy of a teacher's frozen features; writes and returns the results.

    The training split is the kNN bank and the probe's training set; ``config.split`` is scored.
    """
    data_config.refuse_streamed_splits("eval-teacher")
    check_results_destination(Path(config.output), is_results_file)
    model = load_model_folder(config.checkpoint, expect="teacher")
    data = _load_data(data_config, ("train", config.split), config.num_workers)
    scored_split = _split(data, config.split)
    resolution = config.resolution or model.pretrained_cfg["input_size"][-1]
    loading = (resolution, config.batch_size, config.num_workers, _device())
    train, train_labels = extract_features(model, _split(data, "train"), *loading)
    scored, labels = extract_features(model, scored_split, *loading)
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
    model: nn.Module,
    split: datasets.Dataset | DecodedSplit,
    resolution: int,
    batch_size: int,
    num_workers: int,
    accelerator: Accelerator,
) -> dict[str, float]:
    """Top-1 / top-5 (percent) of a classifier on ``split`` (centre crop), each process scoring its share;
    the scores are summed over processes (a process may hold none of the images, so ``model`` must be
    unwrapped: a DDP module would wait for the missing forward pass). ``model`` is left in the mode it
    was in.

    Raises:
        VipriorsError: no process read any image.
    """
    views = eval_views(resolution, timm.data.resolve_data_config({}, model=model))
    counts = torch.zeros(3, dtype=torch.long, device=accelerator.device)
    share = dict(rank=accelerator.process_index, world_size=accelerator.num_processes, allow_empty=True)
    for logits, labels, _ in model_outputs(
        model, split, views, batch_size, num_workers, accelerator.device, autocast=accelerator.autocast, **share
    ):
        labels = labels.to(accelerator.device)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
        counts += torch.stack([top5[:, 0].sum(), top5.any(dim=1).sum(), labels.new_tensor(len(labels))]).to(counts)
    top1, top5, total = accelerator.reduce(counts, reduction="sum").tolist()
    if total == 0:
        raise VipriorsError("The validation split has no readable image: check --val-per-class and the data.")
    return {"top1": 100.0 * top1 / total, "top5": 100.0 * top5 / total}


def predict_probabilities(
    model: nn.Module,
    split: datasets.Dataset | DecodedSplit,
    resolution: int,
    ten_crop: bool,
    batch_size: int,
    num_workers: int,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """Softmax probabilities of ``model`` on every readable image of ``split``.

    With ``ten_crop`` each image is seen in ten views (corners, centre, flipped) whose probabilities
    are averaged; a forward pass then takes ``batch_size // 10`` images (at least one), so at most
    ``batch_size`` views (10 for ``batch_size`` < 10). Returns probabilities ``(N, C)``, labels
    ``(N,)`` and row indices into ``split`` ``(N,)`` (unreadable images are skipped).
    """
    data_config = timm.data.resolve_data_config({}, model=model)
    views = eval_views(resolution, data_config, ten_crop)
    images_per_batch = max(1, batch_size // 10) if ten_crop else batch_size
    model.to(device)
    probabilities, labels, indices = [], [], []
    for outputs, batch_labels, rows in model_outputs(model, split, views, images_per_batch, num_workers, device):
        scores = outputs.float().softmax(dim=-1)
        probabilities.append((scores.mean(dim=1) if scores.ndim == 3 else scores).cpu())
        labels.append(batch_labels)
        indices.append(rows)
    return torch.cat(probabilities), torch.cat(labels), torch.cat(indices)


def evaluate_students(config: EvaluateConfig, data_config: DataConfig) -> dict[str, object]:
    """Score one student or the ensemble of several (mean of their softmax) on ``config.split``.

    Writes and returns ``{"top1", "top5", "per_class", "members": [...], ...}``; with ``submission``
    also the VIPriors CSV of the ensemble's predictions.

    Raises:
        VipriorsError: a checkpoint is not a student, or its classes differ from the data's.
    """
    checkpoints, split, output = config.checkpoint, config.split, Path(config.output)
    submission = Path(config.submission) if config.submission else None
    data_config.refuse_streamed_splits("evaluate")
    check_results_destination(output, is_results_file)
    if submission is not None:
        check_results_destination(submission, is_submission_file, "--submission")
        if submission.absolute() == output.absolute():
            raise VipriorsError("--submission and --output name the same file: give each its own.")
    models = [(checkpoint, load_model_folder(checkpoint, expect="student")) for checkpoint in checkpoints]
    data = _load_data(data_config, (split,), config.num_workers)
    scored_split = _split(data, split)
    members, summed, labels, rows = [], None, None, None
    for checkpoint, model in models:
        if model.num_classes != len(data.class_names):
            raise VipriorsError(
                f"{checkpoint} classifies {model.num_classes} classes but the data has {len(data.class_names)}: "
                "evaluate it on the data it was trained for (--dataset, --data-dir)."
            )
        size = config.resolution or model.pretrained_cfg["input_size"][-1]
        loading = (config.ten_crop, config.batch_size, config.num_workers, _device())
        probabilities, labels, rows = predict_probabilities(model, scored_split, size, *loading)
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
        "ten_crop": config.ten_crop,
        "checkpoints": [str(c) for c in checkpoints],
        **topk(ensemble, labels),
        "members": members,
        "per_class": per_class,
    }
    write_text_atomically(output, json.dumps(results, indent=2))
    if submission is not None:
        write_submission(submission, image_ids(data_config, split, scored_split, rows), predictions.tolist())
    return results
