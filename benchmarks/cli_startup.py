"""Start-up time of the command line: ``vipriors-hub --help`` and every ``vipriors-hub COMMAND --help``
against a bare ``python -c "import torch"`` on the same machine (the bar: at most 1.5x of it).

Each command is run ``--repeats`` times as a fresh process, alternating with the torch baseline so
that a change in the machine's load hits both alike; the median wall seconds are reported. Run it
on an idle machine.

    python benchmarks/cli_startup.py --json-out benchmarks/results/cli_startup-cpu-DATE.json
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (
    "",
    "models",
    "data-info",
    "train-teacher",
    "train-student",
    "eval-teacher",
    "evaluate",
    "demo",
    "export",
    "push",
    "convert",
)


def wall_seconds(command: list[str]) -> float:
    """Seconds one run of ``command`` takes, start to exit (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    """Time every ``--help`` beside the torch baseline and print the table (and the JSON file)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command (median reported)")
    parser.add_argument("--json-out", help="also write the results here")
    args = parser.parse_args()
    cli = shutil.which("vipriors-hub") or sys.exit("vipriors-hub is not on PATH: pip install -e . first.")
    baseline, helps = [], {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name in COMMANDS:
            baseline.append(wall_seconds([sys.executable, "-c", "import torch"]))
            helps[name].append(wall_seconds([cli, *([name] if name else []), "--help"]))
    torch_seconds = statistics.median(baseline)
    rows = {
        f"vipriors-hub {name} --help".replace("  ", " "): {
            "median_seconds": statistics.median(times),
            "ratio_to_import_torch": statistics.median(times) / torch_seconds,
        }
        for name, times in helps.items()
    }
    print(f"python -c 'import torch': {torch_seconds:.2f} s (median of {len(baseline)})")
    for command, row in rows.items():
        print(f"{command:<40} {row['median_seconds']:6.2f} s  {row['ratio_to_import_torch']:5.2f}x")
    if args.json_out:
        report = {
            "device": f"{os.cpu_count()} CPU cores ({platform.machine()}), Python {platform.python_version()}",
            "date": datetime.date.today().isoformat(),
            "command": "python benchmarks/cli_startup.py " + " ".join(sys.argv[1:]),
            "import_torch_seconds": torch_seconds,
            "help": rows,
        }
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
