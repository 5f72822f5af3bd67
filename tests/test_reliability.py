"""Reliability: exact resume after SIGKILL and SIGTERM, atomic checkpoints, non-finite losses, bad input, secrets."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FASHION_ARGS as SHIPPED_FASHION_ARGS

from vipriors_hub.cli import main
from vipriors_hub.errors import EXIT_PREEMPTED
from vipriors_hub.train.result import read_fit_result

FASHION_ARGS = [*SHIPPED_FASHION_ARGS, "--per-class", "20"]
COMMON = ["--architecture", "vipriors_resnet_tiny", "--resolution", "32", "--batch-size", "32", "--num-workers", "0"]
COMMON += [
    "--report-to",
    "none",
    "--checkpoint-every",
    "3",
    "--log-every",
    "1",
    "--grad-accum-steps",
    "1",
    *FASHION_ARGS,
]
STEPS = 30  # RUNS: 6 epochs of 5 steps (160 training images / 32)
RUNS = {
    "teacher": ["train-teacher", "--epochs", "6", "--queue-size", "96", "--key-momentum", "0.99", *COMMON],
    "student": ["train-student", "--epochs", "6", "--no-distill-epochs", "2", "--schedule", "cosine", *COMMON],
}


def command(phase: str, output: Path, teacher: Path | None, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "vipriors_hub", *RUNS[phase], "--output", str(output), *extra]
    return args + (["--teacher", str(teacher)] if phase == "student" else [])


def run(args: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def straight_runs(teacher_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Uninterrupted runs of both phases (0 workers), the reference of every interrupted one."""
    root = tmp_path_factory.mktemp("straight")
    for phase in RUNS:
        run(command(phase, root / phase, teacher_run / "final"))
    return {phase: root / phase for phase in RUNS}


@pytest.fixture(scope="module")
def device_pipeline(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The flags of the device data pipeline with this module's own decoded cache."""
    return ["--data-pipeline", "device", "--cache-dir", str(tmp_path_factory.mktemp("decoded"))]


@pytest.fixture(scope="module")
def straight_device_runs(
    teacher_run: Path, device_pipeline: list[str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Uninterrupted runs of both phases on the device pipeline (0 workers)."""
    root = tmp_path_factory.mktemp("straight_device")
    for phase in RUNS:
        run(command(phase, root / phase, teacher_run / "final", *device_pipeline))
    return {phase: root / phase for phase in RUNS}


def wait_for_step(run_dir: Path, process: subprocess.Popen, step: int, timeout: float = 300) -> None:
    """Wait until ``run_dir/metrics.jsonl`` has logged ``step`` (``--log-every 1``)."""
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.is_file() and any(json.loads(line).get("step", 0) >= step for line in metrics.open() if line)):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it was signalled"
        time.sleep(0.02)


def final_weights(run_dir: Path) -> bytes:
    return (run_dir / "final" / "model.safetensors").read_bytes()


def same_work(resumed: Path, straight: Path) -> bool:
    """Whether the resumed run's result counts the work of the uninterrupted one: steps, images,
    FLOPs and the validation curve as the run finally went."""
    ours, theirs = read_fit_result(resumed), read_fit_result(straight)
    fields = ("steps", "images_seen", "train_flops", "flops_per_micro_step", "validation")
    same_curve = ours.curves.get("val_top1") == theirs.curves.get("val_top1")
    return same_curve and all(getattr(ours, name) == getattr(theirs, name) for name in fields)


@pytest.mark.parametrize(("pipeline", "workers"), [("pil", 0), ("device", 0), ("device", 2)])
@pytest.mark.parametrize("phase", ["teacher", "student"])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(
    phase: str,
    pipeline: str,
    workers: int,
    request: pytest.FixtureRequest,
    teacher_run: Path,
    tmp_path: Path,
) -> None:
    teacher = teacher_run / "final"
    if pipeline == "device":
        straight = request.getfixturevalue("straight_device_runs")[phase]
        extra = [*request.getfixturevalue("device_pipeline"), "--num-workers", str(workers)]
    else:
        straight, extra = request.getfixturevalue("straight_runs")[phase], []

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        command(phase, interrupted, teacher, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    # 5 steps per epoch (160 images / 32): step 9 is in the middle of the second epoch.
    while not (interrupted / "checkpoints" / "step-00000009").is_dir():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (interrupted / "final").exists()
    # Resume from the mid-epoch checkpoint even if the run got further before the signal landed.
    for later in (interrupted / "checkpoints").glob("step-*"):
        if int(later.name.split("-")[1]) > 9:
            subprocess.run(["rm", "-rf", str(later)], check=True)

    resumed = run(command(phase, interrupted, teacher, *extra, "--resume"))
    assert "step-00000009 at step 9" in resumed.stdout

    assert final_weights(interrupted) == final_weights(straight)
    assert same_work(interrupted, straight)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("phase", ["teacher", "student"])
def test_sigterm_checkpoints_and_resume_is_bit_identical(
    phase: str, workers: int, straight_runs: dict[str, Path], teacher_run: Path, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    args = command(phase, output, teacher_run / "final", "--num-workers", str(workers))
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_step(output, process, 12)  # step 12 of 30: the middle of the third epoch
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == EXIT_PREEMPTED, stderr[-3000:]
    line = stderr.strip().splitlines()[-1]
    assert "stopped by SIGTERM after step" in line and "--resume" in line and "Traceback" not in stderr, stderr
    stopped = int(line.split("after step ")[1].split(":")[0])
    assert 12 <= stopped < STEPS and not (output / "final").exists()
    assert (output / "checkpoints" / f"step-{stopped:08d}" / "progress.json").is_file()
    events = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "preempted" and events[-1]["step"] == stopped

    resumed = run([*args, "--resume"])
    assert f"at step {stopped}." in resumed.stdout
    assert final_weights(output) == final_weights(straight_runs[phase])
    assert same_work(output, straight_runs[phase])


def test_a_kill_during_a_save_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate import Accelerator

    from vipriors_hub.train.checkpoints import CheckpointManager

    accelerator = Accelerator(cpu=True)
    manager = CheckpointManager(accelerator, tmp_path / "checkpoints")
    import torch

    accelerator.prepare(torch.nn.Linear(2, 2))  # something for save_state to write
    first = manager.save(3, {"queue": torch.ones(2)}, {"step": 3})

    def dies_halfway(directory: str) -> None:
        (Path(directory) / "model.safetensors").write_bytes(b"half a file")
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(accelerator, "save_state", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        manager.save(6, {"queue": torch.zeros(2)}, {"step": 6})

    assert manager.latest() == first
    tensors, progress = manager.load(first)
    assert progress == {"step": 3} and torch.equal(tensors["queue"], torch.ones(2))
    assert (tmp_path / "checkpoints" / ".partial-step-00000006").exists()


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(
    teacher_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*RUNS["student"], "--output", str(tmp_path), "--teacher", str(teacher_run / "final")]
    args += ["--base-lr", "1e30", "--no-distill-epochs", "0", "--checkpoint-every", "1"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "training stopped" in error and "Last good checkpoint" in error
    assert not (tmp_path / "final").exists()


def bad_input_cases(
    teacher_run: Path, student_run: Path, split_lists: Path, tmp_path: Path
) -> dict[str, tuple[list[str], str]]:
    import pickle

    (tmp_path / "splits").mkdir()
    for split in ("train", "val", "test"):
        data = (split_lists / f"{split}.pickle").read_bytes()
        (tmp_path / "splits" / f"{split}.pickle").write_bytes(data if split != "val" else data[:-10] + b"\x00" * 10)
    (tmp_path / "empty" / "train" / "n00000000").mkdir(parents=True)
    (tmp_path / "evil.pth.tar").write_bytes(pickle.dumps({"state_dict": {}, "x": os.system}))
    teacher, student = str(teacher_run / "final"), str(student_run / "final")
    out = str(tmp_path / "out")
    vipriors = ["--dataset", "vipriors", "--split-lists", str(split_lists)]
    return {
        "unknown architecture": (
            ["train-teacher", "--architecture", "resnet9000", "--output", out, *FASHION_ARGS],
            "--model resnet9000: not a member of the family",
        ),
        "num_classes mismatch": (
            [
                "evaluate",
                "--checkpoint",
                student,
                "--output",
                out,
                "--dataset",
                "imagefolder",
                "--data-dir",
                str(tmp_path / "folder"),
            ],
            "classifies 10 classes",
        ),
        "teacher given as student": (
            ["evaluate", "--checkpoint", teacher, "--output", out, *FASHION_ARGS],
            "teacher backbone",
        ),
        "student given as teacher": (
            ["train-student", "--teacher", student, "--output", out, *FASHION_ARGS],
            "student classifier",
        ),
        "missing data directory": (
            ["data-info", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "nowhere")],
            "does not exist",
        ),
        "empty after filtering": (["data-info", *vipriors, "--data-dir", str(tmp_path / "empty")], "0 of 200 files"),
        "split list hash mismatch": (
            [
                "data-info",
                "--dataset",
                "vipriors",
                "--split-lists",
                str(tmp_path / "splits"),
                "--data-dir",
                str(tmp_path / "empty"),
            ],
            "sha256",
        ),
        "hub unreachable, nothing cached": (
            ["data-info", "--dataset", "vipriors", "--data-dir", str(tmp_path / "empty")],
            "HF_HUB_OFFLINE",
        ),
        "pickle that is not weights-only": (
            ["convert", str(tmp_path / "evil.pth.tar"), "--output", out],
            "not a weights-only checkpoint",
        ),
        "output holds another run": (
            ["train-teacher", "--output", str(teacher_run), *COMMON],
            "already holds a training run",
        ),
    }


def test_bad_input_gets_one_clear_error_and_nothing_is_overwritten(
    teacher_run: Path, student_run: Path, split_lists: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import huggingface_hub.constants
    from PIL import Image

    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(tmp_path / "hf-home"))
    for split, label in (("train", "a"), ("train", "b"), ("validation", "a"), ("validation", "b")):
        (tmp_path / "folder" / split / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "folder" / split / label / "0.png")
    before = {p: p.stat().st_mtime_ns for p in teacher_run.rglob("*") if p.is_file()}
    for name, (args, message) in bad_input_cases(teacher_run, student_run, split_lists, tmp_path).items():
        assert main(args) == 2, name
        error = capsys.readouterr().err
        assert message in error, (name, error)
        assert "Traceback" not in error, (name, error)
        assert [line for line in error.splitlines() if ": error: " in line] == [error.strip().splitlines()[-1]], name
    assert not (tmp_path / "out").exists()
    assert {p: p.stat().st_mtime_ns for p in teacher_run.rglob("*") if p.is_file()} == before


def test_the_hub_token_is_written_nowhere(student_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from test_hub import RecordingApi

    from vipriors_hub.hub import push_to_hub

    token = "hf_vipriorsSECRETtoken0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    output = tmp_path / "run"
    args = [*RUNS["teacher"], "--output", str(output), "--epochs", "1", "--report-to", "tensorboard"]
    assert main(args) == 0
    assert main(["export", str(output), "--output", str(tmp_path / "export")]) == 0
    push_to_hub(tmp_path / "export", "me/teacher", api=RecordingApi())
    push_to_hub(student_run, "me/student", api=RecordingApi())
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_non_finite_guard_names_the_first_bad_step(tmp_path: Path) -> None:
    import torch
    from accelerate import Accelerator

    from vipriors_hub.errors import VipriorsError
    from vipriors_hub.train.checkpoints import CheckpointManager
    from vipriors_hub.train.guard import NonFiniteGuard

    accelerator = Accelerator(cpu=True)
    guard, manager = NonFiniteGuard(accelerator, torch.nn.Linear(2, 2)), CheckpointManager(accelerator, tmp_path)
    guard.observe(torch.tensor(1.5), 1)
    guard.check(manager, 1)
    guard.observe(torch.tensor(float("nan")), 2)
    guard.observe(torch.tensor(float("inf")), 3)
    guard.observe(torch.tensor(0.5), 4)
    with pytest.raises(VipriorsError, match="non-finite at step 2;"):
        guard.check(manager, 4)
