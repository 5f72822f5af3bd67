"""Every bad input: exit 2 with one line, no traceback, nothing written; images that are not what
they claim; resumption that changes what a user may change; divergence; an interrupted swap."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from conftest import FASHION_ARGS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vipriors_hub.cli import build_parser, main

TINY = ["--architecture", "vipriors_resnet_tiny", "--resolution", "32", "--batch-size", "16", "--num-workers", "0"]
TINY += ["--report-to", "none", *FASHION_ARGS, "--per-class", "5"]


def run_main(args: list[str]) -> tuple[int, str]:
    """``main(args)`` in this process: its exit status and what it wrote to stderr."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
    return code, stderr.getvalue()


def assert_one_line_error(code: int, stderr: str, expected: str = "") -> None:
    """Exit status 2 and one line on stderr besides progress bars (tqdm's ``NN%|`` / ``[00:01, ...]``)."""
    progress = re.compile(r"\d+%\||\[\d\d:\d\d[<,]")
    lines = [line for line in re.split(r"[\r\n]", stderr) if line.strip() and not progress.search(line)]
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(
    ("command", "flag", "value", "expected"),
    [
        ("train-teacher", "--epochs", "0", "--epochs 0: must be an integer, at least 1"),
        ("train-teacher", "--epochs", "-1", "--epochs -1"),
        ("train-teacher", "--batch-size", "0", "--batch-size 0"),
        ("train-teacher", "--batch-size", "-4", "--batch-size -4"),
        ("train-teacher", "--checkpoint-every", "0", "--checkpoint-every 0"),
        ("train-teacher", "--log-interval", "0", "--log-interval 0"),
        ("train-teacher", "--grad-accum-steps", "0", "--grad-accum-steps 0"),
        ("train-teacher", "--img-size", "0", "--img-size 0"),
        ("train-teacher", "--resolution", "-5", "--img-size -5"),
        ("train-teacher", "--queue-size", "-5", "--queue-size -5"),
        ("train-teacher", "--lr-base", "nan", "--lr-base nan"),
        ("train-teacher", "--mixed-precision", "fp7", "invalid choice: 'fp7'"),
        ("train-teacher", "--report-to", "carrier-pigeon", "invalid choice: 'carrier-pigeon'"),
        ("train-teacher", "--per-class", "0", "--per-class 0"),
        ("train-student", "--sched", "linear", "invalid choice: 'linear'"),
        ("train-student", "--smoothing", "1.5", "--smoothing 1.5"),
        ("eval-teacher", "--knn-k", "0", "--knn-k 0"),
        ("evaluate", "--batch-size", "0", "--batch-size 0: must be an integer, at least 1"),
        ("convert", "--num-classes", "-3", "--num-classes -3: must be an integer, at least 0 and at most 1000000"),
    ],
)
def test_bad_values_get_one_line_naming_the_flag(
    command: str, flag: str, value: str, expected: str, tmp_path: Path
) -> None:
    required = {"evaluate": ["--checkpoint", str(tmp_path)], "convert": [str(tmp_path / "x.pth"), "--output", "o"]}
    args = [command, *required.get(command, []), flag, value, "--output", str(tmp_path / "out")]
    assert_one_line_error(*run_main(args), expected)
    assert not (tmp_path / "out").exists()


def test_outputs_are_checked_before_any_work(student_run: Path, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("mine")
    assert_one_line_error(*run_main(["train-teacher", *TINY, "--output", str(tmp_path / "a_file")]), "a_file")
    evaluate = ["evaluate", "--checkpoint", str(student_run / "final"), *FASHION_ARGS]
    assert_one_line_error(*run_main([*evaluate, "--output", str(tmp_path)]), "is a folder")
    assert_one_line_error(*run_main([*evaluate, "--output", str(tmp_path / "a_file")]), "not a results file")
    assert (tmp_path / "a_file").read_text() == "mine"
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    real_access = os.access
    with mock.patch("vipriors_hub.outputs.os.access", lambda p, m: real_access(p, m) and Path(p) != read_only):
        assert_one_line_error(*run_main(["train-teacher", *TINY, "--output", str(read_only / "run")]), "not writable")
        assert_one_line_error(*run_main([*evaluate, "--output", str(read_only / "r.json")]), "not writable")
    assert list(read_only.iterdir()) == []


def test_bad_checkpoints_and_model_folders_get_one_line(student_run: Path, tmp_path: Path) -> None:
    for name, data in (("empty.pth", b""), ("three.pth", b"abc")):
        (tmp_path / name).write_bytes(data)
        args = ["convert", str(tmp_path / name), "--architecture", "vipriors_resnet_tiny"]
        assert_one_line_error(*run_main([*args, "--output", str(tmp_path / "out")]), "not a PyTorch checkpoint")
    args = ["convert", str(tmp_path / "three.pth"), "--architecture", "resnet9000", "--output", str(tmp_path / "o")]
    assert_one_line_error(*run_main(args), "not a member of the family")
    args = ["convert", str(tmp_path / "three.pth"), "--architecture", "vipriors_resnet_tiny", "--output", "."]
    assert_one_line_error(*run_main(args), "holds files this command did not write")
    for damage in ("truncated weights", "unreadable config"):
        folder = tmp_path / damage.replace(" ", "-")
        folder.mkdir()
        for name in ("config.json", "model.safetensors"):
            (folder / name).write_bytes((student_run / "final" / name).read_bytes())
        target = folder / ("model.safetensors" if damage == "truncated weights" else "config.json")
        target.write_bytes(target.read_bytes()[:100])
        args = ["evaluate", "--checkpoint", str(folder), "--output", str(tmp_path / "r.json"), *FASHION_ARGS]
        assert_one_line_error(*run_main(args), str(folder))
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.json").exists()


def test_push_offline_or_to_an_invalid_repo_id_gets_one_line(student_run: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert_one_line_error(*run_main(["push", str(student_run / "final"), "--repo-id", "me/x"]), "HF_HUB_OFFLINE")
    assert_one_line_error(*run_main(["push", str(student_run / "final"), "--repo-id", "not a/valid//id"]), "repo-id")


def test_sources_that_cannot_be_loaded_get_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    args = ["data-info", "--dataset", "parquet", "--data-dir", str(tmp_path / "empty")]
    assert_one_line_error(*run_main(args), "could not be loaded as a dataset")
    for label in ("a", "b"):
        (tmp_path / "folder" / "train" / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "folder" / "train" / label / "0.png")
    args = ["data-info", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "folder"), "--label-column", "y"]
    assert_one_line_error(*run_main(args), "has no column 'y'")


def test_sixteen_bit_images_are_scaled_not_clipped() -> None:
    from vipriors_hub.data.images import decode_rgb

    values = np.random.default_rng(0).integers(0, 65536, (32, 32)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    decoded = np.asarray(decode_rgb(buffer.getvalue()))[..., 0].astype(float)
    assert np.abs(decoded - values / 257).max() <= 0.5 and len(np.unique(decoded)) > 100


def test_decompression_bombs_are_skipped_and_counted(tmp_path: Path) -> None:
    for split in ("train", "validation"):
        for label in ("a", "b"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(folder / "fine.png")
    Image.new("1", (15000, 15000)).save(tmp_path / "train" / "a" / "bomb.png")  # 27 KB declaring 225 Mpx
    Image.new("1", (12000, 12000)).save(tmp_path / "train" / "a" / "huge.png")  # 144 Mpx: over our limit too
    args = ["data-info", "--dataset", "imagefolder", "--data-dir", str(tmp_path), "--json"]
    result = subprocess.run([sys.executable, "-m", "vipriors_hub", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["splits"]["train"] == {**report["splits"]["train"], "images": 2, "skipped": 2}


def test_resume_changes_the_learning_rate_after_divergence_and_records_it(teacher_run: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    student = ["train-student", *TINY, "--teacher", str(teacher_run / "final"), "--no-distill-epochs", "0"]
    student += ["--checkpoint-every", "1", "--log-every", "1", "--schedule", "cosine"]
    assert run_main([*student, "--max-steps", "2", "--output", str(output)])[0] == 0
    code, stderr = run_main([*student, "--max-steps", "4", "--base-lr", "1e30", "--resume", "--output", f"{output}/"])
    assert_one_line_error(code, stderr, "training stopped")
    assert "Last good checkpoint" in stderr and "step-00000002" in stderr
    code, stderr = run_main([*student, "--max-steps", "4", "--resume", "--output", str(output.absolute())])
    assert code == 0, stderr
    history = [json.loads(line) for line in (output / "history.jsonl").read_text().splitlines()]
    assert history[0]["changed"] == {"train.max_steps": [2, 4], "train.base_lr": [0.1, 1e30]}
    assert history[1]["changed"] == {"train.base_lr": [1e30, 0.1]}
    code, stderr = run_main([*student, "--max-steps", "4", "--resume", "--momentum", "0.5", "--output", str(output)])
    assert_one_line_error(code, stderr, "train.momentum")


def test_a_diverging_teacher_is_stopped(tmp_path: Path) -> None:
    args = ["train-teacher", *TINY, "--queue-size", "32", "--epochs", "3", "--base-lr", "1e6", "--log-every", "1"]
    code, stderr = run_main([*args, "--output", str(tmp_path / "run")])
    assert_one_line_error(code, stderr, "The weights diverged")
    assert not (tmp_path / "run" / "final").exists()


def test_a_swap_killed_between_its_renames_is_recovered(tmp_path: Path, monkeypatch) -> None:
    import timm
    import torch

    import vipriors_hub.hub.folders as hub

    cfg = hub.pretrained_cfg_for("vipriors_resnet_tiny", "teacher", 32)
    first, second = (timm.create_model("vipriors_resnet_tiny", num_classes=0) for _ in range(2))
    folder = hub.write_model_folder(first, tmp_path / "model", "vipriors_resnet_tiny", cfg, {})
    calls = []

    def killed_on_the_second_rename(source, target) -> None:
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt("SIGKILL")
        os.rename(source, target)

    monkeypatch.setattr(hub.os, "replace", killed_on_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        hub.write_model_folder(second, folder, "vipriors_resnet_tiny", cfg, {})
    monkeypatch.undo()
    assert not folder.exists()
    loaded = hub.load_model_folder(folder, expect="teacher")
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), first.state_dict().values(), strict=True)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def numeric_flags() -> dict[str, dict[str, object]]:
    """Subcommand -> {flag: type or choices} for every numeric or enumerated option of the real parser."""
    table: dict[str, dict[str, object]] = {}
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in commands.choices.items():
        for action in parser._actions:
            flag = next((o for o in action.option_strings if o.startswith("--")), None)
            if flag is None or flag == "--config":
                continue
            if action.choices is not None:
                table.setdefault(name, {})[flag] = tuple(action.choices)
            elif action.type is float or getattr(action.type, "__name__", "") == "parse" or action.type is int:
                table.setdefault(name, {})[flag] = float if action.type is float else int
    return table


NUMERIC = numeric_flags()
ENTRY_POINTS = {
    "train-teacher": "vipriors_hub.train.teacher.train_teacher",
    "train-student": "vipriors_hub.train.student.train_student",
    "eval-teacher": "vipriors_hub.evaluate.evaluate_teacher",
    "evaluate": "vipriors_hub.evaluate.evaluate_students",
    "demo": "vipriors_hub.demo.run_demo",
    "convert": "vipriors_hub.hub.convert_checkpoint",
    "export": "vipriors_hub.hub.export_run",
    "data-info": "vipriors_hub.data.sources.load_data",
}


def value_for(kind: object) -> st.SearchStrategy[str]:
    if isinstance(kind, tuple):
        return st.one_of(st.sampled_from([str(choice) for choice in kind]), st.text(max_size=6))
    edge = st.sampled_from(["0", "-1", "1", "2", "4294967296", "9223372036854775808", "", "1.5", "x", "-0"])
    if kind is float:
        floats = st.floats(allow_nan=True, allow_infinity=True).map(str)
        return st.one_of(floats, edge, st.sampled_from(["nan", "inf", "-inf", "1e-4", "1e400"]))
    return st.one_of(st.integers(min_value=-(10**20), max_value=10**20).map(str), edge)


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[str, list[str]]:
    command = draw(st.sampled_from(sorted(NUMERIC)))
    flags = draw(st.lists(st.sampled_from(sorted(NUMERIC[command])), min_size=1, max_size=4, unique=True))
    return command, [part for flag in flags for part in (flag, draw(value_for(NUMERIC[command][flag])))]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines())
def test_fuzzed_numeric_flags_start_the_run_or_exit_2_with_one_line(line: tuple[str, list[str]]) -> None:
    command, flags = line
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out"
        required = {
            "evaluate": ["--checkpoint", folder, "--output", str(output / "r.json")],
            "convert": [str(Path(folder) / "x.pth"), "--output", str(output)],
            "export": [folder, "--output", str(output)],
            "data-info": [],
        }.get(command, ["--output", str(output)])
        with mock.patch(ENTRY_POINTS[command], side_effect=RuntimeError("started")) as entry:
            try:
                code, stderr = run_main([command, *required, *flags])
            except RuntimeError as started:
                assert str(started) == "started" and entry.called
                return
        assert_one_line_error(code, stderr)
        assert not output.exists()
