"""Copy a finished series run into published/NAME: what a reader needs to check its numbers,
without the checkpoints (size) or anything of the machine's.

    python scripts/publish_run.py RUN_DIR published/NAME --title "..." --command "..." [--note "..."]

Copies the executed notebooks, results/ (one JSON record per run), figures/, results.csv,
runs.csv, table.md and notebooks.csv where the run has them, and writes README.md: the title,
the command and the note given (name the CPU there: records name only cores, threads and
precision), the seconds per epoch of
each method (the median over its runs' epochs: robust to a pause of the run, which the run's
own seconds are not), and every table of `scripts/course_tables.py`, computed from the records.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_tables import tables  # noqa: E402

from kdlib import checks, results  # noqa: E402

COPIED = ("results.csv", "runs.csv", "table.md", "notebooks.csv")


def epoch_seconds(records: list[dict]) -> str:
    """Per method: runs, the median seconds of an epoch, and where it ran (device, precision)."""
    lines = ["| method | runs | epochs | median seconds an epoch | device, precision |", "|---|---|---|---|---|"]
    by_method: dict[str, list[dict]] = {}
    for record in records:
        by_method.setdefault(record["method"], []).append(record)
    for method, runs in by_method.items():
        seconds = [h["seconds"] for r in runs for h in r.get("history", []) if "seconds" in h]
        if not seconds:
            continue
        places = sorted({f"{r['device']}, {r.get('precision', '?')}" for r in runs})
        lines.append(f"| {method} | {len(runs)} | {runs[0]['config']['epochs']} | {statistics.median(seconds):.1f} | "
                     f"{'; '.join(places)} |")
    return "\n".join(lines)


def publish(run_dir: Path, out: Path, title: str, command: str, note: str = "") -> Path:
    results.of_run(run_dir)  # a clear error where it holds no records, before anything is copied
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty: publish into a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(run_dir.glob("*.ipynb")):
        shutil.copy2(notebook, out)
    shutil.copytree(run_dir / "results", out / "results")
    if (run_dir / "figures").is_dir():
        shutil.copytree(run_dir / "figures", out / "figures")
    for name in COPIED:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out)
    records = results.load(run_dir / "results")
    text = [f"# {title}", "", f"What: `{command}`", ""]
    if note:
        text += [note, ""]
    text += ["## Seconds per epoch", "", epoch_seconds(records), "", tables(run_dir)]
    (out / "README.md").write_text("\n".join(text))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--title", required=True)
    parser.add_argument("--command", required=True, help="the command that made the run")
    parser.add_argument("--note", default="", help="what the reader must know: the CPU, pauses, code version")
    args = parser.parse_args(argv)
    print(f"published {publish(args.run_dir, args.out, args.title, args.command, args.note)}")


if __name__ == "__main__":
    checks.command("scripts/publish_run.py", main)
