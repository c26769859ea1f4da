"""Does the thread count change what the engine computes on this CPU? One CE epoch of a LightNN
on the synthetic data (2,000 images), trained at each thread count twice, each in a process of
its own; prints each run's weights digest. The same count twice gives the same bits (the engine
is deterministic); another count adds the same numbers in another order and parts from it.

    python scripts/threads.py [--threads 1 2] [--epochs 1]

What it showed on a 2-core Intel Xeon, float32, 2026-12-02 (a 20-step plain-torch check gave the
same): why a sweep point trained alone (every thread) and its main run trained side by side (one
thread each) are two draws of one recipe, not one run (07's beta = 0 check, docs/engine.md).
Seconds of CPU: run it on an idle one only if you also want the timings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from kdlib import checks

ARM = r"""
import sys, torch
import kdlib
torch.set_num_threads(int(sys.argv[1]))
splits = kdlib.data.synthetic()
cfg = kdlib.Config(epochs=int(sys.argv[2]), batch_size=128, amp="off", progress=False, workers=1)
run = kdlib.fit(kdlib.build("LightNN", splits.num_classes, seed=0), splits, "ce", cfg=cfg)
print(kdlib.files.weights_digest(run.model), f"{100 * run.accuracy:.2f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    if min(args.threads) < 1 or args.epochs < 1:
        raise checks.ParameterError("--threads and --epochs: give counts of 1 or more.")
    digests = {}
    for threads in args.threads:
        for attempt in (1, 2):
            out = subprocess.run([sys.executable, "-c", ARM, str(threads), str(args.epochs)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"threads.py: the run at {threads} thread(s) failed:\n" + "\n".join(out.stderr.splitlines()[-5:]))
            digest, accuracy = out.stdout.split()[-2:]
            digests.setdefault(threads, []).append(digest)
            print(f"{threads} thread(s), run {attempt}: weights {digest}, test accuracy {accuracy}%")
    for threads, (first, second) in digests.items():
        print(f"{threads} thread(s) twice: {'the same bits' if first == second else 'DIFFERENT bits'}")
    counts = list(digests)
    for a, b in zip(counts, counts[1:]):
        print(f"{a} against {b} thread(s): {'the same bits' if digests[a][0] == digests[b][0] else 'different bits'}")


if __name__ == "__main__":
    checks.command("threads.py", main)
