"""The device pipeline's stream and loader: exact resume, worker-count independence, workers that
live across epochs, no global random state touched; the pipeline choice; ``--dry-run``."""

import io
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import yaml
from conftest import FASHION_ARGS
from PIL import Image

from vipriors_hub.cli import main
from vipriors_hub.data import DataConfig, ExampleStream, ResumableLoader, moco_v2_views, resolve_pipeline
from vipriors_hub.data.cached_stream import CachedExampleStream
from vipriors_hub.data.decoded_cache import open_decoded
from vipriors_hub.train.dry_run import RunEstimate, StepTiming

DATA_CONFIG = {"interpolation": "bilinear", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "crop_pct": 0.875}
TINY = ["--architecture", "vipriors_resnet_tiny", "--resolution", "16", "--batch-size", "16", "--report-to", "none"]
TINY += ["--grad-accum-steps", "1"]


def varied_images(count: int) -> datasets.Dataset:
    """RGB images of varied sizes (so that crops differ), label = index."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        size = (int(rng.integers(12, 30)), int(rng.integers(12, 30)))
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(buffer, "PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": images, "label": list(range(count))}, features=features)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory):
    return open_decoded(varied_images(22), cache_dir=str(tmp_path_factory.mktemp("cache")))


def cached_loader(decoded, workers: int) -> ResumableLoader:
    stream = CachedExampleStream(decoded, moco_v2_views(16, DATA_CONFIG).batched, shuffle=True, seed=3, batch_size=4)
    return ResumableLoader(stream, num_workers=workers, drop_last=True, persistent_workers=True)


def pil_loader(workers: int, persistent: bool) -> ResumableLoader:
    stream = ExampleStream(varied_images(22), moco_v2_views(16, DATA_CONFIG).pil, shuffle=True, seed=3, batch_size=4)
    return ResumableLoader(stream, num_workers=workers, drop_last=True, persistent_workers=persistent)


def take(loader: ResumableLoader, count: int) -> list:
    """``count`` batches, epoch after epoch (5 batches an epoch here)."""
    batches = []
    while len(batches) < count:
        for batch in loader:
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


def same(first: list, second: list) -> bool:
    return len(first) == len(second) and all(
        torch.equal(a[0][0], b[0][0]) and torch.equal(a[0][1], b[0][1]) and torch.equal(a[1], b[1])
        for a, b in zip(first, second, strict=True)
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_cached_batches_resume_exactly_and_do_not_depend_on_the_workers(decoded, workers: int) -> None:
    reference = take(cached_loader(decoded, 0), 12)
    loader = cached_loader(decoded, workers)
    first = take(loader, 7)  # into the second epoch
    state = loader.state_dict()
    assert state == {"epoch": 1, "batches_done": 2}
    resumed = cached_loader(decoded, workers)
    resumed.load_state_dict(state)
    assert same(first + take(resumed, 5), reference)
    assert not same(reference[:5], reference[5:10]), "every epoch draws a new order and new augmentations"


@pytest.mark.parametrize("workers", [0, 2])
def test_workers_that_live_across_epochs_give_the_batches_of_fresh_ones(workers: int) -> None:
    assert same(take(pil_loader(workers, persistent=True), 13), take(pil_loader(0, persistent=False), 13))


def test_workers_live_across_epochs(decoded) -> None:
    loader = cached_loader(decoded, 2)
    take(loader, 5)
    feed = loader._feed
    take(loader, 5)
    assert loader._feed is feed, "the second epoch was read by the same DataLoader workers"


def test_the_loaders_leave_the_global_random_state_alone(decoded) -> None:
    torch.manual_seed(11)
    before = torch.get_rng_state()
    take(cached_loader(decoded, 0), 6)
    take(pil_loader(0, persistent=True), 6)
    take(pil_loader(2, persistent=False), 3)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_decoded_split_is_read_in_the_same_order_as_its_source(decoded) -> None:
    pil = ExampleStream(varied_images(22), moco_v2_views(16, DATA_CONFIG).pil, shuffle=True, seed=3, batch_size=4)
    cached = CachedExampleStream(decoded, moco_v2_views(16, DATA_CONFIG).batched, shuffle=True, seed=3, batch_size=4)
    for epoch in (0, 1):
        assert np.array_equal(pil.rank_indices(epoch), cached.rank_indices(epoch))
        assert torch.equal(pil.make_batch(epoch, 1, True)[0][1], cached.finish(cached.make_batch(epoch, 1, True)[0])[1])


def test_auto_is_the_device_pipeline_on_a_gpu_and_pil_on_a_cpu() -> None:
    assert resolve_pipeline("auto", torch.device("cuda")) == "device"
    assert resolve_pipeline("auto", torch.device("cpu")) == "pil"
    assert resolve_pipeline("device", torch.device("cpu")) == "device"
    with pytest.raises(Exception, match="data-pipeline"):
        DataConfig(data_pipeline="gpu")


def test_a_policy_the_device_pipeline_lacks_is_refused_before_anything_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["train-student", *TINY, *FASHION_ARGS, "--output", str(tmp_path / "run"), "--data-pipeline", "device"]
    assert main([*args, "--aa", "rand-m9-mstd0.5", "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "--data-pipeline pil" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("pipeline", ["device", "pil"])
def test_dry_run_times_real_steps_prints_the_estimate_and_writes_no_run(
    pipeline: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "run"
    args = [
        "train-teacher",
        *TINY,
        *FASHION_ARGS,
        "--per-class",
        "20",
        "--epochs",
        "3",
        "--queue-size",
        "32",
        "-j",
        "0",
    ]
    args += ["--output", str(output), "--data-pipeline", pipeline, "--cache-dir", str(tmp_path / "cache"), "--dry-run"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"({pipeline} data pipeline, 1 process(es)): 480 images in 30 optimizer steps" in printed
    assert "Estimated wall time of the whole run" in printed and "bounds it" in printed
    assert not output.exists()


def test_the_estimate_adds_each_kind_of_step_at_its_timed_rate() -> None:
    timings = {"supervised": StepTiming(50, 0.2, 0.1, 5.0), "distill": StepTiming(150, 0.5, 0.01, 20.0)}
    estimate = RunEstimate("student", "device", 2, 6400, 100, timings)
    assert estimate.micro_steps == 200
    assert estimate.predicted_seconds == pytest.approx(5.0 + 47 * 0.2 + 20.0 + 147 * 0.5)
    assert estimate.data_share == pytest.approx((50 * 0.1 + 150 * 0.01) / (50 * 0.2 + 150 * 0.5))
    assert estimate.bound_by == "step"
    assert RunEstimate("teacher", "device", 1, 64, 1, {"teacher": StepTiming(10, 1.0, 0.5, 1.0)}).bound_by == "data"
    assert "0 h 01 min 48 s" in estimate.report()


def test_a_student_dry_run_times_its_steps_before_and_with_distillation(
    teacher_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["train-student", *TINY, *FASHION_ARGS, "--per-class", "20", "--epochs", "2", "--no-distill-epochs", "1"]
    args += ["--teacher", str(teacher_run / "final"), "--output", str(tmp_path / "run"), "-j", "0", "--dry-run"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "supervised: " in printed and "distill: " in printed and "10 in the run" in printed
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_keeps_the_pipeline_it_started_with(tmp_path: Path) -> None:
    from vipriors_hub.train.run_setup import run_pipeline
    from vipriors_hub.train.teacher import TeacherConfig

    def pipeline(recorded: str | None, choice: str, device: str, resume: bool = True) -> str:
        data = {"dataset": "fashion-mnist"} | ({"data_pipeline": recorded} if recorded else {})
        (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": data, "train": {}}))
        settings = TeacherConfig(output=str(tmp_path), resume="latest" if resume else None)
        return run_pipeline(settings, DataConfig(data_pipeline=choice), device)

    assert pipeline("device", "auto", "cpu") == "device"
    assert pipeline(None, "auto", "cuda") == "pil", "a run of a version with one pipeline continues on it"
    assert pipeline("pil", "device", "cuda") == "device", "an explicit choice is kept (and refused if it changed)"
    assert pipeline("pil", "auto", "cuda", resume=False) == "device"


def test_the_run_folder_records_the_pipeline_the_run_used(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    output = tmp_path / "run"
    args = ["train-teacher", *TINY, *FASHION_ARGS, "--per-class", "4", "--epochs", "2", "--queue-size", "16"]
    args += ["--output", str(output), "--batch-size", "8", "-j", "0", "--checkpoint-every", "1"]
    assert main([*args, "--max-steps", "2"]) == 0
    assert yaml.safe_load((output / "config.yaml").read_text())["data"]["data_pipeline"] == "pil"
    capsys.readouterr()
    assert main([*args, "--resume", "--data-pipeline", "device", "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "data.data_pipeline" in capsys.readouterr().err


def test_a_dry_run_is_refused_where_the_run_would_be(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["train-teacher", *TINY, *FASHION_ARGS, "--per-class", "4", "--epochs", "1", "--queue-size", "16", "-j", "0"]
    assert main([*args, "--output", str(tmp_path / "fresh"), "--resume", "--dry-run"]) == 2
    assert "--resume" in capsys.readouterr().err and not (tmp_path / "fresh").exists()


def test_an_empty_validation_split_is_refused_before_the_student_trains(
    teacher_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["train-student", *TINY, *FASHION_ARGS, "--per-class", "4", "--epochs", "1", "-j", "0"]
    assert main([*args, "--teacher", str(teacher_run / "final"), "--output", str(tmp_path / "run")]) == 2
    assert "--val-per-class" in capsys.readouterr().err and not (tmp_path / "run").exists()
