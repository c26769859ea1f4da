"""The README's tables of a finished series run, as Markdown computed from its records, so that
no number in the README is typed by hand.

    python scripts/course_tables.py RUN_DIR      # figures/ for the published course run (its records: figures/results)

Prints: minutes per notebook (notebooks.csv), the comparison table (06), the paired
comparisons with Holm's correction (06's family), KD's gain split in two (03, 06), for a run of
the reference's own models each reference row reproduced or not (within mean ± 2 std), 08's family
and patience, and 09's teachers.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd

from kdlib import checks, methods, report, results


def _interval(row) -> str:
    return f"{row['mean_diff']:+.2f} [{row['ci95_low']:+.2f}, {row['ci95_high']:+.2f}]"


def _comparisons(table: pd.DataFrame) -> str:
    lines = ["| comparison | mean difference [95% interval] | p (paired t) | Holm-adjusted p | holds after Holm |",
             "|---|---|---|---|---|"]
    for _, row in table.iterrows():
        lines.append(f"| {row['method']} − {row['baseline']} | {_interval(row)} | {results.p_text(row['p_value'])} | "
                     f"{results.p_text(row['p_holm'])} | {'yes' if row['holm'] else 'no'} |")
    return "\n".join(lines)


def _accuracies(records: list[dict], lesson: str) -> str:
    table = results.table(records, lesson)
    fidelity = results.fidelity(records, lesson).set_index("method")
    lines = ["| method | seeds | test accuracy % (mean ± std) | agreement with its teacher % (train / test) | ECE |",
             "|---|---|---|---|---|"]
    for _, row in table.iterrows():
        if row["method"] in fidelity.index:
            agree = f"{fidelity.loc[row['method'], 'train agreement']:.1f} / {fidelity.loc[row['method'], 'test agreement']:.1f}"
        else:  # records made before the fidelity metric hold agreement on the test images only
            agree = "" if pd.isna(row.get("teacher_agreement")) else f"— / {row['teacher_agreement']:.1f}"
        spread = f" ± {row['std']:.2f}" if row["n_seeds"] > 1 else ""
        lines.append(f"| {row['method']} | {int(row['n_seeds'])} | {row['mean']:.2f}{spread} | {agree} | {row['ece']:.3f} |")
    return "\n".join(lines)


def main(run_dir: Path) -> None:
    print(tables(run_dir), end="")


def tables(run_dir: Path) -> str:
    """Every table of the run as Markdown (what `main` prints)."""
    import contextlib, io  # noqa: E401
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _print_tables(run_dir)
    return out.getvalue()


def _print_tables(run_dir: Path) -> None:
    records = results.of_run(run_dir)
    times = list(csv.DictReader((run_dir / "notebooks.csv").open())) if (run_dir / "notebooks.csv").is_file() else []
    if times:
        print("| notebook | minutes |\n|---|---|")
        for row in times:
            print(f"| {row['notebook']} | {int(row['seconds']) / 60:.1f} |")
        print(f"\n{times[0]['machine']}, {times[0]['precision']}, profile {times[0]['profile']}, {times[0]['date']}"
              f"{' (resumed)' if any(r['resumed'] == 'True' for r in times) else ''}\n")
    print("## 02-06\n")
    print(_accuracies(records, "methods") + "\n")
    print(_comparisons(report.comparisons(records)) + "\n")
    print(report.teacher_data(records) + "\n")
    print(report.one_seed_reading(report.one_seed(records)) + "\n")
    if any(r.get("config", {}).get("family") == "reference" for r in records):  # the reference's own models
        print("## Against the reference table (one run each)\n")
        print(report.against_reference(records) + "\n")
    if any(r["method"] in methods.lesson("consistency") for r in records):
        print("## 08\n")
        print(_accuracies(records, "consistency") + "\n")
        patience = results.load(run_dir / "results" / "patience") if (run_dir / "results" / "patience").is_dir() else []
        print(_comparisons(report.consistency_comparisons(records, patience)) + "\n")
        if patience:
            print(report.patience(records, patience, "kd_fresh", "ce_fresh") + "\n")
    if any(r["method"] in methods.lesson("teachers") for r in records):
        print("## 09\n")
        print(_accuracies(records, "teachers") + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    checks.command("scripts/course_tables.py", main, Path(sys.argv[1]))
