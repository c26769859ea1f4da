"""Everything that needs a GPU, as one command that fits the few minutes a GPU is lent for.

    python -m kdlib.gpujob OUT [--data SOURCE] [--minutes 8] [--smoke] [--repository DIR]

Stages, in this order, each into OUT/STAGE and marked done (OUT/STAGE/.done) when finished, so
that running the same command again after a cut skips what is done and resumes what is not
(the series stages with `kdlib.series --resume`, which continues an interrupted training run
from its last epoch):

    bench      python -m kdlib.bench (the engine against the tutorial's pipeline), seeds
               together (--together 3): its seconds per epoch also size the stages below
    full       the `full` profile: the published teacher, every student method and
               control over 4 seeds, the sweeps
    reference  the `reference` profile: the reference notebook's models and protocol
    publish    into the repository: each finished stage's run folder as published/full-gpu-DATE/
               and reference-gpu-DATE/ (notebooks, records, results.csv, runs.csv), and a
               teacher a stage trained itself into weights/ when it beats the one there

Before it trains anything it prints each stage's estimated seconds (from the 2026-11-25 H100
run's per-run seconds, or from the bench of an earlier call of the same job) and, with
--minutes, runs only the stages that fit, most valuable first; once its bench has run, it
plans the rest again from the GPU at hand's own epoch times. A line per stage with its
seconds, and a summary, at the end. Without a GPU, a job brought back from the GPU machine
only publishes its finished stages (and names the ones left). OUT holds only what should
come back from the device (no student checkpoints): `tar -czf $OUT/job.tgz OUT` fits the
device's 16 MB a file.

--smoke runs every stage at smoke scale (synthetic data, one epoch): the test suite does, and
publishes into a temporary copy of the repository's layout (--repository). Without --smoke the
job refuses to start where torch sees no GPU and no stage has finished: on the CPU the profiles
take hours each, and run one at a time with `python -m kdlib.series --profile full` (or reference).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import series, stopping
from .files import write_text
from .methods import METHODS, teaches_here
from .profiles import PROFILES, at_smoke_scale, sweep_runs
from .series import STOPPED_EXIT

STAGES = ["bench", "full", "reference", "publish"]
REPOSITORY = Path(__file__).resolve().parent.parent
H100_RUNS = REPOSITORY / "published" / "full-h100-2026-11-25" / "runs.csv"


# The table's notebooks (01-07): what a GPU's few minutes are for; 08 and 09 are the CPU course's lessons.
NOTEBOOKS = series.NOTEBOOKS[:7]


def student_runs(stage: str, smoke: bool = False) -> int:
    """The student runs a stage's profile trains: every method of 02-07 (controls included) per
    seed, and 07's sweep runs; without the methods whose declared teacher does not exist for the
    stage's data and family (`kdlib.methods.teaches_here`: at smoke scale, synthetic data)."""
    params = at_smoke_scale(stage) if smoke else PROFILES[stage]
    methods = [m for m in METHODS if teaches_here(m, params["family"], "synthetic" if smoke else "cifar10")]
    return len(params["seeds"]) * len(methods) + sweep_runs(params)


def epochs(stage: str) -> tuple[int, int]:
    """The teacher's epochs (0: the profile takes a published teacher) and each student's."""
    params = PROFILES[stage]
    return (0 if params["teacher_weights"] else params["teacher_epochs"]), params["student_epochs"]


def estimate(stage: str, bench: dict | None, smoke: bool = False) -> float:
    """Seconds a stage should take here: from the bench's seconds per epoch when there are
    any (kdlib side, the teacher's row and the mean student row, per seed), else from the
    2026-11-25 H100 run's seconds per training run. An estimate, printed as such."""
    if smoke:
        return {"bench": 30, "full": 180, "reference": 180, "publish": 5}[stage]
    if stage == "publish":
        return 10.0
    if stage == "bench":
        return 150.0  # one epoch per workload on each side; the tutorial's side dominates
    teacher_epochs, student_epochs = epochs(stage)
    if bench:
        rows = bench["workloads"]
        teacher = rows["teacher CE"]["kdlib_s"]
        students = [v["kdlib_s"] + v["targets_s"] / student_epochs for k, v in rows.items() if k.startswith("student")]
        student = sum(students) / len(students)
    else:
        runs = list(csv.DictReader(open(H100_RUNS)))
        teacher = float(runs[0]["seconds"]) / float(runs[0]["epochs"])
        students = [float(r["seconds"]) / float(r["epochs"]) for r in runs[1:]]
        student = sum(students) / len(students)
    overhead = 60.0  # kernel starts, data decoding, figures
    return overhead + teacher_epochs * teacher + student_runs(stage) * student_epochs * student


def plan(minutes: float | None, bench: dict | None, done: set[str], smoke: bool) -> list[str]:
    """The stages to run now, in order: every stage not done whose estimate still fits."""
    chosen, left = [], (minutes * 60 if minutes is not None else float("inf"))
    for stage in STAGES:
        if stage in done:
            continue
        cost = estimate(stage, bench, smoke)
        fits = cost <= left or stage == "publish"
        print(f"  {stage:<10} estimate {cost:7.0f} s  {'runs' if fits else 'does not fit: skipped'}", flush=True)
        if fits:
            chosen.append(stage)
            left -= cost
    return chosen


def run_stage(stage: str, out: Path, args) -> None:
    folder = out / stage
    data = "synthetic" if args.smoke else args.data
    if stage == "bench":
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "kdlib.bench", "--data", data, "--together", "3",
                   "--json", str(folder / "bench.json")] + (["--subset", "256"] if args.smoke else [])
        with open(folder / "bench.md", "w") as log:
            subprocess.run(command, stdout=log, check=True)
    elif stage in ("full", "reference"):
        overrides = [("data", data)]
        if args.smoke:  # the stage's own profile at smoke scale, its shape kept (family, validation split)
            overrides = [(k, repr(v)) for k, v in at_smoke_scale(stage).items() if v != PROFILES[stage][k]]
        series.run(stage, folder, overrides, NOTEBOOKS, resume=folder.is_dir() and series.holds_run(folder))
        for checkpoint in (folder / "checkpoints").rglob("*.pt"):  # what comes back: the teacher only
            if checkpoint.name != "teacher.pt":
                checkpoint.unlink()
    elif stage == "publish":
        publish_stages(out, Path(args.repository), data)


def publish_stages(out: Path, repository: Path, data_source: str) -> None:
    """The finished stages into the repository: each run folder (executed notebooks, records,
    results.csv, runs.csv, figures) as published/STAGE-gpu-DATE/, and a teacher the stage trained
    itself into weights/ when it beats the one there. figures/ is the course's and stays as it is."""
    day = time.strftime("%Y-%m-%d")
    for stage in ("full", "reference"):
        folder = out / stage
        if not (folder / ".done").is_file():
            print(f"publish: {stage} did not finish; nothing of it is published")
            continue
        target = repository / "published" / f"{stage}-gpu-{day}"
        shutil.copytree(folder, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("checkpoints", ".partial", "progress.log", ".done"))
        print(f"publish: {stage} -> {target.relative_to(repository)}")
        if data_source != "synthetic":
            _publish_teacher_if_better(folder, stage, repository, data_source)


def _publish_teacher_if_better(run_dir: Path, stage: str, repository: Path, data_source: str) -> None:
    from . import data, published, results
    from .files import load_tensors
    record = [r for r in results.load(run_dir / "results") if r["method"] == "teacher"][-1]
    if record.get("published"):  # the run took a published teacher: nothing new to publish
        return
    family = record["config"].get("family", "tutorial")
    current = repository / "weights" / f"teacher-{family}.pt"
    old = load_tensors(current)["meta"]["accuracy"] if current.is_file() else 0.0
    if record["metrics"]["accuracy"] > old and record.get("n_test", 0) >= 10000:
        splits = data.load(data_source, normalization=PROFILES[stage]["normalization"],
                           n_val=record.get("n_val"))  # the statistics it was trained with
        published.write_teacher(run_dir / "checkpoints" / "teacher.pt", record, splits, current,
                                command=f"python -m kdlib.gpujob ({stage} stage)")
        print(f"publish: the {stage} run's teacher ({100 * record['metrics']['accuracy']:.2f}%) is now "
              f"weights/{current.name} (was {100 * old:.2f}%)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kdlib.gpujob", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", default="cifar10")
    parser.add_argument("--minutes", type=float, help="run only the stages whose estimates fit in this many minutes")
    parser.add_argument("--smoke", action="store_true", help="every stage at smoke scale (synthetic data)")
    parser.add_argument("--repository", type=Path, default=REPOSITORY, help="where publish writes")
    args = parser.parse_args(argv)
    # publish always runs again: what the stages finished since is to be published too
    done = {s for s in STAGES if s != "publish" and (args.out / s / ".done").is_file()}
    publish_only = False
    if not args.smoke:
        import torch
        if not torch.cuda.is_available() and not done & {"full", "reference"}:
            parser.error("no GPU here (torch.cuda.is_available() is False): this job is sized for a GPU's minutes. "
                         "On the CPU run the profiles one at a time, in the background: python -m kdlib.series "
                         "--profile full (or reference) -p data DATA; --smoke runs the job at smoke scale")
        # A job brought back from the GPU machine: here only its finished stages are published.
        publish_only = not torch.cuda.is_available()
    if args.minutes is not None and not args.minutes > 0:
        parser.error(f"--minutes {args.minutes:g}: give the minutes the job may take, a number > 0")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"{args.out} is a file: give a folder for the job (new, or the one of a job to continue)")
    if not args.smoke and args.data not in ("cifar10", "synthetic") and not Path(args.data).expanduser().exists():
        parser.error(f"--data {args.data}: no such file or folder (the JPEG copy's .tar.gz, an ImageFolder root, "
                     "or cifar10)")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started, spent = time.perf_counter(), {}
    bench_file = out / "bench" / "bench.json"
    print(f"kdlib.gpujob: {out}; done already: {sorted(done) or 'nothing'}"
          + ("" if publish_only else "; estimates (seconds):"), flush=True)
    try:
        with stopping.on_signal():
            if publish_only:
                left = [s for s in STAGES if s not in done and s != "publish"]
                print(f"  no GPU here: only publish runs (left for a GPU: {', '.join(left) or 'nothing'})", flush=True)
                _run_stage_timed("publish", out, args, spent)
            else:
                _run_stages(args, out, started, spent, done, bench_file)
    except (stopping.Stopped, SystemExit) as stop:
        if isinstance(stop, SystemExit) and stop.code != STOPPED_EXIT:
            raise
        running = next((s for s in STAGES if s not in spent and s not in done), "a stage")
        print(f"\nkdlib.gpujob: stopped while {running} ran; every process it started has ended. Finished stages "
              f"({', '.join(spent) or 'none'}) and the interrupted stage's finished training runs and last epoch are "
              f"kept in {out}. To continue: run the same command again:\n    "
              + " ".join(shlex.quote(a) for a in [sys.executable, "-m", "kdlib.gpujob", *sys.argv[1:]]),
              file=sys.stderr, flush=True)
        raise SystemExit(STOPPED_EXIT) from None
    summary = {s: (f"{spent[s]:.0f} s" if s in spent else "done earlier" if s in done else "not run")
               for s in STAGES}
    write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(f"kdlib.gpujob: {time.perf_counter() - started:.0f} s; " + ", ".join(f"{k}: {v}" for k, v in summary.items()))


def _run_stages(args, out: Path, started: float, spent: dict, done: set, bench_file: Path) -> None:
    def minutes_left() -> float | None:
        if args.minutes is None:
            return None
        # At smoke scale the budget counts the stages' estimates, not the clock: what runs
        # must not depend on how fast the machine running the tests is.
        used = sum(estimate(s, None, True) for s in spent) if args.smoke else time.perf_counter() - started
        return max(args.minutes * 60 - used, 0.0) / 60

    # A job run again after a cut plans with the bench it made on this GPU, not the H100's figures.
    bench = json.loads(bench_file.read_text()) if bench_file.is_file() else None
    stages = plan(args.minutes, bench, done, args.smoke)
    if stages[:1] == ["bench"]:
        _run_stage_timed("bench", out, args, spent)
        # Planned again with this GPU's own seconds an epoch: a stage the H100's figures left out
        # may fit now, and one they let in may not.
        print(f"estimates from this GPU's bench ({60 * minutes_left():.0f} s left):" if args.minutes is not None
              else "estimates from this GPU's bench:", flush=True)
        stages = plan(minutes_left(), json.loads(bench_file.read_text()), done | {"bench"}, args.smoke)
    for stage in stages:
        _run_stage_timed(stage, out, args, spent)


def _run_stage_timed(stage: str, out: Path, args, spent: dict) -> None:
    t0 = time.perf_counter()
    print(f"== {stage}", flush=True)
    run_stage(stage, out, args)
    spent[stage] = time.perf_counter() - t0
    write_text(out / stage / ".done", f"{spent[stage]:.0f} s\n")
    print(f"== {stage} done in {spent[stage]:.0f} s", flush=True)


if __name__ == "__main__":
    from .checks import command
    sys.exit(command("python -m kdlib.gpujob", main))
