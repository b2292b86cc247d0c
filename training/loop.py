"""The one training loop, behind ``fer-train teacher`` and ``fer-train student``: resumable and DDP-ready.

A teacher (training/teacher.py) trains with cross-entropy; a student (training/student.py)
passes its distillation objective in as the loss hook. Everything else is shared.

The loop is plain on purpose (AdamW, cosine schedule with warm-up, label
smoothing, AMP where the device supports it, gradient accumulation and clipping)
so that every knob is visible in ``args.json``. What makes it trustworthy:

- the experiment folder describes itself (args.json, classes.json, seed.json with
  library versions, history.csv, metrics per split, checkpoints that carry the
  backbone, classes, input size and stem option);
- ``last.pt`` holds everything needed to continue (weights, optimizer, schedule
  position, scaler, RNG, best score) and ``--resume`` continues exactly: the data
  order and augmentations depend only on (seed, epoch), not on process history;
- under ``torchrun`` it runs unchanged with DistributedDataParallel (gloo on CPU,
  NCCL on GPUs); ranks are checked to hold identical weights after every epoch and
  only rank 0 writes files.

``--batch-size`` is the global batch of one forward step (split over the ranks);
one optimizer update sees ``batch_size * accum_steps`` samples.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fer_models.calibration import nll_from_logits
from fer_models.classes import write_classes_json
from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_text, read_json, write_json

# the training objective: loss(logits, y, positions, epoch_progress) -> scalar tensor
LossFn = Callable[[Any, Any, Any, float], Any]

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "train_samples",
                   "sec_per_batch", "images_per_sec", "grad_norm_mean", "grad_norm_max", "peak_rss_mb",
                   "gpu_peak_mb", "optimizer_state_mb")
# the safety-rail columns (issue 14): gradient norm before clipping over the epoch's updates, the process's
# peak resident memory (and CUDA max allocated) so far, and the optimizer's state size; empty in rows written
# before they existed. fer-train gate nl-phase reads them.
SMOKE_EPOCHS = 3
SMOKE_TRAIN_SAMPLES = 700
SMOKE_EVAL_SAMPLES = 350
# arguments that must not change when a run is resumed (they change the model or the data)
RESUME_FIXED = ("backbone", "input_size", "in_chans", "stem_stride", "last_stride", "epochs", "batch_size",
                "accum_steps", "seed", "max_train_samples", "no_clahe")


# ----------------------------------------------------------------------------- arguments

def add_train_arguments(p: Any) -> None:
    """Arguments shared by teacher and student training."""
    p.add_argument("--index", required=True, help="index folder written by `fer-train index`")
    p.add_argument("--out", required=True, help="experiment folder to write")
    p.add_argument("--data", default=None, help="data root if it moved since the index was built")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--input-size", type=int, default=64, help="square input side in px (recorded everywhere)")
    p.add_argument("--in-chans", type=int, default=1, choices=(1, 3), help="gray replicated to 1 or 3 channels")
    p.add_argument("--stem-stride", type=int, default=None,
                   help="total stem reduction (1 or 2; native: 4 for resnet/convnext, 2 for efficientnet/"
                        "mobilenetv3; for vit_* the patch size). Lower keeps feature maps of small faces larger.")
    p.add_argument("--last-stride", type=int, default=None, choices=(1, 2),
                   help="1: no stride in the last strided stage (mobilenetv3 / efficientnet): larger final maps "
                        "at the cost of the last stage only (2 or unset: native)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch per forward step")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.01, help="final lr = lr * this")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=2.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--accum-steps", type=int, default=1, help="gradient accumulation steps per optimizer update")
    p.add_argument("--clip-grad", type=float, default=5.0, help="max gradient norm (0 = off)")
    p.add_argument("--drop-rate", type=float, default=0.0, help="dropout before the classifier")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"),
                   help="auto: bf16 (or fp16) on CUDA; on CPU bf16 for ResNet/ConvNeXt when the CPU has bf16 "
                        "kernels (AVX512-BF16/AMX), else fp32 (docs/benchmarks.md)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--workers", type=int, default=None, help="data loader workers (default 0 on CPU, 6 on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--smoke", action="store_true",
                   help=f"{SMOKE_EPOCHS} epochs on a stratified subset ({SMOKE_TRAIN_SAMPLES} train, "
                        f"{SMOKE_EVAL_SAMPLES} val/test): catches data and config mismatches in minutes")
    p.add_argument("--max-train-samples", type=int, default=None, help="stratified train subset of this size")
    p.add_argument("--max-eval-samples", type=int, default=None, help="stratified val/test subsets of this size")
    p.add_argument("--max-steps-per-epoch", type=int, default=None,
                   help="stop each epoch after this many batches (timing, quick checks)")
    p.add_argument("--stop-after-epoch", type=int, default=None,
                   help="stop (as an interruption would) once this many epochs are done; continue with --resume")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="also checkpoint inside an epoch (partial.pt) this often, so that --resume loses minutes, "
                        "not an epoch (0: only at epoch ends; not under DDP)")
    p.add_argument("--stop-after-updates", type=int, default=None,
                   help="stop (as an interruption would) after this many optimizer updates of this process")
    p.add_argument("--pretrained-checkpoint", "--init-checkpoint", dest="pretrained_checkpoint", default=None,
                   help="local checkpoint to initialise from (refused below 60%% parameter match)")
    p.add_argument("--no-clahe", action="store_true", help="train without CLAHE (recorded in the crop spec)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--webcam-aug", action="store_true", help="add webcam-style noise and blur to the augmentation")
    p.add_argument("--random-erasing", type=float, default=0.0,
                   help="probability of random erasing (one grey rectangle of 2-25%% of the face) per image")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"),
                   help="channels-last memory format (auto: on for conv nets; about 2-3x faster on CPU)")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--no-calibrate", action="store_true", help="skip the temperature fit at the end")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (epoch lines are still printed)")


def normalise_args(args: Any) -> dict[str, Any]:
    """Apply --smoke and return the arguments as plain JSON-able values."""
    if args.smoke:
        args.epochs = SMOKE_EPOCHS
        args.max_train_samples = args.max_train_samples or SMOKE_TRAIN_SAMPLES
        args.max_eval_samples = args.max_eval_samples or SMOKE_EVAL_SAMPLES
    if args.epochs < 1 or args.batch_size < 1 or args.accum_steps < 1:
        raise ValueError("epochs, batch size and accumulation steps must be at least 1")
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def cross_entropy_loss(args: Any) -> Callable[[Any], LossFn]:
    """The teacher objective: cross-entropy with ``--label-smoothing``, the same on every step."""
    def make(device: Any) -> LossFn:
        from torch import nn

        ce = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        return lambda logits, y, positions, progress: ce(logits, y)
    return make


# ----------------------------------------------------------------------------- run files

def param_digest(model: Any) -> str:
    """SHA-256 of every parameter's bytes, in name order: equal digests mean identical weights."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def read_history(path: Path, before_epoch: int) -> list[dict[str, str]]:
    """The history.csv rows of the epochs before ``before_epoch`` (none when there is no file)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if int(r["epoch"]) < before_epoch]


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in HISTORY_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def check_resume_args(saved: dict[str, Any], now: dict[str, Any], where: Path,
                      fixed: Sequence[str] = RESUME_FIXED) -> None:
    diffs = [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in fixed if saved.get(k) != now.get(k)]
    if diffs:
        raise ArtifactError(where, "cannot resume with different settings (" + "; ".join(diffs) + ")")


# ----------------------------------------------------------------------------- set-up

@dataclass
class TrainData:
    """The index, the train/val rows and datasets, the train loader and the schedule's lengths."""

    index: Any
    train_pos: np.ndarray
    val_pos: np.ndarray
    spec: Any
    augment: Any
    train_ds: Any
    val_ds: Any  # rank 0 only
    sampler: Any
    loader: Any
    workers: int
    per_rank_batch: int
    steps_per_epoch: int
    updates_per_epoch: int
    warmup_updates: int
    show: bool  # progress bars


@dataclass
class TrainState:
    """What an epoch changes: model, optimizer, schedule, scaler and the counters a checkpoint keeps."""

    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    channels_last: bool
    stem: int | None
    start_epoch: int = 0
    global_update: int = 0
    best_acc: float = -1.0
    best_epoch: int = -1
    grad_norms: list[float] = field(default_factory=list)  # this epoch's, one per optimizer update
    epoch_resume: Any = None  # training.partial_checkpoint.EpochResume when resuming inside an epoch
    resumed_seconds: float = 0.0  # seconds the epoch in progress had trained before a resume from partial.pt
    process_updates: int = 0  # optimizer updates made by this process (for --stop-after-updates)


def open_run(args: Any, argd: dict[str, Any], out: Path, rt: Any, resume_fixed: Sequence[str]
             ) -> tuple[dict[str, Any] | None, Any]:
    """Create the run folder, refuse to overwrite a run, and read ``last.pt`` for ``--resume``.

    Returns (the checkpoint to resume from or None, the index). A resume on another index or
    with other ``resume_fixed`` settings is refused.
    """
    from training.index import load_index
    from training.models import read_checkpoint
    from training.partial_checkpoint import PARTIAL_NAME, usable_partial

    last_path = out / "last.pt"
    if rt.is_main:
        out.mkdir(parents=True, exist_ok=True)
    if last_path.exists() and not args.resume:
        raise ArtifactError(last_path, "run folder already holds a checkpoint; pass --resume to continue it "
                                       "or choose another --out")
    resume_state = read_checkpoint(last_path) if (args.resume and last_path.exists()) else None
    where = last_path
    if args.resume and not rt.distributed:
        # an epoch stopped part-way continues from its partial.pt (training/partial_checkpoint.py)
        partial = usable_partial(out, 0 if resume_state is None else int(resume_state["epoch"]) + 1)
        if partial is not None:
            resume_state, where = partial, out / PARTIAL_NAME
    if args.resume and resume_state is None and rt.is_main:
        print(f"--resume: no {last_path}, starting a new run", file=sys.stderr)
    index = load_index(args.index)
    if resume_state is not None:
        if resume_state.get("index_fingerprint") != index.fingerprint:
            raise ArtifactError(where, "checkpoint was trained on another index (fingerprint "
                                       f"{str(resume_state.get('index_fingerprint'))[:12]} vs {index.fingerprint[:12]})")
        check_resume_args(resume_state.get("args", {}), argd, where, resume_fixed)
    return resume_state, index


def build_data(args: Any, index: Any, rt: Any) -> TrainData:
    """Train/val subsets, datasets (augmentation from (seed, epoch, row)), the distributed loader, schedule sizes."""
    from torch.utils.data import DataLoader, DistributedSampler

    from training.data import AugmentConfig, FERDataset, make_crop_spec, stratified_subset

    train_pos = index.positions("train")
    if args.max_train_samples:
        train_pos = stratified_subset(train_pos, index.labels[train_pos], args.max_train_samples, args.seed)
    val_pos = index.positions("val")
    if args.max_eval_samples:
        val_pos = stratified_subset(val_pos, index.labels[val_pos], args.max_eval_samples, 0)
    spec = make_crop_spec(args.input_size, args.in_chans, clahe=not args.no_clahe)
    augment = None if args.no_augment else (AugmentConfig.webcam() if args.webcam_aug else AugmentConfig())
    if augment is not None and getattr(args, "random_erasing", 0.0):
        augment = replace(augment, erase_prob=float(args.random_erasing))
    show = rt.is_main and not args.no_progress
    train_ds = FERDataset(index, spec, positions=train_pos, augment=augment, seed=args.seed, root=args.data,
                          progress=show)
    val_ds = FERDataset(index, spec, positions=val_pos, root=args.data, progress=show) if rt.is_main else None

    if args.batch_size % rt.world_size:
        raise ValueError(f"--batch-size {args.batch_size} must be divisible by the {rt.world_size} ranks")
    per_rank_batch = args.batch_size // rt.world_size
    drop_last = len(train_ds) >= args.batch_size
    sampler = DistributedSampler(train_ds, num_replicas=rt.world_size, rank=rt.rank, shuffle=True, seed=args.seed,
                                 drop_last=drop_last)
    workers = args.workers if args.workers is not None else (6 if rt.device.type == "cuda" else 0)
    loader = DataLoader(train_ds, batch_size=per_rank_batch, sampler=sampler, num_workers=workers,
                        drop_last=drop_last, pin_memory=rt.device.type == "cuda",
                        persistent_workers=False)
    steps_per_epoch = len(loader)
    if args.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.max_steps_per_epoch)
    updates_per_epoch = math.ceil(steps_per_epoch / args.accum_steps)
    total_updates = updates_per_epoch * args.epochs
    warmup_updates = min(int(round(args.warmup_epochs * updates_per_epoch)), max(0, total_updates - 1))
    return TrainData(index, train_pos, val_pos, spec, augment, train_ds, val_ds, sampler, loader, workers,
                     per_rank_batch, steps_per_epoch, updates_per_epoch, warmup_updates, show)


def make_optimizer(args: Any, model: Any) -> Any:
    """The recipe's AdamW (timm: no weight decay on biases and norms), or the NL optimizer for ``--optimizer nl``.

    ``args.optimizer`` is None (every run before the option existed, and the default) or
    ``"nl"``: training.nl.DeepMemoryOptimizer in its first-order ``local`` mode, with the same
    parameter groups; its ``meta`` mode needs a closure and runs in ``fer-train nl-testbed`` only.
    """
    import timm.optim

    if getattr(args, "optimizer", None) == "nl":
        from training.nl import DeepMemoryOptimizer

        groups = timm.optim.param_groups_weight_decay(model, args.weight_decay)
        return DeepMemoryOptimizer(groups, lr=args.lr, weight_decay=args.weight_decay, hidden=args.nl_hidden,
                                   layers=args.nl_layers, inner="local", memory_lr=args.nl_memory_lr, seed=args.seed)
    return timm.optim.create_optimizer_v2(model, "adamw", lr=args.lr, weight_decay=args.weight_decay)


def build_model(args: Any, backbone: str, rt: Any, data: TrainData, resume_state: dict[str, Any] | None
                ) -> TrainState:
    """Seed, build the model, the optimizer (``make_optimizer``), the warm-up + cosine schedule and the scaler;
    restore them on resume."""
    import timm.scheduler
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from training.models import backbone_family, create_model, effective_stem_stride
    from training.runtime import seed_everything

    classes = data.index.classes
    seed_everything(args.seed)
    stem = effective_stem_stride(backbone, args.stem_stride)
    model = create_model(backbone, len(classes), args.in_chans, args.input_size,
                         pretrained_checkpoint=None if resume_state else args.pretrained_checkpoint,
                         stem_stride=args.stem_stride, classes=classes, drop_rate=args.drop_rate,
                         last_stride=getattr(args, "last_stride", None))
    model.to(rt.device)
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and backbone_family(backbone) != "vit")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(args, model)
    total_updates = data.updates_per_epoch * args.epochs
    scheduler = timm.scheduler.CosineLRScheduler(
        optimizer, t_initial=max(1, total_updates - data.warmup_updates), lr_min=args.lr * args.min_lr_ratio,
        warmup_t=data.warmup_updates, warmup_lr_init=args.lr * 0.01, warmup_prefix=True, t_in_epochs=False)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)
    state = TrainState(model, optimizer, scheduler, scaler, channels_last, stem)
    if resume_state is not None:
        model.load_state_dict(resume_state["state_dict"])
        optimizer.load_state_dict(resume_state["optimizer"])
        if resume_state.get("scaler"):
            scaler.load_state_dict(resume_state["scaler"])
        state.start_epoch = int(resume_state["epoch"]) + 1
        state.global_update = int(resume_state["global_update"])
        state.best_acc, state.best_epoch = float(resume_state["best_val_acc"]), int(resume_state["best_epoch"])
        torch.set_rng_state(resume_state["torch_rng_state"])
        if "partial" in resume_state:
            from training.partial_checkpoint import epoch_resume

            state.epoch_resume = epoch_resume(resume_state)
    scheduler.step_update(state.global_update)
    if rt.distributed:
        state.model = DistributedDataParallel(model, device_ids=[rt.local_rank] if rt.device.type == "cuda" else None)
    return state


def write_run_record(args: Any, argd: dict[str, Any], backbone: str, role: str, out: Path, rt: Any, data: TrainData,
                     state: TrainState, resuming: bool, record_extra: dict[str, Any] | None) -> None:
    """args.json (a resume appends to its ``resumed`` list), classes.json, seed.json, and the opening line."""
    import torch

    from training.data import crop_spec_to_dict
    from training.runtime import library_versions

    index = data.index
    record = {**argd, "backbone": backbone, "stem_stride_effective": state.stem, "world_size": rt.world_size,
              "device": str(rt.device), "amp": rt.amp_name, "channels_last_effective": state.channels_last,
              "per_rank_batch": data.per_rank_batch,
              "effective_batch": args.batch_size * args.accum_steps, "steps_per_epoch": data.steps_per_epoch,
              "updates_per_epoch": data.updates_per_epoch, "warmup_updates": data.warmup_updates,
              "train_samples": int(len(data.train_pos)), "val_samples": int(len(data.val_pos)),
              "index_name": index.name, "index_fingerprint": index.fingerprint,
              "index_dir": str(Path(args.index).resolve()), "crop_spec": crop_spec_to_dict(data.spec),
              "augment": None if data.augment is None else data.augment.__dict__, "argv": sys.argv[1:],
              **(record_extra or {})}
    if not resuming or not (out / "args.json").is_file():
        write_json(out / "args.json", record)
    else:
        saved = read_json(out / "args.json")
        at = {"at_epoch": state.start_epoch}
        if state.epoch_resume is not None:
            at["at_step"] = state.epoch_resume.step
        saved.setdefault("resumed", []).append({**at, "argv": sys.argv[1:],
                                                "world_size": rt.world_size, "device": str(rt.device)})
        write_json(out / "args.json", saved)
    write_classes_json(out, index.classes, dataset=index.name)
    write_json(out / "seed.json", {"seed": args.seed, **library_versions(),
                                   "deterministic_data": "augmentation and order depend on (seed, epoch) only"})
    last = f" last_stride={args.last_stride}" if getattr(args, "last_stride", None) else ""
    at = f" (epoch {state.start_epoch} from step {state.epoch_resume.step}, partial.pt)" if state.epoch_resume else ""
    print(f"{role} {backbone} stem={state.stem}{last} input={args.input_size}px on {rt.device} x{rt.world_size} "
          f"amp={rt.amp_name} threads={torch.get_num_threads()}: {len(data.train_pos)} train / "
          f"{len(data.val_pos)} val, {data.steps_per_epoch} steps/epoch, epochs {state.start_epoch}.."
          f"{args.epochs - 1}{at} -> {out}", flush=True)


# ----------------------------------------------------------------------------- one epoch

def _grad_norm(model: Any) -> Any:
    """The L2 norm over every parameter's gradient (what clip_grad_norm_ reports), without clipping."""
    import torch

    norms = [p.grad.detach().norm(2) for p in model.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms), 2) if norms else torch.zeros(())


def safety_columns(state: TrainState, device: Any) -> dict[str, str]:
    """The history row's safety-rail figures for the epoch just trained."""
    import torch

    from training.memory import peak_rss_mb
    from training.nl import optimizer_state_bytes

    g = state.grad_norms
    cuda = getattr(device, "type", str(device)) == "cuda"
    return {"grad_norm_mean": f"{sum(g) / len(g):.6g}" if g else "",
            "grad_norm_max": f"{max(g):.6g}" if g else "",
            "peak_rss_mb": f"{peak_rss_mb():.1f}",
            "gpu_peak_mb": f"{torch.cuda.max_memory_allocated(device) / 2**20:.1f}" if cuda else "",
            "optimizer_state_mb": f"{optimizer_state_bytes(state.optimizer) / 2**20:.3f}"}


def train_one_epoch(args: Any, rt: Any, data: TrainData, state: TrainState, loss_fn: LossFn, epoch: int,
                    save_partial: Callable[[int, int, tuple[Any, Any, Any]], None] | None = None
                    ) -> tuple[Any, Any, Any] | None:
    """One pass over the train loader (gradient accumulation, clipping, one schedule step per update).

    Returns the (loss sum, correct, seen) tensors, summed over the ranks, or None when
    ``--stop-after-updates`` stopped it. A resume from partial.pt (``state.epoch_resume``) starts at
    its step with its sums; ``save_partial(epoch, next_step, sums)`` is offered every update boundary.
    """
    import torch

    from training.partial_checkpoint import skip_batches
    from training.runtime import maybe_no_sync

    model, optimizer, scaler = state.model, state.optimizer, state.scaler
    er = state.epoch_resume if state.epoch_resume is not None and state.epoch_resume.epoch == epoch else None
    state.epoch_resume = None
    first = er.step if er is not None else 0
    state.grad_norms = list(er.grad_norms) if er is not None else []
    state.resumed_seconds = er.train_seconds if er is not None else 0.0
    steps = data.steps_per_epoch
    data.train_ds.set_epoch(epoch)
    data.sampler.set_epoch(epoch)
    model.train()
    loss_sum = torch.tensor(er.loss_sum if er else 0.0, dtype=torch.float64)
    correct = torch.tensor(er.correct if er else 0.0, dtype=torch.float64)
    seen = torch.tensor(er.seen if er else 0.0, dtype=torch.float64)
    optimizer.zero_grad(set_to_none=True)
    it: Any = iter(skip_batches(data.loader, first) if first else data.loader)
    if er is not None:
        # after the iterator has drawn its base seed, as the uninterrupted epoch's had before this step
        torch.set_rng_state(er.rng_state)
    if data.show:
        from tqdm import tqdm
        it = tqdm(it, total=steps, initial=first, desc=f"epoch {epoch}", unit="batch", mininterval=5.0,
                  leave=False, file=sys.stderr)
    for step, (x, y, pos) in enumerate(it, start=first):
        if step >= steps:
            break
        group_start = (step // args.accum_steps) * args.accum_steps
        group_size = min(args.accum_steps, steps - group_start)
        last_micro = step == group_start + group_size - 1
        x = x.to(rt.device, non_blocking=True)
        if state.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(rt.device, non_blocking=True)
        pos = pos.to(rt.device, non_blocking=True)
        with maybe_no_sync(model, not last_micro):
            with rt.autocast():
                logits = model(x)
            loss = loss_fn(logits.float(), y, pos, epoch + step / steps)
            scaler.scale(loss / group_size).backward()
        if last_micro:
            scaler.unscale_(optimizer)  # a no-op without fp16 scaling; the norms below are of the true gradients
            if args.clip_grad and args.clip_grad > 0:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            else:
                norm = _grad_norm(model)
            norm = float(norm)
            if math.isfinite(norm) or not scaler.is_enabled():
                # under fp16 a non-finite norm is an overflow that GradScaler skips and recovers from: normal,
                # not logged; elsewhere it is a real divergence, logged so the nl-phase gate stops the phase
                state.grad_norms.append(norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            state.global_update += 1
            state.process_updates += 1
            state.scheduler.step_update(state.global_update)
        with torch.no_grad():
            loss_sum += loss.detach().double().cpu() * len(y)
            correct += (logits.argmax(1) == y).sum().double().cpu()
            seen += len(y)
        if data.show:
            it.set_postfix(loss=f"{loss_sum.item() / max(1, seen.item()):.3f}",
                           lr=f"{optimizer.param_groups[0]['lr']:.2e}", refresh=False)
        if last_micro and step + 1 < steps:
            if save_partial is not None:
                save_partial(epoch, step + 1, (loss_sum, correct, seen))
            stop = getattr(args, "stop_after_updates", None)
            if stop is not None and state.process_updates >= stop:
                return None
    if rt.distributed:
        loss_sum, correct, seen = _reduce_and_check_ranks(rt, state, epoch, loss_sum, correct, seen, Path(args.out))
    return loss_sum, correct, seen


def _reduce_and_check_ranks(rt: Any, state: TrainState, epoch: int, loss_sum: Any, correct: Any, seen: Any,
                            out: Path) -> tuple[Any, Any, Any]:
    """Sum the epoch's statistics over the ranks and refuse ranks whose weights differ (recorded in ddp.json)."""
    import torch
    import torch.distributed as dist

    from training.models import unwrap

    stats = torch.stack([loss_sum, correct, seen]).to(rt.device if rt.device.type == "cuda" else "cpu")
    dist.all_reduce(stats)
    loss_sum, correct, seen = stats.cpu()
    digests: list[Any] = [None] * rt.world_size
    dist.all_gather_object(digests, param_digest(unwrap(state.model)))
    if len(set(digests)) != 1:
        raise RuntimeError(f"DDP ranks hold different weights after epoch {epoch}: {digests}")
    if rt.is_main:
        write_json(out / "ddp.json", {"world_size": rt.world_size, "backend": dist.get_backend(),
                                      "epoch": epoch, "param_sha256_per_rank": digests, "identical": True})
    return loss_sum, correct, seen


def validate(args: Any, rt: Any, data: TrainData, state: TrainState) -> tuple[float, float]:
    """Val loss (mean NLL, fer_models.calibration) and accuracy of the current weights; rank 0 only."""
    from training.evaluate import predict_logits
    from training.models import unwrap

    bare = unwrap(state.model)
    vz, vpos = predict_logits(bare, data.val_ds, args.eval_batch_size, rt.device, rt.autocast, data.workers,
                              channels_last=state.channels_last)
    bare.train()
    vy = data.index.labels[vpos]
    return nll_from_logits(vz, vy), float(np.mean(vz.argmax(1) == vy))


def save_checkpoints(out: Path, state: TrainState, meta: dict[str, Any], index: Any, argd: dict[str, Any],
                     epoch: int, val_acc: float) -> bool:
    """best.pt when val accuracy improved, then last.pt with everything a resume needs; returns whether it improved.

    ``meta`` is what rebuilds the model (backbone, classes, input size, channels, stem, crop spec) plus the
    caller's ``checkpoint_extra``.
    """
    from training.models import checkpoint_payload, save_checkpoint
    from training.partial_checkpoint import remove_partial

    improved = val_acc > state.best_acc
    if improved:
        state.best_acc, state.best_epoch = val_acc, epoch
        save_checkpoint(out / "best.pt", checkpoint_payload(
            state.model, **meta, epoch=epoch, val_acc=val_acc, index_name=index.name,
            index_fingerprint=index.fingerprint, args=argd))
    save_checkpoint(out / "last.pt", resume_payload(state, meta, index, argd, epoch, val_acc))
    remove_partial(out)  # superseded by the whole epoch
    return improved


def resume_payload(state: TrainState, meta: dict[str, Any], index: Any, argd: dict[str, Any], epoch: int,
                   val_acc: float | None, **extra: Any) -> dict[str, Any]:
    """What a resume reads (last.pt, and partial.pt with ``extra`` = its ``partial`` entry): the weights
    and how to rebuild them, optimizer, scaler, update count, best score and the torch RNG."""
    import torch

    from training.models import checkpoint_payload

    return checkpoint_payload(
        state.model, **meta, epoch=epoch, val_acc=val_acc, index_name=index.name,
        index_fingerprint=index.fingerprint, args=argd, optimizer=state.optimizer.state_dict(),
        scaler=state.scaler.state_dict() if state.scaler.is_enabled() else None, global_update=state.global_update,
        best_val_acc=state.best_acc, best_epoch=state.best_epoch, torch_rng_state=torch.get_rng_state(), **extra)


def partial_saver(args: Any, rt: Any, state: TrainState, out: Path, meta: dict[str, Any], index: Any,
                  argd: dict[str, Any]) -> Any:
    """A training.partial_checkpoint.PartialSaver for ``--checkpoint-minutes`` (None when it is 0, under DDP,
    or on ranks other than 0)."""
    from training.partial_checkpoint import PARTIAL_NAME, PartialSaver

    minutes = float(getattr(args, "checkpoint_minutes", 0.0) or 0.0)
    if minutes <= 0 or rt.distributed or not rt.is_main:
        return None
    # the payload is last.pt's with the epoch in progress counted as not done, plus the "partial" entry
    return PartialSaver(out / PARTIAL_NAME, minutes, lambda epoch, partial: resume_payload(
        state, meta, index, argd, epoch - 1, None, partial=partial))


# ----------------------------------------------------------------------------- the loop

def run_epochs(args: Any, rt: Any, data: TrainData, state: TrainState, loss_fn: LossFn, out: Path,
               meta: dict[str, Any], index: Any, argd: dict[str, Any], history: list[dict[str, Any]]) -> bool:
    """The epoch loop shared by ``run_training`` and ``fer-train adapt``: train, validate, history row,
    checkpoints and the epoch line, from ``state.start_epoch``; False when ``--stop-after-epoch`` or
    ``--stop-after-updates`` cut it short. Seconds count what a resumed epoch had trained before (partial.pt)."""
    saver = partial_saver(args, rt, state, out, meta, index, argd)
    for epoch in range(state.start_epoch, args.epochs):
        t0 = time.perf_counter()
        offer = None if saver is None else (lambda ep, nxt, sums: saver(
            ep, nxt, sums, state.grad_norms, state.resumed_seconds + time.perf_counter() - t0))
        sums = train_one_epoch(args, rt, data, state, loss_fn, epoch, offer)
        if sums is None:
            if rt.is_main:
                print(f"stopping after {state.process_updates} updates as asked; continue with --resume", flush=True)
            return False
        loss_sum, correct, seen = sums
        train_seconds = state.resumed_seconds + time.perf_counter() - t0
        if rt.is_main:
            val_loss, val_acc = validate(args, rt, data, state)
            seconds = state.resumed_seconds + time.perf_counter() - t0
            row = {"epoch": epoch, "train_loss": f"{loss_sum.item() / max(1, seen.item()):.6f}",
                   "train_acc": f"{correct.item() / max(1, seen.item()):.6f}", "val_loss": f"{val_loss:.6f}",
                   "val_acc": f"{val_acc:.6f}", "lr": f"{state.optimizer.param_groups[0]['lr']:.6e}",
                   "seconds": f"{seconds:.2f}", "train_samples": int(seen.item()),
                   "sec_per_batch": f"{train_seconds / max(1, data.steps_per_epoch):.4f}",
                   "images_per_sec": f"{seen.item() / max(1e-9, train_seconds):.1f}",
                   **safety_columns(state, rt.device)}
            history.append(row)
            write_history(out / "history.csv", history)
            improved = save_checkpoints(out, state, meta, index, argd, epoch, val_acc)
            if saver is not None:
                saver.restart()
            print(f"epoch {epoch + 1}/{args.epochs} loss {row['train_loss']} acc {row['train_acc']} | "
                  f"val loss {row['val_loss']} acc {row['val_acc']}{' *' if improved else ''} | "
                  f"lr {row['lr']} | {seconds:.1f}s ({row['sec_per_batch']}s/batch, "
                  f"{row['images_per_sec']} img/s)", flush=True)
        rt.barrier()
        if args.stop_after_epoch is not None and epoch + 1 >= args.stop_after_epoch and epoch + 1 < args.epochs:
            if rt.is_main:
                print(f"stopping after epoch {epoch + 1} as asked; continue with --resume", flush=True)
            return False
    return True


def run_training(args: Any, backbone: str, *, role: str = "teacher",
                 make_loss: Callable[[Any], LossFn] | None = None, resume_fixed: Sequence[str] = RESUME_FIXED,
                 record_extra: dict[str, Any] | None = None, checkpoint_extra: dict[str, Any] | None = None) -> Path:
    """The one training loop behind ``fer-train teacher`` and ``fer-train student``; returns the run folder.

    ``make_loss(device)`` returns the objective ``loss(logits, y, positions, progress)``:
    ``logits`` (float32, B x K) and ``y`` on the device, ``positions`` the rows' places in the
    index (on the device; for looking up per-row targets such as teacher logits) and
    ``progress`` = epoch + step / steps_per_epoch (for warm-ups). Default: cross-entropy with
    ``--label-smoothing``. ``resume_fixed`` names the arguments a resume may not change;
    ``record_extra`` is merged into args.json and ``checkpoint_extra`` into every checkpoint.
    """
    import cv2
    import torch

    from training.data import crop_spec_to_dict
    from training.models import backbone_family
    from training.runtime import setup_runtime, teardown_runtime

    argd = normalise_args(args)
    rt = setup_runtime(args.device, args.amp, backbone_family(backbone))
    if args.threads:
        torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    out = Path(args.out)
    resume_state, index = open_run(args, argd, out, rt, resume_fixed)
    data = build_data(args, index, rt)
    state = build_model(args, backbone, rt, data, resume_state)
    loss_fn = (make_loss or cross_entropy_loss(args))(rt.device)
    meta = dict(backbone=backbone, classes=index.classes, input_size=args.input_size, in_chans=args.in_chans,
                stem_stride=state.stem, last_stride=getattr(args, "last_stride", None),
                crop_spec=crop_spec_to_dict(data.spec), **(checkpoint_extra or {}))
    if rt.is_main:
        write_run_record(args, argd, backbone, role, out, rt, data, state, resume_state is not None, record_extra)
    history = read_history(out / "history.csv", state.start_epoch) if rt.is_main else []

    try:
        completed = run_epochs(args, rt, data, state, loss_fn, out, meta, index, argd, history)
        if completed and rt.is_main:
            finish_run(out, index, args, rt)
        rt.barrier()
    finally:
        teardown_runtime(rt)
    return out


def finish_run(out: Path, index: Any, args: Any, rt: Any) -> None:
    """Evaluate best.pt on val and test (the same subsets in smoke mode), write summary.json, fit the temperature."""
    from training.evaluate import evaluate_checkpoint

    history = read_history(out / "history.csv", 10**9)
    evaluate_checkpoint(out, index.path, "best.pt", ("val", "test"), args.eval_batch_size, str(rt.device),
                        args.data, args.max_eval_samples, progress=not args.no_progress)
    summary = {"epochs": len(history), "wall_seconds": round(sum(float(r["seconds"]) for r in history), 1),
               "best_epoch": max(history, key=lambda r: float(r["val_acc"]))["epoch"] if history else None}
    write_json(out / "summary.json", summary)
    if not args.no_calibrate:
        from training.calibrate import calibrate_run

        calibrate_run(out)
