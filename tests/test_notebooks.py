"""The notebook series end to end in the smoke profile: under nbval, and through the
papermill runner. Each notebook really runs (synthetic data, one short epoch)."""

import csv
import json
import subprocess
import sys

import nbformat
import papermill
import pytest

import kdlib
from kdlib import profiles, series

sys.path.insert(0, str(series.REPOSITORY / "scripts"))
import sync_notebooks  # noqa: E402

pytestmark = pytest.mark.notebooks


def test_every_notebook_has_one_parameters_cell_and_a_colab_badge():
    for name in series.NOTEBOOKS:
        nb = json.loads((series.NOTEBOOK_DIR / name).read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, name
        assert "colab.research.google.com" in "".join(nb["cells"][0]["source"]), name


def test_badges_setup_cells_and_parameter_cells_are_written_from_the_profiles():
    """A notebook whose parameters cell (or badge, or set-up cell) disagrees with
    kdlib.profiles fails here: run scripts/sync_notebooks.py."""
    for name in series.NOTEBOOKS:
        nb = nbformat.read(series.NOTEBOOK_DIR / name, as_version=4)
        before = [c.source for c in nb.cells]
        assert [c.source for c in sync_notebooks.synced(name, nb).cells] == before, (
            f"{name} is out of step with kdlib/profiles.py: run python scripts/sync_notebooks.py")
        assert profiles.badge(name) in before[0] and profiles.setup_cell() in before


def test_each_notebook_declares_only_parameters_it_uses_with_the_course_defaults():
    config_fields = set(kdlib.Config.__dataclass_fields__)
    for name in series.NOTEBOOKS:
        nb = nbformat.read(series.NOTEBOOK_DIR / name, as_version=4)
        declared = papermill.inspect_notebook(series.NOTEBOOK_DIR / name)
        code = "\n".join(c.source for c in nb.cells
                         if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
        for parameter, info in declared.items():
            # a Config field reaches the engine through experiment.config(globals())
            used = parameter in config_fields or f"{parameter}" in code.replace("experiment.config(globals()", "")
            assert used, f"{name} declares {parameter} but never uses it"
            expected = {**profiles.PROFILES[profiles.DEFAULT], **profiles.FOLDERS}[parameter]
            assert eval(info["default"]) == expected, (name, parameter)
        assert "NBVAL" not in code, f"{name}: nbval markers belong in cell tags, not in the reader's code"


def test_the_colab_setup_cell_makes_kdlib_importable_in_the_same_kernel(tmp_path):
    from nbclient import NotebookClient
    clone_source = tmp_path / "origin"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{series.REPOSITORY}", str(clone_source)], check=True)
    clone = tmp_path / "content" / "kd-cifar10"
    fake_colab = "import sys, types\nsys.modules['google'] = types.ModuleType('google')\nsys.modules['google.colab'] = types.ModuleType('google.colab')"
    setup = profiles.setup_cell().replace(profiles.REPOSITORY, f"file://{clone_source}").replace(profiles.CLONE, str(clone))
    check = "import os, kdlib\nprint(kdlib.__file__)\nprint(os.getcwd())"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (fake_colab, setup, check)])
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    printed = nb.cells[2].outputs[0]["text"].split()
    assert printed == [str(clone / "kdlib" / "__init__.py"), str(clone / "notebooks")]

    # A clone that fails stops the cell with what to change.
    broken = profiles.setup_cell().replace(profiles.REPOSITORY, f"file://{tmp_path}/no-such-repository") \
        .replace(profiles.CLONE, str(tmp_path / "elsewhere"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (fake_colab, broken)])
    from nbclient.exceptions import CellExecutionError
    with pytest.raises(CellExecutionError, match="set REPOSITORY to the fork"):
        NotebookClient(nb, kernel_name="python3", timeout=120).execute()


@pytest.fixture(scope="module")
def synthetic_teacher(tmp_path_factory):
    """A published teacher for the smoke profile's synthetic data (a real one teaches CIFAR-10)."""
    folder = tmp_path_factory.mktemp("teacher")
    params = series.parameters("smoke", [], folder)
    splits = kdlib.load("synthetic", n_train=params["n_train"], n_val=params["n_val"], n_test=params["n_test"])
    run = kdlib.experiment.train_teacher(splits, kdlib.Config(epochs=1, batch_size=64, progress=False),
                                         folder / "results", folder / "checkpoints")
    record, = kdlib.results.load(folder / "results")
    return kdlib.published.write_teacher(folder / "checkpoints" / "teacher.pt", record, splits, folder / "teacher.pt")


@pytest.mark.parametrize("name", series.NOTEBOOKS[1:])
def test_each_notebook_runs_alone_in_a_fresh_run_folder(name, synthetic_teacher, tmp_path):
    """As in Colab, where each notebook gets its own machine: no 01 run, no other notebook's runs."""
    out = series.run("smoke", tmp_path / "alone", [("teacher_weights", str(synthetic_teacher))], [name])
    executed = (out / name).read_text()
    assert "taking the published one" in executed
    if name not in ("02_student_baseline.ipynb", "03_kd_logits.ipynb"):
        assert "training it now" in executed  # another notebook's runs, trained here


def _checked_by_nbval(name):
    nb = nbformat.read(series.NOTEBOOK_DIR / name, as_version=4)
    return any("nbval-check-output" in c.metadata.get("tags", []) for c in nb.cells)


def test_notebooks_pass_nbval_in_the_smoke_profile(tmp_path):
    """nbval compares the outputs of the cells tagged nbval-check-output with those saved in the
    notebook. It runs the series up to the last notebook with such a cell (01 makes the teacher the
    others load); that every notebook runs is the series command's test below, so the notebooks
    after it are not run twice."""
    checked = [name for name in series.NOTEBOOKS if _checked_by_nbval(name)]
    assert checked, "no notebook has a cell tagged nbval-check-output"
    params = series.parameters("smoke", [], tmp_path / "run")
    prepared = []
    for name in series.NOTEBOOKS[:series.NOTEBOOKS.index(checked[-1]) + 1]:
        target = tmp_path / name
        papermill.execute_notebook(series.NOTEBOOK_DIR / name, target, parameters=series.declared(name, params),
                                   prepare_only=True, progress_bar=False)
        prepared.append(str(target))
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
                           "-q", *prepared], cwd=series.NOTEBOOK_DIR, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_the_tutorial_profile_runs_every_notebook_without_a_validation_split(tmp_path):
    """The tutorial's protocol trains on every image (n_val None): 07 then chooses nothing and
    says so. (The full and reference profiles run at smoke scale in tests/test_gpujob.py.)"""
    params = profiles.at_smoke_scale("tutorial")
    assert params["n_val"] is None
    overrides = [(k, repr(v)) for k, v in params.items() if v != profiles.PROFILES["tutorial"][k]]
    out = series.run("tutorial", tmp_path / "run", overrides)
    sweeps = (out / "07_sweeps.ipynb").read_text()
    assert "no validation split in this profile, so nothing is chosen" in sweeps
    assert "validation chooses" not in sweeps
    # Every run but a sweep's trains at the profile's knobs, whichever notebook trained it (the
    # tutorial-recipe run of 2026-11-30 trained 05's KD at Config's T = 4 before 05 declared them).
    tutorial = {**vars(kdlib.Config()), **profiles.PROFILES["tutorial"]}  # a knob no notebook declares: Config's
    for path in (out / "results").rglob("*.json"):
        record = json.loads(path.read_text())
        knobs = kdlib.methods.DECLARED[record["method"]].knobs if record["method"] in kdlib.methods.DECLARED else ()
        for knob in knobs:
            if not record.get("sweep"):
                assert record["config"][knob] == tutorial[knob], (path.name, knob, record["config"][knob])


def test_series_command_runs_every_notebook_and_prints_the_table(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "kdlib.series", "--profile", "smoke", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in series.NOTEBOOKS:
        assert (out / name).is_file(), name
        assert "Run(model=" not in (out / name).read_text(), f"{name} displays a Run's repr: end the cell with ;"
        for cell in json.loads((out / name).read_text())["cells"]:
            for output in cell.get("outputs", []):
                shown = "".join(output.get("data", {}).get("text/plain", []))
                assert not shown.startswith(("{", "[")), f"{name} displays a raw dict or list: {shown[:80]}"
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert {"01_teacher_curves.png", "03_temperature.png", "04_grad_at_maps.png",
            "05_act_at_maps.png", "06_accuracy.png", "06_differences.png", "06_per_class.png", "07_temperature.png",
            "07_kd_weight.png", "07_beta.png"} <= figures
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["method"] for r in rows] == ["teacher", "ce", "kd", "kd_untrained", "ls", "grad_at", "act_at", "kd_grad_at",
                                                 "cosine", "regressor"]
    assert "| kd_grad_at |" in done.stdout
    # Every training run, sweeps and 08's longer schedule included, once in runs.csv, with its seconds.
    every_run = list(csv.DictReader(open(out / "runs.csv")))
    recorded = list((out / "results").rglob("*.json"))
    assert len(every_run) == len(recorded) and every_run[0]["name"] == "teacher"
    patient = str(profiles.PROFILES["smoke"]["patient_epochs"])
    assert {r["name"] for r in every_run if r["epochs"] == patient} == {"kd_fresh", "ce_fresh"}
    assert {r["sweep"] for r in every_run} >= {"", "temperature=1", "beta=0"}
    assert "temperature=4" not in {r["sweep"] for r in every_run}  # the main KD run itself, not trained again
    assert all(float(r["seconds"]) > 0 for r in every_run) and "training runs" in done.stdout

    # An interrupted run resumes: finished runs with the same settings are taken, not retrained.
    again = subprocess.run([sys.executable, "-m", "kdlib.series", "--profile", "smoke", "--resume", str(out),
                            "--notebooks", "01_teacher.ipynb", "02_student_baseline.ipynb"],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    executed = (out / "02_student_baseline.ipynb").read_text()
    assert "ce: seed(s) [0] taken from this run folder" in executed
    outputs = json.dumps([c.get("outputs", []) for c in json.loads(executed)["cells"]])
    assert str(out) not in outputs  # no local paths in a notebook's outputs (its parameters cell has them)
    assert len(list((out / "results").glob("ce-seed0-*.json"))) == 1  # no second record
