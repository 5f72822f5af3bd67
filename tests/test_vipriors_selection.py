"""Selecting the VIPriors subset from local ImageNet-like sources built from split lists in the official format."""

import io
import logging
from pathlib import Path

import datasets
import pytest
from conftest import synthetic_split_list_bytes
from PIL import Image

from vipriors_hub.data import DataConfig, load_data
from vipriors_hub.data.split_lists import VipriorsSplitLists, parse_split_list
from vipriors_hub.errors import VipriorsError

LISTS = VipriorsSplitLists(**{split: parse_split_list(data) for split, data in synthetic_split_list_bytes().items()})
TOTAL = len(LISTS.train)
WNIDS = LISTS.class_names[:1] + LISTS.class_names[2:3] + LISTS.class_names[-1:]


@pytest.fixture(autouse=True)
def lists_folder(split_lists: Path) -> Path:
    """Every test of this module reads the synthetic lists (their hashes accepted)."""
    return split_lists


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed % 256, (seed // 256) % 256, 7)).save(buffer, format="JPEG")
    return buffer.getvalue()


def expected(split: str) -> list[tuple[str, int]]:
    """(stem, label) of the chosen classes' entries, in the order of the official list."""
    return [(e.stem, LISTS.class_names.index(e.wnid)) for e in LISTS.split(split) if e.wnid in WNIDS]


def imagenet_files() -> dict[str, list[tuple[str, str]]]:
    """ImageNet split -> (relative path, wnid) of the chosen classes' listed images plus distractors."""
    train = [(f"train/{e.wnid}/{e.stem}.JPEG", e.wnid) for e in LISTS.train + LISTS.val if e.wnid in WNIDS]
    train += [(f"train/{wnid}/{wnid}_99999{i}.JPEG", wnid) for i, wnid in enumerate(WNIDS)]
    val = [(f"val/{e.stem}.JPEG", e.wnid) for e in LISTS.test if e.wnid in WNIDS]
    val += [("val/ILSVRC2012_val_99999999.JPEG", WNIDS[0])]
    return {"train": train, "validation": val}


@pytest.fixture(scope="module")
def imagenet_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imagenet")
    for files in imagenet_files().values():
        for i, (relative, _) in enumerate(files):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(jpeg(i))
    return root


@pytest.fixture(scope="module")
def imagenet_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageNet as parquet shards in the Hub's layout (image {bytes, path}, label), revision-style names."""
    root = tmp_path_factory.mktemp("imagenet-parquet")
    (root / "data").mkdir()
    for split, files in imagenet_files().items():
        rows = {
            "image": [
                {"bytes": jpeg(i), "path": Path(rel).name.replace(".JPEG", f"_{wnid}.JPEG")}
                for i, (rel, wnid) in enumerate(files)
            ],
            "label": [LISTS.class_names.index(wnid) for _, wnid in files],
        }
        dataset = datasets.Dataset.from_dict(
            rows, features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
        )
        dataset.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def selection(data_dir: Path, cache: Path, lists: Path) -> dict[str, list[tuple[str, int]]]:
    data = load_data(
        DataConfig(dataset="vipriors", data_dir=str(data_dir), split_lists=str(lists), cache_dir=str(cache))
    )
    assert data.class_names == LISTS.class_names
    return {name: list(zip(split["id"], split["label"], strict=True)) for name, split in data.splits.items()}


def test_image_tree_selection_is_exact(imagenet_tree: Path, tmp_path: Path, lists_folder: Path) -> None:
    chosen = selection(imagenet_tree, tmp_path, lists_folder)
    for split in ("train", "val", "test"):
        assert chosen[split] == expected(split)
        assert len(chosen[split]) == 50 * len(WNIDS)


def test_parquet_selection_equals_image_tree_selection(
    imagenet_parquet: Path, tmp_path: Path, lists_folder: Path
) -> None:
    chosen = selection(imagenet_parquet, tmp_path, lists_folder)
    for split in ("train", "val", "test"):
        assert chosen[split] == expected(split)


def test_toolkit_layout_with_renamed_test_images(tmp_path: Path, lists_folder: Path) -> None:
    root = tmp_path / "imagenet_50"
    for split in ("train", "val"):
        for e in LISTS.split(split)[:60]:
            (root / split / e.wnid).mkdir(parents=True, exist_ok=True)
            (root / split / e.wnid / f"{e.stem}.JPEG").write_bytes(jpeg(1))
    (root / "test").mkdir()
    for i in range(5):
        (root / "test" / f"img_{i}.JPEG").write_bytes(jpeg(i))

    data = load_data(DataConfig(dataset="vipriors", data_dir=str(tmp_path), split_lists=str(lists_folder)))

    test = data.splits["test"]
    assert test["id"] == [e.stem for e in LISTS.test[:5]]
    assert test["label"] == [LISTS.class_names.index(e.wnid) for e in LISTS.test[:5]]
    assert data.splits["train"]["id"] == [e.stem for e in LISTS.train[:60]]


def test_partial_source_warns_with_the_count(
    imagenet_tree: Path, tmp_path: Path, lists_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        selection(imagenet_tree, tmp_path, lists_folder)
    assert f"{50 * len(WNIDS)} of {TOTAL} files of the VIPriors train split found" in caplog.text


def test_source_without_any_listed_file_is_an_error(tmp_path: Path, lists_folder: Path) -> None:
    (tmp_path / "train" / "n00000000").mkdir(parents=True)
    (tmp_path / "train" / "n00000000" / "n00000000_1.JPEG").write_bytes(jpeg(0))
    with pytest.raises(VipriorsError, match=f"0 of {TOTAL} files of the VIPriors train split found in"):
        load_data(DataConfig(dataset="vipriors", data_dir=str(tmp_path), split_lists=str(lists_folder)))


def test_missing_data_directory_is_an_error(tmp_path: Path, lists_folder: Path) -> None:
    with pytest.raises(VipriorsError, match="does not exist"):
        load_data(DataConfig(dataset="vipriors", data_dir=str(tmp_path / "nope"), split_lists=str(lists_folder)))
