"""Shared fixtures: where ../shared lives, and a YuNet model that never needs the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FER_SHARED", REPO.parent / "shared")).resolve()

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("FER_OFFLINE", "1")
os.environ.setdefault("FER_YUNET_DIR", str(SHARED / "models"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}; set FER_SHARED")
    return SHARED


@pytest.fixture(scope="session")
def fer2013_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "fer2013"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep platformdirs caches, settings and sessions out of the real home folder."""
    home = tmp_path_factory.getbasetemp() / "home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
