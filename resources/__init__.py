"""Bundled data: the default model folder, the detector manifest, icons, default configs."""

from __future__ import annotations

import sys
from pathlib import Path


def resource_root() -> Path:
    """Folder of the bundled resources (works from source, wheels and a PyInstaller bundle)."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    return resource_root().joinpath(*parts)


def default_model_dir() -> Path:
    return resource_path("models", "default")
