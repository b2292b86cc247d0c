"""``fer-train gate STAGE RUN_DIR...``: the go/no-go checklist of one pipeline stage, read from artifacts.

Each stage of the plan (DESIGN.md §7) is done when its artifacts say so, not when
someone remembers running it. The gate reads the folders the stage wrote and checks
every item of that stage's checklist; each item is printed as ``GO`` or ``NO-GO``
with the file it looked at and why. The exit status is 0 when every item is GO,
1 when any is NO-GO, and 2 (as for every ``fer-train`` step) when the gate cannot
run at all (a RUN_DIR that is not a folder, an unreadable notes file).

Checklists (training/README.md, "Gates and the report"):

- ``teachers`` (per run): soft labels at T=2 under ``softlabels/<index>-<fp8>/``; aligned
  (every structural check of ``training.alignment.structural_problems`` against the index,
  plus a passed diagnostic recorded in alignment.json); calibration.json and
  reliability_metrics.json present and valid (and naming the same T); per-class F1 and the
  confusion matrix of val and test.
- ``ensembles`` (per run): ensemble.json; every member's soft labels aligned and unchanged
  since the ensemble was built; the fused and split targets aligned; weights and
  temperatures recorded; calibration.json and reliability_metrics.json.
- ``students``: per run a config and a seed in args.json and a valid calibration.json; per
  config at least three seeds and a config row with mean, std and a bootstrap CI in
  results_summary_students.csv covering exactly these runs; the exported FP32 and FP16
  model cards' ``parity_max_abs_prob_diff`` within ``training.export.PARITY_TOLERANCE``;
  latency.csv with rows for the exported models.
- ``demo`` (per session folder): per_frame.csv with the session-log columns, score.json with
  a non-null accuracy over scored frames, and the session's row in demo_results_summary.csv
  (agreeing with score.json).
- ``nl-negl`` (per testbed run of ``fer-train nl-testbed``, phase 1 of the NL / NegL work):
  ``nl_testbed.json`` with ``status: passed`` and every test passed, and ``memory_trace.csv``
  whose resident memory (and GPU memory, when traced) grows by at most the bound after the
  warm-up steps. Absent files are NO-GO "not run".
- ``nl-phase`` (per full student run, with ``--baseline`` plain runs): finite losses and gradient
  norms, memory flat, val accuracy not below the plain seeds' mean minus one sd
  (``training.gate_nl_phase``; the decision is also written to RUN/gate_nl_phase.json).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from fer_models.classes import FER7, read_classes_json
from fer_models.files import read_json
from fer_models.errors import ArtifactError, FerError
from training.gate_items import GateResult, Item, check_item, finite_float, read_csv_rows

STAGES: tuple[str, ...] = ("teachers", "ensembles", "students", "demo", "nl-negl", "nl-phase")
SOFTLABEL_TEMPERATURE = 2.0  # the plan's targets (DESIGN.md §4: probabilities at T=2)
MIN_SEEDS = 3
NL_TESTBED_FILE = "nl_testbed.json"
MEMORY_TRACE_FILE = "memory_trace.csv"
MEMORY_GROWTH_BOUND_MB = 64.0  # default bound on memory growth after warm-up (nl_testbed.json may set its own)
MEMORY_WARMUP_STEPS = 0
SESSION_LOG_PREFIX = ("frame_index", "time_sec", "manual_label", "pred_label") + tuple(f"prob_{c}" for c in FER7)
SPLITS = ("val", "test")


# ----------------------------------------------------------------------------- small readers

def _obj(path: Path) -> dict[str, Any]:
    """A JSON object or ArtifactError naming the file."""
    if not path.is_file():
        raise ArtifactError(path, "missing")
    data = read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(path, "expected a JSON object")
    return data


def _obj_or_empty(path: Path) -> dict[str, Any]:
    try:
        return _obj(path)
    except FerError:
        return {}


def _run_classes(run: Path) -> list[str]:
    try:
        return read_classes_json(run / "classes.json") if (run / "classes.json").is_file() else list(FER7)
    except FerError:
        return list(FER7)


# ----------------------------------------------------------------------------- the index and soft labels

class IndexCache:
    """Loads each index folder once; remembers why one could not be loaded."""

    def __init__(self, explicit: Path | None = None):
        self.explicit = Path(explicit) if explicit else None
        self._loaded: dict[str, Any] = {}

    def load(self, path: Path) -> Any:
        from training.index import load_index

        key = str(Path(path).resolve())
        if key not in self._loaded:
            try:
                self._loaded[key] = load_index(path)
            except (FerError, OSError) as exc:
                self._loaded[key] = exc
        return self._loaded[key]

    def for_run(self, run: Path, extra: Sequence[Path] = ()) -> tuple[Any, str]:
        """(CanonicalIndex or None, how it was found / why not): --index, args.json, then ``extra`` run folders."""
        candidates: list[Path] = []
        if self.explicit is not None:
            candidates.append(self.explicit)
        else:
            for folder in (run, *extra):
                args = _obj_or_empty(folder / "args.json")
                for key in ("index_dir", "index"):
                    if args.get(key):
                        p = Path(str(args[key]))
                        candidates += [p] if p.is_absolute() else [p, folder.parent / p]
        errors = []
        for p in candidates:
            if not (p / "index.json").is_file() and not p.is_file():
                errors.append(f"{p}: no index.json")
                continue
            got = self.load(p)
            if isinstance(got, Exception):
                errors.append(str(got))
                continue
            return got, str(p)
        if not candidates:
            return None, "no index to check alignment against: args.json names none (pass --index)"
        return None, "no index to check alignment against: " + "; ".join(dict.fromkeys(errors)) + " (pass --index)"


def index_for_run(cache: IndexCache, run: Path) -> tuple[Any, str]:
    """The index of a run, an ensemble's found through its members' producer runs (ensembles write no args.json)."""
    ens = _obj_or_empty(run / "ensemble.json")
    producers = [Path(str((m.get("producer") or {}).get("run_dir"))) for m in ens.get("members") or []
                 if isinstance(m, dict) and (m.get("producer") or {}).get("run_dir")]
    idx, how = cache.for_run(run, producers)
    if idx is not None and ens.get("index_fingerprint") not in (None, idx.fingerprint):
        return None, (f"the index found ({how}, fingerprint {idx.fingerprint[:8]}) is not the one "
                      f"ensemble.json names ({str(ens['index_fingerprint'])[:8]}); pass --index")
    return idx, how


def softlabel_folders(run: Path) -> list[Path]:
    """Every soft-label folder of a run: softlabels/*/ and softlabels_split/*/ holding alignment.json."""
    out: list[Path] = []
    for parent in ("softlabels", "softlabels_split"):
        out += sorted(p.parent for p in (run / parent).glob("*/alignment.json"))
    return out


def alignment_status(folder: Path, index: Any) -> tuple[bool, str]:
    """(aligned, reason): the gate's structural checks against ``index`` plus a passed recorded diagnostic."""
    from training.alignment import structural_problems

    problems, meta, _ = structural_problems(folder, index)
    diag = meta.get("diagnostic") or {}
    status = diag.get("status", "not_run")
    if problems:
        return False, f"{folder / 'alignment.json'}: " + "; ".join(problems)
    if status != "passed":
        return False, (f"{folder / 'alignment.json'}: structural checks passed but the alignment diagnostic is "
                       f"{status!r}, not 'passed' (run fer-train check-alignment {folder} --index ...)")
    diff = diag.get("max_abs_diff")
    extra = f", {diag.get('recomputed_rows')} rows recomputed, max |diff| {float(diff):.2g}" if diff is not None else ""
    return True, (f"{folder / 'alignment.json'}: structural checks passed against index {index.name!r} "
                  f"({index.fingerprint[:8]}), {int(meta['n_rows'])} rows; diagnostic passed{extra}")


# ----------------------------------------------------------------------------- shared items

def check_calibration(run: Path) -> tuple[bool, str, Path]:
    """calibration.json loads (fer_models.calibration) and holds before/after metrics of val and test."""
    from fer_models.calibration import load_calibration

    path = run / "calibration.json"
    if not path.is_file():
        return False, f"{path} missing (run fer-train calibrate {run})", path
    cal = load_calibration(path, _run_classes(run))
    raw = _obj(path)
    missing = [f"metrics_{w}.{s}.{k}" for w in ("before", "after") for s in SPLITS for k in ("nll", "ece")
               if finite_float(((raw.get(f"metrics_{w}") or {}).get(s) or {}).get(k)) is None]
    if missing:
        return False, f"{path}: no {', '.join(missing)} (recalibrate with the current fer-train)", path
    b, a = raw["metrics_before"]["test"], raw["metrics_after"]["test"]
    return True, (f"{path}: T={cal.temperature:g} fitted on {cal.split or '?'}; test ECE {b['ece']:.3f} -> "
                  f"{a['ece']:.3f}, NLL {b['nll']:.3f} -> {a['nll']:.3f}"), path


def check_reliability(run: Path) -> tuple[bool, str, Path]:
    """reliability_metrics.json: the sweep, non-empty before/after bins, and the T of calibration.json."""
    from fer_models.calibration import load_reliability_metrics

    path = run / "reliability_metrics.json"
    if not path.is_file():
        return False, f"{path} missing (run fer-train calibrate {run})", path
    rep = load_reliability_metrics(path)
    if not rep["grid"]:
        return False, f"{path}: empty temperature grid", path
    for key in ("bins_before", "bins_after"):
        bins = rep.get(key)
        if not isinstance(bins, list) or not bins or not all(isinstance(b, dict) and "count" in b for b in bins):
            return False, f"{path}: no reliability bins {key!r}", path
    chosen = finite_float(rep.get("chosen_temperature"))
    cal = _obj_or_empty(run / "calibration.json")
    t = finite_float(cal.get("temperature"))
    if chosen is None:
        return False, f"{path}: no chosen_temperature", path
    if t is not None and abs(chosen - t) > 1e-9:
        return False, (f"{path}: chosen_temperature {chosen:g} but calibration.json has T={t:g}: one of them is "
                       "stale (rerun fer-train calibrate)"), path
    n = sum(int(b["count"]) for b in rep["bins_before"])
    return True, f"{path}: {len(rep['grid'])} temperatures swept, {len(rep['bins_before'])} bins over {n} samples", path


def _confusion(run: Path, split: str, metrics: dict[str, Any]) -> tuple[list[list[float]] | None, Path]:
    path = run / f"confusion_{split}.json"
    for key in ("confusion", "confusion_matrix"):
        value = metrics.get(key)
        if isinstance(value, dict):
            value = value.get("matrix")
        if isinstance(value, list):
            return value, run / f"metrics_{split}.json"
    if path.is_file():
        m = _obj(path).get("matrix")
        return (m if isinstance(m, list) else None), path
    return None, path


def read_confusion(run: Path, split: str) -> tuple[list[list[float]] | None, list[str], Path]:
    """The confusion matrix of one split (metrics_<split>.json or confusion_<split>.json), its classes and file."""
    metrics = _obj_or_empty(run / f"metrics_{split}.json")
    cm, path = _confusion(run, split, metrics)
    classes = _run_classes(run)
    if path.name.startswith("confusion_") and path.is_file():
        classes = list(_obj(path).get("classes") or classes)
    return cm, classes, path


def check_split_report(run: Path, split: str) -> tuple[bool, str, Path]:
    """metrics_<split>.json with a per-class F1 for every class, and a KxK confusion matrix adding up to n."""
    path = run / f"metrics_{split}.json"
    if not path.is_file():
        return False, f"{path} missing (run fer-train evaluate {run} --index ...)", path
    metrics = _obj(path)
    classes = _run_classes(run)
    f1 = metrics.get("per_class_f1")
    if isinstance(f1, list):
        f1 = dict(zip(classes, f1))
    if not isinstance(f1, dict) or [c for c in classes if finite_float(f1.get(c)) is None]:
        return False, f"{path}: no per_class_f1 for every class of {classes}", path
    cm, cm_path = _confusion(run, split, metrics)
    k = len(classes)
    if cm is None:
        return False, (f"{cm_path}: no confusion matrix (metrics_{split}.json 'confusion' or "
                       f"confusion_{split}.json)"), cm_path
    if len(cm) != k or any(len(r) != k for r in cm):
        return False, f"{cm_path}: confusion matrix is not {k}x{k}", cm_path
    total = int(sum(sum(r) for r in cm))
    n = metrics.get("n")
    if n is not None and int(n) != total:
        return False, f"{cm_path}: confusion matrix counts {total} samples, {path.name} records n={n}", cm_path
    worst = min(classes, key=lambda c: float(f1[c]))
    return True, (f"{path.name} + {cm_path.name}: acc {float(metrics.get('accuracy', float('nan'))):.3f}, per-class "
                  f"F1 for {k} classes (lowest {worst} {float(f1[worst]):.3f}), {k}x{k} confusion over {total}"), path


# ----------------------------------------------------------------------------- stages

def gate_teachers(runs: Sequence[Path], index: Path | None = None) -> list[Item]:
    st, cache, items = "teachers", IndexCache(index), []
    for run in runs:
        name = str(run)
        idx, how = index_for_run(cache, run)
        folder: Path | None = None
        if idx is not None:
            cand = run / "softlabels" / idx.short_name
            folder = cand if (cand / "alignment.json").is_file() else None
        else:
            found = [f for f in softlabel_folders(run) if f.parent.name == "softlabels"]
            folder = found[0] if found else None

        def present(folder: Path | None = folder, idx: Any = idx) -> tuple[bool, str, Path | None]:
            if folder is None:
                where = run / "softlabels" / (idx.short_name if idx is not None else "<index>-<fp8>")
                return False, (f"no {where / 'alignment.json'} (run fer-train softlabels {run} --index ... "
                               f"--temperature {SOFTLABEL_TEMPERATURE:g})"), where
            meta = _obj(folder / "alignment.json")
            t = finite_float(meta.get("temperature"))
            if t is None or abs(t - SOFTLABEL_TEMPERATURE) > 1e-9:
                return False, (f"{folder / 'alignment.json'}: soft labels at T={meta.get('temperature')}, the plan's "
                               f"targets are at T={SOFTLABEL_TEMPERATURE:g}"), folder
            return True, (f"{folder / 'alignment.json'}: kind {meta.get('kind')}, T={t:g}, "
                          f"{meta.get('n_rows')} rows"), folder

        def aligned(folder: Path | None = folder, idx: Any = idx, how: str = how) -> tuple[bool, str, Path | None]:
            if folder is None:
                return False, "no soft-label folder to check", None
            if idx is None:
                return False, f"{folder}: {how}", folder
            ok, reason = alignment_status(folder, idx)
            return ok, reason, folder / "alignment.json"

        items.append(check_item(st, name, f"soft labels T={SOFTLABEL_TEMPERATURE:g}", present))
        items.append(check_item(st, name, "alignment", aligned))
        items.append(check_item(st, name, "calibration.json", lambda run=run: check_calibration(run)))
        items.append(check_item(st, name, "reliability_metrics.json", lambda run=run: check_reliability(run)))
        for split in SPLITS:
            items.append(check_item(st, name, f"per-class F1 + confusion ({split})",
                                lambda run=run, split=split: check_split_report(run, split)))
        items.append(check_item(st, name, "same TTA in metrics and soft labels",
                                lambda run=run, folder=folder: check_same_tta(run, folder)))
    return items


def check_same_tta(run: Path, folder: Path | None) -> tuple[bool, str, Path | None]:
    """The teacher's val/test figures (and so its calibration) and its soft labels come from one predictor:
    both with flip test-time augmentation or both without (a field absent from older files means none)."""
    if folder is None:
        return False, "no soft-label folder to compare", None
    made = (_obj(folder / "alignment.json").get("producer") or {}).get("tta") or "none"
    for split in SPLITS:
        path = run / f"metrics_{split}.json"
        if not path.is_file():
            return False, f"no {path}", path
        scored = _obj(path).get("tta") or "none"
        if scored != made:
            return False, (f"{path}: scored with TTA {scored!r}, soft labels {folder} made with {made!r}: re-run "
                           f"evaluate and softlabels with the same --tta"), path
    return True, f"TTA {made!r} in metrics ({', '.join(SPLITS)}) and soft labels", folder


def gate_ensembles(runs: Sequence[Path], index: Path | None = None) -> list[Item]:
    st, cache, items = "ensembles", IndexCache(index), []
    for run in runs:
        name = str(run)
        path = run / "ensemble.json"
        try:
            ens = _obj(path)
        except FerError as exc:
            items.append(Item(st, name, "ensemble.json", False, f"{exc} (build it with fer-train ensemble CONFIG "
                                                                f"--index ... --out {run})", str(path)))
            items.append(check_item(st, name, "calibration", lambda run=run: check_calibration(run)))
            continue
        members = [m for m in ens.get("members") or [] if isinstance(m, dict)]
        idx, how = index_for_run(cache, run)

        def record(ens: dict = ens, members: list = members, idx: Any = idx) -> tuple[bool, str, Path]:
            if not members:
                return False, f"{path}: lists no members", path
            if idx is not None and ens.get("index_fingerprint") not in (None, idx.fingerprint):
                return False, (f"{path}: built on index fingerprint {str(ens['index_fingerprint'])[:8]}, the index "
                               f"checked against is {idx.fingerprint[:8]}"), path
            return True, f"{path}: {ens.get('name', run.name)!r}, {len(members)} members", path

        items.append(check_item(st, name, "ensemble.json", record))
        for m in members:
            def member(m: dict = m, idx: Any = idx, how: str = how) -> tuple[bool, str, Path | None]:
                folder = Path(str(m.get("softlabel_dir", "")))
                if not m.get("softlabel_dir") or not (folder / "alignment.json").is_file():
                    return False, f"{path}: member {m.get('name')!r} soft labels {folder} not found", folder
                if idx is None:
                    return False, f"{folder}: {how}", folder
                ok, reason = alignment_status(folder, idx)
                if ok:
                    now = _obj(folder / "alignment.json").get("arrays_sha256")
                    if m.get("arrays_sha256") and now != m["arrays_sha256"]:
                        return False, (f"{folder / 'alignment.json'}: arrays changed since the ensemble was built "
                                       f"(sha256 {str(now)[:12]} vs {str(m['arrays_sha256'])[:12]} in {path})"), folder
                return ok, reason, folder / "alignment.json"

            items.append(check_item(st, name, f"member {m.get('name')} aligned", member))
        for label, key, sub in (("fused targets aligned", "fused_dir", "softlabels"),
                                ("split targets aligned", "split_dir", "softlabels_split")):
            def target(key: str = key, sub: str = sub, ens: dict = ens, idx: Any = idx,
                       how: str = how) -> tuple[bool, str, Path | None]:
                folder = Path(str(ens.get(key))) if ens.get(key) else None
                if (folder is None or not (folder / "alignment.json").is_file()) and idx is not None:
                    folder = run / sub / idx.short_name
                if folder is None or not (folder / "alignment.json").is_file():
                    return False, f"no {sub}/<index>-<fp8>/alignment.json in {run}", folder
                if idx is None:
                    return False, f"{folder}: {how}", folder
                ok, reason = alignment_status(folder, idx)
                return ok, reason, folder / "alignment.json"

            items.append(check_item(st, name, label, target))

        def weights(ens: dict = ens, members: list = members) -> tuple[bool, str, Path]:
            w = ens.get("weights")
            names = [str(m.get("name")) for m in members]
            if not isinstance(w, dict) or sorted(w) != sorted(names):
                return False, f"{path}: 'weights' does not name every member ({names})", path
            vals = [finite_float(w[n]) for n in names]
            if any(v is None or v < 0 for v in vals) or abs(sum(vals) - 1.0) > 1e-6:  # type: ignore[arg-type]
                return False, f"{path}: weights {w} are not non-negative and summing to 1", path
            src = ens.get("weights_source")
            if not src:
                return False, f"{path}: no weights_source (config or searched on val)", path
            return True, f"{path}: " + ", ".join(f"{n} {w[n]:.3f}" for n in names) + f" ({src})", path

        def temperatures(ens: dict = ens, members: list = members) -> tuple[bool, str, Path]:
            t = finite_float(ens.get("temperature"))
            if t is None or t <= 0:
                return False, f"{path}: no positive 'temperature'", path
            missing = [str(m.get("name")) for m in members if finite_float(m.get("member_temperature")) is None]
            if missing:
                return False, f"{path}: members {missing} have no member_temperature", path
            mt = ", ".join(f"{m.get('name')} T={float(m['member_temperature']):g}" for m in members)
            return True, f"{path}: fused at T={t:g}; {mt}", path

        items.append(check_item(st, name, "weights recorded", weights))
        items.append(check_item(st, name, "temperatures recorded", temperatures))
        items.append(check_item(st, name, "calibration", lambda run=run: check_calibration(run)))
        items.append(check_item(st, name, "reliability_metrics.json", lambda run=run: check_reliability(run)))
    return items


def _find_default(name: str, runs: Sequence[Path]) -> tuple[Path | None, list[Path]]:
    """The first ``name`` next to the runs: in each run's parent, their common parent, then the current folder."""
    looked: list[Path] = []
    parents = list(dict.fromkeys(r.resolve().parent for r in runs))
    if runs:
        try:
            parents.append(Path(os.path.commonpath([str(r.resolve()) for r in runs])))
        except ValueError:
            pass
    for folder in (*parents, Path.cwd()):
        p = folder / name
        if p not in looked:
            looked.append(p)
        if p.is_file():
            return p, looked
    return None, looked


def run_seed(run: Path) -> Any:
    args = _obj_or_empty(run / "args.json")
    return args.get("seed", _obj_or_empty(run / "seed.json").get("seed"))


def export_folders(runs: Sequence[Path], extra: Sequence[Path] = ()) -> list[Path]:
    """Export folders to check: RUN/export for every run that has one, plus those given."""
    found = [r / "export" for r in runs if (r / "export").is_dir()]
    return list(dict.fromkeys([*found, *map(Path, extra)]))


def read_card(folder: Path) -> dict[str, Any]:
    return _obj(folder / "model_card.json")


def gate_students(runs: Sequence[Path], summary: Path | None = None, latency: Path | None = None,
                  exports: Sequence[Path] = (), seeds: int = MIN_SEEDS) -> list[Item]:
    from training.aggregate import SUMMARY_COLUMNS, run_config_name
    from training.bench import LATENCY_COLUMNS
    from training.export import PARITY_TOLERANCE

    st, items = "students", []
    configs: dict[str, list[Path]] = {}
    for run in runs:
        name = str(run)

        def config_seed(run: Path = run) -> tuple[bool, str, Path]:
            path = run / "args.json"
            args = _obj(path)
            seed = run_seed(run)
            if not args.get("config"):
                return False, f"{path}: no 'config' (fer-train student records it; --config-name)", path
            if seed is None:
                return False, f"{path}: no 'seed' (nor in seed.json)", path
            return True, f"{path}: config {args['config']!r}, seed {seed}", path

        it = check_item(st, name, "config + seed", config_seed)
        items.append(it)
        try:
            configs.setdefault(run_config_name(run), []).append(run)
        except (FerError, ValueError, OSError):
            configs.setdefault(run.name, []).append(run)
        items.append(check_item(st, name, "calibration.json", lambda run=run: check_calibration(run)))

    sum_path, looked = ((Path(summary), [Path(summary)]) if summary
                        else _find_default("results_summary_students.csv", runs))
    for cfg, members in configs.items():
        def n_seeds(members: list = members) -> tuple[bool, str, None]:
            s = [run_seed(r) for r in members]
            distinct = sorted({str(x) for x in s if x is not None})
            listing = ", ".join(f"{r.name} (seed {x})" for r, x in zip(members, s))
            if len(distinct) < seeds:
                return False, f"{len(distinct)} distinct seed(s), {seeds} needed: {listing}", None
            return True, f"{len(distinct)} distinct seeds: {listing}", None

        def aggregate_row(cfg: str = cfg, members: list = members) -> tuple[bool, str, Path | None]:
            if sum_path is None:
                return False, ("no results_summary_students.csv (looked at " + ", ".join(map(str, looked)) +
                               "; run fer-train aggregate RUNS --out ... and pass --summary)"), None
            header, rows = read_csv_rows(sum_path)
            missing_cols = [c for c in ("row_type", "config", "run", "n_runs", "test_accuracy", "test_accuracy_std",
                                        "test_accuracy_ci_low", "test_accuracy_ci_high") if c not in header]
            if missing_cols:
                return False, f"{sum_path}: not a results_summary_students.csv (no columns {missing_cols}; expected " \
                              f"{','.join(SUMMARY_COLUMNS)})", sum_path
            crow = [r for r in rows if r.get("row_type") == "config" and r.get("config") == cfg]
            if not crow:
                return False, (f"{sum_path}: no config row for {cfg!r} (rerun fer-train aggregate over its "
                               "seeds)"), sum_path
            row = crow[-1]
            mean, std = finite_float(row.get("test_accuracy")), finite_float(row.get("test_accuracy_std"))
            lo, hi = finite_float(row.get("test_accuracy_ci_low")), finite_float(row.get("test_accuracy_ci_high"))
            if None in (mean, std, lo, hi):
                return False, (f"{sum_path}: config row {cfg!r} lacks mean, std or CI (std needs two or more "
                               "seeds)"), sum_path
            if not lo <= mean <= hi:  # type: ignore[operator]
                return False, (f"{sum_path}: config {cfg!r} mean {mean:.4f} outside its CI "
                               f"[{lo:.4f}, {hi:.4f}]"), sum_path
            in_csv = {r.get("run") for r in rows if r.get("row_type") == "run" and r.get("config") == cfg}
            absent = [r.name for r in members if r.name not in in_csv]
            if absent:
                return False, f"{sum_path}: runs {absent} of config {cfg!r} are not in the aggregate: it is stale " \
                              "(rerun fer-train aggregate)", sum_path
            return True, (f"{sum_path}: {cfg} n={row.get('n_runs')} test acc {mean:.4f} +- {std:.4f} "
                          f"(95% CI {lo:.4f}-{hi:.4f})"), sum_path

        items.append(check_item(st, f"config {cfg}", f"{seeds} seeds", n_seeds))
        items.append(check_item(st, f"config {cfg}", "aggregate with CI", aggregate_row))

    folders = export_folders(runs, exports)
    model_ids: list[str] = []
    if not folders:
        items.append(Item(st, "", "export parity", False, "no export/fp32 + export/fp16 in any run given (run "
                                                          "fer-train export RUN --fp16, or pass --export DIR)"))
    for ex in folders:
        def parity(ex: Path = ex) -> tuple[bool, str, Path]:
            parts, ok = [], True
            for precision in ("fp32", "fp16"):
                card_path = ex / precision / "model_card.json"
                if not card_path.is_file():
                    return False, f"{card_path} missing (fer-train export --fp16 writes fp32/ and fp16/)", card_path
                card = read_card(ex / precision)
                diff = finite_float(card.get("parity_max_abs_prob_diff"))
                tol = PARITY_TOLERANCE[precision]
                if diff is None:
                    return False, f"{card_path}: no parity_max_abs_prob_diff recorded", card_path
                if card.get("model_id"):
                    model_ids.append(str(card["model_id"]))
                ok &= diff <= tol
                parts.append(f"{precision} {diff:.2e} {'<=' if diff <= tol else '>'} {tol:g}")
            return ok, "model_card.json parity max |p_torch - p_onnx|: " + ", ".join(parts) + \
                f" over {card.get('parity_images', '?')} images", ex

        items.append(check_item(st, str(ex), "export parity", parity))

    lat_path, lat_looked = ((Path(latency), [Path(latency)]) if latency
                            else _find_default("latency.csv", [*runs, *folders]))

    def latency_table() -> tuple[bool, str, Path | None]:
        if lat_path is None:
            return False, ("no latency.csv (looked at " + ", ".join(map(str, lat_looked)) +
                           "; run fer-train bench EXPORT/fp32 EXPORT/fp16 --csv ... and pass --latency)"), None
        header, rows = read_csv_rows(lat_path)
        missing = [c for c in LATENCY_COLUMNS[:6] if c not in header]
        if missing:
            return False, f"{lat_path}: not a latency.csv (no columns {missing})", lat_path
        good = [r for r in rows
                if (finite_float(r.get("median_ms")) or 0) > 0 and (finite_float(r.get("p90_ms")) or 0) > 0]
        if not good:
            return False, f"{lat_path}: no row with a positive median_ms and p90_ms", lat_path
        absent = [m for m in dict.fromkeys(model_ids) if m not in {r.get("model") for r in good}]
        if absent:
            return False, f"{lat_path}: no latency rows for the exported models {absent}", lat_path
        b1 = [r for r in good if str(r.get("batch")) == "1"] or good
        best = min(b1, key=lambda r: float(r["median_ms"]))
        return True, (f"{lat_path}: {len(good)} rows; fastest batch {best.get('batch')}: {best.get('model')} "
                      f"{best.get('precision')} {best.get('provider')} median "
                      f"{float(best['median_ms']):.2f} ms"), lat_path

    items.append(check_item(st, "", "latency table", latency_table))
    return items


def demo_summary_path(session: Path, summary: Path | None = None) -> tuple[Path | None, list[Path]]:
    """--summary, else the replay default (inside the session) or the app default (next to it)."""
    if summary:
        return Path(summary), [Path(summary)]
    looked = [session / "demo_results_summary.csv", session.parent / "demo_results_summary.csv"]
    return next((p for p in looked if p.is_file()), None), looked


def session_source(session: Path) -> str | None:
    try:
        _, rows = read_csv_rows(session / "actions.csv")
    except (FerError, OSError, csv.Error):
        return None
    return next((r.get("value") for r in rows if r.get("kind") == "source"), None)


def gate_demo(sessions: Sequence[Path], summary: Path | None = None) -> list[Item]:
    st, items = "demo", []
    for s in sessions:
        name = str(s)

        def logs(s: Path = s) -> tuple[bool, str, Path]:
            path = s / "per_frame.csv"
            if not path.is_file():
                return False, f"{path} missing: not a session folder", path
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, [])
                n = sum(1 for _ in reader)
            if tuple(header[:len(SESSION_LOG_PREFIX)]) != SESSION_LOG_PREFIX:
                return False, f"{path}: header does not start with {','.join(SESSION_LOG_PREFIX)}", path
            if n == 0:
                return False, f"{path}: no frame rows", path
            src = session_source(s)
            return True, f"{path}: {n} frames" + (f", source {src}" if src else ""), path

        def scored(s: Path = s) -> tuple[bool, str, Path]:
            path = s / "score.json"
            if not path.is_file():
                return False, f"{path} missing (end the session, or fer-score {s / 'per_frame.csv'})", path
            score = _obj(path)
            acc = finite_float(score.get("accuracy"))
            if acc is None:
                return False, (f"{path}: accuracy is null ({score.get('n_scored_frames', 0)} scored frames): no "
                               "labelled segment long enough to score; label the session"), path
            f1 = finite_float(score.get("macro_f1"))
            lock = finite_float(score.get("lock_rate"))
            return True, (f"{path}: accuracy {acc:.3f}" + (f", macro-F1 {f1:.3f}" if f1 is not None else "") +
                          (f", lock rate {lock:.2f}" if lock is not None else "") +
                          f" over {score.get('n_scored_frames')} scored frames in {score.get('n_segments')} "
                          "segments"), path

        def summary_row(s: Path = s) -> tuple[bool, str, Path | None]:
            path, looked = demo_summary_path(s, summary)
            if path is None or not path.is_file():
                return False, "no demo_results_summary.csv (looked at " + ", ".join(map(str, looked)) + \
                    "; pass --summary)", path
            _, rows = read_csv_rows(path)
            mine = [r for r in rows if r.get("session") == s.name or
                    (r.get("per_frame_csv") and Path(r["per_frame_csv"]).parent.resolve() == s.resolve())]
            if not mine:
                return False, f"{path}: no row for session {s.name}", path
            row = mine[-1]
            score = _obj_or_empty(s / "score.json")
            a, b = finite_float(row.get("accuracy")), finite_float(score.get("accuracy"))
            if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-6):  # type: ignore[operator]
                return False, f"{path}: the row's accuracy {row.get('accuracy')!r} differs from score.json's {b}", path
            return True, (f"{path}: row scored {row.get('scored_at')}, model {row.get('model_id')}, accuracy "
                          f"{row.get('accuracy')}"), path

        items.append(check_item(st, name, "session logs", logs))
        items.append(check_item(st, name, "scored", scored))
        items.append(check_item(st, name, "summary row", summary_row))
    return items


def read_memory_trace(path: Path) -> dict[str, list[float]]:
    """memory_trace.csv columns (step, rss_mb, optional gpu_mb) as float lists."""
    header, rows = read_csv_rows(path)
    if "step" not in header or "rss_mb" not in header:
        raise ArtifactError(path, f"needs columns step,rss_mb[,gpu_mb], found {header}")
    out: dict[str, list[float]] = {}
    for col in ("step", "rss_mb", "gpu_mb"):
        if col in header:
            vals = [finite_float(r.get(col)) for r in rows]
            if any(v is None for v in vals):
                raise ArtifactError(path, f"column {col} holds a value that is not a number")
            out[col] = vals  # type: ignore[assignment]
    return out


def memory_growth(trace: dict[str, list[float]], warmup_steps: int = MEMORY_WARMUP_STEPS) -> dict[str, float]:
    """Per traced column: peak after warm-up minus the first value after warm-up (MB)."""
    keep = [i for i, s in enumerate(trace["step"]) if s >= warmup_steps]
    out = {}
    for col in ("rss_mb", "gpu_mb"):
        if col in trace and keep:
            vals = [trace[col][i] for i in keep]
            out[col] = max(vals) - vals[0]
    return out


def gate_nl_negl(runs: Sequence[Path], bound_mb: float | None = None) -> list[Item]:
    st, items = "nl-negl", []
    for run in runs:
        name = str(run)
        path = run / NL_TESTBED_FILE

        def testbed(run: Path = run, path: Path = path) -> tuple[bool, str, Path]:
            if not path.is_file():
                return False, f"not run: no {NL_TESTBED_FILE} in {run}", path
            tb = _obj(path)
            tests = [t for t in tb.get("tests") or [] if isinstance(t, dict)]
            bad = [str(t.get("name")) for t in tests if t.get("status") != "passed"]
            if tb.get("status") != "passed":
                return False, f"{path}: status {tb.get('status')!r}, not 'passed'" + \
                    (f"; failed: {', '.join(bad)}" if bad else ""), path
            if not tests:
                return False, f"{path}: lists no tests", path
            if bad:
                return False, f"{path}: status 'passed' but tests {bad} did not pass", path
            return True, f"{path}: {tb.get('method', 'nl/negl')} testbed passed ({len(tests)} tests)", path

        def memory(run: Path = run, path: Path = path) -> tuple[bool, str, Path]:
            tb = _obj_or_empty(path)
            mem = tb.get("memory") or {}
            trace_path = run / str(mem.get("trace") or MEMORY_TRACE_FILE)
            if not trace_path.is_file():
                return False, f"not run: no {trace_path.name} in {run}", trace_path
            bound = float(bound_mb if bound_mb is not None else mem.get("bound_mb", MEMORY_GROWTH_BOUND_MB))
            warm = int(mem.get("warmup_steps", MEMORY_WARMUP_STEPS))
            trace = read_memory_trace(trace_path)
            growth = memory_growth(trace, warm)
            n_after = sum(1 for s in trace["step"] if s >= warm)
            if n_after < 2:
                return False, (f"{trace_path}: {n_after} rows after the {warm} warm-up steps; 2 or more "
                               "needed"), trace_path
            parts = [f"{col} +{g:.1f} MB" for col, g in growth.items()]
            ok = all(g <= bound for g in growth.values())
            return ok, (f"{trace_path}: peak growth after {warm} warm-up steps " + ", ".join(parts) +
                        f" {'<=' if ok else '>'} bound {bound:g} MB over {n_after} rows"), trace_path

        items.append(check_item(st, name, "testbed passed", testbed))
        items.append(check_item(st, name, "memory flat", memory))
    return items


def run_gate(stage: str, run_dirs: Iterable[str | Path], index: Path | None = None, summary: Path | None = None,
             latency: Path | None = None, exports: Sequence[Path] = (), seeds: int = MIN_SEEDS,
             memory_bound_mb: float | None = None, baselines: Sequence[Path] = ()) -> GateResult:
    """The checklist of ``stage`` over ``run_dirs``; raises ArtifactError for a RUN_DIR that is not a folder."""
    if stage not in STAGES:
        raise ArtifactError(None, f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
    runs = [Path(r) for r in run_dirs]
    for r in runs:
        if not r.is_dir():
            raise ArtifactError(r, "not a folder")
    if stage == "teachers":
        items = gate_teachers(runs, index)
    elif stage == "ensembles":
        items = gate_ensembles(runs, index)
    elif stage == "students":
        items = gate_students(runs, summary, latency, exports, seeds)
    elif stage == "demo":
        items = gate_demo(runs, summary)
    elif stage == "nl-negl":
        items = gate_nl_negl(runs, memory_bound_mb)
    else:
        from training.gate_nl_phase import gate_nl_phase

        for b in baselines:
            if not Path(b).is_dir():
                raise ArtifactError(Path(b), "not a folder (--baseline)")
        items = gate_nl_phase(runs, [Path(b) for b in baselines], memory_bound_mb)
    if not runs:
        items = [Item(stage, "", "folders", False, f"no {stage} folders given")]
    return GateResult(stage, items)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gate", help="go/no-go checklist of a stage (teachers, ensembles, students, demo, nl-negl, "
                                    "nl-phase)")
    p.add_argument("stage", choices=STAGES)
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR",
                   help="run folders of the stage (session folders for demo)")
    p.add_argument("--index", type=Path, default=None, help="index to check soft labels against (default: args.json's)")
    p.add_argument("--summary", type=Path, default=None,
                   help="students: results_summary_students.csv; demo: demo_results_summary.csv "
                        "(default: looked for next to the folders)")
    p.add_argument("--latency", type=Path, default=None, help="students: latency.csv (default: next to the runs)")
    p.add_argument("--export", type=Path, action="append", default=[], metavar="DIR",
                   help="students: an export folder (holding fp32/ and fp16/) besides RUN/export")
    p.add_argument("--seeds", type=int, default=MIN_SEEDS, help="students: seeds needed per config")
    p.add_argument("--memory-bound-mb", type=float, default=None,
                   help=f"nl-negl: allowed memory growth after warm-up (default: nl_testbed.json's, else "
                        f"{MEMORY_GROWTH_BOUND_MB:g})")
    p.add_argument("--baseline", type=Path, action="append", default=[], metavar="RUN_DIR",
                   help="nl-phase: a plain student run of the same recipe (repeat for each seed; two or more)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    if args.baseline and args.stage != "nl-phase":
        raise ArtifactError(args.baseline[0], "--baseline applies to the nl-phase stage only")
    res = run_gate(args.stage, args.run_dirs, args.index, args.summary, args.latency, args.export, args.seeds,
                   args.memory_bound_mb, args.baseline)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        for item in res.items:
            print(item.line())
        print(res.summary_line())
    return 0 if res.go else 1
