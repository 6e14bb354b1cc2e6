"""Shared fixtures: where the real rMD17 files are, and a tiny run configuration."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_RMD17 = REPO.parent / "shared" / "data" / "rmd17"


@pytest.fixture
def rmd17_dir() -> Path:
    if not (SHARED_RMD17 / "rmd17_ethanol_train_01.npz").is_file():
        pytest.skip(f"real rMD17 files not found in {SHARED_RMD17}")
    return SHARED_RMD17


@pytest.fixture
def example_model() -> str:
    return str(REPO / "examples" / "my_model.py")
