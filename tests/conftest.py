import os
from pathlib import Path

import pytest
import torch

import kdlib

REPO = Path(__file__).resolve().parent.parent
# The real-image copy of CIFAR-10 beside a developer's checkout; absent in a user's clone.
REAL_DATA = Path(os.environ.get("KDLIB_REAL_DATA", REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"))


@pytest.fixture(autouse=True)
def _seed_and_threads(monkeypatch):
    torch.manual_seed(0)
    # float32 on every CI CPU, with or without native bf16: exact comparisons stay exact (the
    # tests of the precision rule patch the CPU flags themselves)
    monkeypatch.setattr(kdlib.config, "_cpu_flags", lambda: frozenset())
    # one process by default: a spawned worker would not see the patch above (the tests of
    # workers ask for them, with amp="off")
    monkeypatch.setattr(kdlib.experiment, "cpu_workers", lambda workers="auto": 1 if workers == "auto" else int(workers))


@pytest.fixture(scope="session")
def synthetic():
    return kdlib.data.synthetic(n_train=600, n_test=200)


@pytest.fixture(scope="session")
def real_splits():
    if not REAL_DATA.is_file():
        pytest.skip(f"real images not found at {REAL_DATA} (set KDLIB_REAL_DATA to use them)")
    return kdlib.load(REAL_DATA)


@pytest.fixture
def fast_cfg():
    return kdlib.Config(epochs=2, batch_size=64, views=2, progress=False)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
