"""How much JPEG loss moves the reference profile's CE students: re-encode the CIFAR-10 JPEG
copy once more at a lower quality, train the profile's CE students on it (its seeds, 10
epochs, float32, two side by side), and pair them by seed with a finished run on the copy.

    python scripts/jpeg_quality.py --data ../shared/data/cifar10-jpeg.tar.gz --quality 50 \
        --out runs/jpeg-q50 --against published/reference-cpu-2026-12-01

Why: the reference profile lands 0.95-2.95 points below every row of the reference's table, CE's
included, and this copy is JPEG at quality about 75 where the reference read the original
arrays; with no original here, the slope of accuracy against further JPEG loss is what can be
measured. 2026-12-01, 2-core Intel Xeon, float32: quality 50 against the copy, CE
-1.06 [-1.75, -0.37] (README, "The reference's table at its own scale"). About 7 minutes.
Resumable: finished seeds in OUT are taken, not trained again.
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import pandas as pd
from PIL import Image

from kdlib import checks, data, experiment, profiles, results


def reencode(source: Path, target: Path, quality: int) -> None:
    """Every JPEG of the archive decoded and encoded again at `quality`, same names and layout."""
    with tarfile.open(source) as tin, tarfile.open(target, "w:gz") as tout:
        for member in tin:
            if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg")):
                image = Image.open(io.BytesIO(tin.extractfile(member).read())).convert("RGB")
                encoded = io.BytesIO()
                image.save(encoded, "JPEG", quality=quality)
                info = tarfile.TarInfo(member.name)
                info.size = encoded.tell()
                encoded.seek(0)
                tout.addfile(info, encoded)
            elif member.isdir():
                tout.addfile(member)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the CIFAR-10 JPEG copy (.tar.gz)")
    parser.add_argument("--quality", type=int, required=True, help="JPEG quality of the new copy, 1-95")
    parser.add_argument("--out", type=Path, required=True, help="folder for the copy, records and checkpoints")
    parser.add_argument("--against", type=Path, required=True, help="a finished reference-profile run (its results/)")
    args = parser.parse_args()
    if not 1 <= args.quality <= 95:
        raise SystemExit(f"--quality {args.quality}: Pillow's JPEG qualities run from 1 to 95; choose one there.")
    theirs = [r for r in results.latest_per_seed(results.load(args.against / "results")) if r["method"] == "ce"]
    if not theirs:
        raise SystemExit(f"--against {args.against}: no CE records in its results/; give a finished reference-profile run.")
    if not args.data.is_file():
        raise SystemExit(f"--data {args.data}: no such file; give the CIFAR-10 JPEG copy (.tar.gz).")

    args.out.mkdir(parents=True, exist_ok=True)
    archive = args.out / f"cifar10-q{args.quality}.tar.gz"
    if not archive.is_file():
        partial = archive.with_suffix(".partial")
        reencode(args.data, partial, args.quality)
        partial.rename(archive)
    params = profiles.PROFILES["reference"]
    splits = data.load(archive, normalization=params["normalization"])
    cfg = experiment.config({**params, "data": str(archive)}, epochs=params["student_epochs"], amp="off",
                            progress=False)
    ours = experiment.train_method("ce", splits, cfg, params["seeds"], results_dir=args.out / "results",
                                   checkpoint_dir=args.out / "checkpoints", reuse=True)
    before = {r["seed"]: 100 * r["metrics"]["accuracy"] for r in theirs}
    pairs = [(100 * run.accuracy, before[run.config.seed]) for run in ours if run.config.seed in before]
    if len(pairs) < 2:
        raise SystemExit(f"--against {args.against}: its CE seeds {sorted(before)} share fewer than two seeds with "
                         f"the profile's {params['seeds']}: nothing to pair.")
    difference = results.interval(pd.Series([a - b for a, b in pairs]))
    print(f"CE at JPEG quality {args.quality}: " + ", ".join(f"{a:.2f}" for a, _ in pairs)
          + "; on the copy: " + ", ".join(f"{b:.2f}" for _, b in pairs)
          + f"; difference paired by seed {difference['mean_diff']:+.2f} "
          f"[{difference['ci95_low']:+.2f}, {difference['ci95_high']:+.2f}] ({len(pairs)} seeds)")


if __name__ == "__main__":  # seeds train in spawned workers, which import this file
    checks.command("scripts/jpeg_quality.py", main)
