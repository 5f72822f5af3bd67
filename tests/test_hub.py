"""Export, model cards, loading through every route, push (recorded) and convert."""

import json
import os
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import ModelCard
from PIL import Image

from vipriors_hub.errors import VipriorsError
from vipriors_hub.hub import convert_checkpoint, export_run, push_to_hub
from vipriors_hub.models import ARCHITECTURES, TIMM_EQUIVALENTS


@pytest.fixture(scope="module")
def student_export(student_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from conftest import FASHION

    from vipriors_hub.evaluate import EvaluateConfig, evaluate_students

    folder = tmp_path_factory.mktemp("hub")
    scoring = EvaluateConfig(
        checkpoint=[str(student_run / "final")], split="val", output=str(folder / "results.json"), num_workers=0
    )
    results = evaluate_students(scoring, FASHION)
    return export_run(student_run, folder / "export", [folder / "results.json"]), results


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_member_has_an_identical_plain_timm_model(architecture: str) -> None:
    name, model_args = TIMM_EQUIVALENTS[architecture]
    ours, plain = timm.create_model(architecture, num_classes=3), timm.create_model(name, num_classes=3, **model_args)
    plain.load_state_dict(ours.state_dict())
    ours.eval()
    plain.eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(images), plain(images))


def test_exported_student_loads_identically_through_every_route(student_export, hf_cache, tmp_path: Path) -> None:
    from transformers import AutoModelForImageClassification, pipeline

    folder, _ = student_export
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "resnet18" and "num_classes" not in config.get("model_args", {})
    reference = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    hf_cache("someone/student", {p.name: p for p in folder.iterdir()})
    hf_cache("vipriors-hub/vipriors_resnet_tiny.student", {p.name: p for p in folder.iterdir()})
    by_hub = timm.create_model("hf-hub:someone/student", pretrained=True).eval()
    # The family's student tag is a 1000-class cfg: declare this checkpoint's 10 classes so timm keeps its head.
    by_family = timm.create_model(
        "vipriors_resnet_tiny", pretrained=True, num_classes=10, pretrained_cfg_overlay=dict(num_classes=10)
    ).eval()
    by_transformers = AutoModelForImageClassification.from_pretrained(folder).eval()

    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = reference(images)
        assert torch.allclose(by_hub(images), expected, atol=1e-5)
        assert torch.allclose(by_family(images), expected, atol=1e-5)
        assert torch.allclose(by_transformers(pixel_values=images).logits, expected, atol=1e-5)

    image = Image.frombytes("RGB", (40, 36), bytes(range(256)) * 16 + bytes(range(224)))
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=reference))
    with torch.no_grad():
        probabilities = reference(transform(image)[None]).softmax(dim=1)[0]
    predictions = pipeline("image-classification", model=str(folder))(image, top_k=10)
    names = config["label_names"]
    for prediction in predictions:
        assert prediction["score"] == pytest.approx(probabilities[names.index(prediction["label"])].item(), abs=1e-5)


def test_exported_teacher_loads_in_transformers(teacher_run: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    folder = export_run(teacher_run, tmp_path / "teacher")
    reference = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    model = AutoModel.from_pretrained(folder).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=images).pooler_output, reference(images), atol=1e-5)


def test_card_parses_and_its_numbers_are_the_evaluation_file(student_export) -> None:
    folder, results = student_export
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "timm" and card.data.license == "apache-2.0"
    assert card.data.base_model is None  # its teacher was a local folder: no Hub repository is guessed
    values = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert values == {"top1 (centre crop)": results["top1"], "top5 (centre crop)": results["top5"]}
    assert "arxiv:2008.00261" in card.data.tags
    assert "label_smoothing" in card.text and "vipriors_hub version" in card.text


class RecordingApi:
    """Stands in for HfApi: records what would be sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id: str, **kwargs) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def create_branch(self, repo_id: str, **kwargs) -> None:
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs) -> str:
        kwargs["files"] = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
        self.calls.append(("upload_folder", kwargs))
        return "https://huggingface.co/me/student/commit/abc"


def test_push_sends_the_exported_run(student_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api = RecordingApi()
    url = push_to_hub(student_run, "me/student", private=True, revision="v1", commit_message="first", api=api)
    assert url.endswith("/commit/abc")
    (_, repo), (_, branch), (_, upload) = api.calls
    assert repo == {"repo_id": "me/student", "repo_type": "model", "private": True, "exist_ok": True}
    assert branch["branch"] == "v1" and branch["repo_type"] == "model"
    assert upload["repo_id"] == "me/student" and upload["repo_type"] == "model" and upload["revision"] == "v1"
    assert upload["commit_message"] == "first"
    assert upload["files"] == ["README.md", "config.json", "model.safetensors"]


@pytest.mark.skipif(
    not (os.environ.get("HF_TOKEN") and os.environ.get("VIPRIORS_HUB_TEST_NAMESPACE")),
    reason="live Hub test: set HF_TOKEN and VIPRIORS_HUB_TEST_NAMESPACE (and unset HF_HUB_OFFLINE) to run it",
)
def test_live_push_round_trip(student_export, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    folder, _ = student_export
    repo_id = f"{os.environ['VIPRIORS_HUB_TEST_NAMESPACE']}/vipriors-hub-live-test"
    push_to_hub(folder, repo_id, private=True)
    assert timm.create_model(f"hf-hub:{repo_id}", pretrained=True).num_classes == 10


def moco_checkpoint(architecture: str) -> dict:
    """A checkpoint shaped like the original MoCo code's: module.encoder_q.* with an MLP head, a queue."""
    backbone = timm.create_model(architecture, num_classes=0)
    state = {
        f"module.encoder_q.{k}": torch.randn_like(v) if v.is_floating_point() else v
        for k, v in backbone.state_dict().items()
    }
    state.update({"module.encoder_q.fc.0.weight": torch.randn(8, 4), "module.encoder_q.fc.2.weight": torch.randn(2, 8)})
    state.update({f"module.encoder_k.{k}": v for k, v in backbone.state_dict().items()})
    state["module.queue"] = torch.randn(128, 16)
    return {"epoch": 800, "arch": "resnet50", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}


def test_convert_imports_a_moco_checkpoint(tmp_path: Path) -> None:
    checkpoint = moco_checkpoint("vipriors_resnet_tiny")
    torch.save(checkpoint, tmp_path / "checkpoint_0799.pth.tar")
    report = convert_checkpoint(tmp_path / "checkpoint_0799.pth.tar", "vipriors_resnet_tiny", tmp_path / "teacher")
    assert report["prefix"] == "module.encoder_q." and not report["missing"]
    model = timm.create_model(f"local-dir:{tmp_path / 'teacher'}", pretrained=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][f"module.encoder_q.{key}"])


def test_convert_reports_keys_that_do_not_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vipriors_hub.cli import main

    torch.save(moco_checkpoint("vipriors_resnet_tiny"), tmp_path / "tiny.pth.tar")
    args = [
        "convert",
        str(tmp_path / "tiny.pth.tar"),
        "--architecture",
        "vipriors_resnet18",
        "--output",
        str(tmp_path / "x"),
    ]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "does not fit vipriors_resnet18" in error and "missing keys" in error and not (tmp_path / "x").exists()


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch converted-code-ran",))


def test_convert_refuses_a_pickle_that_carries_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": {}, "payload": _Payload()}, tmp_path / "evil.pth.tar")
    with pytest.raises(VipriorsError, match="not a weights-only checkpoint"):
        convert_checkpoint(tmp_path / "evil.pth.tar", "vipriors_resnet_tiny", tmp_path / "out")
    assert not (tmp_path / "converted-code-ran").exists() and not (tmp_path / "out").exists()
