"""Hand-made artifact folders for the gate and report tests: realistic files, written in a second.

Every file is written by the project's own writers where one exists (write_index,
write_softlabels, save_calibration, save_reliability_metrics, aggregate, append_demo_summary,
score_session) and otherwise in the layout the producer writes (metrics_<split>.json,
confusion_<split>.json, ensemble.json, model_card.json, latency.csv), from synthetic logits
that are mostly right, so the numbers are plausible and known to the test.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.calibration import (DEFAULT_GRID, SELECTION_RULE, Calibration, classification_metrics,
                                    nll_from_logits, per_class_f1, reliability_bins, reliability_report,
                                    save_calibration, save_reliability_metrics, select_from_sweep, softmax,
                                    temperature_sweep)
from fer_models.classes import FER7, write_classes_json, write_json
from fer_models.scoring import append_demo_summary, score_session
from training.artifacts import save_npz
from training.index import CanonicalIndex, canonical_order, write_index
try:
    from training.softlabel_files import write_softlabels, write_split_softlabels
except ImportError:  # before the soft-label writers moved out of training.softlabels
    from training.softlabels import write_softlabels, write_split_softlabels

FOLDER = {"train": "train", "val": "test", "test": "test"}
PREFIX = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
PER_CLASS = {"train": 4, "val": 6, "test": 6}


def make_index(root: Path) -> tuple[Path, CanonicalIndex]:
    ids, labels, splits = [], [], []
    for split, n in PER_CLASS.items():
        for k, cls in enumerate(FER7):
            for i in range(n):
                ids.append(f"{FOLDER[split]}/{cls.lower()}/{PREFIX[split]}_{k * 100 + i:05d}.jpg")
                labels.append(k)
                splits.append(split)
    order = canonical_order(ids, splits)
    ids, labels, splits = [ids[i] for i in order], [labels[i] for i in order], [splits[i] for i in order]
    idx = CanonicalIndex(name="fer2013", sample_ids=ids, labels=np.array(labels), splits=np.array(splits),
                         sha256=[hashlib.sha256(s.encode()).hexdigest() for s in ids], classes=list(FER7),
                         format="fer2013-folders", source=str(root / "data"))
    out = write_index(idx, root / "index")
    return out, idx


def logits_for(index: CanonicalIndex, strength: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.0, (len(index), 7))
    z[np.arange(len(index)), index.labels] += strength
    return (z * 1.6).astype(np.float32)  # overconfident: calibration has something to fix


def mark_passed(folder: Path) -> Path:
    meta = json.loads((folder / "alignment.json").read_text())
    meta["diagnostic"] = {"status": "passed", "checked_at": "2026-12-01T00:00:00+00:00",
                          "arrays_sha256": meta["arrays_sha256"], "recomputed_rows": 64, "max_abs_diff": 3.1e-6,
                          "tolerance": 1e-3, "problems": [], "recorded_accuracy": meta["recorded_accuracy"]}
    (folder / "alignment.json").write_text(json.dumps(meta))
    return folder


def write_model_outputs(run: Path, index: CanonicalIndex, z: np.ndarray) -> None:
    """logits/metrics/confusion per split, calibration.json and reliability_metrics.json (as calibrate writes)."""
    write_classes_json(run, index.classes)
    splits = {}
    for split in ("val", "test"):
        pos = index.positions(split)
        zz, y = z[pos].astype(np.float64), index.labels[pos]
        splits[split] = (zz, y)
        save_npz(run / f"logits_{split}.npz", logits=z[pos].astype(np.float32), labels=y, positions=pos,
                 sample_id=np.array([index.sample_ids[p] for p in pos]), index_fingerprint=np.array(index.fingerprint),
                 classes=np.array(list(index.classes)))
        probs = softmax(zz)
        pred = probs.argmax(1)
        m = classification_metrics(probs, y)
        cm = np.zeros((7, 7), dtype=int)
        np.add.at(cm, (y, pred), 1)
        write_json(run / f"metrics_{split}.json", {
            "split": split, "n": int(len(y)), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "per_class_f1": dict(zip(index.classes, per_class_f1(pred, y, 7))), "nll": m["nll"], "ece": m["ece"],
            "brier": m["brier"], "index_name": index.name, "index_fingerprint": index.fingerprint, "full_split": True})
        write_json(run / f"confusion_{split}.json", {"split": split, "classes": list(index.classes),
                                                      "rows": "true class", "columns": "predicted class",
                                                      "matrix": cm.tolist()})
    zv, yv = splits["val"]
    sweep = temperature_sweep(zv, yv, DEFAULT_GRID)
    t = float(select_from_sweep(sweep))
    cal = Calibration(temperature=t, classes=list(index.classes), grid=list(DEFAULT_GRID), split="val",
                      selection_rule=SELECTION_RULE, extra={"on_grid_edge": False})

    def metrics(zz: np.ndarray, y: np.ndarray, temp: float) -> dict[str, float]:
        out = classification_metrics(softmax(zz / temp), y)
        out["nll"] = nll_from_logits(zz / temp, y)
        return out

    cal.metrics_before = {s: metrics(zz, y, 1.0) for s, (zz, y) in splits.items()}
    cal.metrics_after = {s: metrics(zz, y, t) for s, (zz, y) in splits.items()}
    cal.extra.update({"index_fingerprint": index.fingerprint, "n_fit": int(len(yv))})
    save_calibration(run / "calibration.json", cal)
    rep = reliability_report(zv, yv, DEFAULT_GRID, t, "val", index.classes)
    for s, (zz, y) in splits.items():
        rep[f"bins_{s}_before"] = reliability_bins(softmax(zz), y)
        rep[f"bins_{s}_after"] = reliability_bins(softmax(zz / t), y)
    save_reliability_metrics(run / "reliability_metrics.json", rep)


def make_teacher(root: Path, name: str, index_dir: Path, index: CanonicalIndex, backbone: str = "resnet18",
                 strength: float = 2.5, seed: int = 1337) -> Path:
    run = root / name
    run.mkdir(parents=True)
    argv = ["teacher", "--index", str(index_dir), "--backbone", backbone, "--out", str(run), "--epochs", "24",
            "--input-size", "48", "--seed", str(seed)]
    write_json(run / "args.json", {"command": "teacher", "backbone": backbone, "input_size": 48, "epochs": 24,
                                   "seed": seed, "device": "cpu", "index": str(index_dir), "index_dir": str(index_dir),
                                   "index_name": index.name, "index_fingerprint": index.fingerprint, "argv": argv})
    write_json(run / "seed.json", {"seed": seed, "python": "3.11.7", "torch": "2.14.1+cpu", "timm": "1.0.31",
                                   "cuda": None})
    write_json(run / "summary.json", {"epochs": 24, "wall_seconds": 12600.0, "best_epoch": 20})
    z = logits_for(index, strength, seed + len(name))
    sl = write_softlabels(run / "softlabels" / index.short_name, index, z, 2.0, "teacher",
                          {"producer": {"run_dir": str(run.resolve()), "checkpoint": str(run / "best.pt"),
                                        "checkpoint_sha256": "0" * 64, "backbone": backbone}})
    mark_passed(sl)
    write_model_outputs(run, index, z)
    return run


def make_ensemble(root: Path, name: str, teachers: Sequence[Path], index: CanonicalIndex,
                  weights: Sequence[float] = (0.6, 0.4), t: float = 2.0) -> Path:
    out = root / name
    out.mkdir(parents=True)
    members, zs = [], []
    for run, w in zip(teachers, weights):
        folder = run / "softlabels" / index.short_name
        meta = json.loads((folder / "alignment.json").read_text())
        zs.append(np.load(folder / "softlabels.npz")["logits"].astype(np.float64))
        members.append({"name": run.name, "softlabel_dir": str(folder.resolve()), "kind": "teacher",
                        "arrays_sha256": meta["arrays_sha256"], "member_temperature": 2.0,
                        "producer": meta.get("producer"), "weight": float(w)})
    zs_arr = np.stack(zs)
    w = np.asarray(weights, dtype=np.float64)
    fused = np.tensordot(w, softmax(zs_arr / t), axes=1)
    producer = {"ensemble": {"name": name, "config": "cfg.json", "weights_source": "config"}, "members": members,
                "weights": w.tolist()}
    fused_dir = mark_passed(write_softlabels(out / "softlabels" / index.short_name, index,
                                             t * np.log(np.clip(fused, 1e-30, None)), t, "ensemble_fused", producer,
                                             probs=fused))
    split_dir = mark_passed(write_split_softlabels(out / "softlabels_split" / index.short_name, index, zs_arr, w,
                                                   [m["name"] for m in members], t, producer))
    write_json(out / "ensemble.json", {
        "config": {"name": name, "temperature": t,
                   "members": [{"name": m["name"], "path": str(r), "weight": m["weight"]}
                               for m, r in zip(members, teachers)]},
        "name": name, "temperature": t, "weights": {m["name"]: m["weight"] for m in members},
        "weights_source": "config", "members": members, "index_name": index.name,
        "index_fingerprint": index.fingerprint, "classifier": "log(sum_i w_i softmax(z_i)) at T=1",
        "fused_dir": str(fused_dir), "split_dir": str(split_dir)})
    classifier = np.log(np.clip(np.tensordot(w, softmax(zs_arr), axes=1), 1e-30, None))
    write_model_outputs(out, index, classifier.astype(np.float32))
    return out


def make_student(root: Path, config: str, seed: int, index_dir: Path, index: CanonicalIndex,
                 strength: float) -> Path:
    run = root / f"{config}_s{seed}"
    run.mkdir(parents=True)
    argv = ["student", "--index", str(index_dir), "--teacher", "runs/ens", "--distill", config.split("-")[0],
            "--out", str(run), "--seed", str(seed)]
    write_json(run / "args.json", {"command": "student", "backbone": "mobilenetv3_large_100", "input_size": 48,
                                   "epochs": 20, "seed": seed, "config": config, "distill": config.split("-")[0],
                                   "device": "cpu", "index_dir": str(index_dir), "index_name": index.name,
                                   "index_fingerprint": index.fingerprint, "argv": argv})
    write_json(run / "seed.json", {"seed": seed, "torch": "2.14.1+cpu", "timm": "1.0.31", "cuda": None})
    write_json(run / "summary.json", {"epochs": 20, "wall_seconds": 5400.0})
    write_model_outputs(run, index, logits_for(index, strength, seed))
    return run


def make_export(run: Path, parity: tuple[float, float] = (2.1e-6, 5.3e-4)) -> Path:
    ex = run / "export"
    for precision, diff in zip(("fp32", "fp16"), parity):
        d = ex / precision
        d.mkdir(parents=True)
        write_json(d / "model_card.json", {"classes": list(FER7), "input_size": 48, "channels": 1,
                                           "backbone": "mobilenetv3_large_100", "precision": precision,
                                           "model_id": f"mnv3-48-{run.name}-{precision}",
                                           "parity_max_abs_prob_diff": diff, "parity_images": 64,
                                           "source_run": str(run)})
    return ex


def write_latency(path: Path, model_ids: Sequence[str], median: float = 3.25) -> Path:
    from training.bench import LATENCY_COLUMNS

    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, LATENCY_COLUMNS)
        w.writeheader()
        for k, m in enumerate(model_ids):
            for batch in (1, 32):
                w.writerow({"model": m, "precision": m.rsplit("-", 1)[-1], "provider": "CPUExecutionProvider",
                            "batch": batch, "median_ms": median * (1 + k) * (1 if batch == 1 else 9),
                            "p90_ms": median * (1 + k) * (1.2 if batch == 1 else 10), "runs": 200, "threads": 2,
                            "machine": "x86_64 test"})
    return path


def make_session(root: Path, name: str = "20261201-101500", model_id: str = "mnv3-48-dkd-fp16",
                 wrong_every: int = 7) -> Path:
    """A replayed, labelled session: 2 s label segments, predictions right except near changes and every n-th row."""
    s = root / name
    s.mkdir(parents=True)
    header = ["frame_index", "time_sec", "manual_label", "pred_label", *(f"prob_{c}" for c in FER7), "model_id"]
    cycle = ["Happy", "Neutral", "Sad", "Surprise", "", "Angry"]
    times, preds, manual = [], [], []
    with (s / "per_frame.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i in range(240):  # 24 s at 10 fps
            t = i / 10
            lab = cycle[int(t // 2) % len(cycle)]
            into = t % 2
            pred = "(unstable)" if into < 0.3 else (lab or "Neutral")
            if i % wrong_every == 0 and pred != "(unstable)":
                pred = "Fear"
            probs = [1 / 7] * 7
            w.writerow([i, f"{t:.3f}", lab, pred, *(f"{p:.6f}" for p in probs), model_id])
            times.append(t)
            preds.append(pred)
            manual.append(lab)
    score = score_session(times, preds, manual)
    write_json(s / "score.json", score)
    with (s / "actions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time_sec", "kind", "value"])
        w.writerow([0.0, "session_start", name])
        w.writerow([0.0, "source", "replay:slideshow.mp4"])
        w.writerow([23.9, "session_end", ""])
    (s / "events.csv").write_text("label,start_frame,end_frame,start_time_sec,end_time_sec,source\n")
    row = {"scored_at": "2026-12-01T10:16:00+00:00", "session": name, "per_frame_csv": str(s / "per_frame.csv"),
           "model_id": model_id, "alpha": 0.7, "delta": 0.08, "window": 15, "window_ms": "", "min_count": 8,
           "min_hold_ms": 600, "exclusion_ms": 250, "lock_ms": 500, **score}
    append_demo_summary(root / "demo_results_summary.csv", row)
    return s


def make_nl(root: Path, name: str = "nl_negl_s1337", growth_mb: float = 12.0, status: str = "passed") -> Path:
    run = root / name
    run.mkdir(parents=True)
    write_json(run / "nl_testbed.json", {
        "status": status, "method": "nl+negl",
        "tests": [{"name": "negl_loss_is_minus_log_one_minus_p", "status": "passed"},
                  {"name": "memory_mlp_toy_problem", "status": status}],
        "memory": {"trace": "memory_trace.csv", "warmup_steps": 10, "bound_mb": 64}})
    with (run / "memory_trace.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "rss_mb"])
        for step in range(0, 100, 5):
            base = 900.0 if step < 10 else 1500.0
            w.writerow([step, base + (growth_mb * (step - 10) / 90 if step >= 10 else 0.0)])
    return run


def build_tree(root: Path) -> dict[str, Any]:
    """Index, two teachers, an ensemble, 2 configs x 3 seeds of students (aggregated), export, latency, a session."""
    from training.aggregate import aggregate

    root.mkdir(parents=True, exist_ok=True)
    index_dir, index = make_index(root)
    t1 = make_teacher(root / "runs", "teacher_resnet18", index_dir, index, "resnet18", 2.5)
    t2 = make_teacher(root / "runs", "teacher_resnet50", index_dir, index, "resnet50", 2.0)
    ens = make_ensemble(root / "runs", "ens_rn18_rn50", [t1, t2], index)
    students = [make_student(root / "runs" / "students", cfg, seed, index_dir, index, strength)
                for cfg, strength in (("dkd-ens", 2.6), ("none", 1.6)) for seed in (1337, 2025, 42)]
    summary = root / "runs" / "students" / "results_summary_students.csv"
    aggregate(students, summary, n_boot=100, compare=[("dkd-ens", "none")])
    ex = make_export(students[0])
    cards = [f"mnv3-48-{students[0].name}-{p}" for p in ("fp32", "fp16")]
    latency = write_latency(root / "runs" / "students" / "latency.csv", cards)
    session = make_session(root / "sessions")
    return {"root": root, "index_dir": index_dir, "index": index, "teachers": [t1, t2], "ensemble": ens,
            "students": students, "summary": summary, "export": ex, "latency": latency, "session": session,
            "demo_summary": root / "sessions" / "demo_results_summary.csv"}
