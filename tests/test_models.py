"""The timm-registered family: registry, pretrained cfgs, loading routes and their errors."""

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models import save_for_hf

import vipriors_hub
from vipriors_hub.cli import main
from vipriors_hub.hub import pretrained_cfg_for
from vipriors_hub.models import ARCHITECTURES, HUB_ORGANIZATION, PAPER_ID
from vipriors_hub.models.family import constructor_takes
from vipriors_hub.train.moco import build_query_encoder

ALL_TAGS = [f"{arch}.{tag}" for arch in ARCHITECTURES for tag in ("student", "teacher")]


def randomised_state_dict(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The model's state dict with every floating tensor (BN statistics too) drawn at random."""
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.randn(value.shape, generator=generator) if value.is_floating_point() else value.clone()
        for key, value in model.state_dict().items()
    }


def assert_state_equal(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    actual = model.state_dict()
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


def test_registry_lists_every_architecture_with_a_student_and_a_teacher_tag() -> None:
    assert set(ARCHITECTURES) <= set(timm.list_models("vipriors_*"))
    assert {"vipriors_resnet18", "vipriors_resnet50", "vipriors_resnet101", "vipriors_resnext101_32x8d"} <= set(
        ARCHITECTURES
    )
    assert set(timm.list_pretrained("vipriors_*")) == set(ALL_TAGS)
    for arch in ARCHITECTURES:
        assert timm.models.get_pretrained_cfg(arch).tag == "student"


@pytest.mark.parametrize("name", ALL_TAGS)
def test_pretrained_cfg_describes_the_published_checkpoint(name: str) -> None:
    cfg = timm.models.get_pretrained_cfg(name)
    assert cfg.hf_hub_id == f"{HUB_ORGANIZATION}/{name}"
    assert cfg.mean and cfg.std and cfg.input_size and cfg.test_input_size and cfg.crop_pct
    assert cfg.license and cfg.paper_ids == PAPER_ID
    if cfg.tag == "teacher":
        assert cfg.num_classes == 0 and not cfg.label_names
    else:
        assert cfg.num_classes == 1000 and list(cfg.label_names) == sorted(cfg.label_names)
        assert len(set(cfg.label_names)) == 1000


@pytest.mark.parametrize("name", ALL_TAGS)
def test_pretrained_loads_bit_identical_weights_from_offline_cache(name: str, hf_cache, tmp_path: Path) -> None:
    expected = randomised_state_dict(timm.create_model(name), seed=1)
    weights = tmp_path / "model.safetensors"
    save_file(expected, weights)
    hf_cache(timm.models.get_pretrained_cfg(name).hf_hub_id, {"model.safetensors": weights})

    model = timm.create_model(name, pretrained=True)

    assert_state_equal(model, expected)
    assert model.num_classes == timm.models.get_pretrained_cfg(name).num_classes


def test_default_tag_is_the_student(hf_cache, tmp_path: Path) -> None:
    expected = randomised_state_dict(timm.create_model("vipriors_resnet_tiny.student"), seed=2)
    save_file(expected, tmp_path / "model.safetensors")
    hf_cache(f"{HUB_ORGANIZATION}/vipriors_resnet_tiny.student", {"model.safetensors": tmp_path / "model.safetensors"})

    assert_state_equal(timm.create_model("vipriors_resnet_tiny", pretrained=True), expected)


@pytest.mark.parametrize("name", ["vipriors_resnet50", "vipriors_resnet_tiny.teacher"])
def test_missing_weights_fail_with_one_clear_message_naming_the_repo(name: str, hf_cache) -> None:
    repo_id = timm.models.get_pretrained_cfg(name).hf_hub_id
    with pytest.raises(vipriors_hub.PretrainedWeightsUnavailableError) as raised:
        timm.create_model(name, pretrained=True)
    message = str(raised.value)
    assert repo_id in message
    assert "pretrained_cfg_overlay=dict(file=" in message and "vipriors-hub train-" in message


def test_pretrained_from_a_local_safetensors_file(tmp_path: Path) -> None:
    expected = randomised_state_dict(timm.create_model("vipriors_resnet18"), seed=3)
    save_file(expected, tmp_path / "weights.safetensors")

    model = timm.create_model(
        "vipriors_resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / "weights.safetensors"))
    )

    assert_state_equal(model, expected)


def test_missing_local_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(vipriors_hub.PretrainedWeightsUnavailableError, match="nowhere.safetensors"):
        timm.create_model("vipriors_resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(missing)))


def test_local_dir_and_hf_hub_routes_load_folders_written_by_save_for_hf(hf_cache, tmp_path: Path) -> None:
    source = timm.create_model("vipriors_resnet_tiny.teacher")
    expected = randomised_state_dict(source, seed=4)
    source.load_state_dict(expected)
    folder = tmp_path / "exported"
    save_for_hf(source, str(folder), safe_serialization=True)
    assert json.loads((folder / "config.json").read_text())["architecture"] == "vipriors_resnet_tiny"

    from_dir = timm.create_model(f"local-dir:{folder}", pretrained=True)
    hf_cache("someone/my-teacher", {p.name: p for p in folder.iterdir()})
    from_hub = timm.create_model("hf-hub:someone/my-teacher", pretrained=True)

    assert_state_equal(from_dir, expected)
    assert_state_equal(from_hub, expected)


def test_cli_models_lists_every_tag_with_its_repo_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    for name in ALL_TAGS:
        assert name in table and f"{HUB_ORGANIZATION}/{name}" in table

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows} == set(ALL_TAGS)
    assert {row["name"] for row in rows if row["default"]} == {f"{arch}.student" for arch in ARCHITECTURES}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_pool_size_follows_the_members_own_output_stride(name: str) -> None:
    model = timm.create_model(name, pretrained=False, num_classes=0)
    reduction = model.feature_info[-1]["reduction"]
    for tag in ("student", "teacher"):
        cfg = timm.models.get_pretrained_cfg(f"{name}.{tag}")
        assert cfg.pool_size == (cfg.input_size[-1] // reduction,) * 2
    assert pretrained_cfg_for(name, "teacher", 96)["pool_size"] == (96 // reduction,) * 2


def test_options_are_passed_only_to_constructors_that_take_them() -> None:
    assert constructor_takes("vipriors_resnet50", "zero_init_last")
    assert not constructor_takes("vipriors_resnet50", "no_such_option")
    assert not constructor_takes("resnet50", "zero_init_last")  # not a member: nothing assumed
    encoder = build_query_encoder("vipriors_resnet_tiny")
    last_norms = [block.bn2.weight for stage in ("layer1", "layer4") for block in encoder[0].get_submodule(stage)]
    assert all(bool((weight == 1).all()) for weight in last_norms)  # zero_init_last=False took effect
