"""scripts/course_tables.py: the README's tables, computed from a run's records."""

import sys

from kdlib import series
from test_results import rec

sys.path.insert(0, str(series.REPOSITORY / "scripts"))
import course_tables  # noqa: E402


def _with_agreement(method, seed, acc, test_agreement, fidelity=None):
    record = rec(method, seed, acc)
    record["metrics"]["teacher_agreement"] = test_agreement
    if fidelity:
        record["metrics"]["fidelity"] = fidelity
    return record


def test_agreement_is_shown_for_the_test_images_where_older_records_hold_nothing_more():
    older = [_with_agreement(m, s, 0.7 + 0.01 * s, 0.78) for m in ("ce", "kd") for s in (0, 1)]
    rows = {line.split(" | ")[0].strip("| "): line for line in course_tables._accuracies(older, "methods").splitlines()[2:]}
    assert "| — / 78.0 |" in rows["ce"] and "| — / 78.0 |" in rows["kd"]
