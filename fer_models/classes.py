"""Canonical FER7 class list and the classes.json contract (DESIGN.md §4).

The order is FER2013's label ids. Every per-class array in every file follows the
classes.json of its folder; anything with another list or order is refused, since
a silently permuted class list turns a good model into a confidently wrong one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from fer_models.errors import ArtifactError, ClassListMismatch
from fer_models.files import read_json, resolve_file, write_json

FER7: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
UNSTABLE = "(unstable)"

_BY_LOWER = {name.lower(): name for name in FER7}


def canonical_class_name(name: str, classes: Sequence[str] = FER7) -> str:
    """Map a class name to its display form in ``classes``, ignoring case and spaces."""
    key = str(name).strip().lower()
    for cls in classes:
        if cls.lower() == key:
            return cls
    raise ValueError(f"unknown class name {name!r}; expected one of {list(classes)}")


def class_index(name: str, classes: Sequence[str] = FER7) -> int:
    """Index of ``name`` in ``classes`` (case-insensitive)."""
    return list(classes).index(canonical_class_name(name, classes))


def validate_class_list(classes: Iterable[str], where: str | Path | None = None) -> list[str]:
    """Check a class list is non-empty, of strings and without duplicates (case-insensitive)."""
    out = [str(c) for c in classes]
    if len(out) < 2:
        raise ArtifactError(where, f"class list needs at least two classes, got {out}")
    lowered = [c.lower() for c in out]
    if len(set(lowered)) != len(lowered):
        raise ArtifactError(where, f"class list has duplicates: {out}")
    return out


def check_same_classes(
    expected: Sequence[str], actual: Sequence[str], where: str | Path | None = None, what: str = "classes"
) -> None:
    """Refuse a class list that differs from ``expected`` in names or order."""
    exp = [c.lower() for c in expected]
    act = [c.lower() for c in actual]
    if exp != act:
        if sorted(exp) == sorted(act):
            problem = f"{what} are in a different order: expected {list(expected)}, found {list(actual)}"
        else:
            problem = f"{what} differ: expected {list(expected)}, found {list(actual)}"
        raise ClassListMismatch(where, problem)


def write_classes_json(folder: str | Path, classes: Sequence[str] = FER7, dataset: str = "fer2013") -> Path:
    """Write ``classes.json`` into ``folder`` and return its path."""
    path = Path(folder) / "classes.json"
    return write_json(path, {"classes": validate_class_list(classes, path), "dataset": dataset})


def read_classes_json(path: str | Path) -> list[str]:
    """Read a classes.json file (or the one inside a folder) and validate it."""
    path = resolve_file(path, "classes.json")
    data = read_json(path)
    if not isinstance(data, dict) or "classes" not in data:
        raise ArtifactError(path, "expected an object with a 'classes' list")
    return validate_class_list(data["classes"], path)
