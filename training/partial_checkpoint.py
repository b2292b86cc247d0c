"""Checkpoints inside an epoch (``partial.pt``): a stopped run loses minutes, not an epoch.

On the 2-core CPU a ResNet50 epoch takes about 43 minutes and a student epoch 10-20, and every
working period ends with each run killed somewhere inside one: with ``last.pt`` alone, half an
epoch per run per period was thrown away. Every ``--checkpoint-minutes`` (at an optimizer-update
boundary) the loop writes ``partial.pt`` with what the rest of the epoch needs: weights, optimizer,
scaler, update count and best score as in ``last.pt``, plus the torch RNG state, the next step,
the epoch's running sums and gradient norms, and the seconds already trained. The data order and
every augmentation depend only on (seed, epoch, row), so ``--resume`` skips the batches already
seen and continues bit-identically to an uninterrupted run (tested). The epoch's ``last.pt``
supersedes the file, which is then removed.

Not under DDP: the ranks would have to agree on the moment, and the GPU runs it serves have short
epochs anyway.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from fer_models.errors import ArtifactError

PARTIAL_NAME = "partial.pt"


@dataclass
class EpochResume:
    """Where an epoch stopped: ``step`` is the first batch still to train."""

    epoch: int
    step: int
    loss_sum: float
    correct: float
    seen: float
    grad_norms: list[float]
    train_seconds: float
    rng_state: Any


def partial_extra(epoch: int, next_step: int, loss_sum: Any, correct: Any, seen: Any, grad_norms: list[float],
                  train_seconds: float) -> dict[str, Any]:
    """The ``partial`` entry of partial.pt (the rest of the payload is last.pt's, with ``epoch`` = epoch - 1
    and ``torch_rng_state`` taken at this step)."""
    return {"epoch": int(epoch), "next_step": int(next_step), "loss_sum": float(loss_sum), "correct": float(correct),
            "seen": float(seen), "grad_norms": [float(g) for g in grad_norms], "train_seconds": float(train_seconds)}


def usable_partial(out: Path, expected_epoch: int) -> dict[str, Any] | None:
    """partial.pt of ``out`` if it continues epoch ``expected_epoch`` (the one after last.pt's), else None.

    An unreadable file (a disk that filled up mid-write; the write itself is atomic) or one from
    another epoch is reported and ignored: ``last.pt`` is still whole, so only minutes are lost.
    """
    from training.models import read_checkpoint

    path = out / PARTIAL_NAME
    if not path.exists():
        return None
    try:
        data = read_checkpoint(path)
        info = data["partial"]
        epoch = int(info["epoch"])
    except (ArtifactError, KeyError, TypeError, ValueError) as exc:
        print(f"--resume: ignoring {path} ({exc}); continuing from the last whole epoch", file=sys.stderr)
        return None
    if epoch != expected_epoch:
        print(f"--resume: ignoring {path}: it is inside epoch {epoch}, the run continues with epoch "
              f"{expected_epoch}", file=sys.stderr)
        return None
    return data


def epoch_resume(data: dict[str, Any]) -> EpochResume:
    info = data["partial"]
    return EpochResume(int(info["epoch"]), int(info["next_step"]), float(info["loss_sum"]), float(info["correct"]),
                       float(info["seen"]), list(info["grad_norms"]), float(info["train_seconds"]),
                       data["torch_rng_state"])


class SkipSampler:
    """The first ``skip`` indices of ``base`` left out (a multiple of the batch size, so the batches
    that follow are exactly the uninterrupted epoch's)."""

    def __init__(self, base: Any, skip: int):
        self.base, self.skip = base, int(skip)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)


def skip_batches(loader: Any, batches: int) -> Any:
    """A loader like ``loader`` that starts at batch ``batches`` of the same epoch."""
    from torch.utils.data import DataLoader

    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=SkipSampler(loader.sampler,
                      batches * loader.batch_size), num_workers=loader.num_workers, drop_last=loader.drop_last,
                      pin_memory=loader.pin_memory, persistent_workers=False)


class PartialSaver:
    """Writes partial.pt once ``minutes`` have passed since the last checkpoint of either kind.

    ``payload(epoch, partial_entry)`` builds the whole checkpoint (training.loop.resume_payload);
    ``restart()`` is called when an epoch's last.pt has been written.
    """

    def __init__(self, path: Path, minutes: float, payload: Callable[[int, dict[str, Any]], dict[str, Any]]):
        self.path, self.seconds, self.payload = Path(path), float(minutes) * 60.0, payload
        self.last = time.monotonic()

    def restart(self) -> None:
        self.last = time.monotonic()

    def __call__(self, epoch: int, next_step: int, sums: tuple[Any, Any, Any], grad_norms: list[float],
                 train_seconds: float) -> bool:
        """Save if due; returns whether it saved."""
        from training.models import save_checkpoint

        if time.monotonic() - self.last < self.seconds:
            return False
        entry = partial_extra(epoch, next_step, *(float(v) for v in sums), grad_norms, train_seconds)
        save_checkpoint(self.path, self.payload(epoch, entry))
        self.last = time.monotonic()
        return True


def remove_partial(out: Path) -> None:
    (out / PARTIAL_NAME).unlink(missing_ok=True)
