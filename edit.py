"""nbedit NOTEBOOK 'old' 'new': replace an exact string in a markdown (or code) cell's source, once."""
import json, sys
def edit(path, old, new, kind=None):
    nb = json.load(open(path))
    hits = [c for c in nb["cells"] if old in "".join(c["source"]) and (kind is None or c["cell_type"] == kind)]
    assert len(hits) == 1, f"{path}: {len(hits)} cells hold {old[:60]!r}"
    c = hits[0]; s = "".join(c["source"]).replace(old, new, 1)
    c["source"] = s.splitlines(keepends=True)
    with open(path, "w") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False); f.write("\n")
