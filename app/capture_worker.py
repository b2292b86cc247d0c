"""The capture loop: one QObject moved to its own QThread, never touching a widget.

It opens the source in its thread (a camera can take seconds to open), then
publishes frames into the LatestFrameSlot. For files it paces playback by the
video's frame rate times the chosen speed and obeys play / pause / step / seek /
speed commands; those are plain values behind a Condition, so the GUI can call
them directly and the loop wakes at once. Failures become signals with a
message; the loop never raises into Qt.
"""

from __future__ import annotations

import threading
import time
import traceback

from PySide6.QtCore import QObject, Signal, Slot

from app.frame_exchange import CapturedFrame, LatestFrameSlot
from app.sources import FrameSource, MonotonicVideoClock, SourceOpener, SourceSpec, WallClock, open_source
from fer_models.errors import FerError

CAMERA_LOST_AFTER_S = 2.0  # no frame for this long: the camera is gone
CAMERA_LOST_AFTER_FAILS = 30  # or this many failed reads in a row


class CaptureWorker(QObject):
    opened = Signal(dict)  # {"kind", "fps", "width", "height", "frame_count", "t0"}
    failed = Signal(str)  # could not open, or lost mid-session
    position = Signal(int, float, float)  # video frame, video ms, session time (files only)
    playing_changed = Signal(bool)
    ended = Signal()  # end of file reached (playback paused there)
    finished = Signal()

    def __init__(self, spec: SourceSpec, slot: LatestFrameSlot, opener: SourceOpener = open_source,
                 start_playing: bool = True, speed: float = 1.0):
        super().__init__()
        self.spec = spec
        self.slot = slot
        self._opener = opener
        self._cond = threading.Condition()
        self._stop = False
        self._playing = start_playing
        self._speed = float(speed)
        self._seek: int | None = None
        self._step = 0
        self._pacing_reset = True
        self.seq = 0

    # -- commands (any thread) -------------------------------------------------------------
    def request_stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def set_playing(self, playing: bool) -> None:
        with self._cond:
            self._playing = bool(playing)
            self._pacing_reset = True
            self._cond.notify_all()
        self.playing_changed.emit(bool(playing))

    def is_playing(self) -> bool:
        with self._cond:
            return self._playing

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        with self._cond:
            self._speed = float(speed)
            self._pacing_reset = True
            self._cond.notify_all()

    def seek(self, frame: int) -> None:
        with self._cond:
            self._seek = max(0, int(frame))
            self._step = 0
            self._cond.notify_all()

    def step(self, frames: int = 1) -> None:
        """Show the next (or previous) frame; pauses playback, as video players do."""
        with self._cond:
            self._step += int(frames)
            self._playing = False
            self._cond.notify_all()
        self.playing_changed.emit(False)

    # -- the loop (worker thread) ----------------------------------------------------------
    @Slot()
    def run(self) -> None:
        source: FrameSource | None = None
        try:
            try:
                source = self._opener(self.spec)
            except FerError as exc:
                self.failed.emit(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - an unknown backend error is still a message, not a crash
                self.failed.emit(f"Cannot open {self.spec.describe()}: {exc}")
                return
            info = {"kind": source.kind, "fps": source.fps, "width": getattr(source, "width", 0),
                    "height": getattr(source, "height", 0), "frame_count": getattr(source, "frame_count", 0)}
            if source.kind == "camera":
                clock = WallClock()
                info["t0"] = clock.t0
                self.opened.emit(info)
                self._camera_loop(source, clock)
            else:
                info["t0"] = time.perf_counter()
                self.opened.emit(info)
                self._video_loop(source)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - report, never take the app down
            self.failed.emit("Capture stopped on an unexpected error:\n" + traceback.format_exc(limit=3))
        finally:
            if source is not None:
                source.release()
            self.finished.emit()

    def _publish(self, image, t_sec: float, video_frame: int | None = None, video_ms: float | None = None) -> None:
        frame = CapturedFrame(image, self.seq, t_sec, video_frame, video_ms)
        self.seq += 1
        if video_frame is not None:
            # queued before the frame reaches the processor, so the GUI knows the position first
            self.position.emit(video_frame, float(video_ms or 0.0), t_sec)
        self.slot.put(frame)

    def _stopped(self) -> bool:
        with self._cond:
            return self._stop

    def _camera_loop(self, source: FrameSource, clock: WallClock) -> None:
        fails = 0
        last_ok = time.perf_counter()
        while not self._stopped():
            image = source.read()
            now = time.perf_counter()
            if image is None:
                fails += 1
                if fails >= CAMERA_LOST_AFTER_FAILS or now - last_ok > CAMERA_LOST_AFTER_S:
                    self.failed.emit(f"Camera {self.spec.camera_index} stopped delivering frames "
                                     f"(disconnected or taken by another program).")
                    return
                with self._cond:
                    self._cond.wait(0.02)
                continue
            fails, last_ok = 0, now
            self._publish(image, clock.now())

    def _video_loop(self, source) -> None:
        clock = MonotonicVideoClock(1.0 / source.fps)
        play_t0 = 0.0
        play_frame0 = 0
        at_end = False
        while True:
            with self._cond:
                while not self._stop and self._seek is None and self._step == 0 and not self._playing:
                    self._cond.wait()
                if self._stop:
                    return
                seek, step, playing, speed = self._seek, self._step, self._playing, self._speed
                self._seek, self._step = None, 0
                if self._pacing_reset:
                    self._pacing_reset = False
                    play_t0, play_frame0 = time.perf_counter(), source.position
            if seek is None and step == 0 and at_end:  # play pressed at the end: start over
                seek = 0
            if seek is not None or step < 0:
                target = seek if seek is not None else max(0, source.position - 1 + step)
                source.seek(target)
                at_end = False
                play_t0, play_frame0 = time.perf_counter(), source.position
            elif step == 0 and playing:
                due = play_t0 + (source.position - play_frame0) / (source.fps * speed)
                wait = due - time.perf_counter()
                if wait > 0:
                    with self._cond:
                        self._cond.wait(wait)
                    # a command arriving during the wait is handled first
                    with self._cond:
                        if self._stop or self._seek is not None or self._step or not self._playing \
                                or self._pacing_reset:
                            continue
                elif -wait > 2.0 / source.fps:  # fell behind (slow disk, busy CPU): do not burst to catch up
                    play_t0, play_frame0 = time.perf_counter(), source.position
            else:
                step = max(step, 1)
                for _ in range(step - 1):  # forward steps of more than one frame skip frames
                    if source.read() is None:
                        break
            index = source.position
            image = source.read()
            if image is None:
                at_end = True
                with self._cond:
                    self._playing = False
                self.playing_changed.emit(False)
                self.ended.emit()
                continue
            video_ms = source.frame_time_ms(index)
            self._publish(image, clock.time_for(index / source.fps), index, video_ms)
