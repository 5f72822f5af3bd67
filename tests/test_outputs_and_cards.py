"""Trust at the seams: nothing the user owns is deleted, accelerate's precision reaches the run, cards
state only what the run's files show, trackers are checked, evaluation memory is bounded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FASHION, FASHION_ARGS, TINY_STUDENT
from huggingface_hub import ModelCard

from vipriors_hub.cli import main

TINY_CLI = ["--architecture", "vipriors_resnet_tiny", "--resolution", "32", "--batch-size", "16", "--num-workers", "0"]
TEACHER_CLI = [
    "train-teacher",
    *TINY_CLI,
    "--queue-size",
    "32",
    "--report-to",
    "none",
    *FASHION_ARGS,
    "--per-class",
    "5",
]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``vipriors-hub ARGS`` in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "vipriors_hub", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]


def test_export_into_its_own_run_folder_is_refused_and_the_run_kept(teacher_run: Path) -> None:
    before = snapshot(teacher_run)
    one_line_error(cli("export", str(teacher_run), "--output", str(teacher_run)), "holds a training run")
    one_line_error(cli("export", str(teacher_run), "--output", str(teacher_run / "final")), "lies inside the training")
    assert snapshot(teacher_run) == before


def test_export_and_convert_never_replace_a_users_files(teacher_run: Path, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    (tmp_path / "file.txt").write_text("also mine")
    for destination in (tmp_path / "mine", tmp_path / "file.txt"):
        one_line_error(cli("export", str(teacher_run), "--output", str(destination)), str(destination))
    moco = tmp_path / "moco.pth.tar"
    moco.write_bytes(b"")
    one_line_error(
        cli("convert", str(moco), "--architecture", "vipriors_resnet_tiny", "--output", str(tmp_path / "mine")), "mine"
    )
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine" and (
        tmp_path / "file.txt"
    ).read_text() == "also mine"
    # A model folder written before by export may be written again.
    assert cli("export", str(teacher_run), "--output", str(tmp_path / "export")).returncode == 0
    assert cli("export", str(teacher_run), "--output", str(tmp_path / "export")).returncode == 0


def test_overwrite_replaces_only_a_run_and_nothing_else(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('mine')")
    (project / "config.yaml").write_text("data: {}\ntrain: {}\n")
    result = cli(*TEACHER_CLI, "--epochs", "1", "--overwrite", "--output", str(project))
    one_line_error(result, "not a training run")
    assert (project / "src" / "main.py").read_text() == "print('mine')"


def test_config_records_settings_not_actions_and_a_run_passed_back_is_not_wiped(
    teacher_run: Path, tmp_path: Path
) -> None:
    recorded = yaml.safe_load((teacher_run / "config.yaml").read_text())
    assert "overwrite" not in recorded["train"] and "resume" not in recorded["train"]
    # A config.yaml of an older version that recorded `overwrite: true`.
    old = {**recorded, "train": {**recorded["train"], "overwrite": True}}
    run = tmp_path / "run"
    run.mkdir()
    for name in ("metrics.jsonl", "config.yaml"):
        (run / name).write_bytes((teacher_run / name).read_bytes())
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    one_line_error(cli("train-teacher", "--config", str(tmp_path / "old.yaml"), "--output", str(run)), "already holds")
    assert (run / "metrics.jsonl").read_bytes() == (teacher_run / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data-dir", "/nonexistent/fashion"], "not found"),
        (["--batch-size", "4096"], "fewer than one step"),
    ],
)
def test_a_start_that_fails_its_checks_writes_nothing(extra: list[str], message: str, tmp_path: Path) -> None:
    output = tmp_path / "run"
    one_line_error(cli(*TEACHER_CLI, "--epochs", "1", "--output", str(output), *extra), message)
    assert not output.exists()


def test_accelerate_mixed_precision_reaches_the_run(tmp_path: Path) -> None:
    output = tmp_path / "run"
    args = [*TEACHER_CLI, "--max-steps", "1", "--output", str(output), "--cpu"]
    result = cli(*args, env={"ACCELERATE_MIXED_PRECISION": "bf16"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mixed precision: bf16" in result.stdout
    assert yaml.safe_load((output / "config.yaml").read_text())["train"]["mixed_precision"] == "bf16"
    # The flag overrides the launcher.
    result = cli(
        *args[:-1],
        "--mixed-precision",
        "no",
        "--output",
        str(tmp_path / "flag"),
        env={"ACCELERATE_MIXED_PRECISION": "bf16"},
    )
    assert result.returncode == 0 and "mixed precision: no" in result.stdout


def test_a_requested_tracker_that_is_not_installed_is_refused_at_start(tmp_path: Path, capsys) -> None:
    pytest.importorskip("tensorboard")
    if __import__("importlib").util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    args = [*TEACHER_CLI, "--epochs", "1", "--output", str(tmp_path / "run")]
    assert main([*[a for a in args if a not in ("--report-to", "none")], "--report-to", "wandb"]) == 2
    assert "pip install wandb" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def student_card(run: Path) -> ModelCard:
    return ModelCard.load(run / "final" / "README.md")


def test_student_cards_say_what_the_run_did(student_run: Path, teacher_run: Path, tmp_path: Path) -> None:
    from vipriors_hub.train.student import StudentConfig, train_student

    distilled = student_card(student_run)
    assert "OFD feature distillation" in distilled.text and "during the last 2.0 of them" in distilled.text
    assert "knowledge-distillation" in distilled.data.tags

    settings = {**TINY_STUDENT, "no_distill_epochs": 2}
    undistilled = tmp_path / "undistilled"
    train_student(
        StudentConfig(output=str(undistilled), teacher=str(teacher_run / "final"), epochs=1, **settings), FASHION
    )
    card = student_card(undistilled)
    assert "no distillation took place" in card.text and "OFD" not in card.text
    assert "knowledge-distillation" not in card.data.tags

    scratch = tmp_path / "scratch"
    config = StudentConfig(
        output=str(scratch), architecture="vipriors_resnet_tiny", init="scratch", distill_weight=0, epochs=1, **settings
    )
    train_student(config, FASHION)
    card = student_card(scratch)
    assert "from\nscratch" in card.text or "from scratch" in card.text.replace("\n", " ")
    assert "OFD" not in card.text and card.data.base_model is None
    config = json.loads((scratch / "final" / "config.json").read_text())
    assert config["pretrained_cfg"]["description"].startswith("10-class classifier trained on Fashion-MNIST")


def test_cards_and_configs_hold_no_local_path(teacher_run: Path, student_run: Path, tmp_path: Path) -> None:
    from vipriors_hub.hub import export_run

    for run in (teacher_run, student_run):
        folder = export_run(run, tmp_path / run.name)
        for name in ("README.md", "config.json"):
            text = (folder / name).read_text()
            for path in (str(run), str(tmp_path), str(Path.home()), "/tmp/"):
                assert path not in text, (name, path)


def test_results_of_another_checkpoint_are_refused(teacher_run: Path, student_run: Path, tmp_path: Path) -> None:
    evaluation = tmp_path / "teacher_eval.json"
    assert (
        main(
            [
                "eval-teacher",
                "--checkpoint",
                str(teacher_run / "final"),
                "--output",
                str(evaluation),
                "--num-workers",
                "0",
                *FASHION_ARGS,
                "--per-class",
                "5",
            ]
        )
        == 0
    )
    result = cli("export", str(student_run), "--output", str(tmp_path / "export"), "--results", str(evaluation))
    one_line_error(result, "scored another checkpoint")
    assert not (tmp_path / "export").exists()
    # The teacher's own results are accepted, with the kNN k actually used (5 x 10 images in the bank, minus held-out).
    assert (
        cli("export", str(teacher_run), "--output", str(tmp_path / "teacher"), "--results", str(evaluation)).returncode
        == 0
    )
    knn = json.loads(evaluation.read_text())["knn"]
    assert knn["k"] == 40
    assert "kNN (k=40)" in (tmp_path / "teacher" / "README.md").read_text()


def test_push_renders_the_card_for_the_repository_pushed_to(student_run: Path, tmp_path: Path) -> None:
    from test_hub import RecordingApi

    from vipriors_hub.hub import export_run, push_to_hub

    folder = export_run(student_run, tmp_path / "export", repo_id="someone/first", base_model="someone/first-teacher")
    uploaded: dict[str, str] = {}

    class Capturing(RecordingApi):
        def upload_folder(self, **kwargs) -> str:
            uploaded.update({p.name: p.read_text() for p in Path(kwargs["folder_path"]).glob("*.json")})
            uploaded["README.md"] = (Path(kwargs["folder_path"]) / "README.md").read_text()
            return super().upload_folder(**kwargs)

    push_to_hub(folder, "other/second", api=Capturing())
    assert "hf-hub:other/second" in uploaded["README.md"] and "hf-hub:someone/first" not in uploaded["README.md"]
    assert "base_model: someone/first-teacher" in uploaded["README.md"]  # only whole repo ids are replaced
    assert json.loads(uploaded["config.json"])["vipriors_repo_id"] == "other/second"
    assert "someone/first" in (folder / "README.md").read_text()  # the folder itself is left as it was


def test_ten_crop_memory_is_bounded_by_the_batch_size(student_run: Path, tmp_path: Path) -> None:
    from vipriors_hub.data import load_data
    from vipriors_hub.evaluate import predict_probabilities
    from vipriors_hub.hub import load_model_folder

    model = load_model_folder(student_run / "final", expect="student")
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda module, inputs: sizes.append(inputs[0].shape[0]))
    split = load_data(FASHION).splits["val"].select(range(25))
    probabilities, _, _ = predict_probabilities(model, split, 32, True, 20, 0, "cpu")
    assert probabilities.shape == (25, 10) and max(sizes) <= 20 and sum(sizes) == 250


def test_ten_crop_at_448_px_stays_under_3_gb(student_run: Path, tmp_path: Path) -> None:
    # Peak resident memory (KiB) of the evaluating process, default batch size, 40 images x 10 views.
    code = (
        "import resource, sys; from vipriors_hub.cli import main; code = main(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
    )
    args = ["evaluate", "--checkpoint", str(student_run / "final"), "--ten-crop", "--resolution", "448"]
    args += ["--output", str(tmp_path / "r.json"), "--num-workers", "0", *FASHION_ARGS, "--per-class", "5"]
    args += ["--val-per-class", "4"]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "r.json").read_text())["images"] == 40
    peak_kib = int(result.stdout.split()[-1])
    assert peak_kib < 3 * 1024 * 1024, peak_kib


def test_overwrite_refuses_another_projects_run_folder(tmp_path: Path) -> None:
    other = tmp_path / "other-project-run"
    (other / "checkpoints").mkdir(parents=True)
    (other / "checkpoints" / "model.pt").write_bytes(b"weights of another tool")
    (other / "config.yaml").write_text("lr: 0.1\n")
    one_line_error(cli(*TEACHER_CLI, "--epochs", "1", "--overwrite", "--output", str(other)), "not a training run")
    assert (other / "checkpoints" / "model.pt").read_bytes() == b"weights of another tool"


def test_results_in_a_run_keep_it_a_run_and_the_demo_checks_its_folder(teacher_run: Path, tmp_path: Path) -> None:
    from vipriors_hub.outputs import is_training_run

    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "metrics.jsonl"):
        (run / name).write_bytes((teacher_run / name).read_bytes())
    (run / "eval.json").write_text(json.dumps({"split": "val", "knn": {}, "linear": {}}))
    assert is_training_run(run)
    (run / "notes.txt").write_text("mine")
    assert not is_training_run(run)
    one_line_error(cli("export", str(teacher_run), "--output", str(run / "hub")), "lies inside the training run")
    (tmp_path / "demo.txt").write_text("mine")
    one_line_error(cli("demo", "--output", str(tmp_path / "demo.txt")), "is a file")
    assert (tmp_path / "demo.txt").read_text() == "mine"
