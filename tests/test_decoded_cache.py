"""The decoded cache: built once, reused, keyed by content and cap, rebuilt when damaged, atomic."""

import hashlib
import io
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from vipriors_hub.data import decoded_cache
from vipriors_hub.data.decoded_cache import DecodedSplit, cache_folder, content_key, open_decoded


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def images_split(sizes: list[tuple[int, int]], broken: tuple[int, ...] = ()) -> tuple[datasets.Dataset, list]:
    """A split of random RGB images of ``sizes`` (height, width) with the rows ``broken`` unreadable."""
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]
    images = [
        {"bytes": b"not an image" if row in broken else png(picture), "path": None}
        for row, picture in enumerate(pictures)
    ]
    features = datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")})
    split = datasets.Dataset.from_dict({"image": images, "label": list(range(len(sizes)))}, features=features)
    return split, pictures


def test_every_readable_image_is_cached_at_full_size_and_the_unreadable_counted(tmp_path: Path) -> None:
    split, pictures = images_split([(10, 12), (7, 5), (9, 9), (3, 8)], broken=(2,))
    decoded = open_decoded(split, max_side=64, cache_dir=str(tmp_path))
    assert len(decoded) == 3 and decoded.skipped == 1
    assert decoded.rows.tolist() == [0, 1, 3] and decoded.labels.tolist() == [0, 1, 3]
    for index, row in enumerate(decoded.rows):
        assert np.array_equal(decoded.image(index), pictures[row])


def test_images_over_the_cap_are_shrunk_to_it_keeping_their_shape(tmp_path: Path) -> None:
    split, _ = images_split([(40, 100), (20, 10)])
    decoded = open_decoded(split, max_side=50, cache_dir=str(tmp_path))
    assert decoded.shapes.tolist() == [[20, 50], [20, 10]]


def test_a_second_open_reuses_the_cache_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    split, _ = images_split([(6, 6)] * 5)
    first = open_decoded(split, cache_dir=str(tmp_path))
    monkeypatch.setattr(decoded_cache, "_build", lambda *args: pytest.fail("the cache was built again"))
    second = open_decoded(split, cache_dir=str(tmp_path))
    assert second.folder == first.folder and np.array_equal(second.pixels, first.pixels)


def test_the_key_follows_content_and_cap(tmp_path: Path) -> None:
    split, _ = images_split([(6, 6), (5, 7)])
    other, _ = images_split([(6, 6), (5, 8)])
    relabelled = split.map(lambda example: {"label": 1 - example["label"]})
    keys = {content_key(split, 512), content_key(split, 256), content_key(other, 512), content_key(relabelled, 512)}
    assert len(keys) == 4
    assert content_key(split, 512) == content_key(split.select(range(2)), 512)


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "index", "labels", "offsets", "no-manifest"])
def test_a_damaged_cache_is_rebuilt_never_used(damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    split, pictures = images_split([(8, 8), (6, 9)])
    folder = open_decoded(split, cache_dir=str(tmp_path)).folder
    pixels = folder / "pixels.bin"
    if damage == "truncate":
        pixels.write_bytes(pixels.read_bytes()[:-10])
    elif damage == "flip":
        data = bytearray(pixels.read_bytes())
        data[5] ^= 0xFF
        pixels.write_bytes(bytes(data))
    elif damage == "manifest":
        (folder / "manifest.json").write_text("{not json")
    elif damage == "index":
        np.save(folder / "index.npy", np.zeros((1, 4), dtype=np.int64))
    elif damage == "labels":
        np.save(folder / "labels.npy", np.array([1, 0], dtype=np.int64))
    elif damage == "offsets":
        index = np.load(folder / "index.npy")
        index[1, 0] -= 3
        np.save(folder / "index.npy", index)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["index.npy"] = hashlib.sha256((folder / "index.npy").read_bytes()).hexdigest()
        (folder / "manifest.json").write_text(json.dumps(manifest))
    else:
        (folder / "manifest.json").unlink()
    with caplog.at_level(logging.WARNING):
        rebuilt = open_decoded(split, cache_dir=str(tmp_path))
    if damage != "no-manifest":
        assert "Rebuilding the decoded cache" in caplog.text
    assert rebuilt.labels.tolist() == [0, 1]
    assert all(np.array_equal(rebuilt.image(i), pictures[i]) for i in range(2))


def test_a_damaged_cache_is_refused_by_a_process_that_may_not_build(tmp_path: Path) -> None:
    split, _ = images_split([(8, 8)])
    folder = open_decoded(split, cache_dir=str(tmp_path)).folder
    (folder / "pixels.bin").write_bytes(b"")
    with pytest.raises(decoded_cache.VipriorsError, match="damaged"):
        open_decoded(split, cache_dir=str(tmp_path), build=False)


def test_a_build_killed_midway_leaves_no_cache_that_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    split, pictures = images_split([(8, 8)] * 4)

    def killed(*args: object) -> object:
        yield 0, torch.zeros(8, 8, 3, dtype=torch.uint8), 0
        raise KeyboardInterrupt

    monkeypatch.setattr(decoded_cache, "_decoded_rows", killed)
    with pytest.raises(KeyboardInterrupt):
        open_decoded(split, cache_dir=str(tmp_path))
    folder = cache_folder(content_key(split, decoded_cache.DEFAULT_MAX_SIDE), str(tmp_path))
    assert not folder.exists() and not list(folder.parent.iterdir())
    monkeypatch.undo()
    decoded = open_decoded(split, cache_dir=str(tmp_path))
    assert np.array_equal(decoded.image(3), pictures[3])


def test_gather_puts_each_image_in_the_corner_with_its_edges_repeated(tmp_path: Path) -> None:
    split, pictures = images_split([(4, 6), (5, 3)])
    decoded = open_decoded(split, cache_dir=str(tmp_path))
    canvas, sizes = decoded.gather(np.array([1, 0]))
    assert canvas.shape == (2, 6, 7, 3) and sizes.tolist() == [[5, 3], [4, 6]]
    for slot, row in enumerate((1, 0)):
        height, width = pictures[row].shape[:2]
        assert np.array_equal(canvas[slot, :height, :width].numpy(), pictures[row])
        assert np.array_equal(canvas[slot, height, :width].numpy(), pictures[row][-1])
        assert np.array_equal(canvas[slot, :height, width].numpy(), pictures[row][:, -1])


def test_a_decoded_split_pickles_without_its_source_or_its_memory_map(tmp_path: Path) -> None:
    import pickle

    split, _ = images_split([(4, 4)])
    decoded = open_decoded(split, cache_dir=str(tmp_path))
    decoded.pixels  # noqa: B018 - opens the memory map
    copy = pickle.loads(pickle.dumps(decoded))
    assert isinstance(copy, DecodedSplit) and copy.source is None
    assert np.array_equal(copy.image(0), decoded.image(0))
    assert json.loads((decoded.folder / "manifest.json").read_text())["images"] == 1
