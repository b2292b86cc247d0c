"""The recipes under training/recipes are the record of what produced every figure: each must parse, and
every stage its usage line names must have a branch (a stage left out of the case, or a usage line that a
text edit broke, is caught here rather than after hours of training)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
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


CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
GRID_RECORD = Path(__file__).resolve().parents[2] / "training" / "recipes" / "grid.txt"
CONFIG_REF = re.compile(r"training/configs/(?:\$cfg|(?P<path>[\w/.-]+\.json))")


def test_every_config_a_recipe_names_exists_and_loads():
    """An ensemble or NegL config the recipes use must be valid before the teachers it waits for finish."""
    from training.ensemble import load_config
    from training.negl import load_negl_config

    named: set[str] = set()
    for recipe in RECIPES:
        text = recipe.read_text()
        named |= {m["path"] for m in CONFIG_REF.finditer(text) if m["path"]}
        # the ensembles stage loops over names: "for cfg in a b c; do ... training/configs/$cfg.json"
        for loop in re.finditer(r"for cfg in ([\w ]+); do", text):
            named |= {f"{name}.json" for name in loop.group(1).split()}
    assert {"sharp_rn18_rn50.json", "sharp_equal3.json", "sharp_val3.json", "negl/default.json"} <= named
    for name in sorted(named):
        path = CONFIGS / name
        assert path.is_file(), f"{name} is named by a recipe but missing"
        if name.startswith("negl/"):
            load_negl_config(path)
        elif not name.startswith("augment/"):
            cfg = load_config(path)
            # every member is a teacher folder that the sharp recipe trains (R=runs/sharp there)
            sharp = (RECIPES[0].parent / "sharp_cpu.sh").read_text()
            for member in cfg["members"]:
                folder = member["path"].replace("runs/sharp/", "$R/")
                assert folder.startswith("$R/teacher_") and f"{folder} " in sharp, (name, member["path"])


@pytest.mark.skipif(shutil.which("pgrep") is None, reason="needs pgrep")
def test_start_does_not_start_a_run_twice(tmp_path):
    """`start` skips a run whose folder a process is already training into. fer-train puts ``--out DIR``
    last on its command line; the guard once looked for ``--out DIR `` with a trailing space, never
    matched, and a re-run stage started a third training beside two running ones."""
    recipe = next(p for p in RECIPES if p.name == "sharp_cpu.sh").read_text()
    start_fn = re.search(r"^training_of\(\) \{.*?\}$", recipe, re.M).group(0) + "\n" + \
        re.search(r"^start\(\) \{.*?^\}", recipe, re.M | re.S).group(0)
    out = tmp_path / "run_s1"
    # a stand-in for a running training of $FT (here echo): a process whose command line ends in --out OUT
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "echo", "student", "--out", str(out)])
    try:
        script = f'{start_fn}\nFT=echo\nstart {out} {tmp_path}/a.log student --seed 1\n' \
                 f'start {out}-nl {tmp_path}/b.log student --seed 1\nwait\n'
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=20)
        # the same folder written by a training of another program (a real fer-train beside a test's
        # stand-in) does not count: the guard matches $FT's name too
        other = subprocess.run(["bash", "-c", f"{start_fn}\nFT=true\nstart {out} {tmp_path}/d.log student\nwait\n"],
                               capture_output=True, text=True, timeout=20)
    finally:
        busy.kill()
    assert proc.stdout.strip() == f"already running: {out}"
    assert other.stdout.strip() == "" and (tmp_path / "d.log").exists()
    assert not (tmp_path / "a.log").exists()  # not started again
    assert (tmp_path / "b.log").read_text().strip() == f"student --seed 1 --out {out}-nl"  # another folder starts
    # a finished run (summary.json, written after its final evaluation) is not started again either
    done = tmp_path / "done_s1"
    done.mkdir()
    (done / "summary.json").write_text("{}")
    proc = subprocess.run(["bash", "-c", f"{start_fn}\nFT=echo\nstart {done} {tmp_path}/c.log student\nwait\n"],
                          capture_output=True, text=True, timeout=20)
    assert proc.stdout.strip() == f"finished: {done}" and not (tmp_path / "c.log").exists()


FAKE_FER_TRAIN = """#!/usr/bin/env bash
# a stand-in for fer-train: logs its arguments; makes what the next stage reads
echo "$*" >> "$FAKE_LOG"
case "$1" in
  index) mkdir -p "${@: -1}"; echo > "${@: -1}/index.csv" ;;
  teacher) out=${@: -1}; sleep "${FAKE_TEACHER_S:-0}"; mkdir -p "$out"
           [ "$out" = "${FAKE_TEACHER_CRASH:-}" ] && exit 1  # stops unfinished, as a crash would
           echo '{}' > "$out/summary.json"; echo "end $out" >> "$FAKE_LOG" ;;
  ensemble) out=${@: -1}; mkdir -p "$out"; echo '{}' > "$out/ensemble.json" ;;
  pick-ensemble|pick-student) for a in "$@"; do case $a in */ens_*|*/students/*) last=$a ;; esac; done; echo "${last%/}" ;;
  softlabels) mkdir -p "$2/softlabels/x"; echo '{"producer": {"tta": "flip"}}' > "$2/softlabels/x/alignment.json" ;;
  recalibrate-bn) printf '{\n  "chosen": "best_bn.pt"\n}\n' > "$2/bn_recalibration.json"; echo recalibrated > "$2/best_bn.pt" ;;
  export) mkdir -p "$2/export/fp32" "$2/export/fp16"
          for f in model.onnx model_card.json calibration.json classes.json; do echo "$2" > "$2/export/fp16/$f"; done ;;
  student) out=${@: -1}; mkdir -p "$out"; echo '{}' > "$out/summary.json"; echo '{}' > "$out/metrics_test.json"
           for f in args.json classes.json best.pt; do [ -f "$out/$f" ] || echo '{}' > "$out/$f"; done ;;
  nl-testbed) out=${@: -1}; for a in "$@"; do case $a in */smoke_*) out=$a ;; esac; done
              mkdir -p "$out"; echo '{}' > "$out/nl_testbed.json" ;;
  gate) [ "$2" = nl-negl ] && [ "$3" = "${FAKE_SMOKE_NO_GO:-}" ] && exit 1
        [ "$2" = nl-phase ] && printf '{\n  "stage": "nl-phase",\n  "status": "%s",\n  "items": [{"status": "GO"}]\n}\n' \
          "${FAKE_GATE:-GO}" > "$3/gate_nl_phase.json" ;;
esac
exit 0
"""


def _repo_copy(tmp_path: Path) -> Path:
    """The recipes and configs in a fresh repository layout (the recipes cd to the repository root)."""
    root = tmp_path / "repo"
    (root / "training" / "recipes").mkdir(parents=True)
    for recipe in RECIPES:
        shutil.copy(recipe, root / "training" / "recipes" / recipe.name)
    shutil.copy(GRID_RECORD, root / "training" / "recipes" / GRID_RECORD.name)  # the committed grid record
    shutil.copytree(CONFIGS, root / "training" / "configs")
    return root


def _stage(root: Path, tmp_path: Path, recipe: str, *args: str, gate: str = "GO",
           env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run a recipe stage with the stand-in fer-train, which logs its calls to ``_calls(tmp_path)``."""
    fake = tmp_path / "fake-ft"
    fake.write_text(FAKE_FER_TRAIN)
    fake.chmod(0o755)
    return subprocess.run(["bash", str(root / "training" / "recipes" / recipe), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "FER_TRAIN": str(fake), "FAKE_LOG": str(tmp_path / "calls.log"),
                               "FAKE_GATE": gate, "RECIPE_POLL_S": "1", "RECIPE_SETTLE_S": "0", **(env or {})})


def _calls(tmp_path: Path) -> list[str]:
    """The stand-in fer-train's calls so far, one line each."""
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _run(root: Path, tmp_path: Path, recipe: str, *args: str, gate: str = "GO",
         env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """Run a recipe stage that must succeed; the calls it made and its stdout."""
    proc = _stage(root, tmp_path, recipe, *args, gate=gate, env=env)
    assert proc.returncode == 0, proc.stderr
    return _calls(tmp_path), proc.stdout


def _grid(root: Path, arch: str = "s1", epochs: int = 20) -> None:
    """A grid record in the repository copy, in place of the committed one."""
    (root / "training" / "recipes" / "grid.txt").write_text(f"arch={arch}\nepochs={epochs}\n")


def test_the_committed_grid_record_keeps_stem_1_and_20_epochs():
    """training/recipes/grid.txt decides every student's layout and length (and so its configuration name);
    docs/decisions.md gives the figures. A changed record renames the grid: it must be a deliberate change."""
    record = dict(line.split("=", 1) for line in GRID_RECORD.read_text().splitlines() if "=" in line)
    assert record["arch"] == "s1" and record["epochs"] == "20"
    assert float(record["arch_probe_best_val"]) < float(record["arch_base_best_val"]) - 0.005


def _config_seed(call: str) -> str:
    return call.split("--config-name ")[1].split()[0] + "_s" + call.split("--seed ")[1].split()[0]


def test_pipeline_keeps_a_teacher_s_soft_labels_while_a_student_distils_from_them(tmp_path):
    """Redoing soft labels (flip TTA) waits while an unfinished student names the teacher: its resume checks
    the teacher's arrays. The loop keeps waiting (here: stopped by the timeout), calling nothing for it, and
    fills the free cores with the no-distillation seeds meanwhile."""
    root = _repo_copy(tmp_path)
    sharp = root / "runs" / "sharp"
    for name in ("resnet18_48", "resnet50_48", "effb3_48", "fervgg_s_48"):
        t = sharp / f"teacher_{name}"
        (t / "softlabels" / "x").mkdir(parents=True)
        (t / "summary.json").write_text("{}")
        tta = "none" if name == "resnet18_48" else "flip"
        (t / "softlabels" / "x" / "alignment.json").write_text('{"producer": {"tta": "%s"}}' % tta)
        (t / "bn_recalibration.json").write_text('{"chosen": "best.pt"}')
    probe = sharp / "students" / "s1-48-kd-rn18-e40_s1337"
    probe.mkdir(parents=True)
    (probe / "args.json").write_text('{"teacher": [\n    "runs/sharp/teacher_resnet18_48"\n  ]}')
    with pytest.raises(subprocess.TimeoutExpired):
        _stage(root, tmp_path, "sharp_cpu.sh", "pipeline", timeout=8)
    calls = _calls(tmp_path)
    assert not [c for c in calls if "teacher_resnet18_48" in c or c.startswith("ensemble")], calls
    assert not [c for c in calls if c.startswith("teacher")], calls  # all four have finished
    students = [_config_seed(c) for c in calls if c.startswith("student")]
    assert students == ["s1-48-none_s1337", "s1-48-none_s2025", "s1-48-none_s42"], calls


NL_CONFIGS = ("s1-48-kd-val4-nl", "s1-48-kd-val4-nl-negl", "s1-48-dkd-val4-nl-negl")


def test_pipeline_finishes_teachers_then_builds_ensembles_and_starts_every_student(tmp_path):
    """The hands-free stage, on a copy of the repository layout with a stand-in fer-train: a finished
    teacher without soft labels gets finish-teacher, then the five ensembles are built, and the students
    start from the ensemble that pick-ensemble names, with its tag in their configuration names; then the
    NL / NegL chain runs its three phases on the same ensemble."""
    root = _repo_copy(tmp_path)
    sharp = root / "runs" / "sharp"
    for name in ("resnet18_48", "resnet50_48", "effb3_48", "fervgg_s_48"):
        t = sharp / f"teacher_{name}"
        t.mkdir(parents=True)
        (t / "summary.json").write_text("{}")
        if name != "fervgg_s_48":
            (t / "softlabels" / "x").mkdir(parents=True)
            # the ResNet18's soft labels are from before flip TTA: redone; the others' are current
            tta = "none" if name == "resnet18_48" else "flip"
            (t / "softlabels" / "x" / "alignment.json").write_text(
                '{\n  "producer": {\n    "tta": "%s"\n  }\n}\n' % tta)
            (t / "bn_recalibration.json").write_text('{"chosen": "best.pt"}')
    (sharp / "students" / "s1-48-none_s1337").mkdir(parents=True)  # round 1's run, finished
    (sharp / "students" / "s1-48-none_s1337" / "metrics_test.json").write_text("{}")
    calls, _ = _run(root, tmp_path, "sharp_cpu.sh", "pipeline")
    for name in ("fervgg_s_48", "resnet18_48"):
        mine = [c for c in calls if f"teacher_{name}" in c and not c.startswith("gate")]
        assert [c.split()[0] for c in mine][:5] == ["recalibrate-bn", "evaluate", "calibrate", "softlabels",
                                                    "check-alignment"]
        assert "--tta flip" in mine[0] and "--tta flip" in mine[1] and "--tta flip" in mine[3]
        # evaluate and soft labels use the checkpoint recalibrate-bn chose on val
        assert "--checkpoint best_bn.pt" in mine[1] and "--checkpoint best_bn.pt" in mine[3]
    for name in ("resnet50_48", "effb3_48"):  # finished with flip already: only checked
        assert [c.split()[0] for c in calls if f"teacher_{name}" in c and not c.startswith("gate")] == \
            ["check-alignment"]
    built = [c.split()[-1].rsplit("/", 1)[-1] for c in calls if c.startswith("ensemble ")]
    assert built == ["ens_sharp_rn18_rn50", "ens_sharp_equal3", "ens_sharp_val3", "ens_sharp_equal4",
                     "ens_sharp_val4"]
    picked = [c for c in calls if c.startswith("pick-ensemble")]
    assert len(picked) == 1 and picked[0].endswith("ens_sharp_val4")  # the stand-in names the last folder
    students = [c for c in calls if c.startswith("student ") and "--optimizer nl" not in c]
    names = sorted(_config_seed(c) for c in students)
    # s1-48-none_s1337 is round 1's run (finished): the other eight start
    assert names == sorted(f"s1-48-{m}_s{seed}" for m in ("none", "kd-val4", "dkd-val4")
                           for seed in (1337, 2025, 42) if (m, seed) != ("none", 1337))
    assert all("--teacher runs/sharp/ens_sharp_val4" in c for c in students if "--distill none" not in c)
    assert all("--stem-stride 1" in c and "--epochs 20" in c for c in students)
    nl = [c for c in calls if c.startswith("student ") and "--optimizer nl" in c]
    assert sorted(_config_seed(c) for c in nl) == sorted(f"{n}_s{s}" for n in NL_CONFIGS for s in (1337, 2025, 42))
    # the chain starts after the last plain student, not in its place
    assert calls.index(nl[0]) > max(calls.index(c) for c in students)


def _plain_students(root: Path, suffix: str = "") -> Path:
    students = root / "runs" / "sharp" / "students"
    _grid(root, epochs=40 if suffix else 20)
    for m in ("kd", "dkd"):
        for seed in (1337, 2025, 42):
            run = students / f"s1-48-{m}-val4{suffix}_s{seed}"
            run.mkdir(parents=True)
            (run / "summary.json").write_text("{}")
            (run / "metrics_test.json").write_text("{}")
            (students / f"s1-48-{m}-val4{suffix}_s{seed}.log").write_text("")
    return students


def test_nl_chain_runs_the_three_phases_in_order_each_on_the_previous_gate(tmp_path):
    """Phase 2 (NL + KD), 3 (+ NegL), 4 (NL + DKD + NegL), three seeds each; each phase's seed-1337 run
    is gated against its plain students' seeds before the next phase starts; then the paired comparison."""
    root = _repo_copy(tmp_path)
    _plain_students(root)
    ens = "runs/sharp/ens_sharp_val4"
    calls, _ = _run(root, tmp_path, "nl_negl_cpu.sh", "chain", ens, "val4")
    nl = [c for c in calls if c.startswith("student ")]
    order = [_config_seed(c) for c in nl]
    assert sorted(order) == sorted(f"{n}_s{s}" for n in NL_CONFIGS for s in (1337, 2025, 42))
    gates = [c for c in calls if c.startswith("gate nl-phase")]
    assert [g.split()[2].rsplit("/", 1)[-1] for g in gates] == [f"{n}_s1337" for n in NL_CONFIGS]
    for g, plain in zip(gates, ("s1-48-kd-val4", "s1-48-kd-val4", "s1-48-dkd-val4")):
        assert g.count("--baseline") == 3 and all(f"{plain}_s{s}" in g for s in (1337, 2025, 42))
    # phase 1's four gates come before any full NL run; no run of a phase starts before the previous phase's gate
    smoke = [i for i, c in enumerate(calls) if c.startswith("gate nl-negl")]
    assert len(smoke) == 4 and max(smoke) < min(calls.index(c) for c in nl)
    for phase, gate in zip(NL_CONFIGS[1:], gates):
        assert min(calls.index(c) for c in nl if f"--config-name {phase} " in c) > calls.index(gate)
    for c in nl:
        assert "--optimizer nl" in c and f"--teacher {ens}" in c and "--stem-stride 1" in c and "--epochs 20" in c
        negl = "-negl " in c.split("--config-name ")[1][:40] + " "
        assert ("--negl-config training/configs/negl/default.json" in c) == negl
        assert (f"--negl-confusion {ens}" in c) == negl
        assert ("--distill dkd --alpha 0.5 --beta 4" in c) == ("--config-name s1-48-dkd" in c)
    agg = [c for c in calls if c.startswith("aggregate ")]
    assert len(agg) == 1 and agg[0].count("--compare") == 4 and agg[0].count("runs/sharp/students/") == 15


def test_nl_chain_runs_phase_1_first_and_stops_at_its_no_go(tmp_path):
    """Phase 1 (the four testbeds, as runs/ lost them) runs in the chain before any full NL run, skipped where
    done; a testbed's NO-GO leaves phases 2-4 unstarted."""
    root = _repo_copy(tmp_path)
    _plain_students(root)
    done = root / "runs" / "nl" / "smoke_adamw_kd"
    done.mkdir(parents=True)
    (done / "nl_testbed.json").write_text("{}")
    calls, out = _run(root, tmp_path, "nl_negl_cpu.sh", "chain", "runs/sharp/ens_sharp_val4", "val4",
                      env={"FAKE_SMOKE_NO_GO": "runs/nl/smoke_nl_meta_kd"})
    testbeds = [c.split("--out ")[1].split()[0] for c in calls if c.startswith("nl-testbed ")]
    assert testbeds == ["runs/nl/smoke_nl_local_kd", "runs/nl/smoke_nl_meta_kd", "runs/nl/smoke_nl_local_kd_negl"]
    gates = [c.split()[2] for c in calls if c.startswith("gate nl-negl")]
    assert gates == [f"runs/nl/{n}" for n in ("smoke_adamw_kd", "smoke_nl_local_kd", "smoke_nl_meta_kd",
                                               "smoke_nl_local_kd_negl")]
    assert "phase 1 NO-GO" in out and not [c for c in calls if c.startswith("student ")]


def test_nl_chain_stops_at_a_no_go(tmp_path):
    """A NO-GO of phase 2 leaves phases 3 and 4 unstarted; the comparison covers what ran."""
    root = _repo_copy(tmp_path)
    _plain_students(root)
    calls, out = _run(root, tmp_path, "nl_negl_cpu.sh", "chain", "runs/sharp/ens_sharp_val4", "val4", gate="NO-GO")
    nl = [_config_seed(c) for c in calls if c.startswith("student ")]
    assert sorted(nl) == sorted(f"s1-48-kd-val4-nl_s{s}" for s in (1337, 2025, 42))
    assert "phase 2 NO-GO" in out
    agg = [c for c in calls if c.startswith("aggregate ")]
    assert len(agg) == 1 and agg[0].count("--compare") == 1 and "--compare s1-48-kd-val4-nl s1-48-kd-val4" in agg[0]


def test_nl_phases_use_the_plain_students_recipe():
    """The NL runs are paired with the plain students seed by seed (and the nl-phase gate refuses other
    epochs, input sizes or stems), so nl_negl_cpu.sh's full-run recipe must follow sharp_cpu.sh's."""
    texts = {p.name: p.read_text() for p in RECIPES}
    s1 = re.search(r"^S1=\((?P<args>[^)]*)\)", texts["sharp_cpu.sh"], re.M)["args"].split()
    kd_aug = re.search(r"^KD_AUG=\((?P<args>[^)]*)\)", texts["sharp_cpu.sh"], re.M)["args"].split()
    full = re.search(r"^FULL=\((?P<args>[^)]*)\)", texts["nl_negl_cpu.sh"], re.M | re.S)["args"].split()
    pairs = lambda words: {(a, b) for a, b in zip(words, words[1:]) if a.startswith("--")}  # noqa: E731
    assert pairs(s1) | pairs(kd_aug) <= pairs(full)
    common = re.search(r"^COMMON=\((?P<args>[^)]*)\)", texts["sharp_cpu.sh"], re.M)["args"].split()
    assert set(common) <= set(full)
    # neither fixes the length or the stride layout itself: both take them from grid.sh's one decision
    assert "--epochs" not in s1 + full and "--stem-stride" not in s1 + full and "--last-stride" not in s1 + full
    assert '"${arch[@]}"' in texts["sharp_cpu.sh"] and '"${arch[@]}"' in texts["nl_negl_cpu.sh"]
    assert '--epochs "$epochs"' in texts["sharp_cpu.sh"] and '--epochs "$epochs"' in texts["nl_negl_cpu.sh"]
    for name in ("sharp_cpu.sh", "nl_negl_cpu.sh"):
        assert "epochs=$(grid_epochs)" in texts[name] and ". training/recipes/grid.sh" in texts[name]


def test_a_40_epoch_record_makes_the_grid_40_epochs_under_its_own_names(tmp_path):
    """A record with epochs=40: every student of the grid trains 40 epochs, named -e40 so that an aggregate
    never mixes lengths (a 20-epoch s1-48-none_s1337 stays a separate configuration)."""
    root = _repo_copy(tmp_path)
    _grid(root, epochs=40)
    done = root / "runs" / "sharp" / "students" / "s1-48-none_s1337"
    done.mkdir(parents=True)
    (done / "metrics_test.json").write_text("{}")
    calls, _ = _run(root, tmp_path, "sharp_cpu.sh", "students", "runs/sharp/ens_sharp_val4", "val4")
    students = [c for c in calls if c.startswith("student ")]
    assert sorted(_config_seed(c) for c in students) == sorted(
        f"s1-48-{m}-e40_s{seed}" for m in ("none", "kd-val4", "dkd-val4") for seed in (1337, 2025, 42))
    assert all("--epochs 40 " in c for c in students)
    calls, _ = _run(root, tmp_path, "sharp_cpu.sh", "aggregate", "val4")
    agg = [c for c in calls if c.startswith("aggregate ")][-1]
    assert "runs/sharp/students/s1-48-none-e40_s42" in agg and "--compare s1-48-dkd-val4-e40 s1-48-kd-val4-e40" in agg


@pytest.mark.parametrize("record", ["", "arch=s2\nepochs=20\n", "arch=s1\n"], ids=["missing", "arch", "epochs"])
def test_no_student_starts_without_a_valid_grid_record(tmp_path, record):
    """Without the record (or with one that does not say the layout and length), the students stage refuses
    to start anything and says why."""
    root = _repo_copy(tmp_path)
    path = root / "training" / "recipes" / "grid.txt"
    if record:
        path.write_text(record)
    else:
        path.unlink()
    proc = _stage(root, tmp_path, "sharp_cpu.sh", "students", "runs/sharp/ens_sharp_val4", "val4", timeout=60)
    assert proc.returncode == 1 and "grid: " in proc.stderr and "grid.txt" in proc.stderr
    assert not (tmp_path / "calls.log").exists()


def test_nl_chain_follows_a_40_epoch_grid(tmp_path):
    """With a 40-epoch grid the NL phases train 40 epochs too, named after the plain students they pair with."""
    root = _repo_copy(tmp_path)
    _plain_students(root, suffix="-e40")
    ens = "runs/sharp/ens_sharp_val4"
    calls, _ = _run(root, tmp_path, "nl_negl_cpu.sh", "chain", ens, "val4")
    nl = [c for c in calls if c.startswith("student ")]
    names = ("s1-48-kd-val4-e40-nl", "s1-48-kd-val4-e40-nl-negl", "s1-48-dkd-val4-e40-nl-negl")
    assert sorted(_config_seed(c) for c in nl) == sorted(f"{n}_s{s}" for n in names for s in (1337, 2025, 42))
    assert all("--epochs 40 " in c for c in nl)
    gates = [c for c in calls if c.startswith("gate nl-phase")]
    assert all("s1-48-kd-val4-e40_s2025" in g for g in gates[:2]) and "s1-48-dkd-val4-e40_s42" in gates[2]
    agg = [c for c in calls if c.startswith("aggregate ")]
    assert len(agg) == 1 and "--compare s1-48-kd-val4-e40-nl s1-48-kd-val4-e40" in agg[0]
    assert agg[0].count("runs/sharp/students/") == 15 and "results_summary_nl_s1-48-val4-e40.csv" in agg[0]


def test_interim_ships_the_checkpoint_recalibrate_bn_chose(tmp_path):
    """A model folder from a student's best.pt: the trained file is kept as trained.pt, BN recalibration
    is scored on val without TTA (as the app runs the model), and its choice becomes best.pt for export."""
    root = _repo_copy(tmp_path)
    src = root / "runs" / "sharp" / "students" / "s1-48-kd-val4_s1337"
    src.mkdir(parents=True)
    for f, text in (("best.pt", "trained"), ("args.json", "{}"), ("classes.json", "[]")):
        (src / f).write_text(text)
    calls, _ = _run(root, tmp_path, "sharp_cpu.sh", "interim", "runs/sharp/students/s1-48-kd-val4_s1337", "m1")
    d = root / "runs" / "sharp" / "interim" / "m1"
    assert (d / "trained.pt").read_text() == "trained" and (d / "best.pt").read_text().strip() == "recalibrated"
    first = [c.split()[0] for c in calls]
    assert first[:4] == ["recalibrate-bn", "evaluate", "calibrate", "export"]
    assert "--checkpoint trained.pt" in calls[0] and "--tta" not in calls[0]


def test_ship_makes_the_run_pick_student_names_into_a_checked_model_folder(tmp_path):
    """`ship`: pick-student over every student run (the rule lives there, tested in test_pick_student), then
    interim on the chosen run and the issue's ship check on its FP16 folder; nothing is installed."""
    root = _repo_copy(tmp_path)
    students = root / "runs" / "sharp" / "students"
    for name in ("s1-48-kd-val4_s1337", "s1-48-none_s42"):
        (students / name).mkdir(parents=True)
        for f, text in (("best.pt", "trained"), ("args.json", "{}"), ("classes.json", "[]")):
            (students / name / f).write_text(text)
    calls, out = _run(root, tmp_path, "sharp_cpu.sh", "ship")
    pick = calls[0].split()
    assert pick[0] == "pick-student" and pick[-2:] == ["--record", "runs/sharp/ship_choice.json"]
    assert {"runs/sharp/students/s1-48-kd-val4_s1337/", "runs/sharp/students/s1-48-none_s42/"} <= set(pick)
    # the stand-in names the last folder; the model is named after the run, seed and all
    d = "runs/sharp/interim/mnv3-s1-48-none-s42"
    assert "chosen on val: runs/sharp/students/s1-48-none_s42 -> mnv3-s1-48-none-s42" in out
    assert [c.split()[0] for c in calls[1:6]] == ["recalibrate-bn", "evaluate", "calibrate", "export", "check-model"]
    checks = [c for c in calls if c.startswith("check-model") and "--min-accuracy 0.66" in c]
    assert len(checks) == 1 and checks[0].split()[1] == f"{d}/export/fp16"
    assert "--min-macro-f1 0.60 --max-ece 0.03" in checks[0]
    assert any(c.startswith(f"check-ckplus {d}/export/fp16") for c in calls)
    assert not (root / "resources").exists()  # install is a separate step


def test_an_l1_record_gives_every_grid_student_the_last_stride_layout(tmp_path):
    """arch=l1: every grid student trains with --last-stride 1 (native stem), named l1-48-..."""
    root = _repo_copy(tmp_path)
    _grid(root, arch="l1")
    calls, _ = _run(root, tmp_path, "sharp_cpu.sh", "students", "runs/sharp/ens_sharp_val4", "val4")
    students = [c for c in calls if c.startswith("student ")]
    assert sorted(_config_seed(c) for c in students) == sorted(
        f"l1-48-{m}_s{seed}" for m in ("none", "kd-val4", "dkd-val4") for seed in (1337, 2025, 42))
    assert all("--last-stride 1 " in c and "--stem-stride" not in c and "--epochs 20 " in c for c in students)


TEACHER_ARGS = {  # the recipe of every teacher: what docs/results.md reports them with
    "teacher_fervgg_s_48": "--backbone fervgg_s --epochs 30 --input-size 48 --lr 2e-3 --seed 1337",
    "teacher_resnet18_48": "--backbone resnet18 --epochs 24 --input-size 48 --stem-stride 2 --lr 2e-3 --seed 1337",
    "teacher_resnet50_48": "--backbone resnet50 --epochs 20 --input-size 48 --lr 2e-3 --seed 1337",  # native stem
    "teacher_effb3_48": "--backbone efficientnet_b3 --epochs 20 --input-size 48 --lr 2e-3 --seed 1337",
}


@pytest.mark.skipif(shutil.which("pgrep") is None, reason="needs pgrep")
def test_resume_rebuilds_everything_from_an_empty_runs_folder_two_trainings_at_a_time(tmp_path):
    """runs/ was lost once (2026-12-02): `resume` on an empty folder builds the index, trains the four teachers
    in T_ORDER, never more than two trainings at once, finishes each, builds the
    ensembles and starts every student and the NL chain, all from that one command."""
    root = _repo_copy(tmp_path)
    calls, _ = _run(root, tmp_path, "sharp_cpu.sh", "resume", env={"FAKE_TEACHER_S": "2"})
    assert calls[0].startswith("index --data ../shared/data/fer2013 --out runs/index")
    teachers = [c for c in calls if c.startswith("teacher ")]
    assert [c.split("--out runs/sharp/")[1] for c in teachers] == list(TEACHER_ARGS)
    for c in teachers:
        assert TEACHER_ARGS[c.split("--out runs/sharp/")[1]] in c
        assert ("--stem-stride 2" in c) == ("resnet18" in c)
        assert "--random-erasing 0.25 --label-smoothing 0.1 --warmup-epochs 1 --index runs/index" in c
    live = peak = 0
    for c in calls:  # the stand-in logs a teacher when it starts and "end" when it ends
        live += c.startswith("teacher ") - c.startswith("end ")
        peak = max(peak, live)
    assert peak == 2
    for name in TEACHER_ARGS:  # each finished before the ensembles
        assert calls.index(f"check-alignment runs/sharp/{name} --index runs/index") < \
            calls.index(next(c for c in calls if c.startswith("ensemble ")))
    students = [_config_seed(c) for c in calls if c.startswith("student ") and "--optimizer nl" not in c]
    assert sorted(students) == sorted(f"s1-48-{m}_s{seed}" for m in ("none", "kd-val4", "dkd-val4")
                                      for seed in (1337, 2025, 42))
    # the no-distillation seeds wait for every teacher to have started (the teachers are the critical path)
    first_student = min(i for i, c in enumerate(calls) if c.startswith("student "))
    assert first_student > calls.index(teachers[-1])
    assert len([c for c in calls if c.startswith("student ") and "--optimizer nl" in c]) == 9


def test_probe_arch_trains_the_last_stride_student_it_reports(tmp_path):
    """probe-arch is the record of the stride probe behind grid.txt's arch figures."""
    root = _repo_copy(tmp_path)
    calls, _ = _run(root, tmp_path, "sharp_cpu.sh", "probe-arch")
    assert len(calls) == 1 and calls[0].startswith("student --distill none --config-name l1-48-none --epochs 20 ")
    assert "--last-stride 1" in calls[0] and "--stem-stride" not in calls[0] and "--seed 1337" in calls[0]
    assert calls[0].endswith("--out runs/sharp/students/l1-48-none_s1337")


def test_pipeline_stops_on_a_teacher_that_crashes_three_times(tmp_path):
    """A teacher that keeps stopping unfinished is not restarted forever: after three starts the pipeline
    stops with a message naming its log (the other teachers it started meanwhile finish)."""
    root = _repo_copy(tmp_path)
    proc = _stage(root, tmp_path, "sharp_cpu.sh", "pipeline", timeout=120,
                  env={"FAKE_TEACHER_CRASH": "runs/sharp/teacher_resnet18_48"})
    assert proc.returncode == 1 and "teacher_resnet18_48 did not finish in 3 starts" in proc.stderr
    calls = _calls(tmp_path)
    assert len([c for c in calls if c.startswith("teacher ") and "teacher_resnet18_48" in c]) == 3
    assert not [c for c in calls if c.startswith("ensemble ")]


@pytest.mark.skipif(not all(shutil.which(t) for t in ("pgrep", "xz", "setsid", "sha256sum")),
                    reason="needs pgrep, xz, setsid and sha256sum")
def test_gpu_lease_carries_the_data_over_two_calls_and_brings_back_results_and_the_shipped_model(tmp_path):
    """sharp_gpu.sh, as a lease would use it, with the stand-in fer-train and a tiny data set: `pack` splits
    the data into parts that travel one per call; `run` starts nothing until every part is stashed, then
    unpacks byte for byte, runs the CPU recipe with more trainings at once (all four teachers together),
    aggregate and ship after it, and `collect` leaves the records and the chosen model folder in $OUT."""
    import os
    import tarfile

    root = _repo_copy(tmp_path)
    (root / "training" / "recipes" / "sharp_gpu.sh").chmod(0o755)
    (root / ".gitignore").write_text("/.gpu/\n")
    data = tmp_path / "shared" / "data"
    faces = {f"fer2013/{split}/happy/{split}_{i}.jpg": os.urandom(3000) for split in ("train", "test") for i in range(4)}
    faces["ckplus48/S005/a.png"] = os.urandom(500)
    for rel, blob in faces.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(blob)
    (tmp_path / "wheels").mkdir()
    dev, out = tmp_path / "device", tmp_path / "out"
    env = {"GPU_WHEELS": str(tmp_path / "wheels"), "GPU_PART_BYTES": "12000", "GPU_WORK": str(dev),
           "OUT": str(out), "GPU_POLL_S": "1", "GPU_SHIP_S": "0"}
    packed = _stage(root, tmp_path, "sharp_gpu.sh", "pack", env=env)
    assert packed.returncode == 0, packed.stderr
    gpu = root / ".gpu"
    parts = sorted(gpu.glob("fer2013.tar.xz.part-*"))
    assert len(parts) >= 2 and "sharp_gpu.sh stash" in packed.stdout
    later = tmp_path / "later"
    later.mkdir()
    for p in parts[1:]:  # the first call carries only the first part
        p.rename(later / p.name)
    first = _stage(root, tmp_path, "sharp_gpu.sh", "stash", env=env)
    early = _stage(root, tmp_path, "sharp_gpu.sh", "run", "5", env=env)
    assert first.returncode == 0 and early.returncode == 1 and "not every part is stashed" in early.stderr
    assert _calls(tmp_path) == []  # nothing started
    for p in later.iterdir():
        p.rename(gpu / p.name)
    try:
        assert _stage(root, tmp_path, "sharp_gpu.sh", "stash", env=env).returncode == 0
        # as in a rehearsal at toy size: the extra options reach every training, last, so they override
        proc = _stage(root, tmp_path, "sharp_gpu.sh", "run", "150",
                      env={**env, "FAKE_TEACHER_S": "2", "RECIPE_TRAIN_EXTRA": "--epochs 1 --max-steps-per-epoch 2"})
    finally:  # nothing left running past the test
        pid = dev / "pipeline.pid"
        if pid.exists():
            subprocess.run(["pkill", "-s", pid.read_text().strip()], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    for rel, blob in faces.items():
        assert (dev / "data" / rel).read_bytes() == blob
    calls = _calls(tmp_path)
    assert calls[0] == "--help"  # the lease checks that its fer-train starts before anything else
    assert calls[1] == f"index --data {dev}/data/fer2013 --out runs/index"
    live = peak = 0
    for c in calls:
        live += c.startswith("teacher ") - c.startswith("end ")
        peak = max(peak, live)
    assert peak == 4  # RECIPE_SLOTS 9: every teacher at once
    assert len([c for c in calls if c.startswith("student ") and "--optimizer nl" not in c]) == 9
    trainings = [c for c in calls if c.startswith(("teacher ", "student "))]
    assert len(trainings) == 4 + 9 + 9 and all(" --epochs 1 --max-steps-per-epoch 2 --out " in c for c in trainings)
    assert (dev / "pipeline.rc").read_text().strip() == "0" and (dev / "ship.rc").read_text().strip() == "0"
    agg = [c for c in calls if c.startswith("aggregate ")]
    ship = [c for c in calls if c.startswith("check-ckplus ")]
    assert agg and ship and f"--data {dev}/data/ckplus48" in ship[0]
    assert calls.index(agg[0]) > max(i for i, c in enumerate(calls) if c.startswith("student "))
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
    assert "runs/index/index.csv" in names and "runs/sharp/ship.log" in names
    assert not [n for n in names if n.endswith((".pt", ".onnx", ".npy"))]
    model = out / "model"
    # the ship check's verdict comes back with the model: install only on GO (sharp_cpu.sh install)
    assert sorted(p.name for p in model.iterdir()) == ["calibration.json", "classes.json", "model.onnx",
                                                        "model_card.json", "ship_check.txt"]
    assert len(list(out.rglob("*.*"))) <= 8  # the device tool brings back at most 8 files
    assert (model / "model.onnx").read_text().strip().startswith("runs/sharp/interim/mnv3-")


def test_the_gpu_lease_s_fer_train_runs_this_repository_without_an_install(tmp_path):
    """The device image has torch, timm and onnx but not this package: the lease's fer-train puts the
    repository copy (and the carried wheels' folder) on sys.path. Its name keeps the recipes' process
    matching (``fer-train (teacher|student) ... --out``) working."""
    import os

    env = {"GPU_WORK": str(tmp_path / "w"), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    recipe = Path(__file__).resolve().parents[2] / "training" / "recipes" / "sharp_gpu.sh"
    made = subprocess.run(["bash", str(recipe), "wrapper"], capture_output=True, text=True, env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    wrapper = Path(made.stdout.strip())
    assert wrapper.name == "fer-train" and os.access(wrapper, os.X_OK)
    helped = subprocess.run([str(wrapper), "--help"], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert helped.returncode == 0 and "teacher" in helped.stdout, helped.stderr
