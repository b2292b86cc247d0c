"""``fer-train session-video``: a labelled face video from an index split, to replay as an app session.

The app's session loop (replay -> per-frame log -> transition-fair score -> ``fer-train mine`` ->
``fer-train adapt`` -> A/B replay of another session) needs labelled sessions of people the model
never saw. Recording them needs people and consent; until such recordings exist, a split of a
labelled image set (CK+ subjects, say) stands in: each face is enlarged onto a plain canvas
(``fer_models.framing.place_on_canvas``, the framing measurement's layout) and held for
``--seconds-each``, and the annotator's labels are the images' labels, merged where consecutive
faces share one (so the video has label segments with transitions, as a manual annotation has).

What it is not: a webcam session. The faces are still images (no motion, no blur, no change of
light within a face), upscaled from 48 px, and the "annotator" has no lag. Figures from such
videos measure the session pipeline and the adaptation on other subjects of the image set, not
live-demo accuracy; docs/results.md says so wherever they are used.

Order. ``--order name`` (default) sorts by file name without the class folder, which for CK+
(``S<subject>_<sequence>_<frame>.png``) plays each subject's sequences in order, onset to apex;
``--order shuffle`` plays them in a seeded random order. Writes ``OUT/video.avi`` (MJPG),
``OUT/labels.csv`` (``start_ms,end_ms,label``, what ``fer-demo --replay --labels`` reads),
``OUT/faces.csv`` (``start_ms,end_ms,sample_id,label``: which image is on screen when) and
``OUT/session_video.json`` (the index, its fingerprint, the split, the settings and counts).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_text, write_json
from fer_models.framing import place_on_canvas
from fer_models.session_log import LabelInterval, write_label_intervals

DEFAULT_SECONDS_EACH = 0.6
DEFAULT_FPS = 15.0
DEFAULT_FACE_PX = 240
DEFAULT_SIZE = (640, 480)


def write_face_video(path: str | Path, faces: Sequence[np.ndarray], seconds_each: float, fps: float = DEFAULT_FPS,
                     size: tuple[int, int] = DEFAULT_SIZE, face_px: int = DEFAULT_FACE_PX) -> int:
    """An MJPG AVI showing each grey face for ``seconds_each`` seconds; returns the frame count.

    Face i fills frames [round(i * seconds_each * fps), round((i + 1) * seconds_each * fps)), so the
    frame times of any face are known from its position alone.
    """
    if seconds_each <= 0 or fps <= 0:
        raise ValueError(f"seconds_each and fps must be positive, got {seconds_each} and {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise ArtifactError(path, "OpenCV cannot write an MJPG video here")
    n = 0
    try:
        for i, face in enumerate(faces):
            canvas, _ = place_on_canvas(face, size, face_px)
            end = int(round((i + 1) * seconds_each * fps))
            while n < end:
                writer.write(canvas)
                n += 1
    finally:
        writer.release()
    return n


def face_times_ms(n_faces: int, seconds_each: float, fps: float) -> list[tuple[float, float]]:
    """[start_ms, end_ms) of each face in video time (frame index / fps), as ``write_face_video`` lays them out."""
    bounds = [int(round(i * seconds_each * fps)) for i in range(n_faces + 1)]
    return [(bounds[i] * 1000.0 / fps, bounds[i + 1] * 1000.0 / fps) for i in range(n_faces)]


def merged_intervals(times_ms: Sequence[tuple[float, float]], labels: Sequence[str]) -> list[LabelInterval]:
    """One annotator interval per run of consecutive faces with the same label."""
    out: list[LabelInterval] = []
    for (a, b), lab in zip(times_ms, labels):
        if out and out[-1].label == lab and out[-1].end_ms == a:
            out[-1] = LabelInterval(out[-1].start_ms, b, lab)
        else:
            out.append(LabelInterval(a, b, lab))
    return out


def order_positions(sample_ids: Sequence[str], positions: Sequence[int], order: str, seed: int) -> list[int]:
    if order == "name":
        return sorted((int(p) for p in positions), key=lambda p: (Path(sample_ids[p]).name, sample_ids[p]))
    if order == "shuffle":
        pos = np.array(sorted(int(p) for p in positions))
        return [int(p) for p in np.random.default_rng(seed).permutation(pos)]
    raise ValueError(f"unknown order {order!r}; expected name or shuffle")


def make_session_video(index_dir: str | Path, splits: Sequence[str], out_dir: str | Path,
                       seconds_each: float = DEFAULT_SECONDS_EACH, fps: float = DEFAULT_FPS,
                       face_px: int = DEFAULT_FACE_PX, size: tuple[int, int] = DEFAULT_SIZE, order: str = "name",
                       seed: int = 0, max_faces: int | None = None, data: str | Path | None = None) -> dict[str, Any]:
    """Write the video, labels.csv, faces.csv and session_video.json; returns the json's contents."""
    from training.data import get_store
    from training.index import load_index

    out = Path(out_dir)
    if (out / "video.avi").exists() or (out / "labels.csv").exists():
        raise ArtifactError(out, "already holds a session video; choose another --out")
    index = load_index(index_dir)
    positions = np.concatenate([index.positions(s) for s in splits]) if splits else index.positions()
    if len(positions) == 0:
        raise ArtifactError(index_dir, f"has no rows in split(s) {list(splits)}")
    chosen = order_positions(index.sample_ids, positions, order, seed)
    if max_faces is not None:
        chosen = chosen[:max_faces]
    store = get_store(index, data)
    faces = [store.get(p) for p in chosen]
    out.mkdir(parents=True, exist_ok=True)
    n_frames = write_face_video(out / "video.avi", faces, seconds_each, fps, size, face_px)
    times = face_times_ms(len(chosen), seconds_each, fps)
    names = [index.classes[int(index.labels[p])] for p in chosen]
    intervals = merged_intervals(times, names)
    write_label_intervals(out / "labels.csv", intervals)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(("start_ms", "end_ms", "sample_id", "label"))
    for (a, b), p, lab in zip(times, chosen, names):
        w.writerow((round(a, 3), round(b, 3), index.sample_ids[p], lab))
    atomic_write_text(out / "faces.csv", buf.getvalue())
    record = {
        "index": str(index_dir), "index_name": index.name, "fingerprint": index.fingerprint,
        "splits": list(splits), "order": order, "seed": seed, "seconds_each": seconds_each, "fps": fps,
        "face_px": face_px, "size": list(size), "n_faces": len(chosen), "n_frames": n_frames,
        "n_label_segments": len(intervals),
        "faces_per_class": {c: names.count(c) for c in index.classes},
        "note": "still faces enlarged onto a plain canvas, no annotator lag: a stand-in for a recorded session",
    }
    write_json(out / "session_video.json", record)
    return record


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 640x480, got {text!r}") from None
    return w, h


def add_parser(sub: Any) -> None:
    p = sub.add_parser("session-video", help="a labelled face video from an index split, to replay as a session",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--index", required=True, help="index folder (fer-train index / index-ckplus)")
    p.add_argument("--split", nargs="+", default=["test"], choices=("train", "val", "test"),
                   help="split(s) whose faces are shown (default test)")
    p.add_argument("--out", required=True, help="folder for video.avi, labels.csv, faces.csv, session_video.json")
    p.add_argument("--seconds-each", type=float, default=DEFAULT_SECONDS_EACH, help="seconds each face is shown")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS)
    p.add_argument("--face-px", type=int, default=DEFAULT_FACE_PX, help="side of the enlarged face in the frame")
    p.add_argument("--size", default="640x480", help="frame size WxH")
    p.add_argument("--order", choices=("name", "shuffle"), default="name",
                   help="name: by file name (CK+: subject, sequence, frame); shuffle: seeded random order")
    p.add_argument("--seed", type=int, default=0, help="seed of --order shuffle")
    p.add_argument("--max-faces", type=int, default=None, help="show only the first N faces of the order")
    p.add_argument("--data", default=None, help="data root if it moved since the index was built")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    try:
        size = _size(args.size)
        rec = make_session_video(args.index, args.split, args.out, args.seconds_each, args.fps, args.face_px, size,
                                 args.order, args.seed, args.max_faces, args.data)
    except ValueError as exc:
        raise ArtifactError(args.out, str(exc)) from exc
    print(f"session video {args.out}/video.avi: {rec['n_faces']} faces, {rec['n_frames']} frames, "
          f"{rec['n_label_segments']} label segments {rec['faces_per_class']}")
    return 0
