"""Shared test set-up: offline Hub, a temporary Hugging Face cache, paths to ../shared data."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import hashlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import huggingface_hub.constants  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

from vipriors_hub.data import DataConfig  # noqa: E402

FASHION = DataConfig(dataset="fashion-mnist", data_dir=str(SHARED_DATA / "fashion-mnist"), per_class=50, seed=0)
TINY_TEACHER = dict(
    architecture="vipriors_resnet_tiny",
    resolution=32,
    batch_size=64,
    queue_size=128,
    base_lr=0.12,
    key_momentum=0.99,
    num_workers=0,
    log_every=1,
    report_to="none",
)


def write_to_hf_cache(cache_dir: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """Lay ``files`` (name in repo -> local file) into ``cache_dir`` as huggingface_hub caches a
    downloaded model repository: blobs, a snapshot of symlinks and ``refs/main``."""
    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    for name, source in files.items():
        data = Path(source).read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.relpath(blob, target.parent))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, dict[str, Path]], Path]:
    """An empty temporary Hugging Face cache in use for the test; call it to add a repository."""
    cache_dir = tmp_path / "hf-cache"
    cache_dir.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache_dir))

    def add(repo_id: str, files: dict[str, Path]) -> Path:
        return write_to_hf_cache(cache_dir, repo_id, files)

    return add


@pytest.fixture(scope="session")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MoCo teacher trained for 8 epochs on 400 Fashion-MNIST images (about 15 s)."""
    from vipriors_hub.train.teacher import TeacherConfig, train_teacher

    output = tmp_path_factory.mktemp("teacher")
    train_teacher(TeacherConfig(output=str(output), epochs=8, **TINY_TEACHER), FASHION)
    return output


TINY_STUDENT = dict(
    resolution=32, batch_size=64, num_workers=0, log_every=1, report_to="none", no_distill_epochs=1, schedule="cosine"
)


@pytest.fixture(scope="session")
def student_run(teacher_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny student distilled for 3 epochs from ``teacher_run`` (about 8 s)."""
    from vipriors_hub.train.student import StudentConfig, train_student

    output = tmp_path_factory.mktemp("student")
    config = StudentConfig(output=str(output), teacher=str(teacher_run / "final"), epochs=3, **TINY_STUDENT)
    train_student(config, FASHION)
    return output
