"""The recipes under training/recipes are the record of what produced every figure: each must parse, and
every stage its usage line names must have a branch (a stage left out of the case, or a usage line that a
text edit broke, is caught here rather than after hours of training)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

RECIPES = sorted((Path(__file__).resolve().parents[2] / "training" / "recipes").glob("*.sh"))
USAGE = re.compile(r"^# Usage: \S+ STAGE[^(]*\((?P<stages>[^)]*)\)", re.M)
BRANCH = re.compile(r"^(?P<name>[a-z0-9-]+)\)", re.M)

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_parses_and_every_stage_has_a_branch(recipe):
    assert subprocess.run(["bash", "-n", str(recipe)], capture_output=True).returncode == 0
    text = recipe.read_text()
    usage = USAGE.search(text)
    if usage is None:  # recipes without stages (one sequence) have nothing more to check
        return
    named = [part.split()[0] for part in usage["stages"].split("|")]
    branches = set(BRANCH.findall(text))
    assert named and not [s for s in named if s not in branches], (named, sorted(branches))


def test_a_recipe_without_fer_train_stops_with_a_message(tmp_path):
    recipe = next(p for p in RECIPES if p.name == "sharp_cpu.sh")
    proc = subprocess.run(["bash", str(recipe), "status"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "FER_TRAIN": "no-such-fer-train"})
    assert proc.returncode == 2 and "not found" in proc.stderr
