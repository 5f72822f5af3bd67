"""The family as timm's registry holds it: one row per pretrained tag (what ``vipriors-hub models`` lists)."""

import timm

from .family import TIMM_EQUIVALENTS

__all__ = ["family_table"]


def family_table() -> list[dict[str, object]]:
    """One row per pretrained tag of the family: name, architecture, tag, default flag, classes,
    input size and Hub repo id."""
    rows = []
    for architecture in TIMM_EQUIVALENTS:
        default_tag = timm.models.get_pretrained_cfg(architecture).tag
        for name in timm.list_pretrained(f"{architecture}.*"):
            cfg = timm.models.get_pretrained_cfg(name)
            rows.append(
                {
                    "name": name,
                    "architecture": architecture,
                    "tag": cfg.tag,
                    "default": cfg.tag == default_tag,
                    "num_classes": cfg.num_classes,
                    "input_size": list(cfg.input_size),
                    "hf_hub_id": cfg.hf_hub_id,
                }
            )
    return rows
