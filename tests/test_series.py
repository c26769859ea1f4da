import subprocess
import sys
from pathlib import Path

import pytest

from kdlib import series


def test_overrides_are_parsed_as_literals_and_paths_point_into_the_run(tmp_path):
    params = series.parameters("quick", [("seeds", "[1, 2]"), ("data", "/some/folder"), ("n_train", "None")],
                               tmp_path)
    assert params["seeds"] == [1, 2] and params["data"] == "/some/folder" and params["n_train"] is None
    assert params["results_dir"] == str(tmp_path / "results") and params["profile"] == "quick"


def test_a_relative_data_path_is_taken_from_where_the_command_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the notebooks run in notebooks/, so the path must not stay relative
    params = series.parameters("quick", [("data", "data/images.tar.gz")], tmp_path / "run")
    assert params["data"] == str(tmp_path / "data" / "images.tar.gz")
    assert series.parameters("quick", [], tmp_path / "run")["data"] == "cifar10"


def test_unknown_parameter_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(SystemExit, match="Unknown parameter.*tempreature.*temperature"):
        series.parameters("full", [("tempreature", "3")], tmp_path)


def test_an_unusable_data_source_fails_before_any_notebook(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kdlib.series", "--profile", "quick", "--out",
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
