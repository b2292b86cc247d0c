"""Settings that persist between runs, as one JSON file in the user config folder (platformdirs).

A JSON file rather than QSettings so it is readable, testable and the same on
every platform. Anything unreadable or invalid falls back to the defaults: a
broken config must never stop the app from starting.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from fer_models.files import write_json
from fer_models.pipeline import PipelineSettings

APP_NAME = "ferlab"  # the one name of the app's config, data and sessions folders (platformdirs)
CONFIG_FILE = "fer-demo.json"


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / CONFIG_FILE


@dataclass
class AppConfig:
    model_dir: str = ""
    provider: str = "auto"
    camera_index: int = 0
    camera_width: int = 640
    camera_height: int = 480
    pipeline: dict[str, Any] = field(default_factory=dict)
    overlay: bool = True
    speed: float = 1.0
    lag_ms: float = 0.0  # annotator lag of the scores
    last_video_dir: str = ""
    last_labels_dir: str = ""
    window_geometry: str = ""  # base64 of QWidget.saveGeometry()

    def pipeline_settings(self) -> PipelineSettings:
        """The saved tuning, or the defaults if it is missing or no longer valid."""
        known = {f.name for f in fields(PipelineSettings)}
        try:
            return PipelineSettings(**{k: v for k, v in self.pipeline.items() if k in known}).validated()
        except (TypeError, ValueError):
            return PipelineSettings()

    @classmethod
    def load(cls, path: Path) -> "AppConfig":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        cfg = cls()
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                default = getattr(cfg, f.name)
                if isinstance(default, bool) and not isinstance(value, bool):
                    continue
                if isinstance(default, (int, float)) and not isinstance(default, bool):
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        continue
                    value = type(default)(value)
                elif isinstance(default, str) and not isinstance(value, str):
                    continue
                elif isinstance(default, dict) and not isinstance(value, dict):
                    continue
                setattr(cfg, f.name, value)
        return cfg

    def save(self, path: Path) -> None:
        """Write atomically (a crash mid-write keeps the previous file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, asdict(self))
