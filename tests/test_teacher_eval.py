"""Teacher evaluation: kNN votes, linear probe, top-k and the eval-teacher command."""

import json
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F

from vipriors_hub.cli import main
from vipriors_hub.evaluate import knn_scores, linear_probe_scores, topk
from vipriors_hub.hub import pretrained_cfg_for, write_model_folder


def test_knn_scores_match_a_brute_force_vote() -> None:
    generator = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(30, 6, generator=generator), torch.randn(4, 6, generator=generator)
    labels = torch.randint(0, 3, (30,), generator=generator)
    scores = knn_scores(bank, labels, queries, num_classes=3, k=5, temperature=0.1)
    for q in range(4):
        similarity = F.normalize(queries[q], dim=0) @ F.normalize(bank, dim=1).T
        expected = torch.zeros(3)
        for index in similarity.argsort(descending=True)[:5]:
            expected[labels[index]] += torch.exp(similarity[index] / 0.1)
        assert torch.allclose(scores[q], expected, rtol=1e-5)


def test_linear_probe_separates_separable_features() -> None:
    generator = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 8, generator=generator) * 5
    labels = torch.arange(4).repeat(20)
    features = centres[labels] + torch.randn(80, 8, generator=generator)
    scores = linear_probe_scores(features, labels, features, num_classes=4, iterations=50, weight_decay=1e-4)
    assert topk(scores, labels)["top1"] == 100.0


def test_topk_counts_hits_in_percent() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.2], [0.2, 0.3, 0.5]])
    assert topk(scores, torch.tensor([1, 2, 0]), ks=(1, 2)) == pytest.approx({"top1": 100 / 3, "top2": 200 / 3})


def test_eval_teacher_writes_results_and_refuses_a_student(tmp_path: Path, capsys) -> None:
    from conftest import FASHION_DIR

    data = ["--dataset", "fashion-mnist", "--data-dir", str(FASHION_DIR), "--per-class", "10"]
    teacher = timm.create_model("vipriors_resnet_tiny", num_classes=0)
    write_model_folder(
        teacher,
        tmp_path / "teacher",
        "vipriors_resnet_tiny",
        pretrained_cfg_for("vipriors_resnet_tiny", "teacher", 32),
        {},
    )
    args = ["eval-teacher", "--checkpoint", str(tmp_path / "teacher"), "--split", "val", "--num-workers", "0"]
    assert main([*args, "--output", str(tmp_path / "eval.json"), *data]) == 0
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["images"] == 20 and results["resolution"] == 32
    assert 0 <= results["knn"]["top1"] <= results["knn"]["top5"] <= 100
    assert 0 <= results["linear"]["top1"] <= results["linear"]["top5"] <= 100

    student = timm.create_model("vipriors_resnet_tiny", num_classes=10)
    cfg = pretrained_cfg_for("vipriors_resnet_tiny", "student", 32, num_classes=10)
    write_model_folder(student, tmp_path / "student", "vipriors_resnet_tiny", cfg, {})
    args[2] = str(tmp_path / "student")
    assert main([*args, "--output", str(tmp_path / "other.json"), *data]) == 2
    assert "student classifier" in capsys.readouterr().err and not (tmp_path / "other.json").exists()
