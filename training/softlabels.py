"""``fer-train softlabels``: a trained run's logits and probabilities at T for every index row.

The folder it writes (``training.softlabel_files``) is checked by the full alignment
diagnostic right after export, so a folder that exists has been proven to match its
index and its checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_models.errors import ArtifactError
from fer_models.files import sha256_file

from training.alignment import check_alignment
from training.evaluate import TTA_MODES
from training.softlabel_files import DEFAULT_TEMPERATURE, write_softlabels


def export_softlabels(run_dir: str | Path, index_dir: str | Path, out: str | Path | None = None,
                      temperature: float = DEFAULT_TEMPERATURE, checkpoint: str = "best.pt",
                      batch_size: int = 256, device: str = "auto", data_root: str | Path | None = None,
                      diagnostic_rows: int = 64, progress: bool = True, tta: str = "none") -> Path:
    """Predict every index row with a run's checkpoint and write its soft-label folder.

    ``tta`` (``training.evaluate.TTA_MODES``) is recorded with the producer; the alignment diagnostic
    recomputes rows with the same.

    The folder goes to ``out`` (or ``RUN_DIR/softlabels``) under ``<index>-<fp8>``; the
    alignment diagnostic (recomputing ``diagnostic_rows`` random rows) runs right away.
    """
    from training.data import FERDataset, checkpoint_crop_spec
    from training.evaluate import load_for_inference, predict_logits
    from training.index import load_index

    run_dir = Path(run_dir)
    index = load_index(index_dir)
    model, ck, ckpt, dev, cl = load_for_inference(run_dir, checkpoint, index.classes, device)
    spec = checkpoint_crop_spec(ck, ckpt)
    ds = FERDataset(index, spec, root=data_root, progress=progress)
    logits, pos = predict_logits(model, ds, batch_size, dev, progress=progress, channels_last=cl, tta=tta)
    if not np.array_equal(pos, np.arange(len(index))):
        raise RuntimeError("prediction order differs from index order")  # guards the export itself
    base = Path(out) if out is not None else run_dir / "softlabels"
    folder = base / index.short_name
    kind = "student" if ck.get("role") == "student" else "teacher"
    producer = {"producer": {"run_dir": str(run_dir.resolve()), "checkpoint": str(ckpt.resolve()),
                             "checkpoint_sha256": sha256_file(ckpt), "backbone": ck["backbone"],
                             "input_size": ck["input_size"], "in_chans": ck["in_chans"],
                             "stem_stride": ck.get("stem_stride"), "epoch": ck.get("epoch"),
                             "trained_on_index": ck.get("index_fingerprint"),
                             "data_root": str(data_root or index.source), "tta": tta}}
    write_softlabels(folder, index, logits, temperature, kind, producer)
    result = check_alignment(folder, index, n_rows=diagnostic_rows, data_root=data_root)
    acc = ", ".join(f"{k} {v:.4f}" for k, v in result["recorded_accuracy"].items() if v is not None)
    print(f"soft labels ({len(index)} rows, T={temperature}, TTA {tta}) -> {folder}\n  argmax accuracy: {acc}\n"
          f"  alignment diagnostic: {result['status']}")
    if result["status"] != "passed":
        raise ArtifactError(folder, "alignment diagnostic failed right after export: " + "; ".join(result["problems"]))
    return folder


def add_parser(sub: Any) -> None:
    p = sub.add_parser("softlabels", help="export probabilities at T and logits for every index row")
    p.add_argument("run_dir")
    p.add_argument("--index", required=True)
    p.add_argument("--out", default=None, help="parent folder (default RUN_DIR/softlabels)")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    p.add_argument("--checkpoint", default="best.pt")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--data", default=None, help="data root if it moved since the index was built")
    p.add_argument("--diagnostic-rows", type=int, default=64, help="rows recomputed by the alignment diagnostic")
    p.add_argument("--tta", default="none", choices=TTA_MODES,
                   help="test-time augmentation: flip = mean logits of the face and its mirror (as for evaluate)")
    p.set_defaults(func=lambda a: (export_softlabels(a.run_dir, a.index, a.out, a.temperature, a.checkpoint,
                                                     a.batch_size, a.device, a.data, a.diagnostic_rows,
                                                     tta=a.tta), 0)[1])
