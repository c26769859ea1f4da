"""Run the whole notebook series in order with papermill, then print the comparison table.

    python -m kdlib.series [--profile course|full|smoke|tutorial|reference] [--out RUN_DIR] [-p NAME VALUE ...]
    python -m kdlib.series --resume RUN_DIR [--profile ...]   # finish an interrupted run

Profiles (kdlib.profiles; any parameter can be overridden with -p):
    course    the CPU course (default): the published teacher, students on 5,000 training
              images (5,000 more for validation), 60 epochs x 4 seeds, the controls, sweeps
              with 2 seeds (minutes per notebook: README, "The CPU course")
    full      the full scale: the published teacher, students 30 epochs on the 45,000 training
              images outside the validation split, 4 seeds (hours on a 2-core CPU; README)
    smoke     seconds: synthetic data, one short epoch, for CI
    tutorial  the official tutorial's recipe: Adam 1e-3, 10 epochs, no augmentation, T=2
    reference the reference notebook's models and protocol: Adam 1e-3, 10 epochs, no
              augmentation, ImageNet normalization, T=3, KD weight 0.25, seeds 42-44

Executed notebooks, records, checkpoints and figures go into RUN_DIR (never over the
sources); the table goes to RUN_DIR/results.csv and RUN_DIR/table.md, every training run
with its seconds to RUN_DIR/runs.csv. Every parameter is
checked before anything runs. RUN_DIR must be new, empty or hold a kdlib run; a notebook's
executed copy and figures replace the earlier ones only once it has run to the end, so a
failed or interrupted run leaves the earlier run's files as they were.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import stopping
from .files import same_file, write_text
from .profiles import PROFILES

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
REPOSITORY = NOTEBOOK_DIR.parent
MARKER = ".kdlib-run"    # written into a run folder when a run starts
STAGING = ".partial"     # a notebook's outputs until it has run to the end
LOCK = ".lock"           # held while a process runs the series in the folder (kdlib.stopping)
RUNNING = ".running"     # the notebook being run
STOPPED_EXIT = 130       # the exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells use)
NOTEBOOKS = ["01_teacher.ipynb", "02_student_baseline.ipynb", "03_kd_logits.ipynb",
             "04_grad_attention.ipynb", "05_squared_attention.ipynb", "06_combined.ipynb",
             "07_sweeps.ipynb", "08_consistent_teaching.ipynb", "09_which_teacher.ipynb"]

def parse_value(text: str):
    """-p values: Python literals (numbers, lists, None, True) or else plain strings."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parameters(profile: str, overrides: list[tuple[str, str]], run_dir: Path) -> dict:
    # progress bars off: a series run prints one line per epoch instead (see _EpochLines)
    params = dict(PROFILES[profile], profile=profile, progress=False)
    unknown = [name for name, _ in overrides if name not in params]
    if unknown:
        import difflib
        near = {name: difflib.get_close_matches(name, params, n=3, cutoff=0.6) for name in unknown}
        hints = "; ".join(f"{name}: did you mean {' or '.join(close)}?" for name, close in near.items() if close)
        raise SystemExit(f"kdlib.series: unknown parameter(s) {unknown}{f' ({hints})' if hints else ''}. "
                         f"Known: {sorted(params)}.")
    given = {name: parse_value(value) for name, value in overrides}
    params.update(given)
    # Paths as the user typed them, from where they typed them; a profile's own paths are
    # relative to notebooks/, where the notebooks run.
    if params["data"] not in ("cifar10", "synthetic"):
        params["data"] = str(Path(params["data"]).expanduser().resolve())
    if isinstance(params["teacher_weights"], str):
        typed = Path(params["teacher_weights"]).expanduser()
        params["teacher_weights"] = str((typed if "teacher_weights" in given else NOTEBOOK_DIR / typed).resolve())
    params.update(results_dir=str(run_dir / "results"), checkpoint_dir=str(run_dir / "checkpoints"),
                  figures_dir=str(run_dir / "figures"))
    return params


def declared(notebook: str, params: dict) -> dict:
    """The parameters a notebook declares in its parameters cell (papermill warns about others)."""
    import papermill
    names = papermill.inspect_notebook(NOTEBOOK_DIR / notebook)
    return {k: v for k, v in params.items() if k in names}


def preflight(params: dict) -> None:
    """Check every parameter, the device and the data before any notebook runs: each fails at
    once with what is wrong and how to fix it. Loading the data also leaves it cached for
    the notebooks."""
    from .checks import ParameterError, check, check_device
    from .data import DataError, load
    try:
        check(params, where="-p values and profile")
        check_device(params["device"])
    except ParameterError as error:
        raise SystemExit(f"kdlib.series: {error}\nNothing was run. Fix the value with -p NAME VALUE "
                         "(VALUE as a Python literal: 3, 0.5, [0, 1], None, True).")
    if params["teacher_weights"] is not None and not Path(params["teacher_weights"]).is_file():
        raise SystemExit(f"kdlib.series: teacher_weights {params['teacher_weights']}: no such file. Give a "
                         "published teacher (weights/teacher-tutorial.pt), or -p teacher_weights None to train "
                         "one in 01. Nothing was run.")
    try:
        splits = load(params["data"], n_train=params["n_train"], n_val=params["n_val"], n_test=params["n_test"],
                      normalization=params["normalization"])
    except DataError as error:
        raise SystemExit(f"kdlib.series: the data source {params['data']!r} cannot be used.\n{error}")
    print(f"data: {splits}")
    busy = busy_cpu()
    if busy:
        print(f"kdlib.series: warning: {busy}", flush=True)
    from .cpubench import isa_cap
    if isa_cap() and params.get("amp", "auto") == "auto":
        print(f"kdlib.series: warning: {isa_cap()} holds this CPU at AVX2, but amp \"auto\" reads /proc/cpuinfo and "
              "may choose bf16, emulated under the cap and many times slower: add -p amp '\"off\"'.", flush=True)
    if params["teacher_weights"] is not None:
        from .checkpoints import CheckpointError
        from .published import load as load_published
        try:
            load_published(params["teacher_weights"], splits, params["family"])
        except CheckpointError as error:
            raise SystemExit(f"kdlib.series: teacher_weights cannot be used.\n{error}\n(On the command line: "
                             "-p teacher_weights None, or -p teacher_weights PATH.) Nothing was run.")


def busy_cpu() -> str:
    """A warning when other processes already keep the CPU busy (load average over the last
    minute), else "": two heavy processes on the same cores slow each other several times over
    (measured: up to ninefold on 2 cores), not twofold."""
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except OSError:
        return ""
    if load < 0.5 * cores:
        return ""
    return (f"the CPU is already busy (load {load:.1f} on {cores} cores). Another heavy process beside this run slows "
            "both several times over (up to ninefold measured on 2 cores): wait for it, or stop it, for the times "
            "this series states.")


def holds_run(folder: Path) -> bool:
    """Whether a folder holds a kdlib run: its marker, or records of one (runs made before
    the marker existed)."""
    return (folder / MARKER).is_file() or any((folder / "results").glob("*.json"))


def check_run_dir(run_dir: Path, resume: bool, profile: str | None = None, overrides=()) -> None:
    """A run folder is new, empty, or holds a kdlib run, and is never part of the sources; a
    resumed run keeps the profile it was started with (its notebooks would be replaced by
    another profile's), and is told which of its -p values differ from its last start's."""
    sources = [REPOSITORY / name for name in ("notebooks", "figures", "published", "kdlib", "tests", "weights",
                                               "scripts", "docs", ".git", ".ci")]
    if run_dir == REPOSITORY or any(run_dir == folder or folder in run_dir.parents for folder in sources):
        raise SystemExit(f"kdlib.series: {run_dir} is part of the repository's sources; a run would "
                         "write over them. Choose a run folder elsewhere (default: runs/PROFILE-TIME).")
    if run_dir.exists() and not run_dir.is_dir():
        raise SystemExit(f"kdlib.series: {run_dir} is a file, not a run folder.")
    empty = not run_dir.exists() or not any(run_dir.iterdir())
    if resume:
        if not run_dir.is_dir():
            raise SystemExit(f"kdlib.series: --resume {run_dir}: no such run folder.")
        if not holds_run(run_dir):
            raise SystemExit(f"kdlib.series: --resume {run_dir}: "
                             + ("the folder is empty: there is nothing to reuse. Start the run "
                                "with --out instead." if empty else
                                "it holds no kdlib run (no records, no .kdlib-run marker). Give "
                                "the folder of an earlier run, or start one with --out."))
        _same_start(run_dir, profile, overrides)
        if not any((run_dir / "results").glob("*.json")):
            print(f"--resume {run_dir}: no finished run to reuse there yet; an interrupted one continues "
                  "from its last finished epoch, the others are trained.")
    elif not empty and not holds_run(run_dir):
        raise SystemExit(f"kdlib.series: --out {run_dir} already holds other files and no kdlib run. "
                         "Choose a new or empty folder.")


def _same_start(run_dir: Path, profile: str | None, overrides) -> None:
    """Refuse to resume a run under another profile than its marker's; say which -p values
    differ from its last start (runs made with other values are trained again, not reused)."""
    marker = run_dir / MARKER
    if profile is None or not marker.is_file():
        return
    started = json.loads(marker.read_text())
    if started.get("profile") not in (None, profile):
        options = _as_options(started.get("overrides", []))
        raise SystemExit(f"kdlib.series: --resume {run_dir}: this run was started with --profile "
                         f"{started['profile']}, not {profile}; resuming it as {profile} would replace its "
                         f"notebooks. Add --profile {started['profile']}"
                         + (f" (and the -p values it started with: {options})" if options else "") + ". Nothing was run.")
    before = [(name, value) for name, value in started.get("overrides", []) if name != "reuse"]
    now = [(name, value) for name, value in overrides if name != "reuse"]
    # compared as the run reads them ([0,1] is [0, 1]; paths resolved from here, as `parameters` does)
    if parameters(profile, before, run_dir) != parameters(profile, now, run_dir):
        print(f"kdlib.series: warning: --resume {run_dir} with other -p values than its last start "
              f"({_as_options(before) or 'none'}; now {_as_options(now) or 'none'}): a run "
              "whose settings differ is trained again, not reused.", flush=True)


def _as_options(overrides) -> str:
    return " ".join(f"-p {name} {shlex.quote(str(value))}" for name, value in overrides if name != "reuse")


def run(profile: str = "course", out: Path | None = None, overrides=(), notebooks=None,
        resume: bool = False) -> Path:
    started = time.perf_counter()
    run_dir = (out or Path("runs") / f"{profile}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    overrides = list(overrides) + ([("reuse", "True")] if resume else [])
    params = parameters(profile, overrides, run_dir)
    check_run_dir(run_dir, resume, profile, overrides)
    try:
        preflight(params)
    except KeyboardInterrupt:  # Ctrl-C while the data is decoded, before any notebook: nothing to keep
        print("\nkdlib.series: stopped while the settings and data were checked, before any notebook ran; "
              "nothing was written to the run folder. Run the same command again.", file=sys.stderr, flush=True)
        raise SystemExit(STOPPED_EXIT) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with stopping.exclusive(run_dir / LOCK, f"The run folder {run_dir}"), stopping.on_signal():
            _run_notebooks(profile, run_dir, params, overrides, notebooks or NOTEBOOKS)
    except stopping.Busy as error:
        raise SystemExit(f"kdlib.series: {error}")
    except stopping.Stopped as stop:
        print(_stopped(stop, profile, run_dir, overrides, notebooks), file=sys.stderr, flush=True)
        raise SystemExit(STOPPED_EXIT) from None
    print(f"\nseries ({profile}) done in {time.perf_counter() - started:.0f} s; outputs in {run_dir}")
    print_table(run_dir)
    return run_dir


def _run_notebooks(profile: str, run_dir: Path, params: dict, overrides, notebooks) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    write_text(run_dir / MARKER, json.dumps({"profile": profile, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                             "overrides": [list(o) for o in overrides]}) + "\n")
    stage = run_dir / STAGING
    progress = _EpochLines(run_dir / "progress.log")
    try:
        for name in notebooks:
            shutil.rmtree(stage, ignore_errors=True)
            stage.mkdir()
            staged = stage / name
            write_text(run_dir / RUNNING, name + "\n")
            print(f"\n== {name} -> {run_dir / name}", flush=True)
            t0 = time.perf_counter()
            try:
                papermill.execute_notebook(
                    NOTEBOOK_DIR / name, staged,
                    parameters=declared(name, {**params, "figures_dir": str(stage / "figures")}),
                    cwd=str(NOTEBOOK_DIR), kernel_name="python3", progress_bar=False, log_output=False)
            except PapermillExecutionError as error:
                failed = run_dir / "failed" / name
                failed.parent.mkdir(exist_ok=True)
                os.replace(staged, failed)
                raise SystemExit(f"kdlib.series: {name} failed in cell {error.exec_count} "
                                 f"({error.ename}: {error.evalue}).\nThe executed notebook, with the "
                                 f"traceback, is {failed}. Later notebooks were not run; the run "
                                 f"folder's earlier notebooks and figures are as they were.")
            _move_into(stage, run_dir)
            seconds = time.perf_counter() - t0
            _note_time(run_dir, name, seconds, params)
            print(f"   {name} done in {seconds:.0f} s", flush=True)
        (run_dir / RUNNING).unlink(missing_ok=True)
    finally:
        progress.stop()
        shutil.rmtree(stage, ignore_errors=True)  # a failed notebook's figures never replace good ones


def _stopped(stop: stopping.Stopped, profile: str, run_dir: Path, overrides, notebooks) -> str:
    """The paragraph an interrupted series ends with: what ran, what is kept, how to go on."""
    running = (run_dir / RUNNING).read_text().strip() if (run_dir / RUNNING).is_file() else "a notebook"
    log = run_dir / "progress.log"
    lines = log.read_text().splitlines() if log.is_file() else []
    last = f"; its last finished epoch: {lines[-1].split('  loss')[0]}" if lines else ""
    given = [(k, v) for k, v in overrides if k != "reuse"]
    rest = [] if notebooks is None else notebooks[notebooks.index(running):] if running in notebooks else notebooks
    command = " ".join(["python -m kdlib.series", "--profile", profile, "--resume", shlex.quote(str(run_dir)),
                        *(f"-p {k} {shlex.quote(str(v))}" for k, v in given),
                        *(["--notebooks", *rest] if rest else [])])
    return (f"\nkdlib.series: stopped by {stop} while {running} ran{last}. Every process it started has ended. "
            f"Kept in {run_dir}: every notebook that finished, every training run that finished (record and "
            "checkpoint), and each interrupted run's last finished epoch (its epoch state). To continue where it "
            f"stopped:\n    {command}")


class _EpochLines:
    """Prints, as they come, the lines the training engine writes after each epoch (run,
    epoch/total, loss, accuracy, seconds per epoch, time left) into RUN_DIR/progress.log:
    the kernels papermill starts inherit KDLIB_PROGRESS_FILE, and papermill itself shows only
    which cell runs."""

    def __init__(self, path: Path):
        import threading
        self.path, self.done = path, threading.Event()
        self.offset = path.stat().st_size if path.is_file() else 0  # a resumed run's old lines
        os.environ["KDLIB_PROGRESS_FILE"] = str(path)
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        while not self.done.wait(1.0):
            self._print_new()
        self._print_new()

    def _print_new(self) -> None:
        if self.path.is_file():
            with open(self.path) as log:
                log.seek(self.offset)
                text = log.read()
                self.offset = log.tell()
            if text:
                print(text, end="", flush=True)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        os.environ.pop("KDLIB_PROGRESS_FILE", None)


def _repository_copy(path: Path) -> Path:
    """The repository's own file where `path` is a byte-identical copy of it at the same place in
    another checkout (a frozen worktree a long run was made from, e.g. its weights/): a reader has
    the repository's, not the worktree's. Otherwise `path` itself."""
    for parent in path.parents:
        mine = REPOSITORY / path.relative_to(parent)
        if mine.is_file() and same_file(mine, path):
            return mine
    return path


def provenance_cell(injected: str, run_dir: Path) -> str:
    """Papermill's injected cell as the repository keeps it: the values the published run used,
    with local paths made relative to notebooks/ (where they are read from) and the run
    folder's own paths left out (a reader's run writes to its own), under a line saying so."""
    marker = json.loads((run_dir / MARKER).read_text()) if (run_dir / MARKER).is_file() else {}
    lines = [f"# The parameters of the run these outputs come from (python -m kdlib.series --profile "
             f"{marker.get('profile', '?')}). Running this cell runs that setting; skip it to run the cell above's."]
    for line in injected.splitlines():
        name = line.split("=", 1)[0].strip()
        if not line.strip() or line.startswith("#") or name in ("results_dir", "checkpoint_dir", "figures_dir"):
            continue
        value = line.split("=", 1)[1].strip()
        try:
            literal = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            literal = None
        if isinstance(literal, str) and os.path.isabs(literal):
            value = repr(os.path.relpath(_repository_copy(Path(literal)), NOTEBOOK_DIR)).replace("'", '"')
        if name == "progress":  # display only: a series prints a line an epoch; a reader's "Run all" wants the bars
            value = "True  # progress bars (the series run printed one line an epoch instead)"
        if name == "amp" and literal == "off":  # reproduces the run, but a reader with native bf16 may want speed
            value += ('  # float32, as this run; "auto" uses bf16 where it was measured faster (a CPU with '
                      'native bf16, a GPU): quicker, and the numbers move a little')
        lines.append(f"{name} = {value}")
        if name == "data" and isinstance(literal, str) and os.path.isabs(literal):
            # A run's own copy of the images lies beside its checkout, not in a reader's (Colab's
            # "Run all" reaches this cell): there the same setting runs on torchvision's download.
            lines += ["import os",
                      "if not os.path.exists(data):  # not beside this checkout: torchvision's CIFAR-10 (these "
                      "outputs' numbers then move a little)",
                      '    data = "cifar10"']
    return "\n".join(lines)


def _move_into(stage: Path, run_dir: Path) -> None:
    """A finished notebook's outputs (the executed notebook, its figures) into the run folder."""
    for path in sorted(stage.rglob("*")):
        if path.is_file():
            target = run_dir / path.relative_to(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def print_table(run_dir: Path) -> None:
    """The comparison table (results.csv, table.md, printed) and the list of every training
    run with its seconds (runs.csv: the sweeps' and 08's longer schedule included)."""
    from . import results
    folder = run_dir / "results"
    records = results.load(folder)
    table = results.table(records)
    results.write_csv(table, run_dir / "results.csv")
    others = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []  # sweeps/, patience/
    every_run = results.runs(records + [r for sub in others for r in results.load(sub)])
    write_text(run_dir / "runs.csv", every_run.to_csv(index=False))
    print(f"{len(every_run)} training runs, {every_run['seconds'].sum():.0f} s of training in all (runs.csv)")
    markdown = results.format_table(table)
    write_text(run_dir / "table.md", markdown + "\n")
    print(markdown)


TIMES = "notebooks.csv"  # each notebook's wall time in a run: what the notebooks' introductions state


def _note_time(run_dir: Path, name: str, seconds: float, params: dict) -> None:
    """One row of RUN_DIR/notebooks.csv: the notebook, its seconds, where it ran, and whether the
    run was resumed (then its seconds leave out what an earlier sitting trained)."""
    from .config import precision, resolve_device
    from .cpubench import machine as cpu_machine
    import torch
    device = resolve_device(params.get("device", "auto"))
    arithmetic = precision(device, params.get("amp", "auto"))
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_machine()
    path = run_dir / TIMES
    rows = list(csv.DictReader(path.open())) if path.is_file() else []
    rows = [r for r in rows if r["notebook"] != name] + [{
        "notebook": name, "seconds": f"{seconds:.0f}", "machine": machine, "precision": arithmetic,
        "profile": params["profile"],
        "date": time.strftime("%Y-%m-%d"), "resumed": str(bool(params.get("reuse")))}]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["notebook"]))
    write_text(path, text.getvalue())


TIME_PARAGRAPH = re.compile(r"\*\*Time\.\*\*[^\n]*(\n(?!\n)[^\n]*)*")


def time_paragraph(row: dict) -> str:
    """A notebook introduction's "**Time.**" paragraph, from its row of notebooks.csv."""
    minutes = int(row["seconds"]) / 60
    resumed = " (a resumed run: earlier sittings' training not counted)" if row["resumed"] == "True" else ""
    shown = f"{minutes:.1f}" if minutes < 10 else f"{minutes:.0f}"
    return (f"**Time.** {shown} minutes in the run these outputs come from "
            f"({row['machine']}, {row['precision']}, profile `{row['profile']}`, {row['date']}){resumed}, taking the "
            "runs of the notebooks "
            "before it from the run folder; run alone, it also trains the runs it compares against.")


def copy_to_repository(run_dir: Path) -> None:
    """Make a finished run the repository's showcase: its executed notebooks replace the
    sources (outputs kept; papermill's injected-parameters cell kept too, as `provenance_cell`
    writes it: the values that ran, after the parameters cell a reader edits; each introduction's
    "**Time.**" paragraph states what the notebook took in this run, from notebooks.csv) and its
    figures, results.csv, runs.csv, notebooks.csv and records (results/) go into figures/, replacing
    the last run's (`python scripts/course_tables.py figures` recomputes the README's course tables); the README's screenshot of
    06 is retaken where Chromium is installed (scripts/screenshot.py)."""
    import nbformat

    present = [name for name in NOTEBOOKS if (run_dir / name).is_file()]
    if not present:
        raise SystemExit(f"kdlib.series: --publish {run_dir}: no executed notebook there.")
    for name in sorted(set(NOTEBOOKS) - set(present)):
        print(f"{name}: not in {run_dir}; the repository keeps its own copy")
    times = {r["notebook"]: r for r in csv.DictReader((run_dir / TIMES).open())} if (run_dir / TIMES).is_file() else {}
    for name in present:
        nb = nbformat.read(run_dir / name, as_version=4)
        if name in times:  # the introduction states what this run took
            nb.cells[0].source = TIME_PARAGRAPH.sub(lambda _: time_paragraph(times[name]), nb.cells[0].source)
        for cell in nb.cells:
            if "injected-parameters" in cell.metadata.get("tags", []):
                cell.source = provenance_cell(cell.source, run_dir)
        for cell in nb.cells:
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        nb.metadata.pop("papermill", None)
        nbformat.write(nb, NOTEBOOK_DIR / name)
    figures = NOTEBOOK_DIR.parent / "figures"
    figures.mkdir(exist_ok=True)
    for path in [*(run_dir / "figures").glob("*.png"), run_dir / "results.csv", run_dir / "runs.csv", run_dir / TIMES]:
        if path.is_file():
            shutil.copy2(path, figures / path.name)
    if (run_dir / "results").is_dir():  # the records, so that the README's tables are recomputed from the repository
        staged = figures / ".results.partial"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(run_dir / "results", staged)
        shutil.rmtree(figures / "results", ignore_errors=True)
        staged.rename(figures / "results")
    print(f"published {run_dir} into {NOTEBOOK_DIR} and {figures}")
    if "06_combined.ipynb" not in present:
        return
    sys.path.insert(0, str(REPOSITORY / "scripts"))
    import screenshot  # the README's picture of 06, retaken from what was just published
    if screenshot.browser():
        try:
            screenshot.photograph("06_combined.ipynb", figures / "screenshot_06_jupyterlab.png", NOTEBOOK_DIR.parent)
        except (SystemExit, OSError, subprocess.SubprocessError) as error:  # the publish stands without it
            print(f"The README's screenshot of 06 was not retaken: {error}")
    else:
        print("No Chromium here: the README's screenshot of 06 was not retaken (scripts/screenshot.py).")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kdlib.series", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="course")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/PROFILE-TIME)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="override a notebook parameter")
    parser.add_argument("--notebooks", nargs="+", choices=NOTEBOOKS, help="run only these")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="run again into RUN_DIR, reusing every run it already finished with the "
                             "same settings (give the same --profile and -p as the first time)")
    parser.add_argument("--publish", type=Path, metavar="RUN_DIR",
                        help="copy a finished run's notebooks (with outputs) and figures into the repository")
    args = parser.parse_args(argv)
    if args.publish:
        return copy_to_repository(args.publish)
    if args.resume:
        if args.out and args.out != args.resume:
            raise SystemExit("--resume RUN_DIR writes into RUN_DIR: leave out --out.")
        args.out = args.resume
    run(args.profile, args.out, args.parameter, args.notebooks, resume=bool(args.resume))


if __name__ == "__main__":
    sys.exit(main())
