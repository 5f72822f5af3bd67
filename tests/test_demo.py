"""The demo (shipped data, three arms, results, Hub folders) and the data it ships."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from vipriors_hub.data import load_data
from vipriors_hub.demo import DemoConfig, demo_data_config, run_demo

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
    config = DemoConfig(output=str(tmp_path / "demo"), teacher_epochs=2, student_epochs=2)
    results = run_demo(config)
    written = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert written == results
    assert set(written) == {"baseline_top1", "teacher_knn_top1", "teacher_linear_top1", "student_top1"}
    assert all(0 <= value <= 100 for value in written.values())
    assert (tmp_path / "demo" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for phase, keys in (("student", ["student_top1"]), ("teacher", ["teacher_knn_top1", "teacher_linear_top1"])):
        card = ModelCard.load(tmp_path / "demo" / "hub" / phase / "README.md")
        top1 = {r.metric_value for r in card.data.eval_results if r.metric_name.startswith("top1")}
        assert top1 == {written[key] for key in keys}
        assert all(r.dataset_split == "test" for r in card.data.eval_results)
