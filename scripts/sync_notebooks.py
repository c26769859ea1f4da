"""Write the parts of every notebook that come from `kdlib.profiles`: the Colab badge, the
set-up cell and the parameters cell. Run it after changing a profile's values, a notebook's
parameters or the repository address (a fork); tests/test_notebooks.py fails until it is run.

    python scripts/sync_notebooks.py
"""

import re
import sys

import nbformat

from kdlib import profiles, series

BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def synced(name: str, nb):
    """`nb` with its badge, set-up cell and parameters cell as kdlib.profiles writes them."""
    first = nb.cells[0]
    first.source = BADGE.sub(lambda _: profiles.badge(name), first.source)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    setup.source = profiles.setup_cell()
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = profiles.parameters_cell(name)
    return nb


def main() -> None:
    for name in series.NOTEBOOKS:
        path = series.NOTEBOOK_DIR / name
        nbformat.write(synced(name, nbformat.read(path, as_version=4)), path)
        print(f"synced {name}")


if __name__ == "__main__":
    sys.exit(main())
