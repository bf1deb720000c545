"""Shared fixtures. Tests make their own data, or use ../shared/data/coco_tiny and skip cleanly without it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
COCO_TINY = REPO_ROOT.parent / "shared" / "data" / "coco_tiny"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def coco_tiny() -> Path:
    """The real 80+80-image COCO subset (train2017/, val2017/, annotations/instances_{train,val}2017.json)."""
    if not (COCO_TINY / "annotations" / "instances_train2017.json").is_file():
        pytest.skip(f"real COCO subset not found at {COCO_TINY} (only present on the team's machines)")
    return COCO_TINY
