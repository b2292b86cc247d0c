"""The processing loop: takes the newest captured frame, runs FramePipeline, posts the result.

Lives in its own QThread. The pipeline is the Qt-free FramePipeline; settings and
model changes reach it through its own lock (update_settings / set_model), so
this loop only ever calls ``process_all`` (one detection, then every model the pipeline holds).
"""

from __future__ import annotations

import threading
import traceback

from PySide6.QtCore import QObject, Signal, Slot

from app.frame_exchange import LatestFrameSlot, ProcessedFrame, ResultMailbox
from fer_models.pipeline import FramePipeline


class ProcessingWorker(QObject):
    results_ready = Signal()  # the mailbox went from empty to non-empty
    error = Signal(str)  # a frame failed; the loop goes on with the next one
    finished = Signal()

    def __init__(self, pipeline: FramePipeline, slot: LatestFrameSlot, mailbox: ResultMailbox):
        super().__init__()
        self.pipeline = pipeline
        self.slot = slot
        self.mailbox = mailbox
        self._stop = threading.Event()
        self._last_error = ""

    def request_stop(self) -> None:
        self._stop.set()
        self.slot.close()

    @Slot()
    def run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.slot.take(timeout=0.2)
                if frame is None:
                    continue
                try:
                    results = self.pipeline.process_all(frame.image, frame.t_sec)
                except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the session
                    message = f"Processing failed: {exc}"
                    if message != self._last_error:  # do not flood the GUI with the same message
                        self._last_error = message
                        self.error.emit(message + "\n" + traceback.format_exc(limit=2))
                    continue
                if self.mailbox.push(ProcessedFrame(frame, results[0], extra=results[1:])):
                    self.results_ready.emit()
        finally:
            self.finished.emit()
