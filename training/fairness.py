"""``fer-train strata``: before/after figures with bootstrap CIs, and accuracy by lighting, pose and face size.

A model can gain on average and lose on dark faces, turned heads or small faces. This
command scores one or more models on the same faces, overall (accuracy, macro-F1, ECE,
per-class F1, coverage, each with a bootstrap CI, plus the paired accuracy difference of
every model against the first) and per stratum (accuracy and macro-F1 with CIs):

- **lighting**: mean grey level of the face's central region (the middle 60% square of the
  crop, where the face is, not the background), bins ``--brightness-edges`` (default
  0-70 dark, 70-110 dim, 110-150 normal, 150-190 bright, 190-256 very bright: fixed levels,
  so strata mean the same on every domain, unlike quantiles; CK+'s lab faces sit mostly
  above 150, FER2013's around 140);
- **pose**: roll and yaw estimated from the five YuNet landmarks. Dataset images carry no
  landmarks, so the live detector is run on each image enlarged onto a canvas
  (``fer_models.framing.place_on_canvas``, as the framing measurement does). Roll is the
  eye-line angle (``fer_models.face_crop.eye_angle_deg``). Yaw: after undoing the roll, the
  nose tip's horizontal offset dx from the eye midpoint, against the eye distance d:
  yaw = atan(dx / (0.4 d)), 0.4 being the nose-tip depth behind which the eyes sit in the
  generic 3D face of OpenCV's head-pose example (eyes 330 apart, 135 behind the nose tip).
  An estimate for binning, not a measurement. Bins of |roll| 0-5 / 5-15 / >=15 degrees and
  |yaw| 0-10 / 10-25 / >=25; faces where the detector finds no face form the stratum
  ``no landmarks`` (kept, not dropped). ``--no-pose`` skips it. Crops saved by the app are
  already eye-aligned, so their roll is about 0 by construction;
- **face size** in px, min(face_w, face_h) of the detector box: sessions only, from the face
  box columns of per_frame.csv, bins 0-128 / 128-192 / 192-256 / >=256. Dataset images are
  all 48 px crops of faces of unknown original size: no face-size strata for them.

Sources: ``--index IDX`` (repeatable) with ``--split`` (default test) scores every ``--run``
on those rows. A run is an experiment folder (``best.pt``; the run's own
``logits_<split>.npz`` are used when they were computed on that index) or a model folder
(``model_card.json``: the app's ONNX model, crop spec and calibration); ``DIR@CAL.json``
applies another calibration.json (e.g. one of ``fer-train calibrate-domain``). Predictions
honour ``temperature`` / ``per_class_temperature`` / ``logit_bias`` and ``thresholds`` (a
withheld label is a miss, as in the app). ``--session DIR`` (repeatable) scores a session's
logged ``pred_label`` against its ``manual_label`` over the rows transition-fair scoring
scores; sessions with the same scored frames and labels (one session replayed through
several models) are compared like models on one source. A session's intervals (overall,
per stratum, and the paired difference) resample whole label segments, not frames
(``training.aggregate.resample_indices``): its frames are far from independent, and
frame-level intervals would look several times tighter than the data allow. Their lighting and pose come from
``crops/`` when the session saved crops, else they are unavailable (said in strata.json).

Macro-F1 everywhere here is over the classes present in the true labels of the rows scored,
a wrong or withheld prediction a miss (the session-scoring rule of DESIGN.md §5, and the
six-class macro-F1 of ``check-ckplus`` on CK+): a stratum of few faces has few classes, and
a class that no face in it has says nothing about it. That is why
``training.aggregate.bootstrap_ci`` (whose macro-F1 also counts classes only predicted) is
not reused for the strata; its resampling (percentile interval over resampled rows, seed 0)
is the one used here, and ``training.aggregate.paired_bootstrap`` gives the paired
differences. Strata with fewer than ``--min-n`` faces are marked ``few`` (and hatched in
the plot), never hidden; empty strata are listed with n = 0.

Writes ``OUT/summary.csv``, ``OUT/strata.csv``, ``OUT/strata.json`` (everything, with the
bins and notes) and ``OUT/strata.png``.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fer_models.calibration import (NO_LABEL, Calibration, expected_calibration_error, load_calibration,
                                    per_class_f1, predict_calibrated)
from fer_models.classes import FER7
from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_text, write_json

BRIGHTNESS_EDGES: tuple[float, ...] = (0.0, 70.0, 110.0, 150.0, 190.0, 256.0)
BRIGHTNESS_NAMES = ("dark", "dim", "normal", "bright", "very bright")
ROLL_EDGES: tuple[float, ...] = (0.0, 5.0, 15.0, 180.0)
YAW_EDGES: tuple[float, ...] = (0.0, 10.0, 25.0, 90.0)
SIZE_EDGES: tuple[float, ...] = (0.0, 128.0, 192.0, 256.0, math.inf)
NOSE_DEPTH = 0.4  # nose-tip depth in eye distances (OpenCV head-pose example's generic face: 135 / 330)
NO_LANDMARKS = "no landmarks"
KINDS = ("brightness", "roll", "yaw", "face_size")
DEFAULT_MIN_N = 30
DEFAULT_BOOT = 1000


# ----------------------------------------------------------------------------- per-face features

def face_brightness(img: np.ndarray) -> float:
    """Mean grey level of the middle 60% square of a face crop (gray or BGR uint8)."""
    a = np.asarray(img)
    if a.ndim == 3:
        import cv2

        a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)
    h, w = a.shape[:2]
    y0, x0 = int(round(0.2 * h)), int(round(0.2 * w))
    return float(a[y0:h - y0, x0:w - x0].mean())


def pose_from_landmarks(landmarks: np.ndarray) -> tuple[float, float]:
    """(roll, yaw) in degrees from YuNet's five points (right eye, left eye, nose, mouth corners)."""
    from fer_models.face_crop import eye_angle_deg

    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    roll = eye_angle_deg(lm)
    mid = (lm[0] + lm[1]) / 2.0
    a = math.radians(-roll)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    pts = (lm - mid) @ rot.T
    d = float(np.hypot(*(pts[1] - pts[0])))
    if d <= 1e-6:
        return roll, float("nan")
    yaw = math.degrees(math.atan(float(pts[2, 0]) / (NOSE_DEPTH * d)))
    return roll, yaw


class PoseEstimator:
    """YuNet on a face crop enlarged onto a canvas; (roll, yaw) or None when no face is found."""

    def __init__(self, model_path: str | Path | None = None, face_px: int = 240):
        from fer_models.detector import FaceDetector

        self.detector = FaceDetector(model_path, score_threshold=0.5, min_face=32)
        self.face_px = face_px

    def __call__(self, img: np.ndarray) -> tuple[float, float] | None:
        from fer_models.framing import place_on_canvas

        canvas, _ = place_on_canvas(img, face_px=self.face_px)
        face = self.detector.detect_largest(canvas)
        return None if face is None else pose_from_landmarks(face.landmarks)


def bin_label(value: float | None, edges: Sequence[float], names: Sequence[str] | None = None,
              absolute: bool = False, unit: str = "") -> str | None:
    """The bin of ``value`` (``[edges[i], edges[i+1])``, last bin closed), named, or None when unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    v = abs(value) if absolute else value
    for i in range(len(edges) - 1):
        if edges[i] <= v < edges[i + 1] or (i == len(edges) - 2 and v == edges[-1]):
            return _bin_names(edges, names, absolute, unit)[i]
    return None


def _bin_names(edges: Sequence[float], names: Sequence[str] | None, absolute: bool, unit: str) -> list[str]:
    bar = "|" if absolute else ""
    out = []
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        rng = f"{bar}{lo:g}-{hi:g}{unit}{bar}" if math.isfinite(hi) else f"{bar}>={lo:g}{unit}{bar}"
        out.append(f"{names[i]} {rng}" if names else rng)
    return out


@dataclass
class Features:
    """Per-row stratum of each kind (None: unknown for that row) and what could not be measured."""

    strata: dict[str, list[str | None]]
    order: dict[str, list[str]]
    notes: dict[str, str] = field(default_factory=dict)


def image_features(images: Sequence[np.ndarray | None], pose: Callable[[np.ndarray], Any] | None,
                   brightness_edges: Sequence[float] = BRIGHTNESS_EDGES,
                   face_sizes: Sequence[float | None] | None = None, aligned: bool = False) -> Features:
    """Strata of each face; ``images`` None where a row has no pixels (a session frame without a crop)."""
    names = BRIGHTNESS_NAMES if len(brightness_edges) == len(BRIGHTNESS_EDGES) else None
    bright, roll, yaw = [], [], []
    for img in images:
        if img is None:
            bright.append(None)
            roll.append(None)
            yaw.append(None)
            continue
        bright.append(bin_label(face_brightness(img), brightness_edges, names))
        p = pose(img) if pose is not None else None
        if pose is None:
            roll.append(None)
            yaw.append(None)
        elif p is None:
            roll.append(NO_LANDMARKS)
            yaw.append(NO_LANDMARKS)
        else:
            roll.append(bin_label(p[0], ROLL_EDGES, absolute=True, unit=" deg"))
            yaw.append(bin_label(p[1], YAW_EDGES, absolute=True, unit=" deg") or NO_LANDMARKS)
    pose_order = lambda edges: _bin_names(edges, None, True, " deg") + [NO_LANDMARKS]  # noqa: E731
    strata = {"brightness": bright, "roll": roll, "yaw": yaw}
    order = {"brightness": _bin_names(brightness_edges, names, False, ""), "roll": pose_order(ROLL_EDGES),
             "yaw": pose_order(YAW_EDGES)}
    notes: dict[str, str] = {}
    if pose is None:
        notes["roll"] = notes["yaw"] = "pose not estimated (--no-pose or no pixels)"
    elif aligned:
        notes["roll"] = "crops are eye-aligned by the app: roll is about 0 by construction"
    if face_sizes is not None:
        strata["face_size"] = [bin_label(s, SIZE_EDGES, unit=" px") for s in face_sizes]
        order["face_size"] = _bin_names(SIZE_EDGES, None, False, " px")
    else:
        notes["face_size"] = "dataset images are 48 px crops of faces of unknown original size: no face-size strata"
    if all(b is None for b in bright):
        notes["brightness"] = "no pixels (the session saved no crops): lighting unavailable"
    return Features(strata, order, notes)


# ----------------------------------------------------------------------------- metrics with CIs

def present_macro_f1(pred: np.ndarray, y: np.ndarray) -> float | None:
    """Macro-F1 over the classes present in ``y``; a wrong or withheld prediction is a miss."""
    if len(y) == 0:
        return None
    f1s = []
    for c in np.unique(y):
        tp = np.sum((pred == c) & (y == c))
        f1s.append(2 * tp / (2 * tp + np.sum((pred == c) & (y != c)) + np.sum((pred != c) & (y == c))))
    return float(np.mean(f1s))


def bootstrap_metrics(pred: np.ndarray, y: np.ndarray, probs: np.ndarray | None = None, n_boot: int = DEFAULT_BOOT,
                      seed: int = 0, level: float = 0.95, n_classes: int | None = None,
                      groups: np.ndarray | None = None) -> dict[str, Any]:
    """Value and percentile interval over ``n_boot`` resamples of the rows (as ``aggregate.bootstrap_ci``).

    Accuracy and macro-F1 always; ECE when ``probs`` are given; per-class F1 when ``n_classes``.
    ``groups`` (a group id per row): whole groups are resampled (``aggregate.resample_indices``);
    sessions pass their label segments, dataset images none.
    """
    from training.aggregate import resample_indices

    pred = np.asarray(pred, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    fns: dict[str, Callable[[np.ndarray], Any]] = {
        "accuracy": lambda i: float(np.mean(pred[i] == y[i])),
        "macro_f1": lambda i: present_macro_f1(pred[i], y[i]),
    }
    if probs is not None:
        fns["ece"] = lambda i: expected_calibration_error(probs[i], y[i])
    if n_classes:
        fns["per_class_f1"] = lambda i: per_class_f1(pred[i], y[i], n_classes)
    if n == 0:
        return {k: {"value": None, "ci_low": None, "ci_high": None} for k in fns}
    full = np.arange(n)
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in fns}
    for _ in range(n_boot):
        idx = resample_indices(rng, n, groups)
        for k, f in fns.items():
            draws[k].append(f(idx))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out: dict[str, Any] = {}
    for k, f in fns.items():
        arr = np.asarray(draws[k], dtype=np.float64)
        out[k] = {"value": f(full), "ci_low": np.percentile(arr, lo, axis=0).tolist(),
                  "ci_high": np.percentile(arr, hi, axis=0).tolist()}
    return out


# ----------------------------------------------------------------------------- sources

@dataclass
class Scored:
    """One model's predictions on one source's rows (in the source's row order)."""

    model: str
    pred: np.ndarray
    probs: np.ndarray | None = None
    calibration: str | None = None


@dataclass
class Source:
    name: str
    labels: np.ndarray
    features: Features
    models: list[Scored] = field(default_factory=list)
    classes: list[str] = field(default_factory=lambda: list(FER7))
    groups: np.ndarray | None = None  # resampling unit per row: a session's label segment; None = the row


def _split_run_spec(spec: str) -> tuple[Path, Path | None]:
    if "@" in spec:
        a, b = spec.rsplit("@", 1)
        return Path(a), Path(b)
    return Path(spec), None


def _calibration_for(run: Path, override: Path | None, classes: Sequence[str]) -> tuple[Calibration | None, str | None]:
    if override is not None:
        return load_calibration(override, classes), str(override)
    if (run / "calibration.json").is_file():
        return load_calibration(run / "calibration.json", classes), str(run / "calibration.json")
    return None, None


def score_run(spec: str, index: Any, split: str, images: Sequence[np.ndarray], batch_size: int = 256,
              device: str = "auto") -> Scored:
    """Predictions of an experiment folder or a model folder on the rows of ``index``'s ``split``."""
    from training.evaluate import load_split_logits

    run, override = _split_run_spec(spec)
    pos = index.positions(split)
    if (run / "model_card.json").is_file():
        from fer_models.face_crop import prepare_face
        from fer_models.model_folder import load_model_folder

        model = load_model_folder(run, providers="cpu")
        if [c.lower() for c in model.classes] != [c.lower() for c in index.classes]:
            raise ArtifactError(run / "model_card.json", f"classes {model.classes} differ from the index's "
                                                         f"{index.classes}")
        cal, cal_from = (load_calibration(override, index.classes), str(override)) if override else \
            (model.calibration, str(run / "calibration.json"))
        spec_ = model.crop_spec()
        z = np.concatenate([model.logits(np.stack([prepare_face(im, spec_) for im in images[i:i + batch_size]]))
                            for i in range(0, len(images), batch_size)])
    else:
        cal, cal_from = _calibration_for(run, override, index.classes)
        z = None
        if (run / f"logits_{split}.npz").is_file():
            d = load_split_logits(run, split)
            if d["fingerprint"] == index.fingerprint and np.array_equal(np.sort(d["positions"]), pos):
                z = d["logits"][np.argsort(d["positions"])]
        if z is None:
            from training.data import FERDataset, checkpoint_crop_spec
            from training.evaluate import load_for_inference, predict_logits

            model, ck, ckpt_path, dev, channels_last = load_for_inference(run, "best.pt", index.classes, device)
            ds = FERDataset(index, checkpoint_crop_spec(ck, ckpt_path), positions=pos)
            z, p = predict_logits(model, ds, batch_size, dev, channels_last=channels_last)
            z = z[np.argsort(p)]
    probs, pred = predict_calibrated(z, cal)
    return Scored(run.name, pred, probs, cal_from)


def index_source(index_dir: str | Path, split: str, runs: Sequence[str], pose: PoseEstimator | None,
                 brightness_edges: Sequence[float] = BRIGHTNESS_EDGES, batch_size: int = 256,
                 device: str = "auto") -> Source:
    """Every run scored on one split of an index, with the rows' strata."""
    from training.data import get_store
    from training.index import load_index

    index = load_index(index_dir)
    pos = index.positions(split)
    if len(pos) == 0:
        raise ArtifactError(index.path, f"no rows in split {split!r}")
    store = get_store(index)
    store.preload(pos)
    images = [store.get(int(p)) for p in pos]
    src = Source(f"{index.name}:{split}", index.labels[pos], image_features(images, pose, brightness_edges),
                 classes=list(index.classes))
    for spec in runs:
        src.models.append(score_run(spec, index, split, images, batch_size, device))
    return src


def session_rows(folder: Path) -> dict[str, Any]:
    """Scored rows of a session log: frame, manual and predicted class (NO_LABEL for unstable), face size."""
    from fer_models.scoring import DEFAULT_SCORING, label_segments
    from fer_models.session_log import read_per_frame

    from training.mine import _float, _label, scored_mask

    path = folder / "per_frame.csv"
    cols = read_per_frame(path, FER7, require_probs=False)
    t = np.array([_float(v, path, i + 2, "time_sec") for i, v in enumerate(cols["time_sec"])])
    manual = [_label(v, path, i + 2, "manual_label") for i, v in enumerate(cols["manual_label"])]
    pred = [_label(v, path, i + 2, "pred_label") for i, v in enumerate(cols["pred_label"])]
    mask = scored_mask(t, manual, DEFAULT_SCORING.min_hold_ms, DEFAULT_SCORING.exclusion_ms)
    rows = np.flatnonzero(mask)
    segment = np.zeros(len(manual), np.int64)
    for k, (first, last, _) in enumerate(label_segments(manual)):
        segment[first:last + 1] = k
    frames = ([int(_float(cols["frame_index"][i], path, i + 2, "frame_index")) for i in rows]
              if "frame_index" in cols else [int(i) for i in rows])
    sizes = None
    if "face_w" in cols and "face_h" in cols:
        sizes = []
        for i in rows:
            w, h = cols["face_w"][i].strip(), cols["face_h"][i].strip()
            sizes.append(min(_float(w, path, i + 2, "face_w"), _float(h, path, i + 2, "face_h")) if w and h else None)
    return {"frames": frames, "labels": np.array([manual[i] for i in rows], dtype=np.int64),
            "pred": np.array([NO_LABEL if pred[i] is None else pred[i] for i in rows], dtype=np.int64),
            "times": t[rows], "sizes": sizes, "segments": segment[rows]}


def session_sources(folders: Sequence[str | Path], pose: PoseEstimator | None,
                    brightness_edges: Sequence[float] = BRIGHTNESS_EDGES) -> list[Source]:
    """One source per distinct set of scored frames; sessions replaying the same frames become its models."""
    import cv2

    from fer_models.session_log import read_csv_table

    groups: dict[tuple, Source] = {}
    for f in folders:
        folder = Path(f)
        if not (folder / "per_frame.csv").is_file():
            raise ArtifactError(folder, "not a session folder (no per_frame.csv)")
        r = session_rows(folder)
        if len(r["labels"]) == 0:
            raise ArtifactError(folder / "per_frame.csv", "no scored rows (no label held for at least the min hold)")
        key = (tuple(r["frames"]), tuple(r["labels"].tolist()))
        if key not in groups:
            images: list[np.ndarray | None] = [None] * len(r["frames"])
            crops_csv = folder / "crops" / "crops.csv"
            if crops_csv.is_file():
                cols = read_csv_table(crops_csv, ("frame_index", "time_sec", "file"))
                where = {int(fi): folder / "crops" / name for fi, name in zip(cols["frame_index"], cols["file"])}
                for j, fr in enumerate(r["frames"]):
                    if fr in where and where[fr].is_file():
                        images[j] = cv2.imread(str(where[fr]), cv2.IMREAD_UNCHANGED)
            has_pixels = any(im is not None for im in images)
            feats = image_features(images, pose if has_pixels else None, brightness_edges, r["sizes"], aligned=True)
            if r["sizes"] is None:
                feats.notes["face_size"] = "per_frame.csv has no face_w/face_h columns"
            groups[key] = Source(f"session:{folder.name}", r["labels"], feats, groups=r["segments"])
        groups[key].models.append(Scored(folder.name, r["pred"], None, "as logged (pred_label)"))
    return list(groups.values())


# ----------------------------------------------------------------------------- tables

def summarise(sources: Sequence[Source], n_boot: int = DEFAULT_BOOT, min_n: int = DEFAULT_MIN_N
              ) -> tuple[list[dict], list[dict]]:
    """(summary rows: one per source and model; strata rows: one per source, model, kind and stratum)."""
    from training.aggregate import paired_bootstrap

    summary, strata = [], []
    for src in sources:
        y, k = src.labels, len(src.classes)
        base = src.models[0] if src.models else None
        for m in src.models:
            b = bootstrap_metrics(m.pred, y, m.probs, n_boot, n_classes=k, groups=src.groups)
            row: dict[str, Any] = {"source": src.name, "model": m.model, "n": int(len(y)),
                                   "calibration": m.calibration, "coverage": float(np.mean(m.pred != NO_LABEL))}
            for name in ("accuracy", "macro_f1", "ece"):
                v = b.get(name, {"value": None, "ci_low": None, "ci_high": None})
                row.update({name: v["value"], f"{name}_ci_low": v["ci_low"], f"{name}_ci_high": v["ci_high"]})
            for j, c in enumerate(src.classes):
                pc = b["per_class_f1"]
                row.update({f"f1_{c}": pc["value"][j], f"f1_{c}_ci_low": pc["ci_low"][j],
                            f"f1_{c}_ci_high": pc["ci_high"][j], f"n_{c}": int(np.sum(y == j))})
            if base is not None and m is not base:
                pb = paired_bootstrap([m.pred], [base.pred], y, n_boot, groups=src.groups)
                row.update({"vs": base.model, "accuracy_diff": pb["diff_mean"], "accuracy_diff_ci_low": pb["ci_low"],
                            "accuracy_diff_ci_high": pb["ci_high"], "p_not_better": pb["p_a_not_better"]})
            summary.append(row)
            for kind in KINDS:
                if kind not in src.features.strata:
                    continue
                labels = src.features.strata[kind]
                if all(s is None for s in labels):
                    continue
                for stratum in src.features.order[kind]:
                    idx = np.array([i for i, s in enumerate(labels) if s == stratum], dtype=np.int64)
                    sb = bootstrap_metrics(m.pred[idx], y[idx], None, n_boot,
                                           groups=None if src.groups is None else src.groups[idx])
                    strata.append({"source": src.name, "model": m.model, "kind": kind, "stratum": stratum,
                                   "n": int(len(idx)), "few": bool(len(idx) < min_n),
                                   "accuracy": sb["accuracy"]["value"], "accuracy_ci_low": sb["accuracy"]["ci_low"],
                                   "accuracy_ci_high": sb["accuracy"]["ci_high"],
                                   "macro_f1": sb["macro_f1"]["value"], "macro_f1_ci_low": sb["macro_f1"]["ci_low"],
                                   "macro_f1_ci_high": sb["macro_f1"]["ci_high"]})
    return summary, strata


def _csv(rows: Sequence[dict], path: Path) -> None:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
    atomic_write_text(path, buf.getvalue())


def plot_strata(strata: Sequence[dict], path: Path, min_n: int) -> Path | None:
    """One panel per (source, kind): accuracy per stratum per model with CI bars; few strata hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for r in strata:
        if (r["source"], r["kind"]) not in panels:
            panels.append((r["source"], r["kind"]))
    if not panels:
        return None
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.6 * nrow), dpi=100, squeeze=False)
    for ax, (src, kind) in zip(axes.flat, panels):
        rows = [r for r in strata if r["source"] == src and r["kind"] == kind]
        models = list(dict.fromkeys(r["model"] for r in rows))
        cats = list(dict.fromkeys(r["stratum"] for r in rows))
        width = 0.8 / max(1, len(models))
        labelled: set[str] = set()
        for j, m in enumerate(models):
            for i, c in enumerate(cats):
                r = next(x for x in rows if x["model"] == m and x["stratum"] == c)
                x = i - 0.4 + width * (j + 0.5)
                if r["accuracy"] is None:
                    ax.text(x, 0.02, "n=0", ha="center", fontsize=6, rotation=90)
                    continue
                err = [[r["accuracy"] - r["accuracy_ci_low"]], [r["accuracy_ci_high"] - r["accuracy"]]]
                ax.bar(x, r["accuracy"], width, color=f"C{j}", hatch="//" if r["few"] else None,
                       edgecolor="black", linewidth=0.5, alpha=0.5 if r["few"] else 1.0)
                labelled.add(m)
                ax.errorbar(x, r["accuracy"], yerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
                ax.text(x, min(0.97, r["accuracy_ci_high"] + 0.02), f"{r['n']}", ha="center", fontsize=6)
        ax.set_xticks(range(len(cats)), [c.replace(" ", "\n", 1) for c in cats], fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(f"{src}: {kind}", fontsize=9)
        ax.set_ylabel("accuracy", fontsize=8)
        if labelled:
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(facecolor=f"C{j}", edgecolor="black", label=m) for j, m in enumerate(models)],
                      fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"accuracy by stratum, 95% bootstrap CI; numbers are faces (frames for sessions, CI over label "
                 f"segments); hatched: fewer than {min_n}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_strata(out_dir: str | Path, indexes: Sequence[str | Path] = (), runs: Sequence[str] = (),
               sessions: Sequence[str | Path] = (), split: str = "test", min_n: int = DEFAULT_MIN_N,
               n_boot: int = DEFAULT_BOOT, pose: bool = True, detector: str | Path | None = None,
               brightness_edges: Sequence[float] = BRIGHTNESS_EDGES, batch_size: int = 256,
               device: str = "auto") -> dict[str, Any]:
    """Score, stratify, write summary.csv / strata.csv / strata.json / strata.png; returns the JSON."""
    if not indexes and not sessions:
        raise ValueError("give at least one --index (with --run) or one --session")
    if indexes and not runs:
        raise ValueError("--index needs at least one --run to score on it")
    if list(brightness_edges) != sorted(brightness_edges) or len(brightness_edges) < 2:
        raise ValueError(f"--brightness-edges must be increasing, got {list(brightness_edges)}")
    estimator = PoseEstimator(detector) if pose else None
    sources = [index_source(i, split, runs, estimator, brightness_edges, batch_size, device) for i in indexes]
    sources += session_sources(sessions, estimator, brightness_edges)
    summary, strata = summarise(sources, n_boot, min_n)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _csv(summary, out / "summary.csv")
    _csv(strata, out / "strata.csv")
    plot = plot_strata(strata, out / "strata.png", min_n)
    result = {"summary": summary, "strata": strata, "min_n": min_n, "n_boot": n_boot, "ci_level": 0.95,
              "macro_f1": "over the classes present in the true labels of the rows; a wrong or withheld prediction "
                          "is a miss",
              "bins": {"brightness": list(brightness_edges), "roll_abs_deg": list(ROLL_EDGES),
                       "yaw_abs_deg": list(YAW_EDGES), "face_size_px": [e if math.isfinite(e) else None
                                                                         for e in SIZE_EDGES]},
              "pose_method": f"YuNet landmarks on the face enlarged onto a canvas; roll = eye-line angle; yaw = "
                             f"atan(nose offset / ({NOSE_DEPTH} x eye distance)) after undoing the roll",
              "notes": {s.name: s.features.notes for s in sources},
              "plot": str(plot) if plot else None}
    write_json(out / "strata.json", result)
    return result


# ----------------------------------------------------------------------------- CLI

def add_parser(sub: Any) -> None:
    p = sub.add_parser("strata", help="before/after with bootstrap CIs, and accuracy by lighting, pose, face size",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for summary.csv, strata.csv, strata.json, strata.png")
    p.add_argument("--index", action="append", default=[], help="index to score the runs on (repeatable)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split of every --index")
    p.add_argument("--run", action="append", default=[], metavar="DIR[@CALIBRATION.json]",
                   help="experiment folder (best.pt) or model folder (model_card.json); repeat: the first is the "
                        "baseline of the paired differences")
    p.add_argument("--session", action="append", default=[], metavar="SESSION_DIR",
                   help="session folder scored as logged (repeatable; replays of one session are paired)")
    p.add_argument("--min-n", type=int, default=DEFAULT_MIN_N, help="strata with fewer faces are marked 'few'")
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOT, help="bootstrap resamples")
    p.add_argument("--no-pose", action="store_true", help="skip the landmark-based roll/yaw strata")
    p.add_argument("--detector", default=None, help="YuNet model file (default: the bundled / FER_YUNET_DIR one)")
    p.add_argument("--brightness-edges", type=float, nargs="+", default=list(BRIGHTNESS_EDGES))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    try:
        r = run_strata(args.out, args.index, args.run, args.session, args.split, args.min_n, args.bootstrap,
                       not args.no_pose, args.detector, args.brightness_edges, args.batch_size, args.device)
    except ValueError as exc:
        raise ArtifactError(args.out, str(exc)) from exc
    for row in r["summary"]:
        ece = f", ece {row['ece']:.4f}" if row.get("ece") is not None else ""
        diff = (f"; vs {row['vs']}: {row['accuracy_diff']:+.4f} [{row['accuracy_diff_ci_low']:+.4f}, "
                f"{row['accuracy_diff_ci_high']:+.4f}]") if row.get("vs") else ""
        print(f"{row['source']} {row['model']}: n={row['n']} acc {row['accuracy']:.4f} [{row['accuracy_ci_low']:.4f}, "
              f"{row['accuracy_ci_high']:.4f}], macro-F1 {row['macro_f1']:.4f}{ece}, coverage {row['coverage']:.3f}"
              f"{diff}")
    n_few = sum(1 for s in r["strata"] if s["few"])
    print(f"{len(r['strata'])} strata ({n_few} with fewer than {r['min_n']} faces, marked) -> {args.out}")
    return 0


__all__ = ["PoseEstimator", "bin_label", "bootstrap_metrics", "face_brightness", "image_features",
           "pose_from_landmarks", "present_macro_f1", "run_strata", "session_sources", "summarise"]
