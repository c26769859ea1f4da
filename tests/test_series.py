import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kdlib
from kdlib import series


def test_overrides_are_parsed_as_literals_and_paths_point_into_the_run(tmp_path):
    params = series.parameters("course", [("seeds", "[1, 2]"), ("data", "/some/folder"), ("n_train", "None")],
                               tmp_path)
    assert params["seeds"] == [1, 2] and params["data"] == "/some/folder" and params["n_train"] is None
    assert params["results_dir"] == str(tmp_path / "results") and params["profile"] == "course"


def test_the_courses_published_teacher_is_found_from_anywhere_and_a_typed_path_from_where_it_was_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = series.parameters("course", [], tmp_path / "run")["teacher_weights"]
    assert default == str(series.REPOSITORY / "weights" / "teacher-tutorial.pt")  # the profile's, from notebooks/
    typed = series.parameters("course", [("teacher_weights", "mine.pt")], tmp_path / "run")["teacher_weights"]
    assert typed == str(tmp_path / "mine.pt")


def test_a_relative_data_path_is_taken_from_where_the_command_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the notebooks run in notebooks/, so the path must not stay relative
    params = series.parameters("course", [("data", "data/images.tar.gz")], tmp_path / "run")
    assert params["data"] == str(tmp_path / "data" / "images.tar.gz")
    assert series.parameters("course", [], tmp_path / "run")["data"] == "cifar10"


def test_unknown_parameter_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(SystemExit, match="unknown parameter.*tempreature.*temperature"):
        series.parameters("full", [("tempreature", "3")], tmp_path)


def test_an_unusable_data_source_fails_before_any_notebook(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kdlib.series", "--profile", "course", "--out",
                           str(tmp_path / "run"), "-p", "data", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "cannot be used" in done.stderr and "ImageFolder root" in done.stderr
    assert not (tmp_path / "run").exists()


def test_every_profile_sets_the_same_parameters():
    names = {frozenset(p) for p in series.PROFILES.values()}
    assert len(names) == 1


def test_every_profile_parameter_is_declared_by_a_notebook_and_back():
    import papermill
    declared = set()
    for name in series.NOTEBOOKS:
        declared |= set(papermill.inspect_notebook(series.NOTEBOOK_DIR / name))
    given = set(series.parameters("full", [], Path("run")))
    assert given == declared  # nothing silently dropped, nothing left at a notebook default


# ----------------------------------------------------------------------------- bad input, before any work

@pytest.mark.parametrize("name, value, message", [
    ("seeds", "3", "seeds=3 \\(int\\): expected a non-empty list of integers"),
    ("seeds", "[]", "seeds=\\[\\]"),
    ("teacher_epochs", "abc", "teacher_epochs='abc' \\(str\\): expected an integer >= 1"),
    ("n_train", "-5", "n_train=-5"),
    ("n_test", "0", "n_test=0"),
    ("kd_weight", "1.5", "kd_weight=1.5"),
    ("temperature", "0", "temperature=0"),
    ("views", "-1", "views=-1"),
    ("beta", "-2", "beta=-2"),
    ("lr", "0", "lr=0"),
    ("batch_size", "0", "batch_size=0"),
    ("device", "gpu", "device='gpu'"),
])
def test_a_bad_parameter_stops_the_series_before_anything_runs(tmp_path, monkeypatch, name, value, message):
    import papermill
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    with pytest.raises(SystemExit, match=message):
        series.run("smoke", tmp_path / "run", [(name, value)])
    assert not (tmp_path / "run").exists()


def test_the_command_names_the_parameter_within_seconds(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kdlib.series", "--profile", "smoke", "--out",
                           str(tmp_path / "run"), "-p", "seeds", "3"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "seeds=3 (int): expected a non-empty list" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("folder", ["notebooks", "figures", "notebooks/sub", "published/full-h100-2026-11-25"])
def test_the_repositorys_sources_are_never_a_run_folder(folder):
    for resume in (False, True):
        with pytest.raises(SystemExit, match="part of the repository's sources"):
            series.check_run_dir(series.REPOSITORY / folder, resume)


def test_run_folders_are_new_empty_or_hold_a_run(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("mine")
    with pytest.raises(SystemExit, match="holds other files and no kdlib run"):
        series.check_run_dir(other, resume=False)
    with pytest.raises(SystemExit, match="holds no kdlib run"):
        series.check_run_dir(other, resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="empty: there is nothing to reuse"):
        series.check_run_dir(tmp_path / "empty", resume=True)
    series.check_run_dir(tmp_path / "empty", resume=False)
    series.check_run_dir(tmp_path / "new", resume=False)
    (other / series.MARKER).write_text("{}")
    series.check_run_dir(other, resume=True)  # a started run with nothing finished: allowed


def test_a_run_is_resumed_only_under_the_profile_it_was_started_with(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / series.MARKER).write_text(json.dumps({"profile": "full", "overrides": [["amp", '"off"'], ["reuse", "True"]]}))
    with pytest.raises(SystemExit, match="started with --profile full, not course.*Add --profile full .*-p amp"):
        series.check_run_dir(run_dir, True, "course", [("reuse", "True")])
    series.check_run_dir(run_dir, True, "full", [("amp", '"off"'), ("reuse", "True")])
    series.check_run_dir(run_dir, True, "full", [("amp", "off"), ("reuse", "True")])  # the same value, typed another way
    assert "warning" not in capsys.readouterr().out
    series.check_run_dir(run_dir, True, "full", [("reuse", "True")])
    assert "with other -p values than its last start (-p amp" in capsys.readouterr().out


def test_a_teacher_file_that_is_not_there_is_named_before_the_data_is_loaded(tmp_path, monkeypatch):
    params = series.parameters("smoke", [("teacher_weights", str(tmp_path / "missing.pt"))], tmp_path / "run")
    monkeypatch.setattr(kdlib.data, "load", lambda *a, **k: pytest.fail("loaded the data first"))
    with pytest.raises(SystemExit, match="missing.pt: no such file.*Nothing was run"):
        series.preflight(params)


# ----------------------------------------------------------------------------- a failed run destroys nothing

def _fake_papermill(monkeypatch, fail_at=None, error=None):
    """Notebooks that 'run' by writing their executed copy and a figure, and one that fails
    half-way, after it has written both."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    def execute(source, output, parameters, **kwargs):
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(f"executed {Path(source).name} {parameters.get('seeds')}")
        figure = Path(parameters["figures_dir"]) / f"{Path(source).stem}.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        figure.write_text(f"figure {parameters.get('seeds')}")
        if Path(source).name == fail_at:
            raise error or PapermillExecutionError(3, 3, "boom", "RuntimeError", "boom", [])
    monkeypatch.setattr(papermill, "execute_notebook", execute)
    monkeypatch.setattr(series, "declared", lambda name, params: params)
    monkeypatch.setattr(series, "print_table", lambda run_dir: None)


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name not in (series.LOCK, series.RUNNING)}


@pytest.mark.parametrize("error", [None, KeyboardInterrupt()], ids=["notebook fails", "Ctrl-C"])
def test_a_failed_run_leaves_the_earlier_runs_files_as_they_were(tmp_path, monkeypatch, error):
    run_dir = tmp_path / "run"
    _fake_papermill(monkeypatch)
    series.run("smoke", run_dir, [("seeds", "[0]")], notebooks=series.NOTEBOOKS[:3])
    before = _snapshot(run_dir)
    assert "02_student_baseline.ipynb" in before and "figures/02_student_baseline.png" in before

    _fake_papermill(monkeypatch, fail_at="02_student_baseline.ipynb", error=error)
    with pytest.raises((SystemExit, KeyboardInterrupt)):
        series.run("smoke", run_dir, [("seeds", "[5]")], notebooks=series.NOTEBOOKS[:3], resume=True)
    after = _snapshot(run_dir)
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == {"01_teacher.ipynb", "figures/01_teacher.png", series.MARKER, series.TIMES}  # 01 finished again
    assert not (run_dir / series.STAGING).exists()
    if error is None:  # the failed notebook is kept for its traceback, beside the good one
        assert (run_dir / "failed" / "02_student_baseline.ipynb").read_text().endswith("[5]")


def test_publish_copes_with_a_run_without_some_notebooks(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    monkeypatch.setattr(series, "NOTEBOOK_DIR", repo / "notebooks")
    run_dir = tmp_path / "run"
    (run_dir / "figures").mkdir(parents=True)
    import nbformat
    intro = "# 01\n\nThe idea.\n\n**Time.** Stated at each publish\n(figures/notebooks.csv).\n\nMore."
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(intro)]), run_dir / "01_teacher.ipynb")
    (run_dir / "results.csv").write_text("method\n")
    (run_dir / "results" / "sweeps").mkdir(parents=True)
    (run_dir / "results" / "sweeps" / "kd-seed0.json").write_text("{}")
    (repo / "figures" / "results").mkdir(parents=True)
    (repo / "figures" / "results" / "ce-seed9.json").write_text("{}")  # the last published run's: replaced
    series._note_time(run_dir, "01_teacher.ipynb", 150.4, {"profile": "course", "device": "cpu", "reuse": False})
    series.copy_to_repository(run_dir)
    assert [p.relative_to(repo / "figures").as_posix() for p in sorted((repo / "figures").rglob("*.json"))] == [
        "results/sweeps/kd-seed0.json"]
    assert [p.name for p in (repo / "notebooks").iterdir()] == ["01_teacher.ipynb"]
    published = nbformat.read(repo / "notebooks" / "01_teacher.ipynb", as_version=4).cells[0].source
    assert published.startswith("# 01\n\nThe idea.\n\n**Time.** 2.5 minutes in the run these outputs come from (")
    assert "profile `course`" in published and published.endswith("compares against.\n\nMore.")
    assert (repo / "figures" / "notebooks.csv").read_text().startswith("notebook,seconds,machine,precision,profile,date,resumed")


def test_the_published_notebooks_keep_the_parameters_that_ran(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / series.MARKER).write_text('{"profile": "course"}')
    data = series.REPOSITORY.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
    injected = (f'# Parameters\nprofile = "course"\ndata = "{data}"\nn_train = 5000\n'
                f'results_dir = "{run_dir}/results"\nseeds = [0, 1, 2]\nprogress = False\n')
    cell = series.provenance_cell(injected, run_dir)
    assert cell.startswith("# The parameters of the run these outputs come from (python -m kdlib.series --profile course)")
    assert 'data = "../../shared/data/cifar10-jpeg.tar.gz"' in cell and "n_train = 5000" in cell
    assert "seeds = [0, 1, 2]" in cell and "results_dir" not in cell and str(tmp_path) not in cell
    # Where the run's copy of the images is not (Colab), running the cell falls back to the download.
    for there, expected in ((True, "../../shared/data/cifar10-jpeg.tar.gz"), (False, "cifar10")):
        values = {}
        exec(cell.replace("os.path.exists(data)", repr(there)), {}, values)
        assert values["data"] == expected and values["n_train"] == 5000
        assert values["progress"] is True  # a reader who runs all gets progress bars, not the series' lines
    # A float32 run says so, and how a reader with native bf16 runs faster.
    cell = series.provenance_cell('amp = "off"\n', run_dir)
    assert cell.splitlines()[1].startswith('amp = "off"  # float32, as this run; "auto" uses bf16')
    assert series.provenance_cell('amp = "auto"\n', run_dir).splitlines()[1] == 'amp = "auto"'
    # A teacher taken from a frozen worktree's weights/ (a copy of the repository's): the reader's own file.
    worktree_weights = tmp_path / "worktree" / "weights" / "teacher-tutorial.pt"
    worktree_weights.parent.mkdir(parents=True)
    shutil.copyfile(series.REPOSITORY / "weights" / "teacher-tutorial.pt", worktree_weights)
    cell = series.provenance_cell(f'teacher_weights = "{worktree_weights}"\n', run_dir)
    assert 'teacher_weights = "../weights/teacher-tutorial.pt"' in cell


# ----------------------------------------------------------------------------- Ctrl-C and SIGTERM stop everything

def _start(run_dir: Path, *extra, epochs: int = 40) -> subprocess.Popen:
    """A smoke series whose teacher trains long enough to be interrupted, in a process group of
    its own (as a terminal runs a command)."""
    command = [sys.executable, "-m", "kdlib.series", "--profile", "smoke", "--notebooks", "01_teacher.ipynb",
               "02_student_baseline.ipynb", "-p", "teacher_epochs", str(epochs), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_epoch(run_dir: Path, epoch: int, process, timeout=240, epochs: int = 40):
    import time
    log = run_dir / "progress.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and f"epoch {epoch}/{epochs}" in log.read_text():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    pytest.fail("the teacher never reached the epoch")


@pytest.mark.notebooks
@pytest.mark.parametrize("how", ["Ctrl-C to the group", "SIGTERM to the series"])
def test_a_stopped_series_ends_every_process_says_how_to_resume_and_resumes(tmp_path, how):
    import signal
    import time
    from kdlib import stopping
    run_dir = tmp_path / "run"
    epochs = 12  # stopped in epoch 3, a second or two each: ten epochs to spare, and few for the resumed run
    process = _start(run_dir, "--out", str(run_dir), epochs=epochs)
    _wait_for_epoch(run_dir, 2, process, epochs=epochs)
    started = stopping.children(process.pid)  # the kernel among them
    assert started
    sent = time.monotonic()
    if how.startswith("Ctrl-C"):
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - sent < 30
    assert process.returncode == series.STOPPED_EXIT, err[-3000:]
    assert "stopped by" in err and "while 01_teacher.ipynb ran" in err and "Every process it started has ended" in err
    assert "Traceback" not in err
    time.sleep(0.5)
    assert not [pid for pid in started if stopping._alive(pid)]  # the kernel did not go on training
    command = err.split("To continue where it stopped:")[1].strip()
    assert command.startswith("python -m kdlib.series --profile smoke --resume") and f"-p teacher_epochs {epochs}" in command
    assert list((run_dir / "checkpoints").glob("teacher.state.pt"))  # the last finished epoch is kept
    log_before = (run_dir / "progress.log").read_text().count("teacher  epoch")

    resumed = subprocess.run([sys.executable, *command.split()[1:]], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "continuing after epoch" in (run_dir / "01_teacher.ipynb").read_text()
    assert (run_dir / "progress.log").read_text().count("teacher  epoch") < log_before + epochs  # not from epoch 1


@pytest.mark.notebooks
def test_a_run_folder_in_use_is_refused_and_two_trainings_never_share_an_epoch_state(tmp_path, synthetic):
    import kdlib
    from kdlib import stopping
    run_dir = tmp_path / "run"
    process = _start(run_dir, "--out", str(run_dir))
    try:
        _wait_for_epoch(run_dir, 1, process)
        again = subprocess.run([sys.executable, "-m", "kdlib.series", "--profile", "smoke", "--resume", str(run_dir),
                                "-p", "teacher_epochs", "40"], capture_output=True, text=True, timeout=120)
        assert again.returncode != 0 and f"process {process.pid}" in again.stderr and "is in use by" in again.stderr
    finally:
        process.terminate()
        process.communicate(timeout=60)
    # The engine's own lock: a second training of one epoch state (an orphaned kernel) is refused.
    state = tmp_path / "student.state.pt"
    with stopping.exclusive(state.with_suffix(".lock"), "held by this test"):
        with pytest.raises(stopping.Busy, match="in use by process"):
            kdlib.fit(kdlib.build("LightNN", synthetic.num_classes, seed=0), synthetic, "ce",
                      cfg=kdlib.Config(epochs=1, batch_size=64, progress=False), state=state)


def test_a_busy_cpu_is_named_before_the_run(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.0, 0.5))
    assert "the CPU is already busy (load 1.9 on 2 cores)" in series.busy_cpu()
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 1.0, 0.5))
    assert series.busy_cpu() == ""


def test_a_stop_never_signals_the_group_of_the_command_that_stopped(tmp_path):
    """A command run from a script (no job control) shares its process group with the script and
    with helpers it started itself; a stop ends those helpers, never the group (which would end the
    script, and in CI the whole test run: exit 143)."""
    script = tmp_path / "stopper.py"
    script.write_text(
        "import os, subprocess, sys\n"
        "from kdlib import stopping\n"
        "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])  # same group\n"
        "assert os.getpgid(helper.pid) == os.getpgrp()\n"
        "stopped = stopping.stop_children()\n"
        "print('survived', helper.pid in stopped, stopping._alive(helper.pid))\n")  # stop_children reaps it
    # Its own session, so that the group it shares with its helper is not this test run's.
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          start_new_session=True)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["survived", "True", "False"]  # the stopper lived on; its helper did not


def test_after_a_stop_the_libraries_reports_of_the_ended_kernel_are_not_printed(caplog, monkeypatch):
    """Under load, the kernel a stop ends can be reported dead by nbclient before the stop's own
    message: asyncio then logs the task's DeadKernelError with a traceback. Once a stop is under
    way, library logging is silenced (the process is ending)."""
    import logging
    import signal
    import time
    from kdlib import stopping
    monkeypatch.setattr(stopping, "stop_children", lambda: [])  # this test run's own processes are not the test's
    try:
        with pytest.raises(stopping.Stopped):
            with stopping.on_signal():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises in this thread before the sleep ends
        logging.getLogger("asyncio").error("Task exception was never retrieved")
        assert not caplog.records
    finally:
        logging.disable(logging.NOTSET)
    logging.getLogger("asyncio").error("Task exception was never retrieved")  # outside a stop: logged as before
    assert [r.getMessage() for r in caplog.records] == ["Task exception was never retrieved"]


def test_ctrl_c_while_the_data_is_checked_ends_in_one_paragraph_and_writes_nothing(tmp_path, monkeypatch, capsys):
    def decoding(params):
        raise KeyboardInterrupt
    monkeypatch.setattr(series, "preflight", decoding)
    with pytest.raises(SystemExit) as stop:
        series.run("smoke", tmp_path / "run")
    assert stop.value.code == series.STOPPED_EXIT and not (tmp_path / "run").exists()
    assert "before any notebook ran; nothing was written" in capsys.readouterr().err


def test_on_windows_import_kdlib_says_where_it_runs():
    # Native Windows has no fcntl: the import names WSL and Colab instead of a missing module.
    done = subprocess.run([sys.executable, "-c", "import sys; sys.modules['fcntl'] = None; import kdlib"],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "On Windows, run it in WSL" in done.stderr, done.stderr[-2000:]
    assert "No module named" not in done.stderr
