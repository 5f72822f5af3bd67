"""What clusters do to long runs: two runs in one folder, full disks, a preemption signal to one of
several processes, shortened batches, launcher settings that cannot work, outputs that cannot be
created (SIGTERM and exact resume: test_reliability.py)."""

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from PIL import Image
from test_bad_inputs import assert_one_line_error, run_main
from test_reliability import RUNS, command, wait_for_step

from vipriors_hub.errors import EXIT_PREEMPTED, VipriorsError
from vipriors_hub.train.checkpoints import CheckpointManager
from vipriors_hub.train.metrics import MetricsWriter
from vipriors_hub.train.run_lock import RunLock


def test_a_killed_run_is_locked_while_alive_and_resumable_once_dead(teacher_run: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    args = [*command("teacher", output, None), "--epochs", "100", "--num-workers", "2"]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_step(output, first, 4)
        for again in (["--resume"], []):
            second = subprocess.run([*args, *again], capture_output=True, text=True, timeout=300)
            assert_one_line_error(second.returncode, second.stderr, "is in use by a run that is still going")
            assert f"(process {first.pid} on " in second.stderr, again
    finally:
        first.kill()
        first.wait()
    lines = (output / "metrics.jsonl").read_text().splitlines()
    assert sum(json.loads(line).get("event") in ("start", "resume") for line in lines) == 1, "a refused one wrote"
    lock = RunLock(output)
    lock.acquire()  # at once: the kernel dropped the dead run's lock, its DataLoader workers hold no copy
    lock.release()


def test_two_runs_started_into_one_folder_at_once_give_one_run(tmp_path: Path) -> None:
    output = tmp_path / "run"
    args = [*command("teacher", output, None), "--epochs", "2"]
    processes = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(process.wait(timeout=300), process.stderr.read()) for process in processes]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(stderr for code, stderr in results if code == 2)
    assert_one_line_error(2, refused)
    assert "is in use by a run that is still going" in refused or "already holds a training run" in refused
    starts = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [record.get("event") for record in starts].count("start") == 1


def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_step(tmp_path: Path) -> None:
    output = tmp_path / "run"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    args = [*launcher, "-m", "vipriors_hub", *RUNS["teacher"], "--cpu", "--output", str(output)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_step(output, process, 3)
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    rank_one = next(p for p in workers if b"RANK=1\0" in Path(f"/proc/{p}/environ").read_bytes())
    os.kill(int(rank_one), signal.SIGTERM)  # rank 0 never sees a signal
    _, stderr = process.communicate(timeout=300)
    assert "stopped by SIGTERM after step" in stderr and "Traceback" not in stderr.split("stopped by")[0], stderr
    assert f"exitcode  : {EXIT_PREEMPTED}" in stderr or f"exit code {EXIT_PREEMPTED}" in stderr, stderr[-3000:]
    event = json.loads((output / "metrics.jsonl").read_text().splitlines()[-1])
    assert event["event"] == "preempted" and event["step"] < 12  # 2 processes: 2 steps an epoch, 12 in all
    checkpoint = output / "checkpoints" / f"step-{event['step']:08d}"
    assert {"random_states_0.pkl", "random_states_1.pkl", "progress.json"} <= {p.name for p in checkpoint.iterdir()}
    assert json.loads((checkpoint / "progress.json").read_text())["step"] == event["step"]
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((output / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 12


def test_a_full_disk_during_a_checkpoint_keeps_the_last_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    accelerator = Accelerator(cpu=True)
    manager = CheckpointManager(accelerator, tmp_path / "checkpoints")
    accelerator.prepare(torch.nn.Linear(2, 2))
    first = manager.save(3, {"queue": torch.ones(2)}, {"step": 3})

    def disk_fills_halfway(directory: str) -> None:
        (Path(directory) / "model.safetensors").write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(accelerator, "save_state", disk_fills_halfway)
    with pytest.raises(VipriorsError) as raised:
        manager.save(6, {"queue": torch.zeros(2)}, {"step": 6})
    message = str(raised.value)
    assert "checkpoint step-00000006" in message and "No space left on device" in message
    assert "free there" in message and "--resume continues from step-00000003" in message
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000003"]
    tensors, progress = manager.load(first)
    assert progress == {"step": 3} and torch.equal(tensors["queue"], torch.ones(2))


def test_a_full_disk_mid_run_is_one_line_and_resume_finishes(
    teacher_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vipriors_hub.hub.folders
    import vipriors_hub.train.checkpoints

    output = tmp_path / "run"
    args = [*command("teacher", output, None)[3:], "--epochs", "2"]
    real_save = vipriors_hub.train.checkpoints.save_file
    saves = []

    def full_on_the_second(tensors: dict, path: Path, *rest: object) -> None:
        saves.append(path)
        if len(saves) == 2:
            Path(path).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(tensors, path, *rest)

    monkeypatch.setattr(vipriors_hub.train.checkpoints, "save_file", full_on_the_second)
    code, stderr = run_main(args)
    assert_one_line_error(code, stderr, "Could not write checkpoint step-00000005")
    assert "No space left on device" in stderr and "--resume continues from step-00000003" in stderr
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step-00000003"]

    def full(*arguments: object, **keywords: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(vipriors_hub.train.checkpoints, "save_file", real_save)
    monkeypatch.setattr(vipriors_hub.hub.folders, "save_file", full)
    code, stderr = run_main([*args, "--resume"])
    assert_one_line_error(code, stderr, "Could not write the model folder final/")
    assert not (output / "final").exists() and not (output / ".final.partial").exists()

    monkeypatch.undo()
    assert run_main([*args, "--resume"])[0] == 0
    assert (output / "final" / "model.safetensors").is_file()


def test_a_full_disk_under_metrics_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(VipriorsError, match=r"Could not write full in /dev: .*No space left on device .* free there"):
        MetricsWriter(Path("/dev/full"), Accelerator(cpu=True)).write({"step": 1})  # a real ENOSPC


def test_a_bomb_in_a_batch_of_four_with_shuffle_bn_groups_trains(tmp_path: Path) -> None:
    for index in range(16):
        folder = tmp_path / "data" / "train" / "ab"[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (index * 15, 0, 0)).save(folder / f"{index}.png")
    (tmp_path / "data" / "train" / "a" / "0.png").unlink()
    Image.new("1", (15000, 15000)).save(tmp_path / "data" / "train" / "a" / "bomb.png")  # 27 KB, 225 Mpx
    args = ["train-teacher", "--model", "vipriors_resnet_tiny", "--img-size", "32", "--batch-size", "4"]
    args += ["--queue-size", "8", "--epochs", "2", "--grad-accum-steps", "1", "-j", "0", "--report-to", "none"]
    args += ["--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"), "--output", str(tmp_path / "run")]
    code, stderr = run_main(args)
    assert code == 0, stderr
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 8


def test_fp8_without_a_backend_is_one_line(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "vipriors_hub", *RUNS["teacher"], "--output", str(tmp_path / "run")]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=300, env={**os.environ, "ACCELERATE_MIXED_PRECISION": "fp8"}
    )
    assert_one_line_error(result.returncode, result.stderr, "fp8")
    assert not (tmp_path / "run").exists()


def test_an_output_whose_parent_cannot_be_created_is_one_line() -> None:
    code, stderr = run_main([*RUNS["teacher"], "--epochs", "1", "--output", "/proc/vipriors-hub-test/run"])
    assert_one_line_error(code, stderr, "--output /proc/vipriors-hub-test/run")  # mkdir: ENOENT, not a traceback


def test_a_full_disk_under_the_datasets_cache_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def full(*arguments: object, **keywords: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(datasets, "load_dataset", full)
    (tmp_path / "train" / "a").mkdir(parents=True)
    code, stderr = run_main(
        ["data-info", "--dataset", "imagefolder", "--data-dir", str(tmp_path), "--cache-dir", "/dev"]
    )
    assert_one_line_error(
        code, stderr, "Could not write the datasets cache in /dev: [Errno 28] No space left on device"
    )
    assert "free there" in stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 24 MB file system (tmpfs; skipped where this process may not mount one)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_real_full_disk_keeps_the_last_checkpoint_which_resumes(small_disk: Path, tmp_path: Path) -> None:
    import shutil

    output = small_disk / "run"  # a checkpoint of this run is 16 MB: the second does not fit
    args = [*command("teacher", output, None)[3:], "--epochs", "2"]
    code, stderr = run_main(args)
    assert_one_line_error(code, stderr, "Could not write checkpoint step-00000005 in ")
    assert "No space left on device" in stderr and " free there" in stderr
    assert "--resume continues from step-00000003" in stderr
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step-00000003"]
    moved = shutil.copytree(output, tmp_path / "moved")  # the user frees space: here, another disk
    assert run_main([*args[:-2], "--epochs", "2", "--output", str(moved), "--resume"])[0] == 0


def test_only_refused_writes_are_reported_as_writes() -> None:
    from vipriors_hub.train.checkpoints import is_write_error

    assert is_write_error(OSError(errno.ENOSPC, "No space left on device"))
    assert is_write_error(RuntimeError("basic_ios::clear: iostream error"))  # torch.save on a full disk
    assert is_write_error(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 2499200 vs 2499088"))
    assert not is_write_error(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_write_error(ValueError("Expected more than 1 value per channel when training"))
