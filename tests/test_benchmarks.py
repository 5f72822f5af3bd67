"""The GPU check (run here on CPU with a tiny model) times the trainers' own steps and reports them
in the layout committed under benchmarks/results/."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
