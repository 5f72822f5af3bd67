"""The demo (shipped data, three arms, results, Hub folders) and the data it ships."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from vipriors_hub.data import load_data
from vipriors_hub.demo import (
    ARMS,
    RESULT_KEYS,
    DemoConfig,
    demo_data_config,
    equal_compute_budget,
    run_arms,
    run_demo,
)
from vipriors_hub.errors import VipriorsError
from vipriors_hub.train.result import FitResult

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.real_data
def test_shipped_data_is_exactly_what_the_build_script_writes(real_fashion_mnist: Path, tmp_path: Path) -> None:
    script = ROOT / "scripts" / "build_demo_data.py"
    command = [sys.executable, str(script), "--source", str(real_fashion_mnist), "--output", str(tmp_path)]
    subprocess.run(command, check=True, capture_output=True)
    shipped = ROOT / "vipriors_hub" / "demo_data"
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "COPYRIGHT"):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name


def test_shipped_data_gives_50_per_class_and_the_full_test_set() -> None:
    data = load_data(demo_data_config())
    assert sorted([*data.splits["train"]["label"], *data.splits["val"]["label"]]) == sorted(list(range(10)) * 50)
    assert len(data.splits["val"]) == 100 and len(data.splits["test"]) == 10_000


def test_demo_runs_every_arm_and_writes_results_plot_and_cards(tmp_path: Path) -> None:
    config = DemoConfig(output=str(tmp_path / "demo")).with_settings(teacher_epochs=2, student_epochs=2)
    results = run_demo(config)
    written = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert written == results
    assert set(RESULT_KEYS) <= set(written) and len(RESULT_KEYS) == 5
    assert all(0 <= written[key] <= 100 for key in RESULT_KEYS)
    assert (tmp_path / "demo" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written["data"] == {
        "source": "shipped subset",
        "seed": 0,
        "train_per_class": 40,
        "val_per_class": 10,
        "test_images": 10_000,
    }
    for phase, keys in (("student", ["student_top1"]), ("teacher", ["teacher_knn_top1", "teacher_linear_top1"])):
        card = ModelCard.load(tmp_path / "demo" / "hub" / phase / "README.md")
        top1 = {r.metric_value for r in card.data.eval_results if r.metric_name.startswith("top1")}
        assert top1 == {written[key] for key in keys}
        assert all(r.dataset_split == "test" for r in card.data.eval_results)


def test_equal_compute_baseline_gets_the_measured_budget_of_the_pipeline(
    small_fashion_mnist: Path, tmp_path: Path
) -> None:
    config = DemoConfig(output=str(tmp_path / "arms"), data_dir=str(small_fashion_mnist))
    config = config.with_settings(**{"teacher.epochs": 3, "student_epochs": 2})
    results = run_arms(config, demo_data_config(config))
    compute, equal = results["compute"], results["equal_compute"]
    pipeline = compute["teacher"]["train_flops"] + compute["student"]["train_flops"]
    assert equal["pipeline_train_flops"] == pipeline
    assert equal["baseline_flops_per_step"] == pytest.approx(
        compute["baseline"]["train_flops"] / compute["baseline"]["steps"]
    )
    assert equal["budget_flops"] == pytest.approx(pipeline, rel=0.10)
    per_step = compute["baseline_equal_compute"]["train_flops"] / compute["baseline_equal_compute"]["steps"]
    assert per_step == pytest.approx(equal["baseline_flops_per_step"])
    assert compute["baseline_equal_compute"]["steps"] == equal["steps"] > compute["baseline"]["steps"]
    for arm in ARMS:
        assert compute[arm]["images_seen"] == compute[arm]["steps"] * config.batch_size
    assert set(RESULT_KEYS) <= set(results)


def test_demo_draws_other_data_when_asked() -> None:
    other = demo_data_config(DemoConfig(seed=3, per_class=30, val_per_class=5))
    data = load_data(other)
    assert len(data.splits["train"]) == 250 and len(data.splits["val"]) == 50
    with pytest.raises(VipriorsError, match="shipped subset has 50"):
        DemoConfig(per_class=60)
    with pytest.raises(VipriorsError, match="must be below"):
        DemoConfig(per_class=10, val_per_class=10)


def recorded_run(steps: int, flops_per_step: int, seconds: float) -> FitResult:
    """A run's result as ``fit`` records it: ``steps`` steps of ``flops_per_step`` FLOPs in ``seconds``."""
    return FitResult(
        phase="student",
        final=Path("final"),
        steps=steps,
        steps_per_epoch=5,
        epochs=steps / 5,
        images_seen=steps * 64,
        effective_batch_size=64,
        processes=1,
        gradient_accumulation_steps=1,
        mixed_precision="no",
        torch_compile=False,
        channels_last=False,
        train_seconds=seconds,
        train_flops=steps * flops_per_step,
    )


def test_equal_compute_budget_counts_flops_so_a_busier_machine_gives_the_same_steps() -> None:
    teacher, student = recorded_run(250, 3_000_000, 100.0), recorded_run(900, 2_000_000, 50.0)
    baseline = recorded_run(900, 1_000_000, 40.0)
    budget = equal_compute_budget(teacher, student, baseline)
    assert budget["steps"] == (250 * 3 + 900 * 2) == 2550
    assert budget["epochs"] == 2550 / 5 and budget["budget_flops"] == budget["pipeline_train_flops"]
    assert budget["pipeline_train_seconds"] == 150.0 and budget["baseline_seconds_per_step"] == 40.0 / 900
    # the same runs beside a CPU-heavy process: every wall time longer, by different factors
    busy = [
        dataclasses.replace(run, train_seconds=run.train_seconds * factor)
        for run, factor in ((teacher, 2.7), (student, 1.3), (baseline, 3.1))
    ]
    assert equal_compute_budget(*busy)["steps"] == budget["steps"]
    with pytest.raises(VipriorsError, match="did not count their FLOPs"):
        equal_compute_budget(teacher, dataclasses.replace(student, train_flops=None), baseline)
