"""Complementary labels for negative learning (NegL), chosen from teacher confusions.

``training.losses.negl_loss`` pushes down p(c̄) for a class c̄ the sample is *not*. Which c̄
matters more than the loss: a uniformly drawn c̄ is mostly a class the model already rules
out (nothing learnt), and on FER2013, whose labels are noisy, a c̄ that is in fact the
right answer does harm. So, for a sample of true class y (DESIGN.md §7 item 5, issue 14):

1. **Confusion-guided draw.** c̄ is drawn with probability proportional to how often the
   teachers predict c̄ for true class y (row y of their summed confusion matrices, the
   diagonal excluded, plus an optional pseudo-count), so the push falls on the realistic
   confusions (Fear vs Surprise, Sad vs Neutral). Matrices come from ``fer-train evaluate``
   (``confusion_<split>.json`` in a teacher run); ``test`` is refused (it would leak the test
   split into training).
2. **Never a likely-true class.** A class to which the teacher ensemble gives probability
   >= ``teacher_prob_max`` for this very sample is never drawn.
3. **Class-aware ratio.** Each of the ``negatives_per_sample`` slots of a sample of class y
   is kept with probability ``class_ratio[y]``: minority classes (Disgust, Fear) get fewer
   negatives, to protect their recall.
4. **Uncertainty gating.** Only samples that the student (or the teacher) finds unstable
   get negatives: normalised entropy H(p)/log C >= ``entropy_min`` or top-2 margin
   p1 - p2 <= ``margin_max`` (either suffices when both are set).

Unused slots hold ``NEGL_IGNORE`` (-1), which ``negl_loss`` skips. Every draw takes a
``torch.Generator``; ``batch_generator(seed, epoch, step)`` gives one that depends only on
those numbers, so a run (and its resumption) draws the same negatives.

Configs are JSON files under ``training/configs/negl/`` (``default.json``); ``load_negl_config``
validates one, naming the file and the bad key, and ``negl_config_record`` is what a run
records (the file's content and SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from fer_models.classes import check_same_classes, read_classes_json, validate_class_list
from fer_models.errors import ArtifactError
from fer_models.files import read_json

from training.losses import NEGL_IGNORE, negl_loss

CONFIG_DIR = Path(__file__).resolve().parent / "configs" / "negl"
DEFAULT_CONFIG = CONFIG_DIR / "default.json"
GATE_SOURCES = ("student", "teacher", "none")
CONFUSION_SPLITS = ("val", "train")  # never test

_REQUIRED = ("classes", "weight", "negatives_per_sample", "class_ratio", "teacher_prob_max", "gate")
_OPTIONAL = ("name", "description", "teacher_temperature", "confusion_split", "confusion_smoothing",
             "exclude", "confusion_runs")
_GATE_KEYS = ("source", "entropy_min", "margin_max")


@dataclass(frozen=True)
class NeglConfig:
    """A validated NegL config; per-class values in ``classes`` order."""

    path: str | None
    name: str
    classes: tuple[str, ...]
    weight: float
    negatives_per_sample: int
    class_ratio: tuple[float, ...]
    teacher_prob_max: float | None
    teacher_temperature: float
    confusion_split: str
    confusion_smoothing: float
    exclude: tuple[tuple[int, int], ...]
    confusion_runs: tuple[str, ...]
    gate_source: str
    gate_entropy_min: float | None
    gate_margin_max: float | None
    content: dict[str, Any] = field(repr=False, default_factory=dict)
    sha256: str = ""

    @property
    def needs_teacher(self) -> bool:
        """Whether the selection reads teacher probabilities (exclusion threshold or teacher gating)."""
        return self.teacher_prob_max is not None or self.gate_source == "teacher"


class NeglConfigError(ArtifactError, ValueError):
    """A NegL config file that does not validate (the message names the file and the key)."""


def _num(where: Path | str, key: str, value: Any, lo: float | None = None, hi: float | None = None,
         allow_none: bool = False, lo_open: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise NeglConfigError(where, f"key {key!r} must be a finite number{' or null' if allow_none else ''}, "
                                     f"got {value!r}")
    v = float(value)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise NeglConfigError(where, f"key {key!r} must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
    if hi is not None and v > hi:
        raise NeglConfigError(where, f"key {key!r} must be <= {hi:g}, got {v:g}")
    return v


def parse_negl_config(data: Any, where: str | Path = "<negl config>", classes: Sequence[str] | None = None,
                      raw: bytes | None = None) -> NeglConfig:
    """Validate a NegL config object; ``classes`` (the index's) must equal the config's ``classes``."""
    if not isinstance(data, dict):
        raise NeglConfigError(where, "a NegL config must be a JSON object")
    unknown = [k for k in data if k not in _REQUIRED + _OPTIONAL]
    if unknown:
        raise NeglConfigError(where, f"unknown key(s) {unknown}; allowed: {list(_REQUIRED + _OPTIONAL)}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise NeglConfigError(where, f"missing key(s) {missing}")
    try:
        cls = validate_class_list(data["classes"], where)
    except (ArtifactError, TypeError) as exc:
        raise NeglConfigError(where, f"key 'classes': {getattr(exc, 'problem', exc)}") from exc
    if classes is not None:
        check_same_classes(classes, cls, where, "NegL config 'classes'")
    k = len(cls)
    weight = _num(where, "weight", data["weight"], lo=0.0)
    nps = data["negatives_per_sample"]
    if isinstance(nps, bool) or not isinstance(nps, int) or not 1 <= nps < k:
        raise NeglConfigError(where, f"key 'negatives_per_sample' must be an integer in [1, {k - 1}], got {nps!r}")
    ratio = data["class_ratio"]
    if not isinstance(ratio, dict):
        raise NeglConfigError(where, "key 'class_ratio' must be an object {class name: ratio in [0, 1]}")
    lower = {c.lower(): i for i, c in enumerate(cls)}
    ratios = [None] * k
    for name, value in ratio.items():
        if str(name).lower() not in lower:
            raise NeglConfigError(where, f"key 'class_ratio.{name}': not a class of {cls}")
        ratios[lower[str(name).lower()]] = _num(where, f"class_ratio.{name}", value, 0.0, 1.0)
    absent = [cls[i] for i, r in enumerate(ratios) if r is None]
    if absent:
        raise NeglConfigError(where, f"key 'class_ratio' lacks class(es) {absent} (give every class a ratio)")
    tmax = _num(where, "teacher_prob_max", data["teacher_prob_max"], 0.0, 1.0, allow_none=True, lo_open=True)
    ttemp = _num(where, "teacher_temperature", data.get("teacher_temperature", 1.0), 0.0, lo_open=True)
    split = data.get("confusion_split", "val")
    if split not in CONFUSION_SPLITS:
        raise NeglConfigError(where, f"key 'confusion_split' must be one of {CONFUSION_SPLITS} (test would leak "
                                     f"the test split into training), got {split!r}")
    smooth = _num(where, "confusion_smoothing", data.get("confusion_smoothing", 0.0), lo=0.0)
    exclude = []
    ex = data.get("exclude", {})
    if not isinstance(ex, dict):
        raise NeglConfigError(where, "key 'exclude' must be an object {true class: [classes never drawn]}")
    for y, cs in ex.items():
        if str(y).lower() not in lower:
            raise NeglConfigError(where, f"key 'exclude.{y}': not a class of {cls}")
        if not isinstance(cs, list):
            raise NeglConfigError(where, f"key 'exclude.{y}' must be a list of class names")
        for c in cs:
            if str(c).lower() not in lower:
                raise NeglConfigError(where, f"key 'exclude.{y}': {c!r} is not a class of {cls}")
            exclude.append((lower[str(y).lower()], lower[str(c).lower()]))
    runs = data.get("confusion_runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
        raise NeglConfigError(where, "key 'confusion_runs' must be a list of run folder paths")
    gate = data["gate"]
    if not isinstance(gate, dict):
        raise NeglConfigError(where, f"key 'gate' must be an object with {list(_GATE_KEYS)}")
    bad_gate = [g for g in gate if g not in _GATE_KEYS]
    if bad_gate:
        raise NeglConfigError(where, f"unknown key(s) {['gate.' + g for g in bad_gate]}; allowed: "
                                     f"{['gate.' + g for g in _GATE_KEYS]}")
    source = gate.get("source", "student")
    if source not in GATE_SOURCES:
        raise NeglConfigError(where, f"key 'gate.source' must be one of {GATE_SOURCES}, got {source!r}")
    ent = _num(where, "gate.entropy_min", gate.get("entropy_min"), 0.0, 1.0, allow_none=True)
    mar = _num(where, "gate.margin_max", gate.get("margin_max"), 0.0, 1.0, allow_none=True)
    if source != "none" and ent is None and mar is None:
        raise NeglConfigError(where, f"key 'gate': source {source!r} needs 'entropy_min' or 'margin_max' "
                                     "(or use source 'none' to apply NegL to every sample)")
    text = raw if raw is not None else json.dumps(data, sort_keys=True).encode("utf-8")
    return NeglConfig(path=None if raw is None else str(where), name=str(data.get("name") or Path(str(where)).stem),
                      classes=tuple(cls), weight=float(weight), negatives_per_sample=int(nps),
                      class_ratio=tuple(float(r) for r in ratios), teacher_prob_max=tmax,
                      teacher_temperature=float(ttemp), confusion_split=str(split),
                      confusion_smoothing=float(smooth), exclude=tuple(exclude), confusion_runs=tuple(runs),
                      gate_source=str(source), gate_entropy_min=ent, gate_margin_max=mar, content=data,
                      sha256=hashlib.sha256(text).hexdigest())


def load_negl_config(path: str | Path = DEFAULT_CONFIG, classes: Sequence[str] | None = None) -> NeglConfig:
    """Read and validate a NegL config file (errors name the file and the key)."""
    path = Path(path)
    data = read_json(path)  # ArtifactError naming the file for a missing or broken file
    return parse_negl_config(data, path, classes, raw=path.read_bytes())


def negl_config_record(cfg: NeglConfig) -> dict[str, Any]:
    """What a run records about its NegL config: where it came from, its SHA-256 and its full content."""
    return {"path": cfg.path, "name": cfg.name, "sha256": cfg.sha256, "content": cfg.content}


# ----------------------------------------------------------------------------- teacher confusions

def read_confusion_file(path: str | Path, classes: Sequence[str]) -> np.ndarray:
    """A ``confusion_<split>.json`` of ``fer-train evaluate`` (rows true class, columns predicted) as counts.

    Refused when its class list (or, without one, its run's classes.json) differs from ``classes``.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("matrix"), list):
        raise ArtifactError(path, "not a confusion file (expected an object with 'matrix')")
    if data.get("rows", "true class") != "true class" or data.get("columns", "predicted class") != "predicted class":
        raise ArtifactError(path, f"expected rows 'true class' and columns 'predicted class', got rows "
                                  f"{data.get('rows')!r}, columns {data.get('columns')!r}")
    file_classes = data.get("classes")
    if file_classes is None and (path.parent / "classes.json").is_file():
        file_classes = read_classes_json(path.parent)
    if file_classes is None:
        raise ArtifactError(path, "names no classes (no 'classes' key and no classes.json next to it)")
    check_same_classes(classes, file_classes, path, "confusion matrix classes")
    try:
        m = np.asarray(data["matrix"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(path, f"matrix is not numeric ({exc})") from exc
    k = len(classes)
    if m.shape != (k, k):
        raise ArtifactError(path, f"matrix is {m.shape}, expected {k}x{k}")
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ArtifactError(path, "matrix holds negative or non-finite counts")
    return m


def read_teacher_confusion(run_dirs: Sequence[str | Path], classes: Sequence[str], split: str = "val"
                           ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Summed confusion counts of teacher runs (their ``confusion_<split>.json``) and what was read.

    The second value lists each file with its SHA-256, for the run record.
    """
    if split not in CONFUSION_SPLITS:
        raise ValueError(f"confusion split must be one of {CONFUSION_SPLITS}, got {split!r}")
    if not run_dirs:
        raise ValueError("NegL needs at least one teacher run with a confusion matrix (--negl-confusion RUN_DIR "
                         "or the config's 'confusion_runs')")
    total = np.zeros((len(classes), len(classes)))
    sources = []
    for d in run_dirs:
        d = Path(d)
        path = d / f"confusion_{split}.json" if d.is_dir() else d
        if not path.is_file():
            raise ArtifactError(path, f"no {split} confusion matrix; run `fer-train evaluate {d} --index ...` first")
        m = read_confusion_file(path, classes)
        total += m
        sources.append({"file": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "n": int(m.sum())})
    return total, sources


def complementary_weights(confusion: np.ndarray | torch.Tensor, smoothing: float = 0.0,
                          exclude: Sequence[tuple[int, int]] = ()) -> torch.Tensor:
    """[C, C] draw weights: row y = confusion counts of true class y (+ ``smoothing``), diagonal and ``exclude`` 0."""
    w = torch.as_tensor(np.asarray(confusion, dtype=np.float64)).clone()
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"confusion must be square, got {tuple(w.shape)}")
    w = w + float(smoothing)
    w.fill_diagonal_(0.0)
    for y, c in exclude:
        w[y, c] = 0.0
    return w


# ----------------------------------------------------------------------------- uncertainty

def uncertainty(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised entropy H(p)/log C in [0, 1], top-2 margin p1 - p2) per row of [N, C] probabilities."""
    p = probs.double().clamp_min(0)
    ent = -(p * torch.log(p.clamp_min(1e-300))).sum(1) / math.log(p.shape[1])
    top2 = p.topk(2, dim=1).values
    return ent.float(), (top2[:, 0] - top2[:, 1]).float()


def gate_mask(probs: torch.Tensor | None, cfg: NeglConfig) -> torch.Tensor | None:
    """Which rows are unstable enough to get negatives (None: every row, source 'none')."""
    if cfg.gate_source == "none":
        return None
    if probs is None:
        raise ValueError(f"NegL gating on the {cfg.gate_source} needs its probabilities")
    ent, margin = uncertainty(probs)
    mask = torch.zeros(len(probs), dtype=torch.bool, device=probs.device)
    if cfg.gate_entropy_min is not None:
        mask |= ent >= cfg.gate_entropy_min
    if cfg.gate_margin_max is not None:
        mask |= margin <= cfg.gate_margin_max
    return mask


# ----------------------------------------------------------------------------- the draw

def batch_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, epoch, step): the same negatives on every run and resume."""
    key = hashlib.sha256(f"negl:{int(seed)}:{int(epoch)}:{int(step)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little") & ((1 << 63) - 1))


def select_complementary(labels: torch.Tensor, weights: torch.Tensor, k: int,
                         class_ratio: Sequence[float] | torch.Tensor | None = None,
                         teacher_probs: torch.Tensor | None = None, teacher_prob_max: float | None = None,
                         gate: torch.Tensor | None = None, generator: torch.Generator | None = None
                         ) -> torch.Tensor:
    """[N, k] complementary classes (``NEGL_IGNORE`` = unused slot) for true labels [N].

    Row i draws up to k distinct classes without replacement with probability proportional
    to ``weights[labels[i]]`` (diagonal zero: never the true class), leaving out every class
    c with ``teacher_probs[i, c] >= teacher_prob_max``. Then each slot is kept with
    probability ``class_ratio[labels[i]]`` and rows with ``gate`` False get none. A row with
    fewer than k admissible classes gets fewer negatives. Random numbers come from
    ``generator`` (CPU), drawn in a fixed order, so the result is deterministic under a seed.
    """
    labels = labels.detach().long().cpu()
    n, c = len(labels), weights.shape[1]
    w = weights.detach().double().cpu()[labels].clone()                 # [N, C]
    w[torch.arange(n), labels] = 0.0                                    # never the true class, whatever the weights
    if teacher_probs is not None and teacher_prob_max is not None:
        tp = teacher_probs.detach().double().cpu()
        if tp.shape != (n, c):
            raise ValueError(f"teacher_probs must be [{n}, {c}], got {tuple(tp.shape)}")
        w[tp >= teacher_prob_max] = 0.0
    # Gumbel top-k: k draws without replacement, proportional to w (w = 0 is never drawn)
    u = torch.rand((n, c), generator=generator, dtype=torch.float64).clamp(1e-300, 1.0)
    keys = torch.where(w > 0, torch.log(w.clamp_min(1e-300)) - torch.log(-torch.log(u)),
                       torch.full_like(w, -math.inf))
    top = keys.topk(min(k, c), dim=1)
    out = torch.where(torch.isfinite(top.values), top.indices, torch.full_like(top.indices, NEGL_IGNORE))
    keep_draw = torch.rand(out.shape, generator=generator, dtype=torch.float64)
    if class_ratio is not None:
        r = torch.as_tensor(class_ratio, dtype=torch.float64)[labels][:, None]
        out = torch.where(keep_draw < r, out, torch.full_like(out, NEGL_IGNORE))
    if gate is not None:
        out[~gate.detach().cpu().bool()] = NEGL_IGNORE
    return out


class NeglSelector:
    """A config, its draw weights and (optionally) the teacher probabilities in index order, ready per batch."""

    def __init__(self, cfg: NeglConfig, confusion: np.ndarray, teacher_logits: np.ndarray | None = None,
                 teacher_weights: Sequence[float] | None = None, sources: list[dict[str, Any]] | None = None):
        """``teacher_logits`` is (N, C) or (M, N, C) raw logits in index order, fused with ``teacher_weights``."""
        if cfg.needs_teacher and teacher_logits is None:
            raise ValueError(f"NegL config {cfg.path or cfg.name} uses teacher probabilities "
                             f"(teacher_prob_max {cfg.teacher_prob_max}, gate source {cfg.gate_source!r}): "
                             "give the teacher soft labels (--teacher)")
        self.cfg = cfg
        self.weights = complementary_weights(confusion, cfg.confusion_smoothing, cfg.exclude)
        self.sources = list(sources or [])
        self.teacher_probs: torch.Tensor | None = None
        if teacher_logits is not None:
            z = torch.as_tensor(np.asarray(teacher_logits, dtype=np.float64))
            if z.ndim == 2:
                z = z[None]
            wts = torch.as_tensor(list(teacher_weights) if teacher_weights is not None else [1.0] * len(z),
                                  dtype=torch.float64)
            wts = wts / wts.sum()
            self.teacher_probs = (torch.softmax(z / cfg.teacher_temperature, dim=2) * wts[:, None, None]).sum(0)

    def select(self, labels: torch.Tensor, positions: torch.Tensor, student_logits: torch.Tensor | None,
               generator: torch.Generator) -> torch.Tensor:
        """[N, K] complementary classes for a batch (positions index the teacher rows)."""
        tp = self.teacher_probs[positions.detach().cpu().long()] if self.teacher_probs is not None else None
        if self.cfg.gate_source == "student":
            gate_probs = None if student_logits is None else torch.softmax(student_logits.detach().float().cpu(), 1)
        else:
            gate_probs = tp
        return select_complementary(labels, self.weights, self.cfg.negatives_per_sample, self.cfg.class_ratio,
                                    tp, self.cfg.teacher_prob_max, gate_mask(gate_probs, self.cfg), generator)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """(weight-free NegL loss of the batch, number of pairs used); multiply by ``cfg.weight`` yourself."""
        comp = self.select(labels, positions, logits, generator).to(logits.device)
        return negl_loss(logits, comp), int((comp != NEGL_IGNORE).sum())

    def record(self) -> dict[str, Any]:
        """The run record: the config (content + SHA-256), the confusion files read and the draw weights."""
        return {**negl_config_record(self.cfg), "confusion_sources": self.sources,
                "draw_weights": self.weights.tolist()}


def with_negl(make_loss: Callable[[Any], Any], selector: NeglSelector, seed: int) -> Callable[[Any], Any]:
    """Wrap a ``training.loop`` loss factory: loss + cfg.weight * NegL on the batch's drawn negatives.

    The loop's hook sees ``progress`` = epoch + step / steps, not the step itself; the draw's
    generator is keyed by (seed, epoch, round(fraction * 2^20)), which depends only on the
    batch's place in the run, so a resumed run draws the same negatives.
    """
    def make(device: Any) -> Any:
        base = make_loss(device)

        def loss(logits: Any, y: Any, positions: Any, progress: float) -> Any:
            epoch = int(math.floor(progress))
            gen = batch_generator(seed, epoch, int(round((progress - epoch) * 2**20)))
            negl, _ = selector.loss(logits, y, positions, gen)
            return base(logits, y, positions, progress) + selector.cfg.weight * negl
        return loss
    return make


__all__ = ["CONFIG_DIR", "DEFAULT_CONFIG", "NEGL_IGNORE", "NeglConfig", "NeglConfigError", "NeglSelector",
           "batch_generator", "complementary_weights", "gate_mask", "load_negl_config", "negl_config_record",
           "parse_negl_config", "read_confusion_file", "read_teacher_confusion", "select_complementary",
           "uncertainty", "with_negl"]
