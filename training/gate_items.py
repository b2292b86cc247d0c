"""The checklist items every go/no-go gate is made of, and the two helpers that build them.

Apart from ``training.gate`` so that stage modules (``training.gate_nl_phase``) build their items
with the same rules (an artifact error is that item's NO-GO, never a crash; files named relative
to the run) without importing the gate that dispatches to them.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from fer_models.errors import ArtifactError, FerError


@dataclass
class Item:
    """One checklist item of one folder (``run``) or of the whole stage (``run`` = "")."""

    stage: str
    run: str
    item: str
    ok: bool
    reason: str
    file: str | None = None

    @property
    def status(self) -> str:
        return "GO" if self.ok else "NO-GO"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}

    def line(self) -> str:
        where = f"{self.run}: " if self.run else ""
        return f"{self.status:<6} {where}{self.item}: {self.reason}"


@dataclass
class GateResult:
    stage: str
    items: list[Item]

    @property
    def go(self) -> bool:
        return bool(self.items) and all(i.ok for i in self.items)

    @property
    def failed(self) -> list[Item]:
        return [i for i in self.items if not i.ok]

    def summary_line(self) -> str:
        n, bad = len(self.items), len(self.failed)
        return (f"gate {self.stage}: GO ({n} of {n} items GO)" if self.go
                else f"gate {self.stage}: NO-GO ({bad} of {n} items NO-GO)")

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "status": "GO" if self.go else "NO-GO", "go": self.go,
                "n_items": len(self.items), "n_no_go": len(self.failed), "items": [i.to_dict() for i in self.items]}


def finite_float(x: Any) -> float | None:
    """A finite float, or None for anything else (empty CSV cells, null, text, inf, nan)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise ArtifactError(path, "missing")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def relative_to_run(text: str, run: str) -> str:
    """``text`` with paths inside ``run`` (as given or absolute) written relative to it."""
    forms = {str(Path(run).resolve()), str(Path(run))} if Path(run).exists() else {run}
    for form in sorted(forms, key=len, reverse=True):
        form = form.rstrip(os.sep)
        if form and form != ".":
            text = re.sub(r"(?<![\w./-])" + re.escape(form + os.sep), "", text)
    return text


def check_item(stage: str, run: str, item: str, fn: Callable[[], tuple[bool, str, Path | None]]) -> Item:
    """Run one check; an artifact error inside it is that item's NO-GO (the message names the file)."""
    try:
        ok, reason, path = fn()
    except FerError as exc:
        ok, reason, path = False, str(exc), getattr(exc, "path", None)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:  # a damaged file: judged, not a crash
        ok, reason, path = False, f"unreadable artifact ({type(exc).__name__}: {exc})", None
    if run:  # files inside the folder named on the line are named relative to it
        reason = relative_to_run(reason, run)
    return Item(stage, run, item, ok, reason, str(path) if path is not None else None)
