"""The demo's figure: validation curves, the teacher's loss and the test accuracies of the arms."""

import json
from pathlib import Path

__all__ = ["plot_results", "read_metrics"]


def read_metrics(run: Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl``, in order."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def plot_results(output: Path, results: dict) -> Path:
    """Validation curves of the supervised arms, the teacher's loss and the test accuracies, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curves, losses, bars) = plt.subplots(1, 3, figsize=(16, 4.2))
    for arm in ("baseline", "baseline_equal_compute", "student"):
        records = [r for r in read_metrics(output / arm) if "val_top1" in r]
        curves.plot([r["epoch"] for r in records], [r["val_top1"] for r in records], label=arm.replace("_", " "))
    curves.set(title="held-out validation top-1 (%)", xlabel="epoch")
    curves.legend()
    records = [r for r in read_metrics(output / "teacher") if "loss" in r]
    losses.plot([r["epoch"] for r in records], [r["loss"] for r in records], color="tab:green")
    losses.set(title="teacher: margin contrastive loss", xlabel="epoch")
    names = {
        "baseline_top1": "baseline\n(student's\nepochs)",
        "baseline_equal_compute_top1": "baseline\n(equal\ncompute)",
        "teacher_knn_top1": "teacher\nkNN",
        "teacher_linear_top1": "teacher\nlinear",
        "student_top1": "student\n(distilled)",
    }
    colours = ["lightgrey", "dimgrey", "tab:green", "tab:olive", "tab:blue"]
    bars.bar(list(names.values()), [results[key] for key in names], color=colours)
    for index, key in enumerate(names):
        bars.text(index, results[key] + 0.5, f"{results[key]:.1f}", ha="center")
    bars.set(title="Fashion-MNIST test top-1 (%)", ylim=(0, 100))
    figure.tight_layout()
    path = output / "results.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
