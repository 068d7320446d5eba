"""Shared fixtures: the bundled demo table and the optional ../shared data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def demo_csv() -> Path:
    return DATA / "spotify_demo.csv.gz"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared/data not present")
    return SHARED
