"""Publish both phases of a reproduction to the Hugging Face Hub, each with its model card.

Log in first (`hf auth login`, or set HF_TOKEN); the token is never printed or written.

    python examples/push_to_hub.py --runs runs/vipriors --namespace my-org
"""

import argparse
from pathlib import Path

from vipriors_hub.hub import export_run, family_architecture, push_to_hub
from vipriors_hub.train.result import RESULT_FILE


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/vipriors", help="holds teacher/ and student/ training runs")
    parser.add_argument("--namespace", required=True, help="your user or organisation on the Hub")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)

    runs = Path(args.runs)
    architecture = family_architecture(runs / "teacher" / "final")
    teacher_repo = f"{args.namespace}/{architecture}.teacher"
    student_repo = f"{args.namespace}/{architecture}.student"
    urls = []
    for phase, repo_id, results in (
        ("teacher", teacher_repo, sorted((runs / "teacher").glob("eval*.json"))),
        ("student", student_repo, sorted(set((runs / "student").glob("*.json")) - {runs / "student" / RESULT_FILE})),
    ):
        # The card's numbers come from the evaluation files; a student's card points at its teacher.
        folder = export_run(runs / phase, runs / "export" / phase, results, repo_id, base_model=teacher_repo)
        urls.append(push_to_hub(folder, repo_id, private=args.private))
        print(f"{phase}: {urls[-1]}")
    return urls


if __name__ == "__main__":
    main()
