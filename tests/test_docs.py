"""The README and docs/ link to files and headings that exist (the README was split into docs/)."""

import re
from pathlib import Path

from kdlib import series

PAGES = [series.REPOSITORY / "README.md", *sorted((series.REPOSITORY / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's anchor for each heading: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in page.read_text().splitlines() if line.startswith("#")}


def test_every_relative_link_reaches_a_file_and_heading():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path) if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_the_anchor_rule_matches_githubs_for_a_heading_with_punctuation(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("## How the course's schedule was chosen (screen on validation, 2026-11-30)\n")
    assert "how-the-courses-schedule-was-chosen-screen-on-validation-2026-11-30" in anchors(page)
