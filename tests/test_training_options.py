"""timm's flag names (and the earlier ones), the original recipe's options, and the effective batch."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import FASHION_ARGS

from vipriors_hub.cli import build_parser, main, resolve_config
from vipriors_hub.config import read_config_section
from vipriors_hub.errors import VipriorsError
from vipriors_hub.train.run import gradient_accumulation
from vipriors_hub.train.run_folder import resume_checkpoint_path
from vipriors_hub.train.settings import TARGET_EFFECTIVE_BATCH
from vipriors_hub.train.student import StudentConfig
from vipriors_hub.train.teacher import TeacherConfig

TIMM_SPELLING = "--model vipriors_resnet_tiny --img-size 40 -j 3 --lr-base 0.2 --sched cosine --smoothing 0.2"
TIMM_SPELLING += " --aa cifar10 --opt adamw --reprob 0.25 --teacher-bn train --grad-accum-steps 2 --log-interval 7"
OLD_SPELLING = "--architecture vipriors_resnet_tiny --resolution 40 --num-workers 3 --base-lr 0.2 --schedule cosine"
OLD_SPELLING += " --label-smoothing 0.2 --auto-augment --gradient-accumulation-steps 2 --log-every 7"


def student_config(flags: str) -> StudentConfig:
    return resolve_config(build_parser().parse_args(["train-student", *flags.split()]), StudentConfig, "train")


def test_timm_flag_names_and_the_earlier_ones_set_the_same_settings() -> None:
    timm_style, old_style = student_config(TIMM_SPELLING), student_config(OLD_SPELLING)
    for name in ("architecture", "resolution", "num_workers", "base_lr", "schedule", "label_smoothing"):
        assert getattr(timm_style, name) == getattr(old_style, name), name
    assert (timm_style.architecture, timm_style.resolution, timm_style.num_workers) == ("vipriors_resnet_tiny", 40, 3)
    assert (timm_style.gradient_accumulation_steps, timm_style.log_every) == (2, 7) == (2, old_style.log_every)
    assert (timm_style.auto_augment, timm_style.opt, timm_style.reprob, timm_style.teacher_bn) == (
        "cifar10",
        "adamw",
        0.25,
        "train",
    )
    assert old_style.auto_augment == "original" and student_config("--no-auto-augment").auto_augment is None
    assert student_config("--aa none").auto_augment is None
    assert student_config("--lr 0.05").lr == 0.05


@pytest.mark.parametrize(
    ("flags", "message"),
    [("--aa bogus-policy", "--aa 'bogus-policy'"), ("--opt sgdd", "--opt 'sgdd'"), ("--reprob 2", "--reprob 2")],
)
def test_unknown_policy_and_optimizer_are_refused_in_one_line(flags: str, message: str) -> None:
    with pytest.raises(VipriorsError, match=message):
        student_config(flags)


def test_default_accumulation_reaches_an_effective_batch_of_256() -> None:
    processes = 1
    assert gradient_accumulation(StudentConfig(batch_size=64), processes, batches_per_epoch=100) == 4
    assert 4 == TARGET_EFFECTIVE_BATCH // 64
    assert gradient_accumulation(StudentConfig(batch_size=64), 2, batches_per_epoch=100) == 2
    assert gradient_accumulation(TeacherConfig(batch_size=256), processes, batches_per_epoch=100) == 1
    # never more micro-batches than an epoch has, never fewer than one
    assert gradient_accumulation(StudentConfig(batch_size=64), processes, batches_per_epoch=3) == 3
    # a divisor of the epoch's batches, so that no optimizer step spans two epochs
    assert gradient_accumulation(StudentConfig(batch_size=64), processes, batches_per_epoch=6) == 3
    assert gradient_accumulation(StudentConfig(batch_size=64), processes, batches_per_epoch=7) == 1
    assert gradient_accumulation(StudentConfig(batch_size=512), processes, batches_per_epoch=3) == 1
    assert gradient_accumulation(StudentConfig(batch_size=64, gradient_accumulation_steps=2), processes, 100) == 2


def test_config_files_of_earlier_versions_still_read(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"train": {"auto_augment": False, "resume": True, "label_smoothing": 0.2}}))
    values = read_config_section(config, "train", StudentConfig)
    assert values == {"auto_augment": None, "label_smoothing": 0.2}
    config.write_text(yaml.safe_dump({"train": {"auto_augment": True}}))
    assert read_config_section(config, "train", StudentConfig) == {"auto_augment": "original"}


def test_new_options_train_and_resume_from_a_named_checkpoint(tmp_path: Path, teacher_run: Path, capsys) -> None:
    run = tmp_path / "run"
    flags = ["train-student", "--teacher", str(teacher_run / "final"), *FASHION_ARGS, "--per-class", "20"]
    flags += ["--img-size", "32", "-j", "0", "--batch-size", "16", "--grad-accum-steps", "1", "--sched", "cosine"]
    flags += ["--opt", "sgd", "--aa", "cifar10", "--smoothing", "0.1", "--teacher-bn", "train", "--reprob", "0.25"]
    flags += ["--no-distill-epochs", "0", "--log-interval", "1", "--checkpoint-every", "2", "--report-to", "none"]
    assert main([*flags, "--output", str(run), "--max-steps", "4"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["distillation"] > 0 for r in records if "distillation" in r), "distilled from the first step"
    recorded = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert (recorded["auto_augment"], recorded["teacher_bn"], recorded["opt"]) == ("cifar10", "train", "sgd")
    # what the run used, not "auto": on this CPU neither channels_last nor compilation
    assert (recorded["channels_last"], recorded["torch_compile"], recorded["gradient_accumulation_steps"]) == (
        False,
        False,
        1,
    )

    checkpoint = run / "checkpoints" / "step-00000002"
    assert checkpoint.is_dir()
    assert resume_checkpoint_path(StudentConfig(resume=str(checkpoint))) == (run, checkpoint)
    assert resume_checkpoint_path(StudentConfig(resume=str(run))) == (run, None)
    capsys.readouterr()
    assert main([*flags, "--resume", str(checkpoint), "--max-steps", "4"]) == 0
    printed = capsys.readouterr().out
    assert f"Resumed from {checkpoint} at step 2." in printed
    assert f"Deleted {run / 'checkpoints' / 'step-00000004'}" in printed, "the abandoned later checkpoint goes"
    with pytest.raises(VipriorsError, match="neither a training run"):
        resume_checkpoint_path(StudentConfig(resume=str(tmp_path)))


def test_package_exposes_the_trainers_and_evaluation_lazily() -> None:
    import vipriors_hub
    from vipriors_hub import StudentConfig as PublicStudentConfig
    from vipriors_hub import evaluate, train_student, train_teacher
    from vipriors_hub.train import student, teacher

    assert (train_teacher, train_student) == (teacher.train_teacher, student.train_student)
    assert PublicStudentConfig is StudentConfig and callable(evaluate.evaluate_students)
    with pytest.raises(AttributeError, match="no attribute 'train_everything'"):
        vipriors_hub.train_everything  # noqa: B018


def test_one_seed_sets_training_and_the_draw_and_each_can_be_set_apart(tmp_path: Path) -> None:
    from vipriors_hub.cli import data_config_from_args
    from vipriors_hub.train.run import resolve_seeds

    def seeds(flags: str, command: str = "train-student") -> tuple[int | None, int | None]:
        args = build_parser().parse_args([command, *flags.split()])
        settings, data = resolve_seeds(resolve_config(args, StudentConfig, "train"), data_config_from_args(args))
        return settings.seed, data.seed

    assert seeds("--seed 3") == (3, 3)  # as before: one --seed for the draw and for training
    assert seeds("--seed 3 --data-seed 5") == (3, 5)
    assert seeds("--data-seed 5") == (5, 5)
    assert seeds("") == (0, 0)
    # a config.yaml of an earlier version: the seed in its data section only
    old = tmp_path / "config.yaml"
    old.write_text(yaml.safe_dump({"data": {"dataset": "fashion-mnist", "seed": 7}, "train": {"epochs": 2}}))
    assert seeds(f"--config {old}") == (7, 7)
    # where nothing trains, --seed is the data seed it always was
    evaluate = build_parser().parse_args(["evaluate", "--checkpoint", "s", "--seed", "4"])
    assert data_config_from_args(evaluate).seed == 4
