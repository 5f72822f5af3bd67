"""Every example runs, on CPU, with tiny settings; the accelerate configs are valid and the CPU ones launch."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from conftest import FASHION_DIR
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = "--architecture vipriors_resnet_tiny"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_predict_with_timm_and_transformers(student_run: Path, hf_cache, tmp_path: Path, capsys) -> None:
    from vipriors_hub.hub import export_run

    folder = export_run(student_run, tmp_path / "export")
    hf_cache("someone/fashion-student", {p.name: p for p in folder.iterdir()})
    Image.new("RGB", (28, 28), (200, 200, 200)).save(tmp_path / "photo.png")
    predictions = load_example("predict").main(
        [str(tmp_path / "photo.png"), "--model", "hf-hub:someone/fashion-student", "--hf-model", str(folder)]
    )
    scores = [score for _, score in predictions]
    assert len(predictions) == 5 and scores == sorted(scores, reverse=True)
    output = capsys.readouterr().out
    assert output.count("timm ") == 5 and output.count("transformers ") == 5
    assert predictions[0][0] in json.loads((folder / "config.json").read_text())["label_names"]


def imagenet_like(root: Path, parquet: bool, split_lists: Path) -> Path:
    """Three VIPriors classes of ImageNet, as an image tree or as parquet shards."""
    from vipriors_hub.data import load_split_lists

    lists = load_split_lists(split_lists)
    wnids = set(lists.class_names[:3])
    files = {
        "train": [(f"{e.stem}.JPEG", e.wnid) for e in lists.train + lists.val if e.wnid in wnids],
        "validation": [(f"{e.stem}.JPEG", e.wnid) for e in lists.test if e.wnid in wnids],
    }
    rows: dict[str, list] = {}
    for split, entries in files.items():
        for index, (name, wnid) in enumerate(entries):
            image = Image.new("RGB", (24, 24), (index % 255, 40 * lists.class_names.index(wnid) % 255, 9))
            if parquet:
                import io

                buffer = io.BytesIO()
                image.save(buffer, format="JPEG")
                rows.setdefault(split, []).append({"bytes": buffer.getvalue(), "path": name})
            else:
                (root / split / wnid).mkdir(parents=True, exist_ok=True)
                image.save(root / split / wnid / name)
    if parquet:
        import datasets

        (root / "data").mkdir(parents=True)
        for split, images in rows.items():
            datasets.Dataset.from_dict(
                {"image": images}, features=datasets.Features({"image": datasets.Image()})
            ).to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


TINY_ENV = {
    "ARCH": "vipriors_resnet_tiny",
    "TEACHER": "--epochs 1 --batch-size 32 --resolution 32 --queue-size 64 --num-workers 0 --report-to none",
    "STUDENT": "--epochs 1 --batch-size 32 --resolution 32 --num-workers 0 --report-to none",
    "EVAL": "--ten-crop --resolution 32 --num-workers 0",
    "HF_HUB_OFFLINE": "1",
}


def check_reproduction(out: Path) -> None:
    test = json.loads((out / "student" / "test.json").read_text())
    assert test["images"] == 150 and test["ten_crop"]
    ids = (out / "submission.csv").read_text().splitlines()
    assert ids[0] == "Image IDs,Predictions" and len(ids) == 151 and all(i.startswith("img_") for i in ids[1:])
    assert json.loads((out / "teacher" / "eval.json").read_text())["images"] == 150


@pytest.mark.real_data
def test_reproduce_vipriors_script(real_split_lists: Path, tmp_path: Path) -> None:
    data = imagenet_like(tmp_path / "imagenet-parquet", parquet=True, split_lists=real_split_lists)
    env = {
        **os.environ,
        **TINY_ENV,
        "OUT": str(tmp_path / "out"),
        "DATA": f"--dataset vipriors --data-dir {data} --split-lists {real_split_lists}",
    }
    result = subprocess.run(
        ["bash", str(EXAMPLES / "reproduce_vipriors.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check_reproduction(tmp_path / "out")


@pytest.mark.real_data
def test_reproduce_local_imagenet_script(real_split_lists: Path, tmp_path: Path) -> None:
    data = imagenet_like(tmp_path / "imagenet", parquet=False, split_lists=real_split_lists)
    env = {
        **os.environ,
        **TINY_ENV,
        "OUT": str(tmp_path / "out"),
        "IMAGENET": str(data),
        "SPLIT_LISTS": str(real_split_lists),
    }
    script = EXAMPLES / "reproduce_local_imagenet.sh"
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    check_reproduction(tmp_path / "out")


def test_linear_probe_example(teacher_run: Path, tmp_path: Path) -> None:
    results = load_example("linear_probe").main(
        [str(teacher_run / "final"), "--dataset", "fashion-mnist", "--data-dir", str(FASHION_DIR)]
        + ["--per-class", "20", "--split", "val", "--output", str(tmp_path / "probe.json")]
    )
    assert results["images"] == 40 and (tmp_path / "probe.json").is_file()


def test_push_example_publishes_both_phases(teacher_run: Path, student_run: Path, tmp_path: Path, monkeypatch) -> None:
    from test_hub import RecordingApi

    import vipriors_hub.hub.publish

    api = RecordingApi()
    monkeypatch.setattr(vipriors_hub.hub.publish, "HfApi", lambda: api)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "teacher").symlink_to(teacher_run)
    (tmp_path / "runs" / "student").symlink_to(student_run)
    load_example("push_to_hub").main(["--runs", str(tmp_path / "runs"), "--namespace", "me"])
    uploads = [call for name, call in api.calls if name == "upload_folder"]
    assert [u["repo_id"] for u in uploads] == ["me/vipriors_resnet_tiny.teacher", "me/vipriors_resnet_tiny.student"]
    card = (tmp_path / "runs" / "export" / "student" / "README.md").read_text()
    assert "base_model: me/vipriors_resnet_tiny.teacher" in card


def test_convert_example(tmp_path: Path) -> None:
    from test_hub import moco_checkpoint

    torch.save(moco_checkpoint("vipriors_resnet_tiny"), tmp_path / "moco.pth.tar")
    report = load_example("convert_original").main(
        [str(tmp_path / "moco.pth.tar"), "--architecture", "vipriors_resnet_tiny", "--output", str(tmp_path / "out")]
    )
    assert report["prefix"] == "module.encoder_q." and not report["missing"]


@pytest.mark.parametrize("name", sorted(p.name for p in (EXAMPLES / "accelerate").glob("*.yaml")))
def test_accelerate_configs_are_valid(name: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    path = EXAMPLES / "accelerate" / name
    config = load_config_from_file(str(path))
    raw = yaml.safe_load(path.read_text())
    assert config.num_processes == raw["num_processes"] and config.num_machines == raw["num_machines"]
    assert "accelerate launch --config_file examples/accelerate/" + name in path.read_text()


def test_two_process_cpu_config_launches_two_processes(tmp_path: Path) -> None:
    command = ["accelerate", "launch", "--config_file", str(EXAMPLES / "accelerate" / "cpu_2proc.yaml")]
    command += ["-m", "vipriors_hub", "train-teacher", "--cpu", "--max-steps", "2", "--output", str(tmp_path / "run")]
    command += ["--dataset", "fashion-mnist", "--data-dir", str(FASHION_DIR), "--per-class", "20"]
    command += [*TINY.split(), "--resolution", "32", "--batch-size", "16", "--queue-size", "64", "--num-workers", "0"]
    command += ["--report-to", "none", "--grad-accum-steps", "1"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    start = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["processes"] == 2 and start["effective_batch_size"] == 32
