"""The keyboard map, kept from the earlier demo scripts because their users know it.

Pure functions from a typed character to an action, and from an action plus the
current settings to the settings change, so the mapping can be tested without a
window and shown on screen from one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fer_models.classes import FER7
from fer_models.pipeline import PipelineSettings

ALPHA_STEP = 0.05
DELTA_STEP = 0.02
WINDOW_STEP = 2
MIN_COUNT_STEP = 1
ALPHA_MAX = 0.95
DELTA_MAX = 0.5
WINDOW_MAX = 60

# character -> (settings field, step)
TUNING_KEYS: dict[str, tuple[str, float]] = {
    "[": ("alpha", -ALPHA_STEP), "]": ("alpha", +ALPHA_STEP),
    "-": ("delta", -DELTA_STEP), "=": ("delta", +DELTA_STEP), "+": ("delta", +DELTA_STEP),
    "v": ("window", -WINDOW_STEP), "b": ("window", +WINDOW_STEP),
    "n": ("min_count", -MIN_COUNT_STEP), "m": ("min_count", +MIN_COUNT_STEP),
}
# 1-7: the seven classes in canonical order; 0 and c: no label
LABEL_KEYS: dict[str, str] = {str(i + 1): name for i, name in enumerate(FER7)}
LABEL_KEYS.update({"0": "", "c": ""})
PLAYBACK_KEYS = {" ": "play_pause", ",": "step_back", ".": "step_forward"}
OTHER_KEYS = {"o": "toggle_overlay", "r": "toggle_rater", "q": "quit"}

HELP_TEXT = ("1-7 label  ·  0/c no label  ·  [ ] alpha ∓0.05  ·  - = delta ∓0.02  ·  v b window ∓2  ·  "
             "n m min count ∓1  ·  o overlay  ·  space play/pause  ·  , . frame step  ·  r rater A/B  ·  q quit")


@dataclass(frozen=True)
class KeyAction:
    kind: str  # "label", "tune", "playback", "toggle_overlay", "toggle_rater", "quit"
    value: Any = None


def action_for_text(text: str) -> KeyAction | None:
    """The action of a typed character (case-insensitive for letters), or None."""
    if not text or len(text) != 1:
        return None
    ch = text.lower()
    if ch in LABEL_KEYS:
        return KeyAction("label", LABEL_KEYS[ch])
    if ch in TUNING_KEYS:
        return KeyAction("tune", TUNING_KEYS[ch])
    if ch in PLAYBACK_KEYS:
        return KeyAction("playback", PLAYBACK_KEYS[ch])
    if ch in OTHER_KEYS:
        return KeyAction(OTHER_KEYS[ch])
    return None


def tuning_change(settings: PipelineSettings, field: str, step: float) -> dict[str, Any]:
    """The settings change of one tuning key within the key's range; {} when nothing changes.

    The change goes through ``PipelineSettings.with_changes``, the one place that keeps the vote's min
    count within the window, so ``m`` stops at the window and a smaller window pulls the min count down
    with it (both fields are then in the change).
    """
    s = settings
    if field == "alpha":
        value: float | int = round(min(ALPHA_MAX, max(0.0, s.alpha + step)), 2)
    elif field == "delta":
        value = round(min(DELTA_MAX, max(0.0, s.delta + step)), 2)
    elif field == "window":
        value = int(min(WINDOW_MAX, max(1, s.window + step)))
    elif field == "min_count":
        value = int(min(WINDOW_MAX, max(1, s.min_count + step)))
    else:
        raise KeyError(field)
    return s.with_changes(**{field: value}).changes_from(s)
