"""Owner of the two worker threads of one running source (capture and processing).

One object starts both threads and joins both on ``stop``; nothing else starts
or stops them (the Spyder worker pattern). Worker signals are re-emitted from
here, on the GUI thread, to the controller's RunnerEvents (and to anyone who
connects to the signals), and everything that arrives after ``stop`` is
ignored, so a late queued signal can never reach a closed session. The
playback commands are the capture worker's (plain values behind a lock).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread, Signal

from app.capture_worker import CaptureWorker
from app.frame_exchange import LatestFrameSlot, ProcessedFrame, ResultMailbox
from app.processing_worker import ProcessingWorker
from app.runner import RunnerEvents
from app.sources import SourceOpener, SourceSpec, open_source
from fer_models.pipeline import FramePipeline

JOIN_TIMEOUT_MS = 5000


class SourceRunner(QObject):
    opened = Signal(dict)
    failed = Signal(str)
    position = Signal(int, float, float)
    playing_changed = Signal(bool)
    ended = Signal()
    results_ready = Signal()
    processing_error = Signal(str)

    def __init__(self, spec: SourceSpec, pipeline: FramePipeline, opener: SourceOpener = open_source,
                 start_playing: bool = True, speed: float = 1.0, keep_images: bool = False,
                 events: RunnerEvents | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.spec = spec
        self.slot = LatestFrameSlot()
        self.mailbox = ResultMailbox(keep_images=keep_images)
        self.capture = CaptureWorker(spec, self.slot, opener, start_playing, speed)
        self.processor = ProcessingWorker(pipeline, self.slot, self.mailbox)
        self._capture_thread = QThread()
        self._capture_thread.setObjectName("fer-capture")
        self._process_thread = QThread()
        self._process_thread.setObjectName("fer-process")
        self.capture.moveToThread(self._capture_thread)
        self.processor.moveToThread(self._process_thread)
        self._capture_thread.started.connect(self.capture.run)
        self._process_thread.started.connect(self.processor.run)
        self.capture.finished.connect(self._capture_thread.quit)
        self.processor.finished.connect(self._process_thread.quit)
        self.running = False
        self._stopped = False
        # forward worker signals (queued: they are emitted in worker threads)
        self.capture.opened.connect(self._fwd_opened)
        self.capture.failed.connect(self._fwd_failed)
        self.capture.position.connect(self._fwd_position)
        self.capture.playing_changed.connect(self._fwd_playing)
        self.capture.ended.connect(self._fwd_ended)
        self.processor.results_ready.connect(self._fwd_results)
        self.processor.error.connect(self._fwd_error)
        if events is not None:
            for signal, callback in ((self.opened, events.opened), (self.failed, events.failed),
                                     (self.position, events.position), (self.playing_changed, events.playing_changed),
                                     (self.ended, events.ended), (self.results_ready, events.results_ready),
                                     (self.processing_error, events.processing_error)):
                signal.connect(callback)
        if not start_playing and spec.kind == "video":
            self.capture.seek(0)  # show the first frame, paused

    # forwarding slots drop anything that arrives after stop()
    def _fwd_opened(self, info: dict) -> None:
        if not self._stopped:
            self.opened.emit(info)

    def _fwd_failed(self, msg: str) -> None:
        if not self._stopped:
            self.failed.emit(msg)

    def _fwd_position(self, frame: int, ms: float, t: float) -> None:
        if not self._stopped:
            self.position.emit(frame, ms, t)

    def _fwd_playing(self, playing: bool) -> None:
        if not self._stopped:
            self.playing_changed.emit(playing)

    def _fwd_ended(self) -> None:
        if not self._stopped:
            self.ended.emit()

    def _fwd_results(self) -> None:
        if not self._stopped:
            self.results_ready.emit()

    def _fwd_error(self, msg: str) -> None:
        if not self._stopped:
            self.processing_error.emit(msg)

    @property
    def dropped(self) -> int:
        return self.slot.dropped

    def set_keep_images(self, keep: bool) -> None:
        self.mailbox.keep_images = keep

    def drain(self) -> list[ProcessedFrame]:
        return self.mailbox.drain()

    # playback commands (video files), callable from the GUI thread
    def is_playing(self) -> bool:
        return self.capture.is_playing()

    def set_playing(self, playing: bool) -> None:
        self.capture.set_playing(playing)

    def step(self, frames: int) -> None:
        self.capture.step(frames)

    def seek(self, frame: int) -> None:
        self.capture.seek(frame)

    def set_speed(self, speed: float) -> None:
        self.capture.set_speed(speed)

    def start(self) -> None:
        if self.running or self._stopped:
            return
        self.running = True
        self._process_thread.start()
        self._capture_thread.start()

    def stop(self) -> list[ProcessedFrame]:
        """Stop and join both threads; returns the results still waiting in the mailbox."""
        if self._stopped:
            return []
        self._stopped = True
        self.capture.request_stop()
        self.processor.request_stop()
        for thread in (self._capture_thread, self._process_thread):
            if thread.isRunning():
                thread.quit()
                if not thread.wait(JOIN_TIMEOUT_MS):  # a driver stuck in read(): do not hang the GUI forever
                    thread.terminate()
                    thread.wait(1000)
        self.running = False
        return self.mailbox.drain()

    def is_alive(self) -> bool:
        return self._capture_thread.isRunning() or self._process_thread.isRunning()
