"""What the controller and a running source (capture + processing) agree on, without Qt.

``app.source_runner.SourceRunner`` (two QThreads) implements ``Runner`` and reports through
``RunnerEvents``; the controller (``app.controller``, importable and testable without Qt) and the
tests' synchronous fake use the same two types, so neither side imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from app.frame_exchange import ProcessedFrame
from app.sources import SourceSpec


@dataclass(frozen=True)
class RunnerEvents:
    """What a runner reports to its controller (each called on the controller's thread)."""

    opened: Callable[[dict], None]  # {"kind", "fps", "width", "height", "frame_count", "t0"}
    failed: Callable[[str], None]  # could not open, or lost mid-session
    position: Callable[[int, float, float], None]  # video frame, video ms, session time (files only)
    playing_changed: Callable[[bool], None]
    ended: Callable[[], None]  # end of the file reached (paused there)
    results_ready: Callable[[], None]  # processed frames wait in ``drain``
    processing_error: Callable[[str], None]  # one frame failed; the run goes on


class Runner(Protocol):
    """A running source: app.source_runner.SourceRunner (two QThreads) or a test's synchronous fake."""

    spec: SourceSpec
    dropped: int

    def start(self) -> None: ...

    def stop(self) -> list[ProcessedFrame]: ...  # joined; returns the results still waiting

    def drain(self) -> list[ProcessedFrame]: ...

    def set_keep_images(self, keep: bool) -> None: ...

    def is_playing(self) -> bool: ...

    def set_playing(self, playing: bool) -> None: ...

    def step(self, frames: int) -> None: ...

    def seek(self, frame: int) -> None: ...

    def set_speed(self, speed: float) -> None: ...


# (spec, pipeline, *, opener, start_playing, speed, events) -> a Runner, not yet started
RunnerFactory = Callable[..., Runner]
