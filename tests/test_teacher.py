"""Phase-1 trainer: CPU smoke run, output layout, and two processes kept in sync."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import FASHION, FASHION_DIR
from conftest import TINY_TEACHER as TINY
from safetensors.torch import load_file

from vipriors_hub.cli import main
from vipriors_hub.errors import VipriorsError
from vipriors_hub.train.teacher import TeacherConfig, train_teacher


def test_smoke_run_lowers_the_loss(teacher_run: Path) -> None:
    lines = (teacher_run / "metrics.jsonl").read_text().splitlines()
    start, records = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert start["event"] == "start" and start["processes"] == 1 and start["effective_batch_size"] == 64
    assert start["lr"] == pytest.approx(0.12 * 64 / 256)
    assert [r["step"] for r in records] == list(range(1, 49))
    losses = np.array([r["loss"] for r in records]).reshape(8, 6).mean(axis=1)
    # Epoch 1 starts with a random queue; from epoch 2 the queue holds real keys.
    assert losses[-1] < losses[1] - 0.1, losses
    assert all(np.isfinite(r["contrastive_accuracy"]) and r["lr"] >= 0 for r in records)
    assert records[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_final_folder_loads_through_timm_routes(teacher_run: Path) -> None:
    final = teacher_run / "final"
    checkpoint = sorted((teacher_run / "checkpoints").iterdir())[-1]
    trained = {k[2:]: v for k, v in load_file(checkpoint / "model.safetensors").items() if k.startswith("0.")}
    config = json.loads((final / "config.json").read_text())
    assert config["vipriors_architecture"] == "vipriors_resnet_tiny" and config["num_classes"] == 0

    by_dir = timm.create_model(f"local-dir:{final}", pretrained=True)
    by_file = timm.create_model(
        "vipriors_resnet_tiny.teacher",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(final / "model.safetensors")),
    )
    for model in (by_dir, by_file):
        state = model.state_dict()
        assert state.keys() == trained.keys()
        assert all(torch.equal(state[k], trained[k]) for k in trained)
    assert tuple(by_dir.pretrained_cfg["input_size"]) == (3, 32, 32)


def test_output_layout_and_config_round_trip(teacher_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (teacher_run / "config.yaml").is_file()
    assert [p.name for p in (teacher_run / "checkpoints").iterdir()] != []
    assert not any(p.name.startswith(".partial") for p in (teacher_run / "checkpoints").iterdir())
    code = main(["train-teacher", "--config", str(teacher_run / "config.yaml")])
    assert code == 2 and "already holds a training run" in capsys.readouterr().err


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VipriorsError, match="not a member of the family"):
        train_teacher(TeacherConfig(output=str(tmp_path), **{**TINY, "architecture": "resnet9000"}), FASHION)


def test_two_processes_share_queue_and_parameters(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(Path(__file__).with_name("distributed_probe.py")), str(tmp_path)]
    subprocess.run(command, check=True, timeout=300, capture_output=True)
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in range(2))

    assert torch.equal(rank0["queue"], rank1["queue"]) and torch.equal(rank0["pointer"], rank1["pointer"])
    pointer = int(rank0["pointer"])
    newest = rank0["queue"][[(pointer - 6 + i) % 20 for i in range(6)]]
    assert torch.equal(newest, torch.cat([rank0["last_local_keys"], rank1["last_local_keys"]]))
    assert torch.equal(rank0["query_params"], rank1["query_params"])
    assert torch.equal(rank0["key_params"], rank1["key_params"])
    assert not torch.equal(rank0["key_params"], rank0["initial_key_params"])
    for rank in (rank0, rank1):
        assert rank["shuffle_round_trip_error"].item() == 0
    assert {0.0, 1.0} in ({*rank0["shuffle_saw_ranks"].tolist()}, {*rank1["shuffle_saw_ranks"].tolist()})


def test_two_process_cli_run_writes_a_loadable_teacher(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "vipriors_hub", "train-teacher", "--cpu", "--output", str(tmp_path / "run"), "--max-steps", "2"]
    command += ["--dataset", "fashion-mnist", "--data-dir", str(FASHION_DIR), "--per-class", "20"]
    for key, value in {**TINY, "batch_size": 32, "queue_size": 100}.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    result = subprocess.run(command, timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["processes"] == 2 and records[0]["effective_batch_size"] == 64
    records = [r for r in records if "loss" in r]
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["images_per_second"] > 0
    assert timm.create_model(f"local-dir:{tmp_path / 'run' / 'final'}", pretrained=True).num_classes == 0
