"""Photograph a notebook as a learner sees it in JupyterLab: the README's picture, retaken by
`python -m kdlib.series --publish` after every publish (where Chromium is installed).

    python scripts/screenshot.py [NOTEBOOK] [--out figures/screenshot_06_jupyterlab.png]

It starts JupyterLab on a free local port (no browser, a one-off token), opens the notebook in
headless Chromium, lets it render its outputs, writes the PNG, and stops JupyterLab. Needs
`jupyter lab` (pip install -e ".[jupyter]") and Chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = "1300,1800"      # the comparison, its figure, the verdicts and the split of KD's gain
HEADING = "The-comparisons,-paired-by-seed"  # where the picture starts: 06's heading, as JupyterLab anchors it
RENDER_MS = 40_000        # virtual time for JupyterLab to load and draw every output


def browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photograph(notebook: str = "06_combined.ipynb", out: Path | None = None, root: Path = REPOSITORY,
               heading: str | None = HEADING) -> Path:
    chrome = browser()
    if chrome is None:
        raise SystemExit(f"screenshot: no browser found ({', '.join(BROWSERS)}); install one, e.g. "
                         "`apt-get install chromium`, or skip the picture.")
    out = Path(out or root / "figures" / f"screenshot_{notebook[:2]}_jupyterlab.png").resolve()
    port, token = _free_port(), secrets.token_hex(16)
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # containers, Colab
    log = tempfile.TemporaryFile()
    # A one-off settings folder that declines JupyterLab's news, whose question would cover the picture.
    settings = tempfile.mkdtemp()
    notification = Path(settings, "@jupyterlab", "apputils-extension", "notification.jupyterlab-settings")
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    lab = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", *as_root,
                            f"--IdentityProvider.token={token}", "--ServerApp.root_dir", str(root)],
                           stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "JUPYTERLAB_SETTINGS_DIR": settings})
    try:
        url = f"http://127.0.0.1:{port}/lab/tree/notebooks/{notebook}?token={token}" + (f"#{heading}" if heading else "")
        for _ in range(360):  # JupyterLab answers within seconds; three minutes at most on a busy CPU
            if lab.poll() is not None:
                log.seek(0)
                said = log.read().decode(errors="replace").strip().splitlines()[-3:]
                raise SystemExit(f"screenshot: JupyterLab stopped before it answered: {' / '.join(said)}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("screenshot: JupyterLab did not start within three minutes.")
        subprocess.run([chrome, "--headless=new", "--no-sandbox", "--hide-scrollbars", f"--window-size={WINDOW}",
                        f"--virtual-time-budget={RENDER_MS}", f"--screenshot={out}", url],
                       check=True, capture_output=True, timeout=300)
    finally:
        lab.terminate()
        lab.wait(timeout=30)
        log.close()
        shutil.rmtree(settings, ignore_errors=True)
    print(f"screenshot: {out}")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", nargs="?", default="06_combined.ipynb",
                        choices=sorted(p.name for p in (Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb")))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    photograph(args.notebook, args.out)


if __name__ == "__main__":
    main()
