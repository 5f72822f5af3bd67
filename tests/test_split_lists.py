"""The official VIPriors split lists: hash check, safe parsing, cache and offline behaviour."""

import hashlib
import os
import pickle
import shutil
from collections import Counter
from pathlib import Path

import huggingface_hub.constants
import pytest
from conftest import SYNTHETIC_WNIDS

from vipriors_hub.data.split_lists import (
    SplitEntry,
    SplitListError,
    default_cache_dir,
    image_stem,
    load_split_lists,
    parse_split_list,
)


@pytest.mark.real_data
def test_official_lists_parse_into_1000_classes_of_50_images(real_split_lists: Path) -> None:
    lists = load_split_lists(real_split_lists)
    assert len(lists.class_names) == 1000 and lists.class_names == sorted(lists.class_names)
    for split in ("train", "val", "test"):
        entries = lists.split(split)
        assert len(entries) == 50_000
        assert set(Counter(entry.wnid for entry in entries).values()) == {50}
    assert not {e.stem for e in lists.train} & {e.stem for e in lists.val}
    assert all(e.stem.startswith("ILSVRC2012_val_") for e in lists.test)
    assert all(e.stem.startswith(f"{e.wnid}_") for e in lists.train)


@pytest.mark.parametrize(
    ("path", "stem"),
    [
        ("n01440764_2823.JPEG", "n01440764_2823"),
        ("train/n01440764/n01440764_2823.JPEG", "n01440764_2823"),
        ("n01440764_2823_n01440764.JPEG", "n01440764_2823"),
        ("val/ILSVRC2012_val_00000001_n01751748.JPEG", "ILSVRC2012_val_00000001"),
        ("img_12.JPEG", None),
    ],
)
def test_image_stem_ignores_folders_and_suffixes(path: str, stem: str | None) -> None:
    assert image_stem(path) == stem


@pytest.mark.real_data
def test_official_lists_pass_the_pinned_hashes(real_split_lists: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vipriors_hub.data.split_lists import SPLIT_LIST_SHA256

    for split in ("train", "val", "test"):
        assert (
            hashlib.sha256((real_split_lists / f"{split}.pickle").read_bytes()).hexdigest() == SPLIT_LIST_SHA256[split]
        )


def test_synthetic_lists_parse_like_official_ones(split_lists: Path) -> None:
    lists = load_split_lists(split_lists)
    assert lists.class_names == sorted(SYNTHETIC_WNIDS)
    assert [len(lists.split(name)) for name in ("train", "val", "test")] == [50 * len(SYNTHETIC_WNIDS)] * 3
    assert lists.test[0] == SplitEntry(wnid=SYNTHETIC_WNIDS[0], stem="ILSVRC2012_val_00000001")


def test_tampered_list_is_refused(split_lists: Path, tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        shutil.copy(split_lists / f"{split}.pickle", tmp_path / f"{split}.pickle")
    data = pickle.loads((split_lists / "val.pickle").read_bytes())
    data[0] = ["n01440764", "n01440764_1.JPEG"]
    (tmp_path / "val.pickle").write_bytes(pickle.dumps(data))

    with pytest.raises(SplitListError, match="sha256"):
        load_split_lists(tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_pickle_carrying_code_is_refused_without_running_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SplitListError, match="only hold lists and strings"):
        parse_split_list(pickle.dumps([["n01440764", "n01440764_1.JPEG"], _RunsCode()]))
    assert not (tmp_path / "pwned-by-pickle").exists()


@pytest.mark.parametrize("payload", [{"a": 1}, [["n01440764", 3]], ["no-slash"], [["n01440764", "readme.txt"]]])
def test_lists_of_other_shapes_are_refused(payload: object) -> None:
    with pytest.raises(SplitListError):
        parse_split_list(pickle.dumps(payload))


def test_offline_without_cache_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SplitListError, match="--split-lists"):
        load_split_lists()


def test_cached_lists_load_without_a_local_copy(
    split_lists: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(tmp_path))
    default_cache_dir().mkdir(parents=True)
    for split in ("train", "val", "test"):
        shutil.copy(split_lists / f"{split}.pickle", default_cache_dir() / f"{split}.pickle")
    assert load_split_lists() == load_split_lists(split_lists)
