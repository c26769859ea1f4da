"""Whether two run folders hold the same results: for every record (method, seed, settings) of
the second, whether its metrics equal the first's to the last digit.

    python scripts/compare_runs.py FIRST_RUN_DIR SECOND_RUN_DIR
    python scripts/compare_runs.py FIRST_RUN_DIR SECOND_RUN_DIR --paired

How a re-run at new code shows that the code changed nothing that a result reads (2026-12-01:
the course at 99e1a60 against 4c607ac, 93 of 93 records equal). With --paired, for a re-run that
is not meant to be equal (other code, precision or CPU): each method's test accuracy in the
second run minus the first, paired by the seeds both ran, with its 95% interval (uncorrected:
a replication check, one line per method), then how far a run moved over all runs in both
(the course on a 2-core AVX-512 AMD EPYC against the Intel Xeon, float32, 2026-12-02: 0 of 40
runs with the same test accuracy, |difference| median 0.18, max 0.55 points).
"""

import sys
from pathlib import Path

import pandas as pd

from kdlib import checks, results


def records(run_dir: Path) -> dict:
    """Every record under the run's results/ (08's patience and 07's sweeps included), by what it is."""
    found = [("results", results.of_run(run_dir)),  # a clear error where there are none
             *((p.name, results.load(p)) for p in sorted((run_dir / "results").iterdir()) if p.is_dir())]
    out = {}
    for folder, records_there in found:
        for record in records_there:
            c = record["config"]
            out[(folder, record["method"], record["seed"], c.get("temperature"), c.get("kd_weight"),
                 c.get("beta"))] = record
    return out


def main(first: str, second: str) -> None:
    a, b = records(Path(first)), records(Path(second))
    shared = [k for k in b if k in a]
    differ = [k for k in shared if a[k]["metrics"] != b[k]["metrics"]]
    for k in differ:
        print("differs:", k, [m for m in b[k]["metrics"] if a[k]["metrics"].get(m) != b[k]["metrics"][m]])
    print(f"{len(shared)} records in both: {len(shared) - len(differ)} with equal metrics, {len(differ)} differing; "
          f"{len(b) - len(shared)} only in {second}, {len(a) - len(shared)} only in {first}")


def paired(first: str, second: str) -> None:
    a, b = records(Path(first)), records(Path(second))
    rows = {}
    for key in (k for k in b if k in a and k[0] == "results"):  # the main runs, not sweeps or patience
        _, method, seed, *_ = key
        rows.setdefault(method, {})[seed] = 100 * (b[key]["metrics"]["accuracy"] - a[key]["metrics"]["accuracy"])
    print(f"test accuracy, {second} minus {first}, paired by seed (points; uncorrected 95% intervals):")
    rows.pop("teacher", None)  # one run, not a seed of a method
    for method, by_seed in rows.items():
        diff = results.interval(pd.Series(by_seed))
        interval = (f"[{diff['ci95_low']:+.2f}, {diff['ci95_high']:+.2f}]" if diff["n_pairs"] > 1 else "(one seed)")
        print(f"- {method}: {diff['mean_diff']:+.2f} {interval}, seeds {sorted(by_seed)}")
    every = pd.Series([d for by_seed in rows.values() for d in by_seed.values()])
    if len(every) > 1:  # how far one run moves (another CPU, precision or code): its size, not a test
        mean = results.interval(every)
        print(f"over all {len(every)} runs in both: {int((every == 0).sum())} with the same test accuracy; "
              f"|difference| median {every.abs().median():.2f}, max {every.abs().max():.2f} points; mean "
              f"{mean['mean_diff']:+.2f} [{mean['ci95_low']:+.2f}, {mean['ci95_high']:+.2f}] (runs taken as independent)")


if __name__ == "__main__":
    folders = [a for a in sys.argv[1:] if a != "--paired"]
    if len(folders) != 2:
        raise SystemExit(__doc__)
    checks.command("scripts/compare_runs.py", paired if "--paired" in sys.argv else main, *folders)
