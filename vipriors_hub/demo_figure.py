"""The demo's figure: validation curves, the teacher's loss and the test accuracies of the arms."""

from pathlib import Path

from .train.result import read_fit_result

__all__ = ["plot_results"]


def plot_results(output: Path, results: dict) -> Path:
    """Validation curves of the supervised arms and the teacher's loss (from each arm's
    ``result.json``) and the test accuracies of ``results``, in one PNG ``output/results.png``."""
    runs = {arm: read_fit_result(output / arm) for arm in ("baseline", "baseline_equal_compute", "student", "teacher")}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curves, losses, bars) = plt.subplots(1, 3, figsize=(16, 4.2))
    for arm in ("baseline", "baseline_equal_compute", "student"):
        epochs, top1 = zip(*runs[arm].curves["val_top1"], strict=True)
        curves.plot(epochs, top1, label=arm.replace("_", " "))
    curves.set(title="held-out validation top-1 (%)", xlabel="epoch")
    curves.legend()
    losses.plot(*zip(*runs["teacher"].curves["loss"], strict=True), color="tab:green")
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
