"""Shared test set-up: offline Hub, a temporary Hugging Face cache, the data the tests read.

Every test runs on a fresh clone: Fashion-MNIST comes from the subset shipped in the package,
split lists in the official pickle format are written by the tests themselves. Tests of the
*real* data (the official VIPriors split lists, the full Fashion-MNIST IDX files) are marked
``real_data`` and run when an environment variable names their folder:

* ``VIPRIORS_SPLIT_LISTS``: folder with the official ``train.pickle``, ``val.pickle``, ``test.pickle``;
* ``FASHION_MNIST_DIR``: folder with the four Fashion-MNIST IDX files.

Unset, those tests are skipped; set to a folder that lacks the files, they fail (``.ci/run`` sets both).
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gzip  # noqa: E402
import hashlib  # noqa: E402
import importlib.resources  # noqa: E402
import pickle  # noqa: E402
import struct  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import huggingface_hub.constants  # noqa: E402
import pytest  # noqa: E402

from vipriors_hub.data import DataConfig  # noqa: E402
from vipriors_hub.data import split_lists as split_list_module  # noqa: E402

# The Fashion-MNIST subset shipped with the package: 50 training images per class, the 10k test set.
FASHION_DIR = Path(str(importlib.resources.files("vipriors_hub.demo_data")))
FASHION = DataConfig(dataset="fashion-mnist", data_dir=str(FASHION_DIR), per_class=50, seed=0)
FASHION_ARGS = ["--dataset", "fashion-mnist", "--data-dir", str(FASHION_DIR)]
# Classes of the synthetic split lists: wnids spread over ImageNet's range, 50 images each per split.
SYNTHETIC_WNIDS = ("n01440764", "n01443537", "n04591713", "n15075141")


def _real_folder(variable: str, names: tuple[str, ...]) -> Path:
    """The folder an environment variable names, skipping the test when it is unset and failing it
    when the folder lacks one of ``names``."""
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to run tests of the real data")
    folder = Path(value)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        pytest.fail(f"{variable}={value} lacks {', '.join(missing)}")
    return folder


@pytest.fixture
def real_split_lists() -> Path:
    """The folder of the official VIPriors split lists (``VIPRIORS_SPLIT_LISTS``)."""
    return _real_folder("VIPRIORS_SPLIT_LISTS", ("train.pickle", "val.pickle", "test.pickle"))


@pytest.fixture
def real_fashion_mnist() -> Path:
    """The folder of the full Fashion-MNIST IDX files (``FASHION_MNIST_DIR``)."""
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return _real_folder("FASHION_MNIST_DIR", tuple(f"{name}.gz" for name in names))


def synthetic_split_list_bytes(wnids: tuple[str, ...] = SYNTHETIC_WNIDS, per_class: int = 50) -> dict[str, bytes]:
    """Split lists in the official pickle format (train and val: ``[[wnid, filename], ...]``, test:
    ``["wnid/ILSVRC2012_val_XXXXXXXX.JPEG", ...]``), classes interleaved as in the official lists."""
    lists = {
        "train": [[w, f"{w}_{1000 + i}.JPEG"] for i in range(per_class) for w in wnids],
        "val": [[w, f"{w}_{5000 + i}.JPEG"] for i in range(per_class) for w in wnids],
        "test": [
            f"{w}/ILSVRC2012_val_{1 + c + len(wnids) * i:08d}.JPEG"
            for i in range(per_class)
            for c, w in enumerate(wnids)
        ],
    }
    return {split: pickle.dumps(entries, protocol=2) for split, entries in lists.items()}


def write_split_lists(folder: Path) -> dict[str, str]:
    """Write the synthetic split lists into ``folder``; return each file's sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    for split, data in synthetic_split_list_bytes().items():
        (folder / f"{split}.pickle").write_bytes(data)
        digests[split] = hashlib.sha256(data).hexdigest()
    return digests


@pytest.fixture(scope="session")
def synthetic_split_lists_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("split-lists")
    return folder, write_split_lists(folder)


@pytest.fixture
def split_lists(synthetic_split_lists_dir: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of synthetic split lists in the official format, whose hashes the package accepts for
    the duration of the test (in this process only)."""
    folder, digests = synthetic_split_lists_dir
    for split, digest in digests.items():
        monkeypatch.setitem(split_list_module.SPLIT_LIST_SHA256, split, digest)
    return folder


TINY_TEACHER = dict(
    architecture="vipriors_resnet_tiny",
    resolution=32,
    batch_size=64,
    queue_size=128,
    base_lr=0.12,
    key_momentum=0.99,
    num_workers=0,
    gradient_accumulation_steps=1,
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
    resolution=32,
    batch_size=64,
    gradient_accumulation_steps=1,
    num_workers=0,
    log_every=1,
    report_to="none",
    no_distill_epochs=1,
    schedule="cosine",
)


@pytest.fixture(scope="session")
def student_run(teacher_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny student distilled for 3 epochs from ``teacher_run`` (about 8 s)."""
    from vipriors_hub.train.student import StudentConfig, train_student

    output = tmp_path_factory.mktemp("student")
    config = StudentConfig(output=str(output), teacher=str(teacher_run / "final"), epochs=3, **TINY_STUDENT)
    train_student(config, FASHION)
    return output


def write_small_fashion_mnist(folder: Path, test_images: int) -> Path:
    """The shipped Fashion-MNIST subset with only its first ``test_images`` test images (IDX files)."""
    folder.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        for split in ("train", "t10k"):
            data = gzip.decompress((FASHION_DIR / f"{split}-{kind}-ubyte.gz").read_bytes())
            if split == "t10k":
                ndim = data[3]
                shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
                per_item = 1 if ndim == 1 else shape[1] * shape[2]
                header = data[:4] + struct.pack(f">{ndim}I", test_images, *shape[1:])
                data = header + data[4 + 4 * ndim :][: test_images * per_item]
            (folder / f"{split}-{kind}-ubyte").write_bytes(data)
    return folder


@pytest.fixture(scope="session")
def small_fashion_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped subset with 300 test images instead of 10k: every arm of the demo, scored fast."""
    return write_small_fashion_mnist(tmp_path_factory.mktemp("fashion") / "idx", test_images=300)
