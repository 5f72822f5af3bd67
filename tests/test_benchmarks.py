"""The GPU check (run here on CPU with a tiny model) times the trainers' own steps and reports them
in the layout committed under benchmarks/results/; the demo's tuning gives both arms the same budget
and its committed choices are the demo's defaults."""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from vipriors_hub.demo import ALIASES, DemoConfig

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_check_dry_run_reports_both_phases_in_both_modes(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, "gpu_check.py", "--dry-run", "--precisions", "fp32", "--json-out", str(out)]
    result = subprocess.run(command, cwd=BENCHMARKS, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["device"] == "cpu"
    for phase in ("teacher", "student"):
        entry = summary[phase]["fp32"]
        eager, compiled = entry["modes"]["eager"], entry["modes"]["compile"]
        assert entry["mode"] in ("eager", "compile") and entry["images_per_second"] > 0
        assert eager["loss_finite"] and compiled["loss_finite"] and eager["loss_decreasing"]
        # the compiled step is the same computation: the same losses up to float reordering
        assert compiled["loss_first"] == pytest.approx(eager["loss_first"], rel=1e-3)
        assert compiled["loss_last"] == pytest.approx(eager["loss_last"], rel=1e-2)


def test_committed_gpu_results_have_the_documented_layout() -> None:
    for path in (BENCHMARKS / "results").glob("gpu_check-*.json"):
        summary = json.loads(path.read_text())
        for phase in ("teacher", "student"):
            for precision in ("bf16", "fp32"):
                entry = summary[phase][precision]
                assert entry["images_per_second"] == entry["modes"][entry["mode"]]["images_per_second"]
                assert entry["loss_finite"]


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/NAME.py`` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tuning_gives_both_arms_the_same_number_of_configurations_of_demo_settings() -> None:
    tune = load_benchmark("tune_demo")
    fields = {f.name for f in dataclasses.fields(DemoConfig)} | set(ALIASES)  # ALIASES: the arms' flat names
    assert set(tune.BASELINE_START) | set(tune.PIPELINE_START) <= fields
    assert len(tune.BASELINE_ROUNDS) == len(tune.PIPELINE_ROUNDS)
    for baseline, pipeline in zip(tune.BASELINE_ROUNDS, tune.PIPELINE_ROUNDS, strict=True):
        assert len(baseline) == len(pipeline) and {} in baseline and {} in pipeline
        for changes in (baseline, pipeline):
            assert all(set(change) <= fields for change in changes)
            assert len({json.dumps(change, sort_keys=True) for change in changes}) == len(changes)


def test_demo_defaults_are_the_committed_tuning_choices() -> None:
    """What ``tune_demo.py`` chose on held-out data in its last round is what the demo runs (the
    baseline's epochs aside: the equal-compute arm sets them), and every round picked its best."""
    report = json.loads((BENCHMARKS / "results" / "tune_demo.json").read_text())
    defaults = DemoConfig()
    for tuning_round in report["rounds"]:
        for arm, results in tuning_round["results"].items():
            assert tuning_round["chosen"][arm]["val_top1"] == max(row["val_top1"] for row in results)
    last = report["rounds"][-1]
    for arm, excluded in (("baseline", {"student_epochs"}), ("pipeline", set())):
        chosen = {**last["start"][arm], **last["chosen"][arm]["change"]}
        for key, value in chosen.items():
            if key not in excluded:
                assert defaults.setting(key) == value, key


def test_committed_tuning_rounds_follow_the_declared_search() -> None:
    """Each committed round tried exactly the script's changes for both arms, round 1 from the declared
    starts and every later round from the previous round's choice, whose score it carries over."""
    tune = load_benchmark("tune_demo")
    report = json.loads((BENCHMARKS / "results" / "tune_demo.json").read_text())
    assert report["rounds"][0]["start"] == tune.START
    rounds = {"baseline": tune.BASELINE_ROUNDS, "pipeline": tune.PIPELINE_ROUNDS}
    for number, tuning_round in enumerate(report["rounds"]):
        for arm, results in tuning_round["results"].items():
            assert [row["change"] for row in results] == rounds[arm][number]
        if number:
            previous = report["rounds"][number - 1]
            for arm, results in tuning_round["results"].items():
                expected_start = {**previous["start"][arm], **previous["chosen"][arm]["change"]}
                assert tuning_round["start"][arm] == expected_start
                assert results[0] == {**previous["chosen"][arm], "change": {}}


def test_the_device_benchmark_runs_end_to_end_with_dry_run(small_fashion_mnist: Path, tmp_path: Path) -> None:
    data = small_fashion_mnist
    script = BENCHMARKS / "device" / "data_deficient_gpu.sh"
    environment = {**os.environ, "DATA_DIR": str(data), "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs")}
    result = subprocess.run(
        ["bash", str(script), "--dry-run", "--seeds", "3"],
        capture_output=True,
        text=True,
        timeout=900,
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (out,) = (tmp_path / "out").glob("data_deficient-resnet50-224px-*.json")
    report = json.loads(out.read_text())
    assert report["settings"]["architecture"] == "vipriors_resnet_tiny" and report["command"]["dry_run"]
    assert [row["seed"] for row in report["rows"]] == [3]
    for row in report["rows"]:
        assert set(row["compute"]) == {"baseline", "teacher", "student", "baseline_equal_compute"}
        for arm in row["compute"].values():
            assert arm["steps"] > 0 and arm["images_seen"] == arm["steps"] * 16 and arm["train_seconds"] > 0
        assert row["equal_compute"]["steps"] == row["compute"]["baseline_equal_compute"]["steps"]
        assert all(0 <= row[key] <= 100 for key in ("baseline_top1", "student_top1", "teacher_knn_top1"))
    gaps = [row["student_top1"] - row["baseline_equal_compute_top1"] for row in report["rows"]]
    assert report["summary"]["student_minus_equal_compute"]["per_seed"] == pytest.approx(gaps)
    assert ("beats" if sum(gaps) > 0 else "does NOT beat") in result.stdout


def test_the_feed_check_runs_end_to_end_with_dry_run(tmp_path: Path) -> None:
    script = BENCHMARKS / "device" / "feed_check_gpu.sh"
    environment = {**os.environ, "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs")}
    result = subprocess.run(
        ["bash", str(script), "--dry-run"], capture_output=True, text=True, timeout=900, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (out,) = (tmp_path / "out").glob("feed_check-resnet50-*.json")
    report = json.loads(out.read_text())
    assert report["settings"]["architecture"] == "vipriors_resnet_tiny" and not report["settings"]["compile"]
    for phase in ("teacher", "student"):
        figures = report[phase]
        assert figures["end_to_end_images_per_second"] > 0 and figures["synthetic_images_per_second"] > 0
        assert figures["fraction_of_synthetic"] == pytest.approx(
            figures["end_to_end_images_per_second"] / figures["synthetic_images_per_second"]
        )
    assert report["estimate"]["predicted_seconds"] > 0 and report["estimate"]["measured_seconds"] > 0
    assert not list((tmp_path / "runs").iterdir()), "the images and runs were removed"
