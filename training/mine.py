"""``fer-train mine SESSION_DIR... --out DIR``: hard frames of labelled app sessions as a canonical index.

A labelled session says, frame by frame, what the annotator held (``manual_label``) and
what the model showed (``pred_label``). The frames where they disagree are the model's
mistakes on this camera, light and person: the most useful data for adapting it. This
command turns them into an image folder plus a canonical index that every ``fer-train``
command with ``--index`` reads (``fer-train adapt`` trains on its ``train`` split).

The session folder (the app's contract, DESIGN.md §4 plus the crops):

- ``per_frame.csv`` (read with ``fer_models.session_log.read_per_frame``);
- ``actions.csv`` (``time_sec,kind,value``); consent is a row ``clip_consent`` with value
  ``granted`` or ``declined``;
- ``crops/{frame_index:07d}.png`` and ``crops/crops.csv`` (``frame_index,time_sec,file``):
  the aligned face crop the model saw, only where consent was granted and saving was on.

Consent. A session is mined only if its last ``clip_consent`` answer in actions.csv is
``granted`` (the app asks again each time clip saving is turned on until the user agrees,
and writes crops only after that; it never asks again once granted), and it has crops. Any other session is refused by name before anything is written (or, with
``--skip-refused``, left out with a warning naming it).

Which frames. A frame is a candidate when its pred_label is a class (not ``(unstable)``),
differs from a held manual label, it has a crop, and it lies in a *scored* part of a label
segment as transition-fair scoring defines it (DESIGN.md §5: segment at least
``--min-hold-ms``, ``--exclusion-ms`` trimmed at both ends): just after the annotator
changes the label, the face often still shows the old expression, and such frames are
label noise rather than model mistakes. Within a session, a candidate closer than
``--stride-sec`` to the previous one kept of the same class is dropped (consecutive frames
are nearly the same picture).

Selection. Classes are visited rarest first (fewest scored manual-label frames over all
sessions given), so when a session's cap binds, its budget goes to the minority classes.
Within a class, sessions take turns (one frame each, by session name), each session's
frames in a low-discrepancy order over time (a prefix of any length is spread over the
session), until the class reaches ``--per-class-cap`` or no session has frames left under
``--per-session-cap``. So one long session cannot dominate a class or the folder.

Agreeing frames (``--agreeing-ratio R``, default 0). Mistakes alone are a one-sided sample:
adapting on them teaches the model to move away from what it shows, also where it was right (on
the stand-in CK+ session of docs/results.md, mistakes-only adaptation cost 1.4 points on FER2013).
With R > 0, each session also gives ``round(R x its mistakes taken)`` scored frames where the
model showed the held label (same scoring, crop and stride rules), spread over its time; mined.csv
marks every row's ``kind`` (``mistake`` or ``agreeing``).

Output (``--out DIR``): ``images/<session>/f<frame_index:07d>.png`` (the crop's bytes as
saved by the app), ``index.csv`` / ``index.json`` / ``classes.json`` (``training.index``'s
writer: canonical order, fingerprint, ``rows_sha256``, data health) with a ``mining``
record in index.json, and ``mined.csv`` (one row per sample: session, frame, time, manual
and predicted label, their probabilities, face size). Sample ids are
``<session>/f<frame_index:07d>.png``; every mined sample has split ``train``.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import sys
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.classes import FER7, UNSTABLE, canonical_class_name
from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_text, read_json, sha256_bytes, write_json
from fer_models.scoring import DEFAULT_SCORING, scored_rows
from fer_models.session_log import read_actions, read_csv_table, read_per_frame

from training.index import CanonicalIndex, canonical_order, decode_image_bytes, write_index

FORMAT = "mined-sessions"
SPLIT = "train"
CROPS_COLUMNS = ("frame_index", "time_sec", "file")
MINED_COLUMNS = ("sample_id", "session", "frame_index", "time_sec", "manual_label", "pred_label", "prob_manual",
                 "prob_pred", "face_w", "face_h", "crop_file", "kind")
KINDS = ("mistake", "agreeing")
DEFAULT_PER_CLASS_CAP = 300
DEFAULT_PER_SESSION_CAP = 400
DEFAULT_STRIDE_SEC = 0.25
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


class SessionRefused(ArtifactError):
    """A session folder that may not (or cannot) be mined: no consent, consent declined, no crops."""


# ----------------------------------------------------------------------------- reading one session

@dataclass
class Candidate:
    session: str
    frame_index: int
    time_sec: float
    manual: int
    pred: int
    crop: Path
    prob_manual: float | None
    prob_pred: float | None
    face_w: str = ""
    face_h: str = ""
    kind: str = "mistake"  # or "agreeing": the model showed the held label (--agreeing-ratio)

    @property
    def sample_id(self) -> str:
        return f"{self.session}/f{self.frame_index:07d}.png"


@dataclass
class Session:
    name: str
    path: Path
    consent: str
    n_frames: int = 0
    n_scored: int = 0
    scored_per_class: Counter = field(default_factory=Counter)
    candidates: dict[int, list[Candidate]] = field(default_factory=dict)  # class -> in time order
    n_candidates_before_stride: int = 0
    agreeing: list[Candidate] = field(default_factory=list)  # scored frames the model got right, in time order


def consent_status(folder: Path) -> str:
    """``granted`` (the last clip_consent answer), else raises SessionRefused naming the folder."""
    path = folder / "actions.csv"
    if not path.is_file():
        raise SessionRefused(folder, "no actions.csv, so no recorded clip consent: refused")
    try:
        actions = read_actions(path)
    except ValueError as exc:
        raise ArtifactError(path, f"time_sec is not a number ({exc})") from exc
    values = []
    for line, (_, kind, value) in enumerate(actions, start=2):
        if kind.strip() != "clip_consent":
            continue
        v = value.strip().lower()
        if v not in ("granted", "declined"):
            raise ArtifactError(path, f"line {line}: clip_consent value {value!r} is neither granted nor declined")
        values.append(v)
    if not values:
        raise SessionRefused(folder, "no clip_consent row in actions.csv: the user never agreed to saving face "
                                     "crops, refused")
    if values[-1] != "granted":
        raise SessionRefused(folder, "the last clip consent answer in actions.csv is 'declined': refused")
    return "granted"


def scored_mask(time_sec: np.ndarray, manual: Sequence[int | None], min_hold_ms: float, exclusion_ms: float
                ) -> np.ndarray:
    """Rows that transition-fair scoring scores: ``fer_models.scoring.scored_rows``, the one implementation."""
    names = ["" if m is None else FER7[m] for m in manual]
    mask = np.zeros(len(time_sec), bool)
    mask[scored_rows(list(time_sec), names, min_hold_ms, exclusion_ms)] = True
    return mask


def _label(value: str, path: Path, line: int, what: str) -> int | None:
    s = (value or "").strip()
    if s == "" or s.lower() == UNSTABLE:
        return None
    try:
        return FER7.index(canonical_class_name(s))
    except ValueError:
        raise ArtifactError(path, f"line {line}: unknown {what} {s!r}; expected one of {list(FER7)} or "
                                  f"{UNSTABLE!r}") from None


def _float(value: str, path: Path, line: int, what: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise ArtifactError(path, f"line {line}: {what} {value!r} is not a number") from None
    if not math.isfinite(v):
        raise ArtifactError(path, f"line {line}: {what} is not finite")
    return v


def read_crops(folder: Path) -> dict[int, tuple[float, Path]]:
    """frame_index -> (time_sec, crop file) from crops/crops.csv; files must exist inside crops/."""
    crops_dir = folder / "crops"
    path = crops_dir / "crops.csv"
    if not crops_dir.is_dir() or not path.is_file():
        raise SessionRefused(folder, "consent granted but no crops/crops.csv: clip saving was off, nothing to mine")
    cols = read_csv_table(path, CROPS_COLUMNS)
    out: dict[int, tuple[float, Path]] = {}
    root = crops_dir.resolve()
    for i, (fi, t, name) in enumerate(zip(cols["frame_index"], cols["time_sec"], cols["file"])):
        line = i + 2
        try:
            frame = int(fi)
        except ValueError:
            raise ArtifactError(path, f"line {line}: frame_index {fi!r} is not an integer") from None
        f = (crops_dir / name).resolve()
        if f.parent != root:
            raise ArtifactError(path, f"line {line}: file {name!r} is not inside crops/")
        if not f.is_file():
            raise ArtifactError(f, f"listed in {path} line {line} but missing")
        if frame in out:
            raise ArtifactError(path, f"line {line}: frame_index {frame} listed twice")
        out[frame] = (_float(t, path, line, "time_sec"), f)
    return out


def read_session(folder: str | Path, min_hold_ms: float = DEFAULT_SCORING.min_hold_ms,
                 exclusion_ms: float = DEFAULT_SCORING.exclusion_ms, stride_sec: float = DEFAULT_STRIDE_SEC) -> Session:
    """Consent first, then the candidates of one session (per class, in time order, thinned by ``stride_sec``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(folder, "session folder not found")
    consent = consent_status(folder)
    crops = read_crops(folder)
    path = folder / "per_frame.csv"
    cols = read_per_frame(path, FER7)
    n = len(cols["frame_index"])
    s = Session(folder.name, folder, consent, n_frames=n)
    frames = [int(_float(v, path, i + 2, "frame_index")) for i, v in enumerate(cols["frame_index"])]
    t = np.array([_float(v, path, i + 2, "time_sec") for i, v in enumerate(cols["time_sec"])])
    manual = [_label(v, path, i + 2, "manual_label") for i, v in enumerate(cols["manual_label"])]
    pred = [_label(v, path, i + 2, "pred_label") for i, v in enumerate(cols["pred_label"])]
    if np.any(np.diff(t) < 0):
        i = int(np.flatnonzero(np.diff(t) < 0)[0]) + 1
        raise ArtifactError(path, f"line {i + 2}: time_sec goes backwards")
    scored = scored_mask(t, manual, min_hold_ms, exclusion_ms)
    s.n_scored = int(scored.sum())
    s.scored_per_class = Counter(manual[i] for i in np.flatnonzero(scored))
    last_kept: dict[tuple[bool, int], float] = {}
    for i in np.flatnonzero(scored):
        m, p = manual[i], pred[i]
        if p is None or frames[i] not in crops:
            continue
        agrees = p == m
        ct, crop = crops[frames[i]]
        if abs(ct - t[i]) > 1e-3:
            raise ArtifactError(folder / "crops" / "crops.csv",
                                f"frame {frames[i]} has time_sec {ct} but per_frame.csv says {t[i]}: the crops "
                                "belong to another session or run")
        if not agrees:
            s.n_candidates_before_stride += 1
        key = (agrees, m)
        if key in last_kept and t[i] - last_kept[key] < stride_sec - 1e-9:
            continue
        last_kept[key] = float(t[i])

        def prob(k: int) -> float | None:
            v = cols[f"prob_{FER7[k]}"][i]
            return _float(v, path, int(i) + 2, f"prob_{FER7[k]}") if v.strip() else None

        c = Candidate(s.name, frames[i], float(t[i]), m, p, crop, prob(m), prob(p),
                      cols.get("face_w", [""] * n)[i], cols.get("face_h", [""] * n)[i],
                      "agreeing" if agrees else "mistake")
        if agrees:
            s.agreeing.append(c)
        else:
            s.candidates.setdefault(m, []).append(c)
    return s


# ----------------------------------------------------------------------------- selection

def spread_order(n: int) -> list[int]:
    """0..n-1 in a low-discrepancy order (by frac(i * golden ratio)): every prefix is spread out."""
    return sorted(range(n), key=lambda i: ((i * GOLDEN) % 1.0, i))


def class_order(sessions: Sequence[Session]) -> list[int]:
    """Classes rarest first by scored manual-label frames over the sessions; ties in FER7 order."""
    total = Counter()
    for s in sessions:
        total.update(s.scored_per_class)
    return sorted(range(len(FER7)), key=lambda k: (total.get(k, 0), k))


def select(sessions: Sequence[Session], per_class_cap: int = DEFAULT_PER_CLASS_CAP,
           per_session_cap: int = DEFAULT_PER_SESSION_CAP) -> list[Candidate]:
    """The mined frames: minority classes first, sessions taking turns, both caps honoured."""
    if per_class_cap < 1 or per_session_cap < 1:
        raise ValueError("caps must be at least 1")
    taken: Counter = Counter()
    chosen: list[Candidate] = []
    by_name = sorted(sessions, key=lambda s: s.name)
    for k in class_order(sessions):
        queues = {}
        for s in by_name:
            cands = s.candidates.get(k, [])
            queues[s.name] = deque(cands[i] for i in spread_order(len(cands)))
        n_k = 0
        while n_k < per_class_cap:
            progressed = False
            for s in by_name:
                if n_k >= per_class_cap:
                    break
                q = queues[s.name]
                if q and taken[s.name] < per_session_cap:
                    chosen.append(q.popleft())
                    taken[s.name] += 1
                    n_k += 1
                    progressed = True
            if not progressed:
                break
    return chosen


def select_agreeing(sessions: Sequence[Session], chosen: Sequence[Candidate], ratio: float) -> list[Candidate]:
    """Per session, ``round(ratio * its mistakes chosen)`` frames the model got right, spread over the
    session's time (``spread_order``), so the adaptation data also shows what the model already does well."""
    if ratio < 0:
        raise ValueError(f"the agreeing ratio must be >= 0, got {ratio}")
    per_session = Counter(c.session for c in chosen)
    extra: list[Candidate] = []
    for s in sorted(sessions, key=lambda s: s.name):
        want = int(round(ratio * per_session.get(s.name, 0)))
        order = spread_order(len(s.agreeing))
        extra += [s.agreeing[i] for i in order[:want]]
    return extra


# ----------------------------------------------------------------------------- writing

def mine_sessions(session_dirs: Sequence[str | Path], out_dir: str | Path, per_class_cap: int = DEFAULT_PER_CLASS_CAP,
                  per_session_cap: int = DEFAULT_PER_SESSION_CAP, stride_sec: float = DEFAULT_STRIDE_SEC,
                  min_hold_ms: float = DEFAULT_SCORING.min_hold_ms, exclusion_ms: float = DEFAULT_SCORING.exclusion_ms,
                  skip_refused: bool = False, name: str = "mined", force: bool = False,
                  agreeing_ratio: float = 0.0) -> CanonicalIndex:
    """Read every session (consent first), select, copy the crops and write the index; returns it.

    ``agreeing_ratio``: also take that many frames the model got right per mistake taken, per
    session (``select_agreeing``; 0, the default, mines mistakes only)."""
    from training.data_health import HealthAccumulator

    if not session_dirs:
        raise ValueError("give at least one session folder")
    out = Path(out_dir)
    if (out / "index.json").exists() or (out / "index.csv").exists():
        if not force:
            raise ArtifactError(out, "already holds an index; choose another --out or pass --force to replace it")
        if read_json(out / "index.json").get("format") != FORMAT:
            raise ArtifactError(out, f"holds an index that is not a {FORMAT} one; refusing to replace it")
    names = [Path(d).name for d in session_dirs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ArtifactError(Path(session_dirs[0]).parent, f"session folder names {dup} are given twice; sample ids "
                                                          "name the session by its folder name, so they must differ")
    sessions: list[Session] = []
    refused: list[SessionRefused] = []
    for d in session_dirs:
        try:
            sessions.append(read_session(d, min_hold_ms, exclusion_ms, stride_sec))
        except SessionRefused as exc:
            refused.append(exc)
    if refused and not skip_refused:
        raise SessionRefused(refused[0].path, "; ".join(str(e) for e in refused)
                             + (f" ({len(refused)} sessions refused; nothing written. Pass --skip-refused to mine "
                                "the others)" if len(refused) > 1 else " (nothing written; pass --skip-refused to "
                                                                        "mine the other sessions)"))
    for exc in refused:
        print(f"warning: left out: {exc}", file=sys.stderr)
    if not sessions:
        raise ArtifactError(out, "no session may be mined")
    chosen = select(sessions, per_class_cap, per_session_cap)
    if not chosen:
        raise ArtifactError(out, "no frame qualifies: no scored frame where a class prediction disagrees with the "
                                 "held label and a crop was saved")
    agreeing = select_agreeing(sessions, chosen, agreeing_ratio)
    chosen = list(chosen) + agreeing

    images = out / "images"
    if images.exists():
        if not (out / "index.json").is_file():  # only ever delete the images of a mined index (checked above)
            raise ArtifactError(images, "exists but --out holds no mined index; choose another --out")
        shutil.rmtree(images)
    health = HealthAccumulator()
    hashes: dict[str, str] = {}
    for c in chosen:
        blob = c.crop.read_bytes()
        # a broken crop is refused by name here, before it reaches a training run
        health.add(SPLIT, decode_image_bytes(blob, c.crop))
        target = images / c.sample_id
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
        hashes[c.sample_id] = sha256_bytes(blob)
    ids = [c.sample_id for c in chosen]
    order = canonical_order(ids, [SPLIT] * len(ids))
    chosen = [chosen[i] for i in order]
    index = CanonicalIndex(name=name, sample_ids=[c.sample_id for c in chosen],
                           labels=np.array([c.manual for c in chosen]), splits=np.array([SPLIT] * len(chosen)),
                           sha256=[hashes[c.sample_id] for c in chosen], classes=list(FER7), format=FORMAT,
                           source=str(images.resolve()), health=health.summary())
    write_index(index, out)
    per_session = Counter(c.session for c in chosen)
    per_class = Counter(FER7[c.manual] for c in chosen if c.kind == "mistake")
    per_class_agreeing = Counter(FER7[c.manual] for c in chosen if c.kind == "agreeing")
    meta = read_json(out / "index.json")
    meta["mining"] = {
        "rule": "pred_label a class, != held manual_label, crop saved, row scored by transition-fair scoring",
        "agreeing_ratio": agreeing_ratio,
        "agreeing_rule": "per session, round(ratio x its mistakes) scored frames with pred_label == manual_label, "
                         "spread over time",
        "split": SPLIT,
        "min_hold_ms": min_hold_ms, "exclusion_ms": exclusion_ms, "stride_sec": stride_sec,
        "per_class_cap": per_class_cap, "per_session_cap": per_session_cap,
        "class_order": [FER7[k] for k in class_order(sessions)],
        "class_order_rule": "rarest first by scored manual-label frames over the sessions",
        "per_class": {c: per_class.get(c, 0) for c in FER7},
        "per_class_agreeing": {c: per_class_agreeing.get(c, 0) for c in FER7},
        "sessions": [{"name": s.name, "path": str(s.path.resolve()), "consent": s.consent, "n_frames": s.n_frames,
                      "n_scored": s.n_scored, "n_candidates": s.n_candidates_before_stride,
                      "n_candidates_after_stride": sum(len(v) for v in s.candidates.values()),
                      "n_mined": per_session.get(s.name, 0), "n_agreeing_available": len(s.agreeing),
                      "n_agreeing": sum(1 for c in agreeing if c.session == s.name)} for s in sessions],
        "refused": [str(e) for e in refused],
    }
    write_json(out / "index.json", meta)
    _write_mined_csv(out / "mined.csv", chosen)
    return index


def _write_mined_csv(path: Path, chosen: Sequence[Candidate]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MINED_COLUMNS)
    for c in chosen:
        w.writerow([c.sample_id, c.session, c.frame_index, repr(round(c.time_sec, 6)), FER7[c.manual], FER7[c.pred],
                    "" if c.prob_manual is None else c.prob_manual, "" if c.prob_pred is None else c.prob_pred,
                    c.face_w, c.face_h, c.crop.name, c.kind])
    atomic_write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------- CLI

def add_parser(sub: Any) -> None:
    p = sub.add_parser("mine", help="hard frames of consented, labelled app sessions -> image folder + index",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("sessions", nargs="+", metavar="SESSION_DIR", help="app session folders")
    p.add_argument("--out", required=True, help="folder to write (images/, index.csv/json, classes.json, mined.csv)")
    p.add_argument("--per-class-cap", type=int, default=DEFAULT_PER_CLASS_CAP, help="most frames per class")
    p.add_argument("--per-session-cap", type=int, default=DEFAULT_PER_SESSION_CAP, help="most frames per session")
    p.add_argument("--stride-sec", type=float, default=DEFAULT_STRIDE_SEC,
                   help="least time between two mined frames of one class in one session")
    p.add_argument("--min-hold-ms", type=float, default=DEFAULT_SCORING.min_hold_ms,
                   help="shortest label segment mined from (transition-fair scoring's min hold)")
    p.add_argument("--exclusion-ms", type=float, default=DEFAULT_SCORING.exclusion_ms,
                   help="time left out after each label change and before the next")
    p.add_argument("--skip-refused", action="store_true",
                   help="leave sessions without consent or crops out (named in a warning) instead of stopping")
    p.add_argument("--agreeing-ratio", type=float, default=0.0, metavar="R",
                   help="also take R frames the model got right per mistake taken, per session (default 0: "
                        "mistakes only). Adapting on mistakes alone is a one-sided sample")
    p.add_argument("--name", default="mined", help="index name")
    p.add_argument("--force", action="store_true", help="replace a mined index in --out")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    try:
        index = mine_sessions(args.sessions, args.out, args.per_class_cap, args.per_session_cap, args.stride_sec,
                              args.min_hold_ms, args.exclusion_ms, args.skip_refused, args.name, args.force,
                              args.agreeing_ratio)
    except ValueError as exc:
        raise ArtifactError(args.out, str(exc)) from exc
    meta = read_json(Path(args.out) / "index.json")["mining"]
    print(f"mined {len(index)} frames (split {SPLIT}) from {len(meta['sessions'])} sessions, fingerprint "
          f"{index.fingerprint} -> {args.out}")
    print("  per class: " + ", ".join(f"{c} {n}" for c, n in meta["per_class"].items() if n))
    if args.agreeing_ratio:
        print("  agreeing frames per class: " + ", ".join(f"{c} {n}" for c, n in meta["per_class_agreeing"].items()
                                                          if n))
    for s in meta["sessions"]:
        print(f"  {s['name']}: {s['n_mined'] - s['n_agreeing']} of {s['n_candidates']} disagreeing scored frames "
              f"with a crop" + (f", {s['n_agreeing']} agreeing" if args.agreeing_ratio else ""))
    return 0


__all__ = ["FORMAT", "SPLIT", "SessionRefused", "consent_status", "mine_sessions", "read_session", "scored_mask",
           "select", "spread_order"]
