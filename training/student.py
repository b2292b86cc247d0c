"""Student distillation: a MobileNetV3-Large taught by a teacher, a fused ensemble or split ensemble members.

``fer-train student`` runs the same loop as ``fer-train teacher``
(``training.loop.run_training``: resumable, DDP-ready, evaluation and calibration at
the end); only the objective differs, passed in as the loop's loss hook:

- ``--distill kd``: (1 - alpha) CE + alpha T^2 KL(softmax(z_t/T) || softmax(z_s/T));
- ``--distill dkd``: ce_weight CE + w (alpha TCKD + beta NCKD), TCKD and NCKD carrying T^2,
  w = min(1, (epoch + step/steps) / dkd_warmup_epochs) the linear warm-up of the KL terms;
- ``--distill none``: the no-distillation baseline, plain cross-entropy with the same recipe.

Teacher targets are the *raw logits* stored in soft-label folders (the temperature is
applied in the loss, never the T=2 probabilities of the folder). Every folder passes
the alignment gate (``training.alignment.require_aligned``) against the student's index
before anything else happens; the targets of a batch are looked up by the rows' index
positions. One folder (a teacher, or a fused ensemble whose pseudo-logits T*log(fused)
read like a teacher's) gives one target; a split-ensemble folder or several folders give
split targets: each member's KL term, weighted (``--teacher-weight``, default the stored or
equal weights).

The backbone is locked to timm ``mobilenetv3_large_100``. ``--init-checkpoint`` loads a
local checkpoint where names and shapes match and is refused below a 60% match.

Issue 14 options, off by default (a run without them trains and records exactly as before):
``--optimizer nl`` swaps the recipe's AdamW for ``training.nl.DeepMemoryOptimizer`` (local
mode) and ``--negl-config`` adds weight * NegL on confusion-guided complementary classes
(``training.negl``); both are recorded in args.json and the checkpoints, suffix the
config name (``_nl``, ``_negl-<name>``) and may not change on a resume.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fer_models.errors import FerError

from training.loop import RESUME_FIXED, add_train_arguments, run_training

STUDENT_BACKBONE = "mobilenetv3_large_100"
METHODS = ("kd", "dkd", "none")
DEFAULT_EPOCHS = 20
DEFAULT_DKD_WARMUP = 5.0
# a resumed student must keep its objective and its teachers' data; "optimizer" and "negl_sha256" are None
# for AdamW without NegL, which is also what a checkpoint from before those options gives (saved.get -> None)
STUDENT_RESUME_FIXED = RESUME_FIXED + ("distill", "alpha", "beta", "temperature", "dkd_warmup_epochs", "ce_weight",
                                       "label_smoothing", "teacher_weights_effective", "teacher_arrays_sha256",
                                       "optimizer", "negl_sha256")


class StudentOptionError(FerError, ValueError):
    """Options that do not fit together (fer-train prints the message and exits with status 2)."""


# ----------------------------------------------------------------------------- teacher targets

@dataclass
class TeacherTargets:
    """Teacher logits (M, N, K) in index order with member weights (summing to 1) and provenance."""

    logits: np.ndarray
    weights: list[float]
    members: list[dict[str, Any]]
    folders: list[dict[str, Any]]
    name: str

    @property
    def split(self) -> bool:
        return len(self.weights) > 1


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "teacher"


def folder_name(path: Path, kind: str) -> str:
    """A short name for a soft-label folder: its run folder's name (RUN/softlabels*/<index>), else its own."""
    base = path.parent.parent.name if path.parent.name in ("softlabels", "softlabels_split") else path.name
    return _safe(base + ("-split" if kind == "ensemble_split" else ""))


def _fmt_weights(weights: Sequence[float]) -> str:
    return "-".join(f"{w:.3g}" for w in weights)


def load_teacher_targets(dirs: Sequence[str | Path], index: Any, weights: Sequence[float] | None = None,
                         temperature: float | None = None) -> TeacherTargets:
    """Gate every folder against ``index`` and collect the raw teacher logits as one or split targets.

    One folder of kind teacher/student/ensemble_fused is a single target; one
    ``ensemble_split`` folder gives its members with the stored weights; several folders
    (none of them split) are split targets with ``weights`` (default equal).
    ``weights`` always counts the members and is normalised to sum to 1.
    """
    from training.alignment import require_aligned

    if not dirs:
        raise StudentOptionError("give at least one --teacher folder")
    gated = [require_aligned(d, index) for d in dirs]  # the gate first, on every folder
    folders = []
    for d, sl in zip(dirs, gated):
        prod = sl.meta.get("producer") if isinstance(sl.meta.get("producer"), dict) else {}
        folders.append({"given": str(d), "folder": str(sl.path.resolve()), "kind": sl.kind,
                        "name": folder_name(sl.path, sl.kind), "index_name": sl.meta.get("index_name"),
                        "index_fingerprint": sl.meta["index_fingerprint"],
                        "arrays_sha256": sl.meta["arrays_sha256"], "temperature": sl.temperature,
                        "checkpoint_sha256": (prod or {}).get("checkpoint_sha256") or sl.meta.get("checkpoint_sha256"),
                        "diagnostic": (sl.meta.get("diagnostic") or {}).get("status")})
        if temperature is not None and sl.kind == "ensemble_fused" and abs(sl.temperature - temperature) > 1e-9:
            print(f"warning: {sl.path}: fused ensemble built at T={sl.temperature:g} but the student distils at "
                  f"T={temperature:g}: its target becomes the fused distribution sharpened/softened by "
                  f"{sl.temperature / temperature:g}", file=sys.stderr)
    given_weights = list(weights) if weights else None
    if len(gated) == 1 and gated[0].kind == "ensemble_split":
        sl = gated[0]
        logits = np.asarray(sl.arrays["member_logits"], dtype=np.float32)
        stored = [float(w) for w in sl.arrays["weights"]]
        names = [str(n) for n in sl.arrays["member_names"]] if "member_names" in sl.arrays else \
            [f"member{i}" for i in range(len(stored))]
        if given_weights is None:
            w = stored
        elif len(given_weights) != len(stored):
            raise StudentOptionError(f"--teacher-weight gives {len(given_weights)} weights but {sl.path} holds "
                             f"{len(stored)} members {names}")
        else:
            w = given_weights
        members = [{"name": n, "folder": folders[0]["folder"], "member_of": "ensemble_split"} for n in names]
        name = folders[0]["name"] + (f"_w{_fmt_weights(_normalise(w))}" if given_weights else "")
    else:
        split_given = [f["folder"] for f in folders if f["kind"] == "ensemble_split"]
        if split_given:
            raise StudentOptionError(f"a split-ensemble folder must be the only --teacher (got {split_given} among "
                             f"{len(folders)} folders); pass its members' folders instead")
        logits = np.stack([np.asarray(sl.arrays["logits"], dtype=np.float32) for sl in gated])
        w = given_weights if given_weights is not None else [1.0] * len(gated)
        if len(w) != len(gated):
            raise StudentOptionError(f"--teacher-weight gives {len(w)} weights for {len(gated)} --teacher folders")
        members = [{"name": f["name"], "folder": f["folder"]} for f in folders]
        name = "+".join(f["name"] for f in folders)
        if len(gated) > 1 and len(set(np.round(_normalise(w), 6))) > 1:
            name += f"_w{_fmt_weights(_normalise(w))}"
    w = _normalise(w)
    for m, wi in zip(members, w):
        m["weight"] = wi
    return TeacherTargets(logits=logits, weights=w, members=members, folders=folders, name=name)


def _normalise(weights: Sequence[float]) -> list[float]:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise StudentOptionError(f"teacher weights must be non-negative with a positive sum, got {list(weights)}")
    return [float(x) for x in w / w.sum()]


# ----------------------------------------------------------------------------- the objective

def dkd_warmup(progress: float, warmup_epochs: float) -> float:
    """Linear warm-up factor of the DKD KL terms: min(1, progress / warmup_epochs) (1 without warm-up)."""
    return 1.0 if warmup_epochs <= 0 else min(1.0, max(0.0, progress) / warmup_epochs)


def make_student_loss(method: str, targets: TeacherTargets | None, alpha: float = 0.5, beta: float = 4.0,
                      temperature: float = 2.0, warmup_epochs: float = DEFAULT_DKD_WARMUP, ce_weight: float = 1.0,
                      label_smoothing: float = 0.0) -> Callable[[Any], Any]:
    """``make(device)`` -> ``loss(logits, y, positions, progress)`` for ``training.loop.run_training``."""
    if method not in METHODS:
        raise StudentOptionError(f"--distill must be one of {METHODS}")

    def make(device: Any) -> Any:
        import torch
        import torch.nn.functional as F

        from training.losses import dkd_loss, kd_loss

        if method == "none":
            return lambda logits, y, positions, progress: F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        assert targets is not None
        zt = torch.from_numpy(np.ascontiguousarray(targets.logits)).to(device)  # (M, N, K), index order
        weights = list(targets.weights)

        def teacher(positions: Any) -> Any:
            rows = zt[:, positions]
            return rows[0] if len(weights) == 1 else [(rows[i], weights[i]) for i in range(len(weights))]

        if method == "kd":
            return lambda logits, y, positions, progress: kd_loss(logits, teacher(positions), y, alpha, temperature)
        return lambda logits, y, positions, progress: dkd_loss(
            logits, teacher(positions), y, alpha, beta, temperature, dkd_warmup(progress, warmup_epochs), ce_weight)
    return make


def config_name(method: str, alpha: float, beta: float, temperature: float, warmup_epochs: float,
                ce_weight: float, teacher_name: str | None, label_smoothing: float = 0.0) -> str:
    """The configuration a run belongs to (args.json ``config``; ``fer-train aggregate`` groups seeds by it)."""
    if method == "none":
        return "none" + (f"_ls{label_smoothing:g}" if label_smoothing else "")
    if method == "kd":
        return f"kd_a{alpha:g}_T{temperature:g}_{teacher_name}"
    extra = (f"_ce{ce_weight:g}" if ce_weight != 1.0 else "") + \
        (f"_wu{warmup_epochs:g}" if warmup_epochs != DEFAULT_DKD_WARMUP else "")
    return f"dkd_a{alpha:g}_b{beta:g}_T{temperature:g}{extra}_{teacher_name}"


def describe_loss(method: str, alpha: float, beta: float, temperature: float, warmup_epochs: float,
                  ce_weight: float, label_smoothing: float) -> str:
    if method == "none":
        return f"CE(label_smoothing={label_smoothing:g})"
    if method == "kd":
        return f"{1 - alpha:g} CE + {alpha:g} T^2 KL(teacher || student), T={temperature:g}"
    return (f"{ce_weight:g} CE + w(epoch) ({alpha:g} TCKD + {beta:g} NCKD), T={temperature:g} (T^2 on the KL "
            f"terms), w = min(1, epoch_progress / {warmup_epochs:g})")


# ----------------------------------------------------------------------------- command

def add_parser(sub: Any) -> None:
    p = sub.add_parser("student", help=f"distil a {STUDENT_BACKBONE} student (KD / DKD / none)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", action="append", default=None, metavar="DIR",
                   help="soft-label folder (teacher, fused or split ensemble) or a run folder holding "
                        "softlabels/<index>-<fp8>/; repeat for split targets over several teachers")
    p.add_argument("--teacher-weight", type=float, nargs="+", default=None, metavar="W",
                   help="one weight per teacher member (normalised to sum 1; default equal, or the split "
                        "folder's stored weights)")
    p.add_argument("--distill", choices=METHODS, default="dkd",
                   help="kd (Hinton), dkd (Zhao et al. 2022), none (plain CE baseline, same recipe)")
    p.add_argument("--alpha", type=float, default=0.5, help="KD: KL weight (CE gets 1 - alpha); DKD: TCKD weight")
    p.add_argument("--beta", type=float, default=4.0, help="DKD: NCKD weight")
    p.add_argument("--temperature", type=float, default=2.0, help="distillation temperature (applied in the loss)")
    p.add_argument("--dkd-warmup-epochs", type=float, default=DEFAULT_DKD_WARMUP,
                   help="DKD: linear ramp of the KL terms over this many epochs (0 = off)")
    p.add_argument("--ce-weight", type=float, default=None,
                   help="DKD: weight of the CE term (default 1; the earlier scripts' balance is 1 - alpha)")
    p.add_argument("--config-name", default=None,
                   help="configuration name in args.json (default e.g. dkd_a0.5_b4_T2_<teacher>); "
                        "fer-train aggregate groups seeds by it")
    p.add_argument("--optimizer", choices=("adamw", "nl"), default=None,
                   help="adamw (default, the recipe) or nl: training.nl.DeepMemoryOptimizer, local mode (issue 14)")
    p.add_argument("--nl-hidden", type=int, default=32, help="--optimizer nl: memory MLP width")
    p.add_argument("--nl-layers", type=int, default=1, help="--optimizer nl: memory MLP hidden layers")
    p.add_argument("--nl-memory-lr", type=float, default=1e-3, help="--optimizer nl: Adam lr of the memory weights")
    p.add_argument("--negl-config", default=None, metavar="PATH",
                   help="add NegL (training/configs/negl/*.json): + weight * -log(1 - p) on confusion-guided "
                        "complementary classes")
    p.add_argument("--negl-confusion", action="append", default=None, metavar="RUN_DIR",
                   help="teacher run folder with confusion_<split>.json for NegL (repeat; default: the config's "
                        "confusion_runs)")
    add_train_arguments(p)
    p.set_defaults(func=run_cli, epochs=DEFAULT_EPOCHS, label_smoothing=0.0)


def run_cli(args: Any) -> int:
    train_student(args)
    return 0


def _check_options(args: Any) -> None:
    if args.distill not in METHODS:
        raise StudentOptionError(f"--distill must be one of {METHODS}")
    if args.temperature <= 0:
        raise StudentOptionError("--temperature must be positive")
    if args.distill == "kd" and not 0.0 <= args.alpha <= 1.0:
        raise StudentOptionError("KD --alpha must lie in [0, 1]")
    if args.alpha < 0 or args.beta < 0:
        raise StudentOptionError("--alpha and --beta must be non-negative")
    if args.ce_weight is not None and args.distill != "dkd":
        raise StudentOptionError("--ce-weight applies to --distill dkd only (KD weighs CE by 1 - alpha)")
    if args.distill != "none" and args.label_smoothing:
        raise StudentOptionError("--label-smoothing applies to --distill none only (the KD/DKD losses use plain CE)")
    if args.distill != "none" and not args.teacher:
        raise StudentOptionError(f"--distill {args.distill} needs at least one --teacher folder")
    if args.negl_confusion and not args.negl_config:
        raise StudentOptionError("--negl-confusion without --negl-config")


def _check_init_checkpoint(args: Any, classes: Sequence[str]) -> None:
    """Refuse a non-matching --init-checkpoint before anything is written (the loop loads it again)."""
    if not args.pretrained_checkpoint or (args.resume and (Path(args.out) / "last.pt").exists()):
        return
    from training.models import create_model, load_pretrained

    model = create_model(STUDENT_BACKBONE, len(classes), args.in_chans, args.input_size,
                         stem_stride=args.stem_stride, classes=classes, last_stride=args.last_stride)
    load_pretrained(model, args.pretrained_checkpoint, classes=classes)


def train_student(args: Any) -> Path:
    """Gate the teachers, then train (or resume) the student in the shared loop; returns the run folder."""
    from training.index import load_index

    args.backbone = STUDENT_BACKBONE  # locked; recorded like a teacher's
    _check_options(args)
    index = load_index(args.index)
    targets = None
    if args.teacher:
        targets = load_teacher_targets(args.teacher, index, args.teacher_weight, args.temperature)
    elif args.teacher_weight:
        raise StudentOptionError("--teacher-weight without --teacher")
    _check_init_checkpoint(args, index.classes)
    selector = _negl_selector(args, index, targets)
    if args.optimizer == "adamw":
        args.optimizer = None  # None = the recipe's AdamW, as recorded by runs from before --optimizer existed

    dkd = args.distill == "dkd"
    ce_weight = 1.0 if args.ce_weight is None else float(args.ce_weight)
    name = args.config_name or config_name(args.distill, args.alpha, args.beta, args.temperature,
                                           args.dkd_warmup_epochs, ce_weight, targets.name if targets else None,
                                           args.label_smoothing)
    if not args.config_name:
        name += ("_nl" if args.optimizer == "nl" else "") + (f"_negl-{selector.cfg.name}" if selector else "")
    distill: dict[str, Any] = {
        "method": args.distill,
        "loss": describe_loss(args.distill, args.alpha, args.beta, args.temperature, args.dkd_warmup_epochs,
                              ce_weight, args.label_smoothing),
        "alpha": args.alpha if args.distill != "none" else None,
        "beta": args.beta if dkd else None,
        "temperature": args.temperature if args.distill != "none" else None,
        "dkd_warmup_epochs": args.dkd_warmup_epochs if dkd else None,
        "ce_weight": ce_weight if dkd else (1.0 - args.alpha if args.distill == "kd" else 1.0),
        "label_smoothing": args.label_smoothing,
        "teacher_logits": "raw logits of the soft-label folders; temperature applied in the loss",
        "targets": None if targets is None else ("split" if targets.split else "single"),
        "teacher_name": targets.name if targets else None,
        "teachers": targets.folders if targets else [],
        "members": targets.members if targets else [],
        "weights": targets.weights if targets else [],
    }
    if targets is not None and args.distill == "none":
        distill["note"] = "teachers gated and recorded but not used by the loss (--distill none)"
    # recorded in args.json and the checkpoint's args; a resume may not change them
    args.ce_weight = ce_weight
    args.teacher_weights_effective = targets.weights if targets else []
    args.teacher_arrays_sha256 = [f["arrays_sha256"] for f in targets.folders] if targets else []
    args.config = name
    args.negl_sha256 = selector.cfg.sha256 if selector else None
    make_loss = make_student_loss(args.distill, targets if args.distill != "none" else None, args.alpha, args.beta,
                                  args.temperature, args.dkd_warmup_epochs, ce_weight, args.label_smoothing)
    extra: dict[str, Any] = {"role": "student", "config": name, "distillation": distill}
    if selector is not None:
        from training.negl import with_negl

        make_loss = with_negl(make_loss, selector, args.seed)
        extra["negl"] = selector.record()
    if args.optimizer == "nl":
        extra["nl"] = {"optimizer": "DeepMemoryOptimizer", "inner": "local", "hidden": args.nl_hidden,
                       "layers": args.nl_layers, "memory_lr": args.nl_memory_lr}
    return run_training(args, STUDENT_BACKBONE, role=f"student[{name}]", make_loss=make_loss,
                        resume_fixed=STUDENT_RESUME_FIXED, record_extra=extra, checkpoint_extra=extra)


def _negl_selector(args: Any, index: Any, targets: TeacherTargets | None) -> Any:
    """The NegL selector of ``--negl-config`` (teacher probabilities from the gated --teacher folders), or None."""
    if not args.negl_config:
        return None
    from training.negl import NeglSelector, load_negl_config, read_teacher_confusion

    cfg = load_negl_config(args.negl_config, index.classes)
    try:
        confusion, sources = read_teacher_confusion(args.negl_confusion or list(cfg.confusion_runs), index.classes,
                                                    cfg.confusion_split)
        return NeglSelector(cfg, confusion, targets.logits if targets else None,
                            targets.weights if targets else None, sources)
    except FerError:
        raise
    except ValueError as exc:
        raise StudentOptionError(f"{args.negl_config}: {exc}") from exc


__all__ = ["STUDENT_BACKBONE", "StudentOptionError", "TeacherTargets", "config_name", "dkd_warmup",
           "load_teacher_targets", "make_student_loss", "train_student"]
