"""The README's main table: the reference's numbers beside this series' runs at the same scale,
each method as mean ± std over seeds and its difference to CE paired by seed, computed from
the runs' records (no number typed by hand).

    python scripts/main_table.py COLUMN=RUN_DIR [COLUMN=RUN_DIR ...]

e.g. `python scripts/main_table.py "full profile, CPU=published/full-cpu-2026-12-01"`. Each
RUN_DIR is a series run or a published copy of one (its `results/`). The reference's column
comes from `kdlib.results.REFERENCE` (one run each; its distillation rows used an untrained
teacher, so its "KD" number stands on the row of KD from an untrained teacher).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kdlib import checks, methods, report, results

ROWS = ["teacher", "ce", "kd", "kd_untrained", "grad_at", "act_at", "kd_grad_at", "ls", "kd_small_teacher",
        "cosine", "regressor"]


def column(run_dir: Path) -> dict[str, str]:
    """Per row: "mean ± std" and, for a method that is compared with CE (06's family), the paired
    difference with its interval and the Holm verdict over 06's family."""
    records = results.of_run(run_dir)
    table = results.table(records).set_index("method")
    pairs = report.comparisons(records).set_index(["method", "baseline"])
    untested = results.comparisons(records, [(m, "ce") for m in ROWS if m != "ce" and (m, "ce") not in pairs.index],
                                   correct=False)
    untested = untested.set_index(["method", "baseline"])
    cells = {}
    for name in ROWS:
        if name not in table.index:
            continue
        row = table.loc[name]
        text = f"{row['mean']:.2f}" + (f" ± {row['std']:.2f}" if row["n_seeds"] > 1 else "")
        for source, verdict in ((pairs, True), (untested, False)):
            if (name, "ce") in source.index and source.loc[(name, "ce"), "n_pairs"] > 1:
                d = source.loc[(name, "ce")]
                text += f"; {d['mean_diff']:+.2f} [{d['ci95_low']:+.2f}, {d['ci95_high']:+.2f}]"
                text += ((" holds after Holm" if d["holm"] else " (not after Holm)") if verdict
                         else " (uncorrected: outside 06's Holm family)")
                break
        cells[name] = text
    return cells


def main(argv: list[str]) -> None:
    if not argv or any("=" not in a for a in argv):
        raise SystemExit(__doc__)
    columns = {name: column(Path(path)) for name, path in (a.split("=", 1) for a in argv)}
    print("| method | reference (one run) | " + " | ".join(columns) + " |")
    print("|---" * (2 + len(columns)) + "|")
    for name in ROWS:
        if not any(name in c for c in columns.values()):
            continue
        ref = results.REFERENCE.get(name)
        ref_text = "" if ref is None else f"{ref:.2f}" + (" (untrained teacher)" if name in results.REFERENCE_UNTRAINED
                                                           else "")
        print(f"| {methods.label(name).replace(chr(10), ' ')} | {ref_text} | "
              + " | ".join(c.get(name, "") for c in columns.values()) + " |")


if __name__ == "__main__":
    checks.command("scripts/main_table.py", main, sys.argv[1:])
