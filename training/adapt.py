"""``fer-train adapt``: a short, targeted fine-tuning of a student on a new domain, with FER2013 replay.

A student that scores well on FER2013 meets another camera, light and population in the
demo (or CK+'s lab faces). A few epochs on that domain's adaptation rows move it there;
mixing in a replay sample of FER2013 train keeps it from forgetting where it came from
(the issue's bar: at most one point lost on FER2013 PrivateTest).

What trains (``--train``):

- ``head``: the final linear classifier only (the features stay FER2013's);
- ``bn``: every BatchNorm's affine weight and bias, plus the classifier;
- ``last-block`` (default): the last element of the backbone's block list (MobileNetV3 /
  EfficientNet ``blocks[-1]``, ResNet ``layer4``, ConvNeXt ``stages[-1]``, ViT ``blocks[-1]``)
  and every module after it (MobileNetV3: ``conv_head``, ``norm_head``, ``classifier``).

Everything else has ``requires_grad`` off and is bit-for-bit the student's after the run.

BatchNorm statistics (``--bn``), handled explicitly because fine-tuning in train mode would
silently re-estimate them from a few hundred adaptation faces:

- ``frozen`` (**default**): every BatchNorm stays in eval mode the whole run, normalising with
  the student's FER2013 running statistics, which never change. Why the default: with 1-3
  epochs on a few hundred faces, batch statistics are noisy, and new running statistics
  would shift every feature for FER2013 faces too, the very regression the replay is there
  to prevent; frozen statistics also make training and evaluation normalise identically.
- ``reestimate``: before the first epoch the running statistics are recomputed as plain
  averages (AdaBN, Li et al. 2016) over one pass of the mixed training rows, without
  augmentation, then frozen as above. The statistics then describe the mix (adaptation +
  replay at ``--replay-ratio``), not FER2013 alone. Worth trying when the new domain's
  lighting is far from FER2013's; compare on the eval split and FER2013 PrivateTest.

The data: ``--index`` is the adaptation index (a CK+ index from ``fer-train index-ckplus``, a
mined index from ``fer-train mine``, or any canonical index with the FER7 classes);
``--replay-index`` is the FER2013 index the student was trained on. The run writes a
*mix index* into ``OUT/mix`` (an ordinary canonical index: the rows' files are copied to
``OUT/mix/images/{adapt,replay}/<sample_id>`` and re-hashed):

- ``train``: every ``train`` row of the adaptation index plus a stratified replay sample of
  ``round(replay_ratio * n_adapt_train)`` FER2013 train rows (fixed by ``--seed``);
- ``val``: the adaptation index's ``val`` rows (chooses ``best.pt``, fits the run's
  temperature), or, when it has none (a mined index), FER2013 val;
- ``test``: the adaptation index's ``test`` rows (CK+: the eval subjects), or FER2013 test.

Gates (as for students; no soft labels are read, so ``require_aligned`` has nothing to
check here): the checkpoint is rebuilt exactly (every tensor loaded, else refused); its
backbone must be ``--backbone`` (the student's, ``mobilenetv3_large_100``) and its classes
those of both indexes, in order; the replay index must be the index the student was
trained on (same fingerprint); a crop spec of the blurred-data era is refused as obsolete;
no image (by content hash) may sit in both the mix's train and its val or test rows; a
``--resume`` goes through the loop's own gates (index fingerprint, fixed settings).

Why not ``training.loop.run_training`` itself: it has no step between building the model
and training it, where the freezing and the BatchNorm handling must go, and changing it
would touch the loop the long teacher/student runs resume with. So this command runs the
loop's own pieces in the same order (``open_run``, ``build_data``, ``build_model``,
``write_run_record``, ``train_one_epoch``, ``validate``, ``save_checkpoints``,
``finish_run``); only the ~20-line epoch loop around them is repeated here. The result is a
normal experiment folder: ``fer-train evaluate``, ``calibrate``, ``calibrate-domain`` and
``export`` read it as they read a student.
"""

from __future__ import annotations

import shutil
import types
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.classes import check_same_classes
from fer_models.errors import ArtifactError, FerError
from fer_models.files import read_json, read_json_object, sha256_bytes, sha256_file, write_json

from training.loop import RESUME_FIXED, add_train_arguments

STUDENT_BACKBONE = "mobilenetv3_large_100"
TRAIN_CHOICES = ("head", "bn", "last-block")
BN_CHOICES = ("frozen", "reestimate")
DEFAULT_EPOCHS = 2
MIX_FORMAT = "adapt-mix"
# the block container whose last element "last-block" trains, per backbone family
LAST_BLOCK = {"mobilenetv3": "blocks", "efficientnet": "blocks", "resnet": "layer4", "convnext": "stages",
              "vit": "blocks"}
ADAPT_RESUME_FIXED = RESUME_FIXED + ("train", "bn", "replay_ratio", "label_smoothing", "lr",
                                     "student_checkpoint_sha256", "adapt_index_fingerprint",
                                     "replay_index_fingerprint", "webcam_config_effective")


class AdaptOptionError(FerError, ValueError):
    """Options that do not fit together (fer-train prints the message and exits with status 2)."""


# ----------------------------------------------------------------------------- what trains, BatchNorm

def _bn_modules(model: Any) -> list[Any]:
    from torch.nn.modules.batchnorm import _BatchNorm

    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def trainable_names(model: Any, backbone: str, what: str) -> list[str]:
    """Names of the parameters ``--train what`` leaves trainable (in the model's order)."""
    from training.models import backbone_family

    names = [n for n, _ in model.named_parameters()]
    head = model.get_classifier()
    head_ids = {id(p) for p in head.parameters()}
    if not head_ids:
        raise ArtifactError(None, f"{backbone}: no classifier parameters found (get_classifier() is empty)")
    if what == "head":
        keep = {n for n, p in model.named_parameters() if id(p) in head_ids}
    elif what == "bn":
        bn_ids = {id(p) for m in _bn_modules(model) for p in m.parameters(recurse=False)}
        keep = {n for n, p in model.named_parameters() if id(p) in head_ids | bn_ids}
    elif what == "last-block":
        family = backbone_family(backbone)
        container = LAST_BLOCK.get(family)
        children = [n for n, _ in model.named_children()]
        if container is None or container not in children:
            raise AdaptOptionError(f"--train last-block: no block list {container!r} in {backbone}")
        after = children[children.index(container) + 1:]
        block = getattr(model, container)
        prefix = f"{container}." if family == "resnet" else f"{container}.{len(block) - 1}."
        keep = {n for n in names if n.startswith(prefix) or n.split(".", 1)[0] in after}
    else:
        raise AdaptOptionError(f"--train must be one of {TRAIN_CHOICES}, got {what!r}")
    return [n for n in names if n in keep]


def set_trainable(model: Any, backbone: str, what: str) -> dict[str, int]:
    """Turn ``requires_grad`` off for everything ``what`` does not train; returns parameter counts."""
    keep = set(trainable_names(model, backbone, what))
    n_train = n_all = 0
    for name, p in model.named_parameters():
        p.requires_grad_(name in keep)
        n_all += p.numel()
        n_train += p.numel() if name in keep else 0
    return {"trainable_params": n_train, "total_params": n_all, "trainable_tensors": len(keep)}


def _bn_eval_only(self: Any, mode: bool = True) -> Any:
    from torch import nn

    return nn.Module.train(self, False)


def freeze_bn_statistics(model: Any) -> int:
    """Keep every BatchNorm in eval mode from now on (``model.train()`` included); returns how many.

    The per-instance ``train`` override is what ``nn.Module.train`` calls on each child, so the
    shared loop's ``model.train()`` at the start of every epoch leaves these layers alone.
    Their affine parameters still train when ``requires_grad`` says so.
    """
    bns = _bn_modules(model)
    for m in bns:
        m.eval()
        m.train = types.MethodType(_bn_eval_only, m)
    return len(bns)


def reestimate_bn_statistics(model: Any, dataset: Any, batch_size: int, device: Any,
                             channels_last: bool = False) -> int:
    """Recompute every BatchNorm's running mean/var as plain averages over one pass of ``dataset`` (AdaBN)."""
    import torch
    from torch.utils.data import DataLoader

    bns = _bn_modules(model)
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    was_training = model.training
    model.train()
    n = 0
    with torch.no_grad():
        for x, _, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            x = x.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            model(x)
            n += len(x)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.train(was_training)
    return n


# ----------------------------------------------------------------------------- the student checkpoint

def resolve_checkpoint(student: str | Path, checkpoint: str = "best.pt") -> Path:
    """The checkpoint file of a student experiment folder (or a checkpoint file given directly)."""
    p = Path(student)
    path = p if p.is_file() else p / checkpoint
    if not path.is_file():
        raise ArtifactError(path, "student checkpoint not found (expected an experiment folder holding "
                                  f"{checkpoint}, as fer-train student writes)")
    return path


def check_student(ck: dict[str, Any], path: Path, backbone: str, classes_by_index: dict[str, Sequence[str]]) -> None:
    """Backbone and classes gates: refused with the file and the mismatch named."""
    missing = [k for k in ("backbone", "classes", "input_size", "in_chans", "state_dict") if k not in ck]
    if missing:
        raise ArtifactError(path, f"not a fer-train checkpoint (lacks {missing})")
    if ck["backbone"] != backbone:
        raise ArtifactError(path, f"checkpoint backbone is {ck['backbone']!r} but adapt expects {backbone!r} "
                                  "(the student's; pass --backbone to adapt another network)")
    for where, classes in classes_by_index.items():
        check_same_classes(classes, ck["classes"], path, f"checkpoint classes vs the classes of {where}")


def student_index_fingerprint(ck: dict[str, Any], path: Path) -> str:
    """The fingerprint of the index the student trained on (checkpoint, else the folder's args.json)."""
    fp = ck.get("index_fingerprint") or read_json_object(path.parent / "args.json", missing_ok=True).get(
        "index_fingerprint")
    if not fp:
        raise ArtifactError(path, "records no index_fingerprint, so its training index (the replay source) cannot "
                                  "be verified")
    return str(fp)


# ----------------------------------------------------------------------------- the mix index

def _source_file(index: Any, pos: int) -> Path:
    if index.format == "fer2013-csv":
        raise ArtifactError(index.path, "adapt copies image files; an index over fer2013.csv has none (build the "
                                        "index from the image folders)")
    return Path(index.source) / index.sample_ids[pos]


def plan_mix(adapt: Any, replay: Any, replay_ratio: float, seed: int) -> tuple[list[tuple], dict[str, Any]]:
    """Rows (sample_id, label, split, sha256, source file) of the mix index and its description."""
    from training.data import stratified_subset

    if replay_ratio < 0:
        raise AdaptOptionError("--replay-ratio must be >= 0")
    a_train = adapt.positions("train")
    if len(a_train) == 0:
        raise ArtifactError(adapt.path, "adaptation index has no train rows to adapt on")
    r_train = replay.positions("train")
    n_replay = int(round(replay_ratio * len(a_train)))
    if n_replay > len(r_train):
        raise AdaptOptionError(f"--replay-ratio {replay_ratio} asks for {n_replay} replay rows but the replay index "
                               f"has {len(r_train)} train rows")
    r_pick = stratified_subset(r_train, replay.labels[r_train], n_replay, seed) if n_replay else np.array([], int)
    rows: list[tuple] = []
    source: dict[str, str] = {}

    def add(index: Any, positions: np.ndarray, prefix: str, split: str) -> None:
        for p in positions:
            p = int(p)
            rows.append((f"{prefix}/{index.sample_ids[p]}", int(index.labels[p]), split, index.sha256[p],
                         _source_file(index, p)))

    add(adapt, a_train, "adapt", "train")
    add(replay, r_pick, "replay", "train")
    for split in ("val", "test"):
        pos = adapt.positions(split)
        if len(pos):
            add(adapt, pos, "adapt", split)
            source[split] = f"adaptation index {split}"
        else:
            add(replay, replay.positions(split), "replay", split)
            source[split] = f"replay index {split} (the adaptation index has no {split} rows)"
    train_hashes = {r[3] for r in rows if r[2] == "train"}
    for split in ("val", "test"):
        leak = sorted(r[0] for r in rows if r[2] == split and r[3] in train_hashes)
        if leak:
            raise ArtifactError(adapt.path, f"{len(leak)} {split} images also sit in the mix's train rows (same "
                                            f"content), e.g. {leak[:3]}: that would score faces the model trained on")
    record = {"train": {"adapt_rows": int(len(a_train)), "replay_rows": int(len(r_pick)),
                        "replay_ratio": replay_ratio, "replay_sample": "stratified by class, fixed by --seed"},
              "val": source["val"], "test": source["test"],
              "adapt_index": {"name": adapt.name, "fingerprint": adapt.fingerprint, "path": str(adapt.path)},
              "replay_index": {"name": replay.name, "fingerprint": replay.fingerprint, "path": str(replay.path)},
              "sample_id_rule": "adapt/<adaptation sample_id> or replay/<replay sample_id>"}
    return rows, record


def write_mix(rows: Sequence[tuple], record: dict[str, Any], out: Path, classes: Sequence[str],
              resume: bool) -> Path:
    """Write (or reuse) ``out`` = the mix index with copies of its files; refuse a changed mix on resume."""
    from training.index import CanonicalIndex, canonical_order, load_index, write_index

    order = canonical_order([r[0] for r in rows], [r[2] for r in rows])
    rows = [rows[i] for i in order]
    images = out / "images"
    index = CanonicalIndex(name="adapt-mix", sample_ids=[r[0] for r in rows], labels=np.array([r[1] for r in rows]),
                           splits=np.array([r[2] for r in rows]), sha256=[r[3] for r in rows], classes=list(classes),
                           format=MIX_FORMAT, source=str(images.resolve()))
    if (out / "index.json").is_file():
        old = load_index(out)
        if old.rows_sha256() == index.rows_sha256():
            return out
        if resume:
            raise ArtifactError(out, "the mix these options and indexes give differs from the one this run started "
                                     "with (rows_sha256 changed); resume with the same options and indexes")
    if images.exists():
        shutil.rmtree(images)
    for sid, _, _, digest, src in rows:
        try:
            blob = Path(src).read_bytes()
        except OSError as exc:
            raise ArtifactError(src, f"cannot be read ({exc.strerror or exc}); is the index's data folder there?") \
                from exc
        if sha256_bytes(blob) != digest:
            raise ArtifactError(src, "content differs from its index (sha256 mismatch); rebuild that index")
        target = images / sid
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    write_index(index, out)
    meta = read_json(out / "index.json")
    meta["mix"] = record
    write_json(out / "index.json", meta)
    return out


# ----------------------------------------------------------------------------- the run

def _explicit(args: Any, name: str, value: Any, ck_path: Path) -> Any:
    given = getattr(args, name)
    if given is not None and given != value:
        raise AdaptOptionError(f"--{name.replace('_', '-')} {given} differs from the student's {value} "
                               f"({ck_path}); adapt keeps the student's input")
    return value


def _check_loaded_exactly(model: Any, ck: dict[str, Any], path: Path) -> None:
    import torch

    from training.models import _state_dict_of

    want = _state_dict_of(ck)
    got = model.state_dict()
    bad = [k for k, v in got.items() if k not in want or not torch.equal(v.cpu(), want[k])]
    if bad or len(want) != len(got):
        raise ArtifactError(path, f"the student's weights did not load exactly ({len(bad)} tensors differ, e.g. "
                                  f"{bad[:3]})")


def adapt(args: Any) -> Path:
    """Gate, build the mix, fine-tune what ``--train`` names with ``--bn`` handling; returns the run folder."""
    import cv2
    import torch

    from training.data import checkpoint_crop_spec, crop_spec_to_dict, make_crop_spec
    from training.index import load_index
    from training.loop import (build_data, build_model, finish_run, normalise_args, open_run, read_history,
                               run_epochs, write_run_record)
    from training.models import backbone_family, read_checkpoint, unwrap
    from training.runtime import setup_runtime, teardown_runtime

    if args.train not in TRAIN_CHOICES or args.bn not in BN_CHOICES:
        raise AdaptOptionError(f"--train must be one of {TRAIN_CHOICES} and --bn one of {BN_CHOICES}")
    if args.pretrained_checkpoint:
        raise AdaptOptionError("--init-checkpoint does not apply: adapt starts from the student it is given")
    if args.data:
        raise AdaptOptionError("--data does not apply: adapt reads each index's own data folder and copies the rows "
                               "it uses into OUT/mix")
    out = Path(args.out)
    if (out / "last.pt").exists() and not args.resume:
        raise ArtifactError(out / "last.pt", "run folder already holds a checkpoint; pass --resume to continue it "
                                             "or choose another --out")
    ck_path = resolve_checkpoint(args.student, args.checkpoint)
    ck = read_checkpoint(ck_path)
    adapt_index, replay_index = load_index(args.index), load_index(args.replay_index)
    check_student(ck, ck_path, args.backbone, {f"--index {args.index}": adapt_index.classes,
                                               f"--replay-index {args.replay_index}": replay_index.classes})
    trained_on = student_index_fingerprint(ck, ck_path)
    if replay_index.fingerprint != trained_on:
        raise ArtifactError(Path(args.replay_index), f"is not the index the student was trained on (fingerprint "
                                                     f"{replay_index.fingerprint[:12]} vs {trained_on[:12]} in "
                                                     f"{ck_path}): replay must come from the student's own data")
    if adapt_index.fingerprint == replay_index.fingerprint:
        raise AdaptOptionError("--index and --replay-index are the same index; adapt needs a second domain")
    spec = checkpoint_crop_spec(ck, ck_path)  # refuses the blurred-data era's low-pass
    args.input_size = _explicit(args, "input_size", int(ck["input_size"]), ck_path)
    args.in_chans = _explicit(args, "in_chans", int(ck["in_chans"]), ck_path)
    args.stem_stride = _explicit(args, "stem_stride", ck.get("stem_stride"), ck_path)
    args.last_stride = _explicit(args, "last_stride", ck.get("last_stride"), ck_path)
    if args.no_clahe and spec.clahe:
        raise AdaptOptionError(f"--no-clahe: the student was trained with CLAHE ({ck_path}); adapt keeps its input")
    if args.drop_rate:
        raise AdaptOptionError("--drop-rate does not apply: adapt keeps the student's network as it is")
    args.no_clahe = not spec.clahe
    rebuilt = make_crop_spec(args.input_size, args.in_chans, clahe=spec.clahe, crop_margin=spec.crop_margin)
    for field in ("channels", "color", "mean", "std"):
        if tuple(np.atleast_1d(getattr(rebuilt, field))) != tuple(np.atleast_1d(getattr(spec, field))):
            raise ArtifactError(ck_path, f"crop spec {field} {getattr(spec, field)!r} is not the training pipeline's "
                                         f"({getattr(rebuilt, field)!r}); adapt cannot reproduce its input")
    webcam = None
    if args.webcam_config:
        from training.webcam_aug import WebcamAugConfig

        webcam = WebcamAugConfig.from_json(args.webcam_config)

    rows, mix_record = plan_mix(adapt_index, replay_index, args.replay_ratio, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    mix_dir = write_mix(rows, mix_record, out / "mix", adapt_index.classes, args.resume)

    # recorded in args.json and every checkpoint; a resume may not change them
    args.adapt_index = str(Path(args.index).resolve())
    args.index = str(mix_dir.resolve())
    args.student_checkpoint = str(ck_path.resolve())
    args.student_checkpoint_sha256 = sha256_file(ck_path)
    args.adapt_index_fingerprint = adapt_index.fingerprint
    args.replay_index_fingerprint = replay_index.fingerprint
    args.webcam_config_effective = webcam.to_dict() if webcam is not None and webcam.active else None
    args.pretrained_checkpoint = str(ck_path)  # build_model loads it (checked to be exact below)
    args.drop_rate = 0.0
    backbone = ck["backbone"]
    argd = normalise_args(args)
    rt = setup_runtime(args.device, args.amp, backbone_family(backbone))
    if rt.distributed:
        teardown_runtime(rt)
        raise AdaptOptionError("adapt runs on one process (frozen layers and DDP do not mix); run it without torchrun")
    if args.threads:
        torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    try:
        resume_state, index = open_run(args, argd, out, rt, ADAPT_RESUME_FIXED)
        data = build_data(args, index, rt)
        data.train_ds.webcam = webcam
        state = build_model(args, backbone, rt, data, resume_state)
        model = unwrap(state.model)
        if resume_state is None:
            _check_loaded_exactly(model, ck, ck_path)
        counts = set_trainable(model, backbone, args.train)
        n_bn = len(_bn_modules(model))
        bn_note = f"{n_bn} BatchNorm layers frozen in eval mode (FER2013 statistics)"
        if args.bn == "reestimate":
            if resume_state is None:
                from training.data import FERDataset

                plain = FERDataset(index, data.spec, positions=data.train_pos, root=None, preload=False)
                n = reestimate_bn_statistics(model, plain, args.eval_batch_size, rt.device, state.channels_last)
                bn_note = f"{n_bn} BatchNorm layers re-estimated over {n} un-augmented mix train rows, then frozen"
            else:
                bn_note = f"{n_bn} BatchNorm layers: statistics re-estimated at the start (restored from last.pt)"
        freeze_bn_statistics(model)
        adaptation = {"student": str(ck_path.resolve()), "student_checkpoint_sha256": args.student_checkpoint_sha256,
                      "student_backbone": backbone, "student_index_fingerprint": trained_on, "train": args.train,
                      "bn": args.bn, "bn_note": bn_note, **counts, "mix": mix_record,
                      "webcam_config": args.webcam_config_effective,
                      "webcam_config_file": str(args.webcam_config) if args.webcam_config else None}
        meta = dict(backbone=backbone, classes=index.classes, input_size=args.input_size, in_chans=args.in_chans,
                    stem_stride=state.stem, last_stride=args.last_stride, crop_spec=crop_spec_to_dict(data.spec),
                    role="adapted",
                    config=args.config, adaptation=adaptation)
        if rt.is_main:
            write_run_record(args, argd, backbone, f"adapt[{args.config}]", out, rt, data, state,
                             resume_state is not None, {"role": "adapted", "config": args.config,
                                                        "adaptation": adaptation})
            print(f"  trains {counts['trainable_params']} of {counts['total_params']} parameters ({args.train}); "
                  f"{bn_note}", flush=True)
        history = read_history(out / "history.csv", state.start_epoch)
        loss_fn = _loss(args)(rt.device)
        completed = run_epochs(args, rt, data, state, loss_fn, out, meta, index, argd, history)
        if completed:
            finish_run(out, index, args, rt)
    finally:
        teardown_runtime(rt)
    return out


def _loss(args: Any) -> Any:
    from training.loop import cross_entropy_loss

    return cross_entropy_loss(args)


def config_name(args: Any) -> str:
    """The configuration a run belongs to, e.g. ``adapt_last-block_bnfrozen_r1_ckplus48``."""
    if args.config_name:
        return str(args.config_name)
    return f"adapt_{args.train}_bn{args.bn}_r{args.replay_ratio:g}_{Path(args.index).name}" + \
        ("_webcam" if args.webcam_config else "")


# ----------------------------------------------------------------------------- CLI

def add_parser(sub: Any) -> None:
    p = sub.add_parser("adapt", help="fine-tune a student on a new domain (+ FER2013 replay); head / BN / last block",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("student", metavar="STUDENT_DIR", help="student experiment folder (best.pt inside) or a checkpoint")
    p.add_argument("--checkpoint", default="best.pt", help="checkpoint file name inside STUDENT_DIR")
    p.add_argument("--replay-index", required=True, help="the FER2013 index the student was trained on")
    p.add_argument("--replay-ratio", type=float, default=1.0,
                   help="FER2013 replay rows per adaptation train row (0 = no replay)")
    p.add_argument("--train", choices=TRAIN_CHOICES, default="last-block", help="what trains (see the docstring)")
    p.add_argument("--bn", choices=BN_CHOICES, default="frozen",
                   help="BatchNorm statistics: frozen (default; FER2013's, eval mode) or reestimate (AdaBN over the "
                        "mix, then frozen)")
    p.add_argument("--webcam-config", default=None, metavar="JSON",
                   help="webcam-style augmentation config (training/configs/augment/webcam_aug.json); off by default")
    p.add_argument("--backbone", default=STUDENT_BACKBONE, help="backbone the checkpoint must have")
    p.add_argument("--config-name", default=None, help="configuration name in args.json")
    add_train_arguments(p)
    for action in p._actions:  # the shared --index is the adaptation index here
        if action.dest == "index":
            action.help = "adaptation index (fer-train index-ckplus, fer-train mine, or any FER7 index)"
    p.set_defaults(func=run_cli, epochs=DEFAULT_EPOCHS, lr=3e-4, weight_decay=0.01, warmup_epochs=0.0,
                   label_smoothing=0.0, batch_size=64, min_lr_ratio=0.1, input_size=None, in_chans=None)


def run_cli(args: Any) -> int:
    args.config = config_name(args)
    adapt(args)
    return 0


__all__ = ["ADAPT_RESUME_FIXED", "AdaptOptionError", "BN_CHOICES", "TRAIN_CHOICES", "adapt", "freeze_bn_statistics",
           "plan_mix", "reestimate_bn_statistics", "set_trainable", "trainable_names", "write_mix"]
