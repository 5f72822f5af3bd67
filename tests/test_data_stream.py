"""Iteration: rank shares, exact resume, unreadable images, transforms, data-info."""

import io
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
import timm
import torch
from accelerate import Accelerator
from conftest import FASHION_DIR
from PIL import Image

from vipriors_hub.cli import main
from vipriors_hub.data import (
    DataConfig,
    ExampleStream,
    ResumableLoader,
    describe,
    eval_transform,
    load_data,
    moco_v2_transform,
    student_train_transform,
)
from vipriors_hub.errors import VipriorsError
from vipriors_hub.evaluate import validation_scores

DATA_CONFIG = {"interpolation": "bilinear", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "crop_pct": 0.875}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def numbered_images(count: int) -> datasets.Dataset:
    """Solid gray images whose pixel value is their index, label = index % 3."""
    return datasets.Dataset.from_dict(
        {
            "image": [{"bytes": png(Image.new("L", (16, 16), i)), "path": None} for i in range(count)],
            "label": [i % 3 for i in range(count)],
        },
        features=datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")}),
    )


def labelled_by_position(images: list[dict]) -> datasets.Dataset:
    """A split of ``images`` (the Image schema) whose label is each image's position."""
    return datasets.Dataset.from_dict(
        {"image": images, "label": list(range(len(images)))},
        features=datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")}),
    )


def pixel_value(image: Image.Image) -> int:
    return image.getpixel((0, 0))[0]


def read_all(stream: ExampleStream, epoch: int = 0) -> list[int]:
    loader = ResumableLoader(stream)
    loader.set_epoch(epoch)
    return [int(v) for images, _ in loader for v in images]


@pytest.mark.parametrize("streaming", [False, True])
def test_two_ranks_get_disjoint_shares_that_cover_everything(streaming: bool) -> None:
    source = numbered_images(40)
    if streaming:
        source = source.to_iterable_dataset(num_shards=4)
    shares = [
        read_all(ExampleStream(source, pixel_value, shuffle=True, seed=3, rank=r, world_size=2, batch_size=4))
        for r in range(2)
    ]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == list(range(40))


def test_training_shares_are_even_and_reshuffled_every_epoch() -> None:
    streams = [ExampleStream(numbered_images(41), pixel_value, shuffle=True, rank=r, world_size=2) for r in range(2)]
    assert len(streams[0]) == len(streams[1]) == 20
    assert read_all(streams[0], epoch=1) != read_all(streams[0], epoch=0)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_restored_state_continues_at_the_next_batch(num_workers: int) -> None:
    source = numbered_images(30)
    transform = student_train_transform(8, DATA_CONFIG, auto_augment="original")

    def loader() -> ResumableLoader:
        stream = ExampleStream(source, transform, shuffle=True, seed=5, rank=1, world_size=2, batch_size=4)
        return ResumableLoader(stream, num_workers=num_workers)

    uninterrupted = loader()
    uninterrupted.set_epoch(2)
    reference = list(uninterrupted)

    interrupted = loader()
    interrupted.set_epoch(2)
    iterator = iter(interrupted)
    next(iterator)
    next(iterator)
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "batches_done": 2}

    resumed = loader()
    resumed.load_state_dict(state)
    rest = list(resumed)

    assert len(rest) == len(reference) - 2
    for (images, labels), (ref_images, ref_labels) in zip(rest, reference[2:], strict=True):
        assert torch.equal(images, ref_images) and torch.equal(labels, ref_labels)


def test_streaming_source_resumes_at_the_next_batch() -> None:
    source = numbered_images(24).to_iterable_dataset(num_shards=3)
    stream = ExampleStream(source, pixel_value, shuffle=True, seed=1, batch_size=4, shuffle_buffer=8)
    reference = read_all(stream)
    resumed = ResumableLoader(stream)
    resumed.load_state_dict({"epoch": 0, "batches_done": 3})
    assert [int(v) for images, _ in resumed for v in images] == reference[12:]


def test_unreadable_images_are_skipped_counted_and_odd_modes_converted(caplog: pytest.LogCaptureFixture) -> None:
    good = Image.new("RGB", (12, 12), (200, 10, 10))
    truncated = png(good)[:40]
    images = [
        png(good),
        truncated,
        b"not an image at all",
        png(Image.new("L", (12, 12), 9)),
        png(Image.new("P", (12, 12), 3)),
        png(Image.new("RGBA", (12, 12), (1, 2, 3, 4))),
    ]
    cmyk = io.BytesIO()
    Image.new("CMYK", (12, 12), (0, 255, 0, 0)).save(cmyk, format="JPEG")
    images.append(cmyk.getvalue())
    source = datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in images], "label": list(range(len(images)))},
        features=datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")}),
    )
    stream = ExampleStream(source, lambda image: (image.mode, image.size), shuffle=False)

    with caplog.at_level(logging.WARNING):
        seen = list(stream)

    assert [label for _, label in seen] == [0, 3, 4, 5, 6]
    assert all(mode_size == ("RGB", (12, 12)) for mode_size, _ in seen)
    assert stream.skipped_images == 2
    assert "Skipped 2 unreadable image(s)" in caplog.text


def test_empty_split_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="yielded no batch"):
        list(ResumableLoader(ExampleStream(numbered_images(0), pixel_value, shuffle=True)))


def test_evaluation_allows_a_rank_without_images() -> None:
    """Two processes scoring one image: rank 1 holds none and yields nothing instead of refusing."""
    shares = [ExampleStream(numbered_images(1), pixel_value, shuffle=False, rank=r, world_size=2) for r in (0, 1)]
    assert [len(list(ResumableLoader(share, allow_empty=True))) for share in shares] == [1, 0]
    with pytest.raises(VipriorsError, match="yielded no batch"):
        list(ResumableLoader(shares[1]))


def test_transforms_make_the_views_each_phase_needs() -> None:
    image = Image.frombytes("RGB", (40, 30), bytes(range(256)) * 14 + bytes(range(16)))
    torch.manual_seed(0)
    query, key = moco_v2_transform(24, DATA_CONFIG)(image)
    assert query.shape == key.shape == (3, 24, 24) and not torch.equal(query, key)
    assert student_train_transform(24, DATA_CONFIG, auto_augment=None)(image).shape == (3, 24, 24)
    first, second = eval_transform(24, DATA_CONFIG)(image), eval_transform(24, DATA_CONFIG)(image)
    assert first.shape == (3, 24, 24) and torch.equal(first, second)


def test_fashion_mnist_selection_is_seeded_and_balanced() -> None:
    def splits(seed: int) -> dict:
        config = DataConfig(dataset="fashion-mnist", data_dir=str(FASHION_DIR), per_class=20, seed=seed)
        return load_data(config).splits

    first, again, other = splits(0), splits(0), splits(1)
    assert first["train"]["id"] == again["train"]["id"] and first["val"]["id"] == again["val"]["id"]
    assert first["train"]["id"] != other["train"]["id"]
    assert sorted(first["train"]["label"]) == sorted(list(range(10)) * 16)
    assert sorted(first["val"]["label"]) == sorted(list(range(10)) * 4)
    assert not set(first["train"]["id"]) & set(first["val"]["id"])
    assert len(first["test"]) == 10_000


def test_data_info_reports_fashion_mnist_counts(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["data-info", "--dataset", "fashion-mnist", "--data-dir", str(FASHION_DIR)]
    args += ["--per-class", "50", "--seed", "0", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == 10
    assert report["splits"]["train"]["images"] + report["splits"]["val"]["images"] == 500
    assert report["splits"]["test"]["images"] == 10_000
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["sha256"] == report["splits"]["train"]["sha256"]


def test_data_info_on_an_imagefolder_counts_corrupt_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for split, count in (("train", 4), ("test", 2)):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"{i}.png")
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG broken")

    assert main(["data-info", "--dataset", "imagefolder", "--data-dir", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == 2 and report["skipped"] == 1
    assert report["splits"]["train"] == {**report["splits"]["train"], "images": 8, "skipped": 1}
    assert report["splits"]["test"]["images"] == 4


def test_data_errors_exit_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data-info", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_describe_matches_the_stream() -> None:
    data = load_data(DataConfig(dataset="fashion-mnist", data_dir=str(FASHION_DIR), per_class=5))
    report = describe(data)
    assert report["splits"]["train"]["images"] == len(
        list(ExampleStream(data.splits["train"], pixel_value, shuffle=False))
    )


def test_fused_tensor_conversion_equals_to_tensor_then_normalize() -> None:
    from torchvision import transforms

    from vipriors_hub.data.transforms import ToNormalizedTensor, eval_transform, moco_v2_transform

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pixels = np.random.default_rng(0).integers(0, 256, size=(37, 29, 3), dtype=np.uint8)
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])(Image.fromarray(pixels))
    fused = ToNormalizedTensor(mean, std)(Image.fromarray(pixels))
    assert fused.shape == reference.shape == (3, 37, 29) and fused.dtype == torch.float32
    assert torch.allclose(fused, reference, atol=1e-6)
    gray = ToNormalizedTensor((0.5,), (0.25,))(Image.fromarray(pixels[:, :, 0]))
    assert torch.allclose(
        gray, transforms.Normalize((0.5,), (0.25,))(transforms.ToTensor()(Image.fromarray(pixels[:, :, 0]))), atol=1e-6
    )
    config = {**DATA_CONFIG, "mean": mean, "std": std}
    for built in (eval_transform(16, config), moco_v2_transform(16, config).transform):
        names = [type(step).__name__ for step in built.transforms]
        assert "ToNormalizedTensor" in names and "Normalize" not in names and "MaybeToTensor" not in names


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_skipped_image_shortens_its_own_batch_only(num_workers: int) -> None:
    images = [{"bytes": png(Image.new("L", (8, 8), i)), "path": None} for i in range(12)]
    images[5] = {"bytes": b"not an image", "path": None}
    source = labelled_by_position(images)
    loader = ResumableLoader(ExampleStream(source, pixel_value, shuffle=False, batch_size=4), num_workers=num_workers)
    assert [labels.tolist() for _, labels in loader] == [[0, 1, 2, 3], [4, 6, 7], [8, 9, 10, 11]]
    resumed = ResumableLoader(ExampleStream(source, pixel_value, shuffle=False, batch_size=4), num_workers=num_workers)
    resumed.load_state_dict({"epoch": 0, "batches_done": 2})
    assert [labels.tolist() for _, labels in resumed] == [[8, 9, 10, 11]]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_batch_of_unreadable_images_still_counts_as_a_batch(num_workers: int) -> None:
    images = [{"bytes": png(Image.new("L", (8, 8), i)), "path": None} for i in range(9)]
    images[3:6] = [{"bytes": b"broken", "path": None}] * 3
    source = labelled_by_position(images)
    loader = ResumableLoader(ExampleStream(source, pixel_value, shuffle=False, batch_size=3), num_workers=num_workers)
    iterator = iter(loader)
    assert next(iterator)[1].tolist() == [0, 1, 2]
    assert next(iterator)[1].tolist() == [6, 7, 8]
    assert loader.state_dict() == {"epoch": 0, "batches_done": 3}, "the unreadable batch counts as done"


def test_validation_with_no_image_anywhere_is_a_clear_error() -> None:
    model = timm.create_model("vipriors_resnet_tiny", num_classes=3)
    with pytest.raises(VipriorsError, match="no readable image"):
        validation_scores(model, numbered_images(0), 16, 4, 0, Accelerator(cpu=True))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_training_batch_that_lost_an_image_is_topped_up_the_same_way_on_resume(num_workers: int) -> None:
    images = [{"bytes": png(Image.new("L", (8, 8), i)), "path": None} for i in range(12)]
    images[5] = {"bytes": b"not an image", "path": None}
    source = labelled_by_position(images)

    def loader(workers: int) -> ResumableLoader:
        stream = ExampleStream(source, pixel_value, shuffle=True, seed=3, batch_size=4)
        return ResumableLoader(stream, num_workers=workers, drop_last=True)

    batches = [labels.tolist() for _, labels in loader(num_workers)]
    assert [len(batch) for batch in batches] == [4, 4, 4], "every training batch is full"
    assert 5 not in sum(batches, []) and len(set(sum(batches, []))) == 11, "one readable image took the bomb's place"
    assert batches == [labels.tolist() for _, labels in loader(0)], "the same with any number of workers"
    resumed = loader(num_workers)
    resumed.load_state_dict({"epoch": 0, "batches_done": 1})
    assert [labels.tolist() for _, labels in resumed] == batches[1:]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_loader_counts_unreadable_images_of_every_worker(num_workers: int) -> None:
    images = [{"bytes": png(Image.new("L", (8, 8), i)), "path": None} for i in range(12)]
    for broken in (1, 6, 10):  # in batches 0, 1 and 2: read by both workers in turn
        images[broken] = {"bytes": b"not an image", "path": None}
    loader = ResumableLoader(
        ExampleStream(labelled_by_position(images), pixel_value, shuffle=False, batch_size=4), num_workers=num_workers
    )
    assert sum(len(labels) for _, labels in loader) == 9
    assert loader.skipped_images == 3


@pytest.mark.parametrize(
    "command",
    [
        ["train-teacher", "--architecture", "vipriors_resnet_tiny"],
        ["train-student", "--architecture", "vipriors_resnet_tiny"],
        ["evaluate", "--checkpoint", "student"],
        ["eval-teacher", "--checkpoint", "teacher"],
    ],
)
def test_a_streamed_source_is_refused_in_one_line_before_anything_is_written(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "images" / "cat"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    output = tmp_path / "out"
    args = [*command, "--dataset", "imagefolder", "--data-dir", str(tmp_path / "images"), "--streaming"]
    assert main([*args, "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert "--streaming" in error and "drop --streaming" in error and len(error.strip().splitlines()) == 1
    assert not output.exists()
