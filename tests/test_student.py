"""Phase-2 trainer and student evaluation: smoke run, 10-crop, ensembles, submission CSV."""

import json
from pathlib import Path

import pytest
import timm
import torch
from conftest import FASHION, FASHION_DIR
from PIL import Image

from vipriors_hub.cli import main
from vipriors_hub.data import DataConfig, load_data, ten_crop_transform
from vipriors_hub.errors import VipriorsError
from vipriors_hub.evaluate import (
    EvaluateConfig,
    evaluate_students,
    predict_probabilities,
    read_submission,
    write_submission,
)
from vipriors_hub.hub import pretrained_cfg_for, write_model_folder
from vipriors_hub.train.result import read_fit_result


def scoring(checkpoints: list[str], split: str, output: Path, submission: Path | None = None) -> EvaluateConfig:
    """``vipriors-hub evaluate``'s settings for ``checkpoints`` on ``split``, in this process."""
    return EvaluateConfig(
        checkpoint=checkpoints,
        split=split,
        output=str(output),
        num_workers=0,
        submission=submission and str(submission),
    )


def test_student_smoke_run_distils_after_the_first_epochs(student_run: Path, teacher_run: Path) -> None:
    records = [json.loads(line) for line in (student_run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert all(r["distillation"] == 0 for r in steps if r["epoch"] <= 1)
    assert all(r["distillation"] > 0 for r in steps if r["epoch"] > 1)
    assert [r["epoch"] for r in records if "val_top1" in r] == [1.0, 2.0, 3.0]
    config = json.loads((student_run / "final" / "config.json").read_text())
    assert config["num_classes"] == 10 and config["label_names"][0] == "T-shirt/top"
    assert (student_run / "best" / "model.safetensors").is_file()
    model = timm.create_model(f"local-dir:{student_run / 'final'}", pretrained=True).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_fit_result_counts_the_teachers_forward_once_distillation_starts(student_run: Path, teacher_run: Path) -> None:
    result, teacher = read_fit_result(student_run), read_fit_result(teacher_run)
    assert result.final == student_run / "final" and result.epochs == 3.0 and teacher.phase == "teacher"
    supervised, distill = result.flops_per_micro_step["supervised"], result.flops_per_micro_step["distill"]
    # the frozen teacher's forward pass (a third of the student's forward + backward) comes on top
    assert 1.2 * supervised < distill < 1.6 * supervised
    epoch = result.steps_per_epoch
    assert result.train_flops == epoch * supervised + 2 * epoch * distill  # no_distill_epochs=1 of 3
    assert teacher.train_flops == teacher.steps * teacher.flops_per_micro_step["teacher"]
    assert result.images_seen == result.steps * 64 and result.processes == 1
    assert [epoch for epoch, _ in result.curves["val_top1"]] == [1.0, 2.0, 3.0]
    assert result.validation["top1"] == result.curves["val_top1"][-1][1]
    assert json.loads((student_run / "result.json").read_text())["train_flops"] == result.train_flops


def test_student_evaluate_and_submission(student_run: Path, tmp_path: Path) -> None:
    data = ["--dataset", "fashion-mnist", "--data-dir", str(FASHION_DIR), "--per-class", "50"]
    args = ["evaluate", "--checkpoint", str(student_run / "final"), "--split", "val", "--num-workers", "0"]
    args += ["--output", str(tmp_path / "results.json"), "--submission", str(tmp_path / "sub.csv"), *data]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    submission = read_submission(tmp_path / "sub.csv")
    assert results["images"] == len(submission) == 100
    assert set(results["per_class"]) == set(load_data(FASHION).class_names)
    assert results["top1"] == pytest.approx(sum(results["per_class"].values()) / 10)


def test_ensemble_of_identical_checkpoints_equals_one(student_run: Path, tmp_path: Path) -> None:
    final = str(student_run / "final")
    config = DataConfig(**{**FASHION.__dict__, "per_class": 10})
    one = evaluate_students(scoring([final], "val", tmp_path / "one.json"), config)
    two = evaluate_students(scoring([final, final], "val", tmp_path / "two.json"), config)
    assert (one["top1"], one["top5"]) == pytest.approx((two["top1"], two["top5"]))
    assert one["per_class"].keys() == two["per_class"].keys()
    assert one["per_class"] == pytest.approx(two["per_class"])


def test_ten_crop_averages_ten_views() -> None:
    data_config = {"interpolation": "bilinear", "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 0.875}
    image = Image.frombytes("RGB", (40, 36), bytes(range(256)) * 16 + bytes(range(224)))
    views = ten_crop_transform(32, data_config)(image)
    assert views.shape == (10, 3, 32, 32)
    assert torch.equal(views[9], views[4].flip(-1)) and torch.equal(views[5], views[1].flip(-1))
    assert not torch.equal(views[0], views[4])

    model = timm.create_model("vipriors_resnet_tiny", num_classes=3, pretrained_cfg_overlay=dict(crop_pct=0.875)).eval()
    split = load_data(DataConfig(**{**FASHION.__dict__, "per_class": 5})).splits["val"]
    probabilities, _, rows = predict_probabilities(model, split, 32, True, 4, 0, torch.device("cpu"))
    from vipriors_hub.data.images import decode_rgb

    first = ten_crop_transform(32, timm.data.resolve_data_config({}, model=model))(
        decode_rgb(split[int(rows[0])]["image"])
    )
    with torch.no_grad():
        expected = model(first).softmax(dim=1).mean(dim=0)
    assert torch.allclose(probabilities[0], expected, atol=1e-6)


def test_submission_round_trips(tmp_path: Path) -> None:
    ids, predictions = [f"img_{i}.JPEG" for i in range(5)], [3, 999, 0, 12, 3]
    write_submission(tmp_path / "sub.csv", ids, predictions)
    assert (tmp_path / "sub.csv").read_text().splitlines()[0] == "Image IDs,Predictions"
    assert read_submission(tmp_path / "sub.csv") == dict(zip(ids, predictions, strict=True))


def test_vipriors_test_submission_uses_official_image_ids(split_lists: Path, tmp_path: Path) -> None:
    from vipriors_hub.data import load_split_lists

    lists = load_split_lists(split_lists)
    root = tmp_path / "imagenet_50"
    for split in ("train", "val"):
        entry = lists.split(split)[0]
        (root / split / entry.wnid).mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(root / split / entry.wnid / f"{entry.stem}.JPEG")
    (root / "test").mkdir()
    for i in (0, 2, 3):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(root / "test" / f"img_{i}.JPEG")
    classes = len(lists.class_names)
    student = timm.create_model("vipriors_resnet_tiny", num_classes=classes)
    write_model_folder(
        student,
        tmp_path / "student",
        "vipriors_resnet_tiny",
        pretrained_cfg_for("vipriors_resnet_tiny", "student", 32, num_classes=classes),
        {},
    )
    data = DataConfig(dataset="vipriors", data_dir=str(tmp_path), split_lists=str(split_lists))
    evaluate_students(scoring([str(tmp_path / "student")], "test", tmp_path / "r.json", tmp_path / "s.csv"), data)
    assert list(read_submission(tmp_path / "s.csv")) == ["img_0.JPEG", "img_2.JPEG", "img_3.JPEG"]


def test_class_count_mismatch_is_refused(student_run: Path, tmp_path: Path) -> None:
    other = DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "folder"))
    for label in ("a", "b"):
        (tmp_path / "folder" / "train" / label).mkdir(parents=True)
        (tmp_path / "folder" / "validation" / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "folder" / "train" / label / "0.png")
        Image.new("RGB", (8, 8)).save(tmp_path / "folder" / "validation" / label / "0.png")
    with pytest.raises(VipriorsError, match="classifies 10 classes but the data has 2"):
        evaluate_students(scoring([str(student_run / "final")], "val", tmp_path / "r.json"), other)


def test_teacher_given_as_student_is_refused(teacher_run: Path, tmp_path: Path) -> None:
    with pytest.raises(VipriorsError, match="teacher backbone"):
        evaluate_students(scoring([str(teacher_run / "final")], "val", tmp_path / "r.json"), FASHION)
