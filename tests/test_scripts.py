"""The scripts that make the README's tables and compare runs, on records written here."""

import sys

from kdlib import results, series
from test_results import rec

sys.path.insert(0, str(series.REPOSITORY / "scripts"))
import compare_runs  # noqa: E402
import course_tables  # noqa: E402


def _with_agreement(method, seed, acc, test_agreement):
    record = rec(method, seed, acc)
    record["metrics"]["teacher_agreement"] = test_agreement  # and no "fidelity": a record of older code
    return record


def test_agreement_is_shown_for_the_test_images_where_older_records_hold_nothing_more():
    older = [_with_agreement(m, s, 0.7 + 0.01 * s, 0.78) for m in ("ce", "kd") for s in (0, 1)]
    rows = {line.split(" | ")[0].strip("| "): line for line in course_tables._accuracies(older, "methods").splitlines()[2:]}
    assert "| — / 78.0 |" in rows["ce"] and "| — / 78.0 |" in rows["kd"]


def test_two_runs_are_compared_method_by_method_paired_by_the_seeds_both_ran(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    for seed, (a, b) in enumerate([(0.70, 0.71), (0.72, 0.73), (0.71, 0.72)]):
        results.save(rec("ce", seed, a), first / "results")
        results.save(rec("ce", seed, b), second / "results")
    results.save(rec("ce", 3, 0.99), second / "results")  # a seed the first run lacks: left out of the pairs
    compare_runs.paired(str(first), str(second))
    said = capsys.readouterr().out
    assert "- ce: +1.00 [+1.00, +1.00], seeds [0, 1, 2]" in said
    assert "over all 3 runs in both: 0 with the same test accuracy; |difference| median 1.00, max 1.00" in said


def test_the_readme_main_table_is_what_main_table_prints_from_the_published_runs(capsys):
    """The README's main table is computed, not typed: run the command the README gives and
    compare every row but the teacher's (whose cells say by hand which teacher each column used)."""
    import shlex
    import main_table
    readme = (series.REPOSITORY / "README.md").read_text()
    start = readme.index("`python scripts/main_table.py ") + len("`python scripts/main_table.py ")
    command = readme[start:readme.index("`", start)].replace("\n", " ")
    main_table.main([arg.replace("=published/", f"={series.REPOSITORY}/published/") for arg in shlex.split(command)])
    printed = capsys.readouterr().out.strip().splitlines()
    after = readme[start:].splitlines()
    first = next(i for i, line in enumerate(after) if line.startswith("| method |"))
    in_readme = after[first:first + len(printed)]
    assert in_readme[0] == printed[0], "the README's columns are not the command's"
    for ours, theirs in zip(in_readme[2:], printed[2:]):
        if not ours.startswith("| teacher |"):
            assert ours == theirs, f"README row is stale: run the command above the table again\n{ours}\n{theirs}"


def test_the_readme_course_table_is_the_course_runs_results_csv():
    """The course's table in the README (made by scripts/course_tables.py from the run's records,
    which are not in the repository) says what figures/results.csv, copied from that run, says."""
    import csv
    readme = (series.REPOSITORY / "README.md").read_text()
    section = readme[readme.index("### The CPU course"):]
    table = section[section.index("| method | seeds | test accuracy % (mean ± std)"):].split("\n\n")[0].splitlines()[2:]
    in_readme = [[cell.strip().strip("*") for cell in line.strip("|").split("|")][1:3] for line in table]
    saved = list(csv.DictReader(open(series.REPOSITORY / "figures" / "results.csv")))
    assert len(in_readme) == len(saved)
    for (seeds, accuracy), row in zip(in_readme, saved):
        assert seeds == row["n_seeds"], row["method"]
        numbers = [float(x) for x in accuracy.split(" ± ")]
        assert numbers == [float(row["mean"]), *([float(row["std"])] if row["std"] else [])], row["method"]


def test_every_interval_in_the_readme_course_tables_is_computed_from_the_published_course_run():
    """Each paired difference in the tables of the README's course section is one that
    scripts/course_tables.py computes from the course run's records (figures/results, copied there
    by --publish) or that the published notebooks print: none is typed by hand or left from an
    earlier run."""
    import re
    import nbformat
    readme = (series.REPOSITORY / "README.md").read_text()
    start = readme.index("### The CPU course")
    section = readme[start:readme.index("\n## ", start)]
    rows = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    number = r"([+-]\d+\.\d\d)"
    bracketed = re.compile(rf"{number}(?: points)? \[{number}, {number}\]")  # +2.74 [+1.92, +3.55]
    worded = re.compile(rf"{number} points \(95% interval {number} to {number}\b")  # as 03 and 08 print it
    in_tables = set(bracketed.findall(rows.replace("−", "-").replace("*", "")))
    text = course_tables.tables(series.REPOSITORY / "figures")
    for path in sorted((series.REPOSITORY / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            text += "".join(str(o.get("text", "")) for o in cell.get("outputs", []))
    computed = set(bracketed.findall(text)) | set(worded.findall(text))
    assert len(in_tables) >= 15, "the course section's comparison tables were not found"
    typed = sorted(in_tables - computed)
    assert not typed, f"README intervals that the published course run does not compute: {typed}"


def test_a_folder_without_records_is_named_in_one_line_by_every_script_that_reads_runs(tmp_path):
    import main_table
    import pytest
    from kdlib import checks
    (tmp_path / "empty").mkdir()
    for main, args in ((main_table.main, [[f"col={tmp_path / 'empty'}"]]), (course_tables.main, [tmp_path / "empty"]),
                       (compare_runs.paired, [tmp_path / "empty", tmp_path / "empty"])):
        with pytest.raises(SystemExit, match="empty holds no run records"):
            checks.command("script", main, *args)


def test_the_thread_check_says_which_counts_repeat_their_bits(monkeypatch, capsys):
    import subprocess
    import pytest
    import threads
    from kdlib import checks
    digests = iter(["a1", "a1", "b2", "b3"])  # one thread repeats itself; two threads do not

    def fake_run(command, **kwargs):
        assert command[-2:] in (["1", "1"], ["2", "1"])  # thread count, epochs
        return subprocess.CompletedProcess(command, 0, stdout=f"{next(digests)} 60.00\n", stderr="")
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["threads.py"])
    threads.main()
    said = capsys.readouterr().out
    assert "1 thread(s) twice: the same bits" in said and "2 thread(s) twice: DIFFERENT bits" in said
    assert "1 against 2 thread(s): different bits" in said
    monkeypatch.setattr(sys, "argv", ["threads.py", "--epochs", "0"])
    with pytest.raises(SystemExit, match="threads.py: --threads and --epochs: give counts of 1 or more"):
        checks.command("threads.py", threads.main)
