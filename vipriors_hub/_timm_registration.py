"""Register the ``vipriors_*`` family with timm as soon as timm is there, without importing it.

``import vipriors_hub`` must make ``timm.create_model("vipriors_resnet50")`` work, yet importing timm
(and torchvision with it) would double the start-up of every ``vipriors-hub`` command, ``--help``
included. So: when timm is already imported, the family registers at once; otherwise a finder on
``sys.meta_path`` waits for timm's import and registers the family right after timm's own code ran
(a post-import hook; timm has no plugin entry points to do this for us).
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

__all__ = ["register_with_timm"]

_FAMILY = "vipriors_hub.models"


class _AfterTimmImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for ``timm`` it asks the other finders and wraps the loader they give,
    so that the family's module is imported once timm's has executed. It stays on ``sys.meta_path``
    until then: a mere look-up (``importlib.util.find_spec("timm")``, as transformers does) runs no
    loader and must not use the hook up."""

    def __init__(self) -> None:
        self._asking = False

    def find_spec(
        self, name: str, path: object, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "timm" or self._asking:
            return None
        self._asking = True
        try:
            spec = next(
                (
                    found
                    for finder in list(sys.meta_path)
                    if finder is not self and (found := _find(finder, name, path, target)) is not None
                ),
                None,
            )
        finally:
            self._asking = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            importlib.import_module(_FAMILY)

        spec.loader.exec_module = exec_module
        return spec


def _find(finder: object, name: str, path: object, target: ModuleType | None) -> importlib.machinery.ModuleSpec | None:
    """What another finder of ``sys.meta_path`` (editable installs have their own) finds for ``name``."""
    find_spec = getattr(finder, "find_spec", None)
    return find_spec(name, path, target) if find_spec is not None else None


def register_with_timm() -> None:
    """Register the family now if timm is imported, else as soon as it is."""
    if "timm" in sys.modules:
        importlib.import_module(_FAMILY)
    elif not any(isinstance(finder, _AfterTimmImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimmImport())
