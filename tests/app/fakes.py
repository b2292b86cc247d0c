"""A synchronous Runner for driving app.controller.SessionController without threads or Qt.

It opens the source when started and captures, processes and reports frames only when the test asks
(``pump``, ``step``, ``seek``), on the test's thread, with the capture worker's playback rules: a step
pauses, a forward step of n frames skips n - 1, a step back or a seek shows the frame it lands on, and
the session clock of a file is its video clock (monotonic across backward jumps).
"""

from __future__ import annotations

import time

from app.runner import RunnerEvents
from app.frame_exchange import CapturedFrame, ProcessedFrame, ResultMailbox
from app.sources import MonotonicVideoClock, SourceOpener, SourceSpec, open_source
from fer_models.errors import FerError
from fer_models.pipeline import FramePipeline


class SyncRunner:
    instances: list["SyncRunner"] = []  # every runner made, newest last (reset by the fixture)

    def __init__(self, spec: SourceSpec, pipeline: FramePipeline, opener: SourceOpener = open_source,
                 start_playing: bool = True, speed: float = 1.0, events: RunnerEvents | None = None):
        assert events is not None, "the controller always passes its events"
        self.spec, self.pipeline, self.opener, self.events = spec, pipeline, opener, events
        self.mailbox = ResultMailbox()
        self.dropped = 0
        self.speed = speed
        self._playing = start_playing
        self.source = None
        self.clock: MonotonicVideoClock | None = None
        self.seq = 0
        self.at_end = False
        self.started = self.stopped = False
        SyncRunner.instances.append(self)

    # -- Runner --------------------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        try:
            self.source = self.opener(self.spec)
        except FerError as exc:
            self.events.failed(str(exc))
            return
        src = self.source
        info = {"kind": src.kind, "fps": src.fps, "width": getattr(src, "width", 0),
                "height": getattr(src, "height", 0), "frame_count": getattr(src, "frame_count", 0),
                "t0": time.perf_counter()}
        if src.kind == "video":
            self.clock = MonotonicVideoClock(1.0 / src.fps)
        self.events.opened(info)
        if not self._playing and src.kind == "video":
            self.seek(0)  # show the first frame, paused (as SourceRunner does)

    def stop(self) -> list[ProcessedFrame]:
        if not self.stopped:
            self.stopped = True
            if self.source is not None:
                self.source.release()
        return self.mailbox.drain()

    def drain(self) -> list[ProcessedFrame]:
        return self.mailbox.drain()

    def set_keep_images(self, keep: bool) -> None:
        self.mailbox.keep_images = keep

    def is_playing(self) -> bool:
        return self._playing

    def set_playing(self, playing: bool) -> None:
        self._playing = bool(playing)
        self.events.playing_changed(self._playing)

    def set_speed(self, speed: float) -> None:
        self.speed = speed

    def step(self, frames: int) -> None:
        self.set_playing(False)
        src = self.source
        if frames < 0:
            src.seek(max(0, src.position - 1 + frames))
        else:
            for _ in range(frames - 1):
                if src.read() is None:
                    break
        self._deliver()

    def seek(self, frame: int) -> None:
        self.source.seek(frame)
        self.at_end = False
        self._deliver()

    # -- test controls -------------------------------------------------------------------------
    def pump(self, n: int = 1) -> int:
        """Play up to ``n`` frames (nothing while paused); returns how many were delivered."""
        done = 0
        while done < n and self._playing and not self.stopped:
            if not self._deliver():
                break
            done += 1
        return done

    def play_to_end(self) -> int:
        return self.pump(10**9)

    def _deliver(self) -> bool:
        src = self.source
        index = getattr(src, "position", self.seq)
        image = src.read()
        if image is None:
            if self.clock is None:  # a camera that stopped delivering
                self.events.failed(f"Camera {self.spec.camera_index} stopped delivering frames.")
                return False
            self.at_end = True
            self.set_playing(False)
            self.events.ended()
            return False
        if self.clock is not None:
            video_ms = src.frame_time_ms(index)
            t = self.clock.time_for(index / src.fps)
            self.events.position(index, video_ms, t)
            frame = CapturedFrame(image, self.seq, t, index, video_ms)
        else:
            frame = CapturedFrame(image, self.seq, self.seq / src.fps)
        self.seq += 1
        results = self.pipeline.process_all(frame.image, frame.t_sec)  # as the processing worker does
        if self.mailbox.push(ProcessedFrame(frame, results[0], extra=results[1:])):
            self.events.results_ready()
        return True
