"""``fer-train report --out DIR``: the professor-ready report (report.html + report.pdf) from artifact folders.

Nothing in the report is typed in: every figure is read from the folders given
(args.json, seed.json, summary.json, calibration.json, reliability_metrics.json,
metrics_<split>.json, confusion_<split>.json, ensemble.json, softlabels/*/alignment.json,
export/*/model_card.json, score.json) and the summaries (results_summary_students.csv,
latency.csv, demo_results_summary.csv); go/no-go per stage comes from ``training.gate``;
protocol thresholds come from the code that applies them (fer_models.scoring and
fer_models.temporal defaults). Regenerating the report from the same folders gives
the same numbers; changing an artifact changes the report.

Folders are sorted into stages by what they hold: ensemble.json -> ensembles,
per_frame.csv -> demo sessions, nl_testbed.json -> nl-negl, args.json of a
``student`` command (or with a ``config``) -> students, any other run -> teachers.
"""

from __future__ import annotations

import csv
import datetime as _dt
import inspect
import os
import platform
import re
import shlex
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from fer_models.classes import FER7
from fer_models.errors import ArtifactError, FerError

from training import gate as g
from training.gate_items import finite_float
from training.report_table import run_row
from training.report_render import Bullets, Code, Document, Figures, Heading, PageBreak, Para, Table, write_document

# the gates the report runs by itself; nl-phase needs the researcher's choice of plain baselines
# (fer-train gate nl-phase RUN --baseline ...) and records its decision in the run folder instead
REPORT_STAGES: tuple[str, ...] = tuple(s for s in g.STAGES if s != "nl-phase")
STAGE_TITLES = {"teachers": "Teachers", "ensembles": "Ensembles", "students": "Students (KD/DKD)",
                "demo": "Live demo", "nl-negl": "NL / NegL"}
# the roadmap of DESIGN.md §7, item -> the gates that decide it
PLAN = (
    ("1. fer_models core, skeleton, README, CI", ()),
    ("2. Teachers, canonical index, soft labels with alignment gates, calibration, ensembles",
     ("teachers", "ensembles")),
    ("3. Students (KD/DKD, 3 seeds), ONNX export and latency, the bundled default model", ("students",)),
    ("4. The desktop app: live demo, labeling, scoring panels", ("demo",)),
    ("5. NL and NegL on students, with memory-safety rails", ("nl-negl",)),
    ("6. Domain adaptation: hard samples, webcam augmentations, per-class temperature, fairness", ()),
    ("7. Installer, go/no-go gates per stage, professor-ready report", ()),
)
PACKAGES = ("ferlab", "numpy", "torch", "timm", "onnx", "onnxruntime", "opencv-python-headless", "scikit-learn",
            "pandas", "matplotlib", "fpdf2", "PySide6")


# ----------------------------------------------------------------------------- reading

def classify(folder: Path) -> str:
    """Which stage a folder belongs to (see the module docstring); "unknown" when none fits."""
    if (folder / "ensemble.json").is_file():
        return "ensembles"
    if (folder / "per_frame.csv").is_file():
        return "demo"
    args = g._obj_or_empty(folder / "args.json")
    if (folder / g.NL_TESTBED_FILE).is_file() or str(args.get("command", "")).lower() in ("nl", "negl", "nl-negl"):
        return "nl-negl"
    if args.get("command") == "student" or args.get("config") or args.get("distillation"):
        return "students"
    if args or (folder / "calibration.json").is_file():
        return "teachers"
    return "unknown"


def _f(x: Any, nd: int = 3) -> str:
    v = finite_float(x)
    return "–" if v is None else f"{v:.{nd}f}"


def _csv_rows(path: Path | None) -> list[dict[str, str]]:
    if path is None or not Path(path).is_file():
        return []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _cal(run: Path) -> dict[str, Any]:
    return g._obj_or_empty(run / "calibration.json")


def _m(cal: dict[str, Any], when: str, split: str, key: str) -> float | None:
    return finite_float(((cal.get(f"metrics_{when}") or {}).get(split) or {}).get(key))


def _short(path: Path | str, base: Path | None = None) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to((base or Path.cwd()).resolve()))
    except ValueError:
        return str(p)


def _clip(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def git_state(repo: Path) -> dict[str, str]:
    """Commit and uncommitted-change count of ``repo`` (or why not)."""
    if not shutil.which("git"):
        return {"commit": "unknown (git not installed)", "changes": "unknown"}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=20)
        if commit.returncode != 0:
            return {"commit": f"unknown (not a git checkout: {repo})", "changes": "unknown"}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, timeout=60)
        n = len([ln for ln in status.stdout.splitlines() if ln.strip()])
        return {"commit": commit.stdout.strip(), "changes": f"{n} tracked file(s) modified" if n else "clean"}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": f"unknown ({exc})", "changes": "unknown"}


def hardware() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    mem = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    gpu = "none detected (no nvidia-smi)"
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            gpu = "; ".join(ln.strip() for ln in out.stdout.splitlines() if ln.strip()) or "none reported by nvidia-smi"
        except (OSError, subprocess.SubprocessError) as exc:
            gpu = f"unknown ({exc})"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem, "gpu": gpu,
            "os": platform.platform(), "python": platform.python_version()}


def package_versions() -> list[tuple[str, str]]:
    out = []
    for name in PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return out


def read_notes(path: Path | None) -> dict[str, list[str]]:
    """Optional notes file: markdown-ish text; items ("- ...") under headings containing done / next / risk."""
    notes: dict[str, list[str]] = {"intro": [], "done": [], "next": [], "risks": []}
    if path is None:
        return notes
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "notes file not found")
    section = "intro"
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            head = line.lstrip("#").strip().lower()
            section = ("done" if "done" in head else "next" if "next" in head else "risks" if "risk" in head
                       else "intro")
            continue
        notes[section].append(line[2:].strip() if line.startswith(("- ", "* ")) else line)
    return notes


def protocol_defaults() -> dict[str, Any]:
    """Scoring and smoothing defaults as the code applies them (never retyped here)."""
    from fer_models.scoring import score_session
    from fer_models.temporal import Smoother

    sp = inspect.signature(score_session).parameters
    tp = inspect.signature(Smoother.__init__).parameters
    return {"min_hold_ms": sp["min_hold_ms"].default, "exclusion_ms": sp["exclusion_ms"].default,
            "lock_ms": sp["lock_ms"].default, "alpha": tp["alpha"].default, "delta": tp["delta"].default,
            "window": tp["window"].default, "min_count": tp["min_count"].default}


# ----------------------------------------------------------------------------- figures

def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability_figure(before: list[dict], after: list[dict], path: Path, title: str, label_b: str,
                       label_a: str) -> Path:
    """Accuracy against mean confidence per non-empty bin, before and after calibration, on one axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.9), dpi=130)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    for bins, lab, colour, marker in ((before, label_b, "#c44e52", "o"), (after, label_a, "#4c72b0", "s")):
        pts = [(b["confidence"], b["accuracy"], b["count"]) for b in bins
               if b.get("count") and b.get("confidence") is not None and b.get("accuracy") is not None]
        if not pts:
            continue
        conf, acc, n = zip(*pts)
        total = float(sum(n))
        ax.plot(conf, acc, "-", color=colour, lw=1.2, alpha=0.8)
        ax.scatter(conf, acc, s=[12 + 300 * c / total for c in n], color=colour, marker=marker, alpha=0.85,
                   label=lab, zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean top-1 confidence in bin")
    ax.set_ylabel("accuracy in bin")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion_figure(cm: Sequence[Sequence[float]], classes: Sequence[str], path: Path, title: str) -> Path:
    """Counts, coloured by the row share (recall)."""
    import numpy as np

    plt = _plt()
    a = np.asarray(cm, dtype=np.float64)
    rows = a.sum(axis=1, keepdims=True)
    norm = np.divide(a, rows, out=np.zeros_like(a), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.6, 4.1), dpi=130)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=9)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(a[i, j])}", ha="center", va="center", fontsize=6.5,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _display(run: str) -> str:
    """A gate item's folder as a short name: the folder's name (parent/name for export folders)."""
    if not run:
        return "(stage)"
    if run.startswith("config "):
        return run
    p = Path(run)
    return f"{p.parent.name}/{p.name}" if p.name == "export" else p.name


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ----------------------------------------------------------------------------- the report

class Report:
    def __init__(self, run_dirs: Sequence[Path], out_dir: Path, summary: Path | None = None,
                 latency: Path | None = None, demo_summary: Path | None = None, exports: Sequence[Path] = (),
                 index: Path | None = None, notes: Path | None = None, title: str | None = None):
        self.out = Path(out_dir)
        self.fig_dir = self.out / "figures"
        self.index = index
        self.notes = read_notes(notes)
        self.title = title or "Facial-expression recognition: results and readiness report"
        self.groups: dict[str, list[Path]] = {s: [] for s in REPORT_STAGES}
        self.unknown: list[Path] = []
        for d in map(Path, run_dirs):
            if not d.is_dir():
                raise ArtifactError(d, "not a folder")
            stage = classify(d)
            (self.unknown if stage == "unknown" else self.groups[stage]).append(d)
        self.models = self.groups["teachers"] + self.groups["ensembles"] + self.groups["students"]
        self.summary = Path(summary) if summary else (
            g._find_default("results_summary_students.csv", self.groups["students"])[0]
            if self.groups["students"] else None)
        self.exports = g.export_folders(self.models, exports)
        self.latency = Path(latency) if latency else (
            g._find_default("latency.csv", [*self.groups["students"], *self.exports])[0]
            if (self.groups["students"] or self.exports) else None)
        self.demo_summary = demo_summary
        self.gates = self._gates(exports)
        self.generated = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        self.repo = Path(__file__).resolve().parents[1]

    # -- data
    def _gates(self, exports: Sequence[Path]) -> dict[str, g.GateResult]:
        out = {}
        for stage in REPORT_STAGES:
            runs = self.groups[stage]
            if not runs:
                why = (f"not run: no {g.NL_TESTBED_FILE} (no NL/NegL run folder given)" if stage == "nl-negl"
                       else f"not assessed: no {stage} folders given to the report")
                out[stage] = g.GateResult(stage, [g.Item(stage, "", "folders", False, why)])
                continue
            out[stage] = g.run_gate(stage, runs, index=self.index,
                                    summary=self.demo_summary if stage == "demo" else self.summary,
                                    latency=self.latency, exports=exports)
        return out

    def aggregate_rows(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        rows = _csv_rows(self.summary)
        return [r for r in rows if r.get("row_type") == "config"], [r for r in rows if r.get("row_type") == "paired"]

    def results_rows(self) -> tuple[list[dict[str, Any]], list[str]]:
        rows, skipped = [], []
        for d in self.models:
            try:
                rows.append(run_row(d))
            except FerError as exc:
                skipped.append(f"{d.name}: {exc}")
        return rows, skipped

    def cards(self) -> list[tuple[Path, str, dict[str, Any]]]:
        out = []
        for ex in self.exports:
            for precision in ("fp32", "fp16"):
                card = g._obj_or_empty(ex / precision / "model_card.json")
                if card:
                    out.append((ex, precision, card))
        return out

    def sessions(self) -> list[dict[str, Any]]:
        out = []
        for s in self.groups["demo"]:
            score = g._obj_or_empty(s / "score.json")
            path, _ = g.demo_summary_path(s, self.demo_summary)
            rows = [r for r in _csv_rows(path) if r.get("session") == s.name or
                    (r.get("per_frame_csv") and Path(r["per_frame_csv"]).parent.resolve() == s.resolve())]
            out.append({"folder": s, "score": score, "row": rows[-1] if rows else {}, "source": g.session_source(s),
                        "summary": path})
        return out

    # -- sections
    def build(self) -> Document:
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        git = git_state(self.repo)
        self.git = git
        doc = Document(self.title, f"Generated {self.generated} by fer-train report from {len(self.models)} run "
                                   f"folder(s), {len(self.groups['demo'])} demo session(s) and "
                                   f"{len(self.groups['nl-negl'])} NL/NegL folder(s); code at commit "
                                   f"{git['commit'][:12]} ({git['changes']}).")
        self.executive_summary(doc)
        self.results(doc)
        self.alignment(doc)
        self.calibration(doc)
        self.confusions(doc)
        self.demo(doc)
        self.nl(doc)
        self.risks(doc)
        self.update(doc)
        self.manifest(doc)
        self.appendix(doc)
        return doc

    def executive_summary(self, doc: Document) -> None:
        doc.add(Heading("Executive summary"))
        t, e, s = self.groups["teachers"], self.groups["ensembles"], self.groups["students"]
        configs, paired = self.aggregate_rows()
        backbones = sorted({str(g._obj_or_empty(r / "args.json").get("backbone", "?")) for r in t})
        what = (f"**What was built.** A facial-expression recognition system in three parts that meet only through "
                f"files: the desktop app fer-demo (live webcam or video, face detection, calibrated 7-class "
                f"recognition, temporal smoothing, hotkey labelling and transition-fair scoring), the shared core "
                f"fer_models, and the fer-train research pipeline (canonical index, teachers, soft labels behind "
                f"alignment gates, calibration, ensembles, KD/DKD students, ONNX export, latency). This report "
                f"reads {len(t)} teacher run(s)" + (f" ({', '.join(backbones)})" if backbones else "") +
                f", {len(e)} ensemble(s), {len(s)} student run(s) in {len(configs)} aggregated configuration(s), "
                f"{len(self.exports)} export folder(s), {len(self.groups['demo'])} demo session(s) and "
                f"{len(self.groups['nl-negl'])} NL/NegL run(s).")
        doc.add(Para(what))
        doc.add(Table(["result", "value (read from the artifacts)", "source"], self.headline_rows(configs, paired),
                      widths=[2.5, 5.0, 3.1], font_size=7.6,
                      caption="Student figures are seed means with the bootstrap 95% interval of fer-train aggregate "
                              "(test images resampled, pooled over seeds); teacher and ensemble figures are single "
                              "runs (accuracy at T=1; ECE before → after the temperature fitted on val)."))
        rows = []
        for stage in REPORT_STAGES:
            res = self.gates[stage]
            first = res.failed[0] if res.failed else None
            rows.append([STAGE_TITLES[stage], "GO" if res.go else "NO-GO",
                         f"{len(res.items) - len(res.failed)} / {len(res.items)}",
                         _clip(((first.run + ": ") if first and first.run else "") +
                               (f"{first.item}: {first.reason}" if first else "every item GO"), 170)])
        doc.add(Table(["stage", "gate", "items GO", "first NO-GO (all items: appendix A)"], rows,
                      widths=[2.0, 1.0, 0.9, 6.7], font_size=7.4, align=["L", "C", "C", "L"],
                      caption="fer-train gate STAGE RUN_DIR... prints the same checklists; exit 0 only when every "
                              "item is GO."))
        doc.add(PageBreak())

    def headline_rows(self, configs: list[dict[str, str]], paired: list[dict[str, str]]) -> list[list[str]]:
        rows: list[list[str]] = []
        src = self.summary.name if self.summary else ""
        ranked = sorted(configs, key=lambda r: finite_float(r.get("test_accuracy")) or 0.0, reverse=True)
        for r in ranked[:4]:
            std = finite_float(r.get("test_accuracy_std"))
            rows.append([f"student {r.get('config')} ({r.get('n_runs')} seeds)",
                         f"test acc {_f(r.get('test_accuracy'))}" + (f" ± {std:.3f}" if std is not None else "") +
                         f" (95% CI {_f(r.get('test_accuracy_ci_low'))}–{_f(r.get('test_accuracy_ci_high'))}); "
                         f"macro-F1 {_f(r.get('test_macro_f1'))} (CI {_f(r.get('test_macro_f1_ci_low'))}–"
                         f"{_f(r.get('test_macro_f1_ci_high'))})", src])
        for r in paired[:3]:
            rows.append([f"paired {r.get('config')}",
                         f"test acc difference {float(r['test_accuracy']):+.3f} (95% CI "
                         f"{float(r['test_accuracy_ci_low']):+.3f} to {float(r['test_accuracy_ci_high']):+.3f}); "
                         f"{r.get('note', '')}" if finite_float(r.get("test_accuracy")) is not None else "–", src])
        for stage, label in (("teachers", "best teacher"), ("ensembles", "best ensemble")):
            scored = [(d, _cal(d)) for d in self.groups[stage]]
            scored = [(d, c) for d, c in scored if _m(c, "before", "test", "accuracy") is not None]
            if scored:
                d, c = max(scored, key=lambda dc: _m(dc[1], "before", "test", "accuracy") or 0.0)
                rows.append([f"{label}: {d.name}",
                             f"test acc {_f(_m(c, 'before', 'test', 'accuracy'))}, macro-F1 "
                             f"{_f(_m(c, 'before', 'test', 'macro_f1'))}; test ECE {_f(_m(c, 'before', 'test', 'ece'))}"
                             f" → {_f(_m(c, 'after', 'test', 'ece'))} at T={_f(c.get('temperature'), 2)}",
                             f"{d.name}/calibration.json"])
        by_export: dict[Path, list[str]] = {}
        for ex, precision, card in self.cards():
            parity = finite_float(card.get("parity_max_abs_prob_diff")) or 0
            by_export.setdefault(ex, []).append(f"{precision} {parity:.1e}"
                                                if card.get("parity_max_abs_prob_diff") is not None
                                                else f"{precision} not recorded")
        for ex, parts in by_export.items():
            rows.append([f"export parity: {ex.parent.name}", "max |p_torch − p_onnx|: " + ", ".join(parts),
                         "export/*/model_card.json"])
        lat = [r for r in _csv_rows(self.latency) if str(r.get("batch")) == "1" and finite_float(r.get("median_ms"))]
        for r in sorted(lat, key=lambda r: float(r["median_ms"]))[:2]:
            rows.append([f"latency batch 1: {r.get('precision')}",
                         f"{r.get('model')} on {r.get('provider')}: median {float(r['median_ms']):.2f} ms, p90 "
                         f"{_f(r.get('p90_ms'), 2)} ms", self.latency.name if self.latency else ""])
        for s in self.sessions()[:3]:
            sc = s["score"]
            rows.append([f"demo session {s['folder'].name}",
                         f"accuracy {_f(sc.get('accuracy'))}, macro-F1 {_f(sc.get('macro_f1'))}, lock rate "
                         f"{_f(sc.get('lock_rate'), 2)} over {sc.get('n_scored_frames', '–')} scored frames",
                         "score.json"])
        if not rows:
            rows.append(["–", "no calibrated run, aggregate, export, latency or scored session among the folders",
                         ""])
        return rows

    def results(self, doc: Document) -> None:
        doc.add(Heading("Results"))
        rows, skipped = self.results_rows()
        doc.add(Para("One row per run folder, copied from args.json, summary.json, calibration.json and "
                     "ensemble.json by training.report_table.run_row (the same rows as the markdown table of "
                     "fer-train report without --out). Accuracy and macro-F1 are at T=1; calibration moves "
                     "NLL, ECE and Brier only.", small=True))
        if rows:
            cols = ["run", "model", "input px", "epochs", "wall min", "val acc", "val macro-F1", "test acc",
                    "test macro-F1"]
            doc.add(Table(cols, [[str(r[c]) for c in cols] for r in rows],
                          widths=[2.2, 3.0, 0.8, 0.9, 0.8, 0.9, 1.15, 0.9, 1.15], font_size=7.2,
                          align=["L", "L"] + ["R"] * 7, caption="Accuracy (val and test, T=1)."))
            cols = ["run", "T (val)", "test NLL before/after", "test ECE before/after", "test Brier before/after"]
            doc.add(Table(cols, [[str(r[c]) for c in cols] for r in rows], widths=[2.6, 0.9, 1.8, 1.8, 1.8],
                          font_size=7.4, align=["L"] + ["R"] * 4,
                          caption="Calibration on test with the temperature fitted on val (lexicographic rule: "
                                  "NLL, then ECE, then macro-F1)."))
        if skipped:
            doc.add(Para("Not in the tables: " + "; ".join(skipped), small=True))
        configs, paired = self.aggregate_rows()
        if configs:
            doc.add(Heading("Students over seeds", 2))
            trows = []
            for r in configs:
                trows.append([str(r.get("config")), str(r.get("n_runs")), str(r.get("seed")),
                              f"{_f(r.get('test_accuracy'))} ± {_f(r.get('test_accuracy_std'))}",
                              f"{_f(r.get('test_accuracy_ci_low'))}–{_f(r.get('test_accuracy_ci_high'))}",
                              f"{_f(r.get('test_macro_f1'))} ± {_f(r.get('test_macro_f1_std'))}",
                              f"{_f(r.get('test_macro_f1_ci_low'))}–{_f(r.get('test_macro_f1_ci_high'))}"])
            doc.add(Table(["config", "n", "seeds", "test acc mean ± std", "95% CI", "macro-F1 mean ± std", "95% CI"],
                          trows, widths=[3.0, 0.5, 1.6, 1.5, 1.3, 1.5, 1.3], font_size=7.2,
                          align=["L", "R", "L", "R", "R", "R", "R"],
                          caption=f"From {_short(self.summary) if self.summary else '?'}; "
                                  f"{configs[0].get('note', '')}."))
        if paired:
            doc.add(Table(["A − B", "test acc difference", "95% CI", "note"],
                          [[str(r.get("config")), f"{float(r['test_accuracy']):+.4f}",
                            f"{float(r['test_accuracy_ci_low']):+.4f} to {float(r['test_accuracy_ci_high']):+.4f}",
                            str(r.get("note", ""))]
                           for r in paired if finite_float(r.get("test_accuracy")) is not None],
                          widths=[3.2, 1.4, 1.8, 3.2], font_size=7.4, align=["L", "R", "R", "L"],
                          caption="Paired bootstrap on the same resampled test images."))
        cards = self.cards()
        if cards:
            from training.export import PARITY_TOLERANCE

            doc.add(Heading("Export and latency", 2))
            doc.add(Table(["export folder", "precision", "model id", "parity max |Δp|", "tolerance", "images"],
                          [[_short(ex), p, str(c.get("model_id", "?")),
                            f"{finite_float(c.get('parity_max_abs_prob_diff')):.2e}"
                            if finite_float(c.get("parity_max_abs_prob_diff")) is not None else "–",
                            f"{PARITY_TOLERANCE.get(p, float('nan')):g}", str(c.get("parity_images", "–"))]
                           for ex, p, c in cards],
                          widths=[3.2, 0.9, 3.0, 1.3, 1.0, 0.8], font_size=7.2,
                          align=["L", "L", "L", "R", "R", "R"],
                          caption="Max |p_torch − p_onnx| over the parity images, recorded by fer-train export."))
        lat = _csv_rows(self.latency)
        if lat:
            doc.add(Table(["model", "precision", "provider", "batch", "median ms", "p90 ms", "threads"],
                          [[r.get("model", ""), r.get("precision", ""), r.get("provider", ""), r.get("batch", ""),
                            _f(r.get("median_ms"), 3), _f(r.get("p90_ms"), 3), r.get("threads", "")] for r in lat],
                          widths=[3.4, 0.9, 2.2, 0.7, 1.0, 1.0, 0.8], font_size=7.2,
                          align=["L", "L", "L", "R", "R", "R", "R"],
                          caption=f"From {_short(self.latency)} (fer-train bench); machine: "
                                  f"{lat[0].get('machine', '?')}."))

    def softlabel_rows(self) -> list[list[str]]:
        cache = g.IndexCache(self.index)
        rows = []
        for run in self.models:
            idx, how = g.index_for_run(cache, run)
            for folder in g.softlabel_folders(run):
                meta = g._obj_or_empty(folder / "alignment.json")
                diag = meta.get("diagnostic") or {}
                if idx is None:
                    gate_txt = "not checked: " + how
                else:
                    try:
                        ok, reason = g.alignment_status(folder, idx)
                        gate_txt = "aligned" if ok else reason.split(": ", 1)[-1]
                    except FerError as exc:
                        gate_txt = str(exc)
                d = diag.get("max_abs_diff")
                rows.append([run.name, f"{folder.parent.name}/{folder.name}", str(meta.get("kind", "?")),
                             _f(meta.get("temperature"), 1), str(meta.get("n_rows", "?")),
                             str(meta.get("index_fingerprint", "?"))[:8],
                             str(diag.get("status", "not_run")) + (f" ({diag.get('recomputed_rows')} rows, "
                                                                  f"|Δ| {float(d):.1e})" if d is not None else ""),
                             _clip(gate_txt, 120)])
        return rows

    def alignment(self, doc: Document) -> None:
        doc.add(Heading("Alignment checks"))
        doc.add(Para("Every soft-label folder is checked by the gate every consumer runs first "
                     "(training.alignment): index fingerprint and row count, class list and order, each row's "
                     "sample id and label, the array hash recorded at export, probs = softmax(logits / T), the "
                     "argmax accuracy per split recorded at export, and a recorded diagnostic that recomputed random "
                     "rows from the producer (teacher checkpoint or ensemble members).", small=True))
        rows = self.softlabel_rows()
        if rows:
            doc.add(Table(["run", "folder", "kind", "T", "rows", "index", "diagnostic", "gate now"], rows,
                          widths=[1.8, 2.9, 1.6, 0.45, 0.7, 1.05, 1.7, 2.3], font_size=6.6,
                          align=["L", "L", "L", "R", "R", "L", "L", "L"]))
        else:
            doc.add(Para("No soft-label folder among the runs given."))

    def calibration(self, doc: Document) -> None:
        doc.add(Heading("Calibration: reliability before and after"))
        paths, caps = [], []
        for run in self.models:
            rep = g._obj_or_empty(run / "reliability_metrics.json")
            cal = _cal(run)
            split = "test" if rep.get("bins_test_before") else str(rep.get("split", "val"))
            before = rep.get(f"bins_{split}_before") or rep.get("bins_before")
            after = rep.get(f"bins_{split}_after") or rep.get("bins_after")
            if not (isinstance(before, list) and isinstance(after, list) and before and after):
                continue
            t = finite_float(cal.get("temperature", rep.get("chosen_temperature")))
            eb, ea = _m(cal, "before", split, "ece"), _m(cal, "after", split, "ece")
            path = reliability_figure(before, after, self.fig_dir / f"reliability_{_safe(run.name)}.png",
                                      f"{run.name} ({split})", f"T=1, ECE {_f(eb)}",
                                      f"T={_f(t, 2)}, ECE {_f(ea)}")
            paths.append(path)
            caps.append(f"{run.name}: {split} split, ECE {_f(eb)} → {_f(ea)} with T={_f(t, 2)} fitted on val "
                        f"(marker area ∝ samples per bin; reliability_metrics.json, calibration.json).")
        doc.add(Para("Points are the 15 equal-width confidence bins of reliability_metrics.json (bins with samples "
                     "only): accuracy against mean confidence, before (T=1) and after the fitted temperature. On the "
                     "diagonal a model's confidence means what it says.", small=True))
        doc.add(Figures(paths, caps, per_row=2) if paths else Para("No reliability_metrics.json among the runs."))

    def confusions(self, doc: Document) -> None:
        doc.add(Heading("Confusion matrices (test)"))
        paths, caps = [], []
        for run in self.models:
            cm, classes, src = g.read_confusion(run, "test")
            if not cm:
                continue
            m = g._obj_or_empty(run / "metrics_test.json")
            f1 = m.get("per_class_f1") or {}
            worst = min(f1, key=lambda c: float(f1[c])) if isinstance(f1, dict) and f1 else None
            paths.append(confusion_figure(cm, classes, self.fig_dir / f"confusion_{_safe(run.name)}.png",
                                          f"{run.name}: acc {_f(m.get('accuracy'))}, macro-F1 {_f(m.get('macro_f1'))}"))
            caps.append(f"{run.name} ({src.name}): rows true class, columns predicted; colour = row share."
                        + (f" Lowest F1: {worst} {_f(f1[worst])}." if worst else ""))
        doc.add(Figures(paths, caps, per_row=2) if paths else Para("No confusion matrix among the runs."))

    def demo(self, doc: Document) -> None:
        d = protocol_defaults()
        doc.add(Heading("Live demo protocol"))
        keys = ", ".join(f"{i + 1} {c}" for i, c in enumerate(FER7))
        doc.add(Para(
            "**Running a session.** A session is one camera or video file opened in fer-demo, or one headless "
            "replay (fer-demo --replay VIDEO --out DIR --labels LABELS.csv). Each frame goes through face "
            "detection (the largest face), eye alignment, CLAHE, the crop margin the model card measured on the "
            "training images, ONNX inference, the model's calibration and temporal smoothing; the model always "
            "sees the camera's pixels, never the overlay. The session folder receives per_frame.csv (one row per "
            "processed frame: time, the held manual label, the shown label and the calibrated probabilities), "
            "events.csv (finished label segments) and actions.csv (start, source, every setting change, consent, "
            "end); no pixels are written unless clip saving is consented to in that session."))
        doc.add(Para(
            f"**Labelling.** The annotator holds the current expression on the number keys ({keys}; 0 or c for no "
            "label) or the label bar; the held label goes into every following row. Recorded files can instead be "
            "labelled in video-label mode, where labels are start_ms,end_ms,label intervals of video time, so a "
            "replay gives every frame the label of its own time."))
        doc.add(Para(
            f"**Smoothing.** The shown label comes from an EMA of the calibrated probabilities (alpha "
            f"{d['alpha']:g} is the weight of the past, reset when the face is lost), a hysteresis that changes "
            f"label only when the new class leads the current one by delta {d['delta']:g}, and a vote that shows a "
            f"label only if the hysteresis produced it at least {d['min_count']} times among the last "
            f"{d['window']} frames, else (unstable)."))
        doc.add(Para(
            "**Scoring, fair across transitions.** Neither a person nor a smoothed model switches the instant the "
            "manual label changes, so scoring ignores the moments around a change. A segment is a maximal run of "
            "rows with the same manual label; it is scored only if it lasts at least "
            f"{d['min_hold_ms']:g} ms, and within it only the rows more than {d['exclusion_ms']:g} ms from its "
            "first and last row count. Accuracy is over those rows, an (unstable) or missing prediction counting "
            "as wrong; macro-F1 is over the classes that occur as manual labels there. Jitter is the number of "
            "changes of the predicted class (unstable rows skipped) per minute of the whole log. Time-to-lock of "
            "a scored segment is the delay from its start to the first moment from which the prediction holds "
            f"its label for {d['lock_ms']:g} ms; the median over locked segments and the lock rate are reported. "
            "With nothing scored, accuracy, macro-F1 and lock rate are null, not zero. The same code scores live "
            "(the score panel), at the end of a session (score.json, then a row of demo_results_summary.csv) and "
            "offline (fer-score per_frame.csv)."))
        doc.add(Para("Thresholds and smoothing values above are the defaults of fer_models.scoring and "
                     "fer_models.temporal as installed; the values each session used are in its summary row below.",
                     small=True))
        sessions = self.sessions()
        if sessions:
            rows = []
            for s in sessions:
                sc, r = s["score"], s["row"]
                ttl = finite_float(sc.get("time_to_lock_ms_median"))
                rows.append([s["folder"].name, str(s["source"] or "?"), str(r.get("model_id", "?")),
                             str(sc.get("n_scored_frames", "–")), _f(sc.get("accuracy")), _f(sc.get("macro_f1")),
                             _f(sc.get("jitter_per_min"), 1), "–" if ttl is None else f"{ttl:.0f}",
                             _f(sc.get("lock_rate"), 2),
                             " / ".join(str(r.get(k, "?")) for k in ("alpha", "delta", "window", "min_count")),
                             " / ".join(str(r.get(k, "?")) for k in ("min_hold_ms", "exclusion_ms", "lock_ms"))])
            doc.add(Table(["session", "source", "model", "scored frames", "acc", "macro-F1", "jitter /min",
                           "lock ms", "lock rate", "α / δ / window / min", "hold / excl / lock ms"], rows,
                          widths=[1.9, 1.6, 1.9, 0.8, 0.7, 0.8, 0.7, 0.7, 0.7, 1.3, 1.2], font_size=6.6,
                          align=["L", "L", "L"] + ["R"] * 8,
                          caption="score.json of each session; settings from its demo_results_summary.csv row."))
        else:
            doc.add(Para("No demo session folder was given: the demo stage is not assessed in this report."))

    def nl(self, doc: Document) -> None:
        doc.add(Heading("NL / NegL safety measures"))
        doc.add(Para(
            "NL is the Nested Learning deep optimiser (momentum replaced by a small learned associative memory of "
            "gradients, an MLP) and NegL is negative learning on complementary labels, loss −log(1 − p[c']) (not "
            "−log p[c']). Both are planned on the students and guarded by rails that the nl-negl gate checks from "
            "files, before any result is reported:"))
        doc.add(Bullets([
            f"**Testbed first.** A run writes {g.NL_TESTBED_FILE} with status passed only when every test in it "
            "passed (e.g. the NegL loss equals −log(1 − p) on hand-computed cases, finite losses and gradients, "
            "the memory MLP's update on a toy problem); the gate lists any test that did not pass.",
            f"**Memory flat.** Every run traces memory to {g.MEMORY_TRACE_FILE} (step, rss_mb and, on a GPU, "
            f"gpu_mb); after the warm-up steps the peak may exceed the first value by at most the bound recorded "
            f"in {g.NL_TESTBED_FILE} (memory.bound_mb; the gate's default is {g.MEMORY_GROWTH_BOUND_MB:g} MB), "
            "so a memory that grows with the steps is a NO-GO, not a crash hours later.",
            "**Small memory by design.** The memory MLP is kept at the reduced size DESIGN.md §7 fixed after the "
            "earlier memory trouble, and students keep the same aligned soft-label targets and seeds as KD/DKD, "
            "so NL/NegL results compare against the aggregate above.",
        ]))
        res = self.gates["nl-negl"]
        if not self.groups["nl-negl"]:
            doc.add(Para(f"**Status: NL and NegL are not run yet.** The nl-negl gate says: {res.items[0].reason}."))
        else:
            doc.add(Table(["status", "run", "item", "reason"],
                          [[i.status, i.run, i.item, i.reason] for i in res.items],
                          widths=[0.9, 2.0, 1.4, 6.3], font_size=7.0, align=["C", "L", "L", "L"]))

    def risks(self, doc: Document) -> None:
        doc.add(Heading("Risk log"))
        rows: list[list[str]] = []
        configs, _ = self.aggregate_rows()
        widths = [(finite_float(r.get("test_accuracy_ci_high")) or 0)
                  - (finite_float(r.get("test_accuracy_ci_low")) or 0)
                  for r in configs]
        if configs:
            k = max(range(len(widths)), key=widths.__getitem__)
            rows.append(["Differences between students are within noise",
                         f"widest 95% CI {widths[k]:.3f} ({configs[k].get('config')}; {configs[k].get('note', '')})",
                         "compare configurations with the paired bootstrap; three seeds each", "open"])
        worst = []
        for run in self.models:
            f1 = g._obj_or_empty(run / "metrics_test.json").get("per_class_f1")
            if isinstance(f1, dict) and f1:
                c = min(f1, key=lambda k: float(f1[k]))
                worst.append((float(f1[c]), c, run.name))
        if worst:
            v, c, name = min(worst)
            rows.append(["Minority classes are poorly recognised", f"lowest test F1 {v:.3f} ({c}, {name})",
                         "per-class temperature / thresholds, hard-sample mining (plan item 6)", "open"])
        drift = [(abs((_m(_cal(r), "after", "test", "ece") or 0) - (_m(_cal(r), "after", "val", "ece") or 0)), r.name)
                 for r in self.models if _m(_cal(r), "after", "test", "ece") is not None]
        if drift:
            v, name = max(drift)
            rows.append(["Calibration does not carry from val to test", f"largest |ECE test − ECE val| after "
                                                                        f"calibration {v:.3f} ({name})",
                         "T fitted on val only; reliability diagrams per run", "watch"])
        sessions = [s for s in self.sessions() if finite_float(s["score"].get("accuracy")) is not None]
        if sessions:
            accs = [float(s["score"]["accuracy"]) for s in sessions]
            rows.append(["Webcam faces differ from FER2013 (domain shift)",
                         f"scored demo accuracy {min(accs):.3f}–{max(accs):.3f} over {len(accs)} session(s)",
                         "live margin from the model card; webcam augmentations (plan item 6)", "open"])
        else:
            rows.append(["Webcam faces differ from FER2013 (domain shift)", "no scored demo session yet",
                         "score a labelled replay before any claim about the demo", "open"])
        for stage in REPORT_STAGES:
            for it in self.gates[stage].failed:
                rows.append([f"{STAGE_TITLES[stage]} gate NO-GO: {it.item}",
                             _clip((it.run + ": " if it.run else "") + it.reason, 150),
                             "see the reason; rerun the step it names, then fer-train gate " + stage, "open"])
        for n in self.notes["risks"]:
            rows.append([n, "notes file", "", "open"])
        doc.add(Table(["risk", "evidence (from the artifacts)", "mitigation", "status"], rows,
                      widths=[2.6, 3.8, 3.2, 0.8], font_size=7.0, align=["L", "L", "L", "C"]))

    def update(self, doc: Document) -> None:
        doc.add(Heading("Update note and next steps"))
        for p in self.notes["intro"]:
            doc.add(Para(p))
        rows = []
        for title, stages in PLAN:
            if stages:
                res = [self.gates[s] for s in stages]
                status = "GO" if all(r.go for r in res) else "NO-GO"
                detail = "; ".join(f"{STAGE_TITLES[r.stage]}: {len(r.items) - len(r.failed)}/{len(r.items)} items GO"
                                   for r in res)
            elif title.startswith("7."):
                status, detail = "in progress", "this report and fer-train gate"
            else:
                status, detail = "not gated", "no artifact gate for this item"
            rows.append([title, status, detail])
        doc.add(Table(["plan item (DESIGN.md §7)", "status", "evidence"], rows, widths=[5.0, 1.0, 4.6],
                      font_size=7.4, align=["L", "C", "L"]))
        if self.notes["done"]:
            doc.add(Heading("Done since the last update", 2), Bullets(self.notes["done"]))
        doc.add(Heading("Next steps", 2))
        if self.notes["next"]:
            doc.add(Bullets(self.notes["next"]))
        else:
            steps = []
            for stage in REPORT_STAGES:
                for it in self.gates[stage].failed[:4]:
                    steps.append(f"**{STAGE_TITLES[stage]}** – " + (f"{it.run}: " if it.run else "") +
                                 f"{it.item}: {_clip(it.reason, 200)}")
                extra = len(self.gates[stage].failed) - 4
                if extra > 0:
                    steps.append(f"**{STAGE_TITLES[stage]}** – {extra} more NO-GO item(s): appendix A")
            doc.add(Bullets(steps or ["Every gate is GO: freeze the artifacts and tag the commit."]))
            doc.add(Para("Generated from the gate results (pass --notes FILE to write them by hand).", small=True))

    def manifest(self, doc: Document) -> None:
        doc.add(Heading("Reproducibility manifest"))
        hw = hardware()
        doc.add(Table(["what", "value"], [
            ["report generated", self.generated], ["git commit", self.git["commit"]],
            ["working tree", self.git["changes"]], ["python", hw["python"]], ["OS", hw["os"]],
            ["CPU", hw["cpu"]], ["logical cores", hw["cores"]], ["memory", hw["memory"]], ["GPU", hw["gpu"]]],
            widths=[2.0, 8.6], font_size=7.6, caption="The machine that generated this report."))
        doc.add(Table(["package", "version"], [list(p) for p in package_versions()], widths=[3.0, 7.6],
                      font_size=7.6, caption="Installed versions (importlib.metadata) when the report was generated."))
        rows, commands = [], []
        for run in [*self.models, *self.groups["nl-negl"]]:
            args = g._obj_or_empty(run / "args.json")
            seed = g._obj_or_empty(run / "seed.json")
            ens = g._obj_or_empty(run / "ensemble.json")
            fp = args.get("index_fingerprint") or ens.get("index_fingerprint") or _cal(run).get("index_fingerprint")
            rows.append([run.name, classify(run), str(args.get("index_name") or ens.get("index_name") or "?"),
                         str(fp)[:16] if fp else "?", str(g.run_seed(run) if g.run_seed(run) is not None else "–"),
                         str(args.get("device", "–")), str(seed.get("torch", "–")), str(seed.get("timm", "–")),
                         str(seed.get("cuda") or "–")])
            if args.get("argv"):
                commands.append(f"# {run.name}")
                commands.append("fer-train " + shlex.join(str(a) for a in args["argv"]))
            elif ens.get("config"):
                commands.append(f"# {run.name}: built by fer-train ensemble from config {ens.get('name', '')!r} "
                                f"(stored in ensemble.json), members "
                                f"{', '.join(str(m.get('name')) for m in ens.get('members', []))}")
        if rows:
            doc.add(Table(["run", "stage", "index", "index fingerprint", "seed", "device", "torch", "timm", "cuda"],
                          rows, widths=[2.3, 1.0, 0.9, 1.9, 0.7, 0.7, 1.2, 0.8, 0.7], font_size=6.9,
                          caption="Index fingerprints from args.json (ensemble.json for ensembles); library versions "
                                  "from each run's seed.json (what it was trained with)."))
        if commands:
            doc.add(Heading("Commands (args.json argv)", 2), Code(commands))

    def appendix(self, doc: Document) -> None:
        doc.add(PageBreak(), Heading("Appendix A: gate checklists"))
        for stage in REPORT_STAGES:
            res = self.gates[stage]
            doc.add(Heading(f"{STAGE_TITLES[stage]}: {'GO' if res.go else 'NO-GO'}", 2))
            doc.add(Table(["status", "folder", "item", "reason (file named)"],
                          [[i.status, _display(i.run), i.item, i.reason] for i in res.items],
                          widths=[0.9, 1.8, 2.0, 5.9], font_size=6.7, align=["C", "L", "L", "L"]))
        if self.unknown:
            doc.add(Para("Folders given but not recognised (no args.json, ensemble.json, per_frame.csv or "
                         f"{g.NL_TESTBED_FILE}): " + ", ".join(map(str, self.unknown)), small=True))


def build_report(run_dirs: Sequence[str | Path], out_dir: str | Path, **kwargs: Any) -> tuple[Path, Path]:
    """Write report.html, report.pdf and figures/*.png into ``out_dir``; returns (html, pdf)."""
    rep = Report([Path(d) for d in run_dirs], Path(out_dir), **kwargs)
    doc = rep.build()
    return write_document(doc, Path(out_dir))
