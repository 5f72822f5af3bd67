"""Start-up: ``import vipriors_hub`` registers the family with timm in either import order, and the
command line builds every subcommand's flags without importing the heavy libraries."""

import subprocess
import sys

import pytest

HEAVY = ("timm", "torchvision", "datasets", "accelerate", "huggingface_hub", "torch")


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


@pytest.mark.parametrize("imports", ["import vipriors_hub; import timm", "import timm; import vipriors_hub"])
def test_the_family_registers_with_timm_in_either_import_order(imports: str) -> None:
    code = (
        f"{imports}\nimport timm\nprint(sorted(timm.list_models('vipriors_*')) == sorted(vipriors_hub.ARCHITECTURES))"
    )
    assert run_python(code) == "True"


def test_importing_the_package_and_building_every_flag_loads_no_heavy_library() -> None:
    code = (
        "import sys, vipriors_hub, vipriors_hub.cli as cli\n"
        "cli.build_parser()\n"
        f"print([name for name in {HEAVY!r} if name in sys.modules])"
    )
    assert run_python(code) == "[]"
