"""The fer-demo main window: wiring between the Qt-free core and the widgets.

The window owns at most one SourceRunner (capture + processing threads) and one
LiveSession (logs, labels, scores). Workers never touch widgets; they post
frames and results, which this window logs and paints on the GUI thread. Every
user action that changes the pipeline goes through ``apply_settings``, every
manual label through ``set_label``, so hotkeys, sliders and clicks are logged
the same way.
"""

from __future__ import annotations

import argparse
import base64
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QColor, QFont, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QApplication, QCheckBox, QComboBox, QFileDialog, QLabel, QMainWindow, QMessageBox, QPushButton,
    QSpinBox, QSplitter, QTabWidget, QToolBar, QVBoxLayout, QWidget,
)

from app.app_config import AppConfig, default_config_path
from app.frame_exchange import ProcessedFrame
from app.hotkeys import HELP_TEXT, action_for_text, tuning_change
from app.live_session import LiveSession
from app.session import SessionRecorder, new_session_dir, user_data_dir
from app.source_runner import SourceRunner
from app.sources import RESOLUTIONS, SourceOpener, SourceSpec, open_source
from app.video_labels import VideoLabelTrack
from app.widgets.banner import MessageBanner
from app.widgets.colors import class_color
from app.widgets.label_bar import LabelBar
from app.widgets.model_panel import ModelPanel
from app.widgets.playback_bar import PlaybackBar
from app.widgets.prob_chart import ProbabilityChart
from app.widgets.score_panel import ScorePanel
from app.widgets.timeline import LabelTimeline
from app.widgets.tuning_panel import TuningPanel
from app.widgets.video_label_bar import VideoLabelBar
from app.widgets.video_view import VideoView
from fer_models.classes import FER7
from fer_models.detector import FaceDetector
from fer_models.errors import FerError
from fer_models.model_folder import FerModel, load_app_model
from fer_models.onnx_runtime import available_providers
from fer_models.pipeline import FramePipeline, PipelineSettings

APP_TITLE = "FER demo"
CONSENT_TEXT = (
    "Save video clips of this session to disk?\n\n"
    "The frames the camera or file delivers (faces included) will be written as video files into this "
    "session's folder:\n{folder}\n\n"
    "Only do this with the consent of everyone in view. Without clip saving the app never writes an image: "
    "the logs hold only labels, probabilities and timings. You will be asked again in every session."
)


def ask_clip_consent(parent: QWidget, folder: Path) -> bool:
    answer = QMessageBox.question(parent, "Save clips?", CONSENT_TEXT.format(folder=folder),
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class MainWindow(QMainWindow):
    def __init__(self, model_dir: Path | None = None, provider: str | None = None, config_path: Path | None = None,
                 sessions_root: Path | None = None, source_opener: SourceOpener = open_source,
                 detector: FaceDetector | None = None,
                 ask_consent: Callable[[QWidget, Path], bool] = ask_clip_consent):
        super().__init__()
        self.setWindowTitle(APP_TITLE)
        self.config_path = Path(config_path) if config_path else default_config_path()
        self.config = AppConfig.load(self.config_path)
        self.sessions_root = Path(sessions_root) if sessions_root else user_data_dir() / "sessions"
        self.source_opener = source_opener
        self.ask_consent = ask_consent
        self.settings: PipelineSettings = self.config.pipeline_settings()
        self.provider = provider or self.config.provider or "auto"
        self.model: FerModel | None = None
        self.pipeline: FramePipeline | None = None
        self.runner: SourceRunner | None = None
        self.session: LiveSession | None = None
        self.last_session: LiveSession | None = None
        self.track: VideoLabelTrack | None = None  # labels of the last video file opened
        self._track_video: Path | None = None
        self.video_info: dict[str, Any] = {}
        self.video_frame = 0
        self.video_ms = 0.0
        self.held_label = ""  # live mode, also kept while no session runs
        self._pending_labels: Path | None = None
        self._spec: SourceSpec | None = None
        self._save_timer = QTimer(self, singleShot=True, interval=400)
        self._save_timer.timeout.connect(self.save_config)

        self._build_ui()
        self.tuning.set_settings(self.settings)
        self.video_view.overlay = self.config.overlay
        self.overlay_action.setChecked(self.config.overlay)
        self.playback.set_speed(self.config.speed)
        self.resize(1400, 900)
        if self.config.window_geometry:
            try:
                self.restoreGeometry(QByteArray(base64.b64decode(self.config.window_geometry)))
            except (ValueError, TypeError):  # a damaged config must not stop the app
                pass

        self.detector = detector
        self.detector_problem = ""
        if self.detector is None:
            try:
                self.detector = FaceDetector(min_face=self.settings.min_face,
                                             score_threshold=self.settings.score_threshold)
            except FerError as exc:
                self.detector_problem = str(exc)
        self._load_initial_model(model_dir)
        self._update_enabled()

        self._stats_timer = QTimer(self, interval=500)
        self._stats_timer.timeout.connect(self._update_stats)
        self._stats_timer.start()
        self._score_timer = QTimer(self, interval=250)
        self._score_timer.timeout.connect(self._update_score)
        self._score_timer.start()

    # ================================================================== UI
    def _build_ui(self) -> None:
        classes = list(FER7)
        tb = QToolBar("Source")
        tb.setMovable(False)
        tb.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.addToolBar(tb)
        tb.addWidget(QLabel(" Camera "))
        self.camera_index = QSpinBox()
        self.camera_index.setRange(0, 99)
        self.camera_index.setValue(self.config.camera_index)
        self.camera_index.setToolTip("Camera index")
        self.camera_index.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # digits are label keys elsewhere
        tb.addWidget(self.camera_index)
        self.resolution = QComboBox()
        self.resolution.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for w, h in RESOLUTIONS:
            self.resolution.addItem(f"{w}×{h}", (w, h))
        i = self.resolution.findData((self.config.camera_width, self.config.camera_height))
        self.resolution.setCurrentIndex(max(0, i))
        tb.addWidget(self.resolution)
        self.start_camera_btn = QPushButton("Start camera")
        self.start_camera_btn.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.start_camera_btn.clicked.connect(self._start_camera_clicked)
        tb.addWidget(self.start_camera_btn)
        self.open_video_btn = QPushButton("Open video…")
        self.open_video_btn.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.open_video_btn.clicked.connect(self._open_video_clicked)
        tb.addWidget(self.open_video_btn)
        self.stop_btn = QPushButton("Stop && score")
        self.stop_btn.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stop_btn.setToolTip("End the session: final score, demo_results_summary.csv")
        self.stop_btn.clicked.connect(self.stop_source)
        tb.addWidget(self.stop_btn)
        tb.addSeparator()
        self.overlay_action = QAction("Overlay (o)", self, checkable=True)
        self.overlay_action.setToolTip("Probability and session-share overlay on the video")
        self.overlay_action.toggled.connect(self._overlay_toggled)
        tb.addAction(self.overlay_action)
        self.clips_box = QCheckBox("Save clips")
        self.clips_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.clips_box.setToolTip("Write the session's frames to disk (asks for consent every session)")
        self.clips_box.toggled.connect(self._clips_toggled)
        tb.addWidget(self.clips_box)
        tb.addSeparator()
        self.session_label = QLabel("No session")
        self.session_label.setStyleSheet("color: #9aa0a6; padding-left: 6px")
        self.session_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        tb.addWidget(self.session_label)

        # left: messages, video, playback, labels, timeline
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(6, 6, 6, 6)
        lv.setSpacing(5)
        self.banner = MessageBanner()
        lv.addWidget(self.banner)
        self.video_view = VideoView()
        lv.addWidget(self.video_view, 1)
        self.playback = PlaybackBar()
        self.playback.play_toggled.connect(self.toggle_play)
        self.playback.step_requested.connect(self.step)
        self.playback.speed_changed.connect(self.set_speed)
        self.playback.label_mode_changed.connect(self._label_mode_changed)
        self.playback.load_labels.connect(self._load_labels_clicked)
        self.playback.save_labels.connect(self._save_labels_clicked)
        self.playback.delete_segment.connect(self.delete_segment)
        lv.addWidget(self.playback)
        self.video_bar = VideoLabelBar(classes)
        self.video_bar.seek_requested.connect(self.seek)
        lv.addWidget(self.video_bar)
        self.label_bar = LabelBar(classes)
        self.label_bar.label_clicked.connect(lambda lab: self.set_label(lab, source="click"))
        lv.addWidget(self.label_bar)
        self.help_label = QLabel(HELP_TEXT)
        self.help_label.setStyleSheet("color: #9aa0a6")
        self.help_label.setWordWrap(True)
        lv.addWidget(self.help_label)
        self.timeline = LabelTimeline(classes)
        lv.addWidget(self.timeline)

        # right: current label, probabilities, score, tabs
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(6, 6, 6, 6)
        self.label_display = QLabel("—")
        f = QFont(self.font())
        f.setPointSizeF(20)
        f.setBold(True)
        self.label_display.setFont(f)
        self.label_display.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label_display.setMinimumHeight(52)
        rv.addWidget(self.label_display)
        self.chart = ProbabilityChart(classes)
        rv.addWidget(self.chart)
        self.score_panel = ScorePanel()
        rv.addWidget(self.score_panel)
        self.tabs = QTabWidget()
        self.tabs.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tabs.tabBar().setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tuning = TuningPanel()
        self.tuning.changed.connect(self.apply_settings)
        self.tabs.addTab(self.tuning, "Tuning")
        self.model_panel = ModelPanel(available_providers())
        self.model_panel.set_provider(self.provider)
        self.model_panel.open_requested.connect(self._open_model_clicked)
        self.model_panel.provider_changed.connect(self.set_provider)
        self.tabs.addTab(self.model_panel, "Model")
        rv.addWidget(self.tabs, 1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setSizes([980, 420])
        self.setCentralWidget(split)

        sb = self.statusBar()
        self.fps_label = QLabel("FPS —")
        self.stage_label = QLabel("detect — · crop — · infer — · smooth — · total — ms")
        self.drop_label = QLabel("dropped 0")
        for w in (self.fps_label, self.stage_label, self.drop_label):
            w.setStyleSheet("padding: 0 8px")
            sb.addPermanentWidget(w)
        self._show_video_controls(False)
        self.video_view.setFocus()

    def _show_video_controls(self, visible: bool) -> None:
        self.playback.setVisible(visible)
        self.video_bar.setVisible(visible)

    def _update_enabled(self) -> None:
        ready = self.pipeline is not None
        running = self.runner is not None
        self.start_camera_btn.setEnabled(ready)
        self.open_video_btn.setEnabled(ready)
        self.stop_btn.setEnabled(running)
        self.clips_box.setEnabled(self.session is not None)

    # ================================================================== messages
    def show_message(self, text: str, level: str = "info") -> None:
        self.banner.show_message(text, level)

    # ================================================================== model
    def _load_initial_model(self, model_dir: Path | None) -> None:
        from resources import default_model_dir

        if self.detector_problem:
            self.show_message(f"The face detector is not available: {self.detector_problem}", "error")
        candidates: list[tuple[Path, str]] = []
        if model_dir is not None:
            candidates.append((Path(model_dir), "given"))
        else:
            if self.config.model_dir and Path(self.config.model_dir).is_dir():
                candidates.append((Path(self.config.model_dir), "last used"))
            candidates.append((default_model_dir(), "bundled default"))
        for folder, what in candidates:
            if what == "bundled default" and not folder.is_dir():
                self.model_panel.show_model(None, "The bundled default model is missing.")
                self.show_message(f"The bundled default model is missing ({folder}). Open a model folder "
                                  "(Model tab → Open model folder…) to start.", "warning")
                return
            if self.load_model(folder, quiet=True):
                return

    def load_model(self, folder: Path, provider: str | None = None, quiet: bool = False) -> bool:
        """Load and swap in a model folder; a broken or mismatched one is refused and the old one stays."""
        provider = provider or self.provider
        try:
            model = load_app_model(folder, providers=provider)  # the same checks as fer-demo --replay
        except FerError as exc:
            kept = f" The previous model ({self.model.model_id}) stays loaded." if self.model else ""
            self.show_message(f"Model folder refused: {exc}.{kept}", "error")
            if self.model is None:
                self.model_panel.show_model(None, f"Refused: {exc}")
            return False
        self.model = model
        self.provider = provider
        if self.pipeline is None and self.detector is not None:
            self.pipeline = FramePipeline(model, self.detector, self.settings)
        elif self.pipeline is not None:
            self.pipeline.set_model(model)
        self.model_panel.show_model(model)
        self.model_panel.set_provider(provider)
        self.tuning.set_card_margin(model.card.crop_margin)
        self.config.model_dir = str(Path(folder).resolve())
        self.config.provider = provider
        self._schedule_save()
        if self.session is not None:
            self.session.recorder.set_model(model, self.session.now())
        if not quiet:
            self.show_message(f"Model {model.model_id} loaded ({model.provider}).", "info")
        self._update_enabled()
        return True

    def set_provider(self, provider: str) -> None:
        if self.model is None:
            self.provider = provider
            return
        old = self.provider
        if self.load_model(self.model.folder, provider):
            if self.session is not None:
                self.session.log_action("provider", self.model.provider)
        else:
            self.model_panel.set_provider(old)

    def _open_model_clicked(self) -> None:
        start = str(self.model.folder.parent) if self.model else ""
        folder = QFileDialog.getExistingDirectory(self, "Open model folder", start)
        if folder:
            self.load_model(Path(folder))

    # ================================================================== sources
    def _start_camera_clicked(self) -> None:
        w, h = self.resolution.currentData()
        self.start_camera(self.camera_index.value(), w, h)

    def _open_video_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open video", self.config.last_video_dir,
                                              "Videos (*.mp4 *.avi *.mkv *.mov *.webm *.m4v);;All files (*)")
        if path:
            self.start_video(Path(path))

    def start_camera(self, index: int, width: int = 640, height: int = 480) -> bool:
        self.config.camera_index, self.config.camera_width, self.config.camera_height = index, width, height
        self._schedule_save()
        return self._start(SourceSpec("camera", camera_index=index, width=width, height=height))

    def start_video(self, path: Path, labels: Path | None = None, play: bool = True) -> bool:
        self.config.last_video_dir = str(Path(path).parent)
        self._schedule_save()
        self._pending_labels = labels
        return self._start(SourceSpec("video", path=Path(path)), play=play)

    def _start(self, spec: SourceSpec, play: bool = True) -> bool:
        if self.pipeline is None:
            self.show_message("Load a model folder first." if self.detector is not None
                              else f"The face detector is not available: {self.detector_problem}", "error")
            return False
        self.stop_source()
        self.banner.clear()
        self._spec = spec
        self.pipeline.reset()
        self.runner = SourceRunner(spec, self.pipeline, self.source_opener, start_playing=play,
                                   speed=self.config.speed)
        self.runner.opened.connect(self._on_opened)
        self.runner.failed.connect(self._on_failed)
        self.runner.position.connect(self._on_position)
        self.runner.playing_changed.connect(self.playback.set_playing)
        self.runner.ended.connect(self._on_ended)
        self.runner.results_ready.connect(self._on_results)
        self.runner.processing_error.connect(lambda msg: self.show_message(msg, "warning"))
        self.video_view.clear(f"Opening {spec.describe()}…")
        self.video_view.setFocus()
        self.runner.start()
        self._update_enabled()
        return True

    def _on_opened(self, info: dict) -> None:
        if self.runner is None or self.model is None or self._spec is None:
            return
        spec = self._spec
        try:
            recorder = SessionRecorder(new_session_dir(self.sessions_root), self.model, self.settings,
                                       spec.describe())
        except (OSError, FerError) as exc:
            self.stop_source()
            self.show_message(f"Cannot create the session folder in {self.sessions_root}: {exc}", "error")
            return
        track = None
        if info["kind"] == "video":
            self.video_info = info
            frame_ms = 1000.0 / info["fps"]
            if self.track is not None and self._track_video == spec.path and self._pending_labels is None:
                track = self.track  # keep the labels when the same file is opened again
            else:
                track = VideoLabelTrack(frame_ms)
            self.track, self._track_video = track, spec.path
            self.video_bar.set_video(info["frame_count"], info["fps"],
                                     lambda: self.track.intervals if self.track else ())
            self.playback.set_playing(self.runner.capture.is_playing())
        label_mode = "video" if track is not None and self.playback.label_mode.isChecked() else "live"
        self.session = LiveSession(recorder, info["kind"], info["fps"], info["t0"], track, label_mode)
        self.session.log_action("source_info", f"{info['width']}x{info['height']} @ {info['fps']:.3g} fps"
                                + (f", {info['frame_count']} frames" if info.get("frame_count") else ""))
        self.session.log_action("label_mode", label_mode)
        self.session.log_action("overlay", "on" if self.video_view.overlay else "off")
        if track is not None and self._pending_labels is not None:
            self.load_labels_from(self._pending_labels)
            self._pending_labels = None
        if self.held_label and label_mode == "live":
            self.session.hold_label(self.held_label, "hotkey")
        self._show_video_controls(info["kind"] == "video")
        self.session_label.setText(f"Session: {recorder.folder}")
        self.score_panel.show_score(None)
        self.video_view.set_placeholder("Waiting for the first frame…")
        self._update_enabled()

    def _on_failed(self, message: str) -> None:
        if self.session is not None:
            self.session.log_action("source_lost", message.splitlines()[0])
            folder = self.session.folder
            self.stop_source()
            self.show_message(f"{message} The session was ended and its logs saved in {folder}.", "error")
        else:
            self.stop_source()
            self.show_message(message, "error")
        self.video_view.clear(message)

    def _on_ended(self) -> None:
        self.show_message("End of the video. Seek or step to label more, or press “Stop && score” to end the "
                          "session.".replace("&&", "&"), "info")

    def stop_source(self) -> dict | None:
        """Stop the threads (joined), log what was still in flight and end the session with its score."""
        final = None
        if self.runner is not None:
            runner, self.runner = self.runner, None
            leftovers = runner.stop()
            for sig in (runner.opened, runner.failed, runner.position, runner.playing_changed, runner.ended,
                        runner.results_ready, runner.processing_error):
                try:
                    sig.disconnect()
                except (RuntimeError, TypeError):
                    pass
            if self.session is not None and leftovers:
                self.session.ingest(leftovers)
        if self.session is not None:
            session, self.session = self.session, None
            self.clips_box.blockSignals(True)
            self.clips_box.setChecked(False)
            self.clips_box.blockSignals(False)
            problem = None
            try:
                final = session.close()
            except (OSError, FerError) as exc:
                problem = exc
                final = session.recorder.final_score  # score.json is written before the summary row
                saved = " The logs and score.json were saved." if final is not None else ""
                self.show_message(f"Could not finish the session logs: {exc}.{saved}", "error")
            self.last_session = session
            self.score_panel.show_score(final, final=True)
            self.session_label.setText(f"Last session: {session.folder}")
            if final is not None and problem is None:
                acc = final.get("accuracy")
                shown = "n/a (no scored segment)" if acc is None else f"{acc:.1%}"
                self.show_message(f"Session saved in {session.folder}. Accuracy {shown}; row appended to "
                                  f"{session.folder.parent / 'demo_results_summary.csv'}.", "info")
        self._show_video_controls(False)
        self._update_enabled()
        return final

    # ================================================================== frames
    def _on_results(self) -> None:
        if self.runner is None or self.session is None:
            return
        items = self.runner.mailbox.drain()
        last = self.session.ingest(items)
        if last is not None:
            self._display(last)

    def _display(self, item: ProcessedFrame) -> None:
        session = self.session
        assert session is not None
        r = item.result
        classes = session.classes
        if item.captured.image.size:
            self.video_view.show_frame(item.captured.image, r, classes, session.manual_label,
                                       session.share.shares(include_unstable=False))
        self.chart.set_values(r.probs, r.smoothed)
        if r.label:
            color = class_color(r.label, classes)
            fg = "#111" if color.lightness() > 140 else "#fff"
            conf = f" {r.confidence:.0%}" if r.confidence is not None else ""
            self.label_display.setText(f"{r.label}{conf}")
            self.label_display.setStyleSheet(f"background: {color.name()}; color: {fg}; border-radius: 8px")
        else:
            self.label_display.setText("(unstable)" if r.face is not None else "no face")
            self.label_display.setStyleSheet("background: #2b2e33; color: #c8ccd2; border-radius: 8px")
        self.timeline.set_points(session.timeline)

    def _update_stats(self) -> None:
        s = self.session
        if s is None:
            return
        med = s.stage_times.medians()
        self.fps_label.setText(f"FPS {s.rate.rate():.1f}")
        if med:
            self.stage_label.setText(" · ".join(f"{k} {med.get(k, 0):.1f}" for k in ("detect", "crop", "infer",
                                                                                       "smooth", "total"))
                                     + f" ms · latency {med.get('latency', 0):.0f} ms")
        if self.runner is not None:
            self.drop_label.setText(f"dropped {self.runner.dropped}")

    def _update_score(self) -> None:
        if self.session is not None:
            score = self.session.maybe_score()
            if score is not None:
                self.score_panel.show_score(score)

    # ================================================================== labels
    def set_label(self, label: str, source: str = "hotkey") -> None:
        """A manual label from a key or the label bar ("" = no label)."""
        s = self.session
        if s is not None and s.label_mode == "video" and s.track is not None:
            s.track.press(label, self.video_ms)
            s.log_action("video_label", f"{label or '(none)'}@{self.video_ms:.3f}ms")
            self._refresh_video_position()
            return
        self.held_label = label
        self.label_bar.set_current(label)
        self.video_view.set_manual_label(label)
        if s is not None:
            s.hold_label(label, source)

    def delete_segment(self) -> None:
        s = self.session
        if s is not None and s.track is not None:
            removed = s.track.delete_at(self.video_ms)
            if removed is not None:
                s.log_action("video_label_deleted", f"{removed.label}@{removed.start_ms:.3f}-{removed.end_ms:.3f}ms")
            self._refresh_video_position()

    def _label_mode_changed(self, video_mode: bool) -> None:
        s = self.session
        if s is None or s.track is None:
            return
        s.label_mode = "video" if video_mode else "live"
        s.track.release()
        s.log_action("label_mode", s.label_mode)
        if not video_mode:
            s.hold_label(self.held_label, "hotkey")

    def load_labels_from(self, path: Path) -> bool:
        if self.track is None:
            self.show_message("Open a video file first: labels files are tied to video time.", "warning")
            return False
        try:
            self.track.load(path)
        except FerError as exc:
            self.show_message(f"Labels file refused: {exc}", "error")
            return False
        self.config.last_labels_dir = str(Path(path).parent)
        self._schedule_save()
        if self.session is not None:
            self.session.log_action("labels_loaded", str(path))
        self._refresh_video_position()
        return True

    def save_labels_to(self, path: Path) -> bool:
        if self.track is None:
            return False
        try:
            self.track.save(path)
        except (OSError, FerError) as exc:
            self.show_message(f"Could not save the labels: {exc}", "error")
            return False
        self.config.last_labels_dir = str(Path(path).parent)
        self._schedule_save()
        if self.session is not None:
            self.session.log_action("labels_saved", str(path))
        self.show_message(f"Labels saved to {path}.", "info")
        return True

    def _load_labels_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load labels", self.config.last_labels_dir,
                                              "Labels (*.csv);;All files (*)")
        if path:
            self.load_labels_from(Path(path))

    def _save_labels_clicked(self) -> None:
        start = self.config.last_labels_dir or str(Path(self.config.last_video_dir or "."))
        path, _ = QFileDialog.getSaveFileName(self, "Save labels", str(Path(start) / "labels.csv"),
                                              "Labels (*.csv)")
        if path:
            self.save_labels_to(Path(path))

    # ================================================================== playback
    def _on_position(self, frame: int, ms: float, t: float) -> None:
        self.video_frame, self.video_ms = frame, ms
        s = self.session
        if s is not None and s.label_mode == "video" and s.track is not None:
            s.track.moved_to(ms)
        self._refresh_video_position()

    def _refresh_video_position(self) -> None:
        track = self.track
        label = track.label_at(self.video_ms) if track is not None else ""
        held = track.held if track is not None else ""
        info = self.video_info
        fps = info.get("fps", 30.0) or 30.0
        self.playback.set_position(self.video_frame, info.get("frame_count", 0), self.video_ms,
                                   info.get("frame_count", 0) * 1000.0 / fps, label)
        self.video_bar.set_position(self.video_frame, held)
        if self.session is not None and self.session.label_mode == "video":
            self.label_bar.set_current(label)  # the label under the playhead (= the held one while painting)
            self.video_view.set_manual_label(label)

    def _video_runner(self) -> SourceRunner | None:
        r = self.runner
        return r if r is not None and r.spec.kind == "video" else None

    def toggle_play(self) -> None:
        r = self._video_runner()
        if r is None:
            return
        playing = not r.capture.is_playing()
        r.capture.set_playing(playing)
        if self.session is not None:
            self.session.log_action("play" if playing else "pause", f"{self.video_ms:.3f}ms")

    def step(self, frames: int) -> None:
        r = self._video_runner()
        if r is None:
            return
        r.capture.step(frames)
        if self.session is not None:
            self.session.log_action("step", frames)

    def seek(self, frame: int) -> None:
        r = self._video_runner()
        if r is None:
            return
        r.capture.seek(frame)
        if self.session is not None:
            self.session.log_action("seek", frame)

    def set_speed(self, speed: float) -> None:
        self.config.speed = float(speed)
        self._schedule_save()
        self.playback.set_speed(speed)
        r = self._video_runner()
        if r is not None:
            r.capture.set_speed(speed)
            if self.session is not None:
                self.session.log_action("speed", speed)

    # ================================================================== tuning
    def apply_settings(self, changes: dict[str, Any]) -> bool:
        """Validate a settings change, hand it to the pipeline (next frame) and log it."""
        if not changes:
            return False
        try:
            if self.pipeline is not None:
                new = self.pipeline.update_settings(**changes)
            else:
                new = replace(self.settings, **changes).validated()
        except ValueError as exc:
            self.show_message(f"Setting refused: {exc}", "warning")
            self.tuning.set_settings(self.settings)
            return False
        self.settings = new
        self.tuning.set_settings(new)
        if self.session is not None:
            self.session.settings_changed(new)
        self.config.pipeline = new.to_dict()
        self._schedule_save()
        return True

    def tune(self, field: str, step: float) -> bool:
        return self.apply_settings(tuning_change(self.settings, field, step))

    def _overlay_toggled(self, on: bool) -> None:
        self.video_view.overlay = on
        self.video_view.update()
        self.config.overlay = on
        self._schedule_save()
        if self.session is not None:
            self.session.log_action("overlay", "on" if on else "off")

    # ================================================================== clips (privacy)
    def _clips_toggled(self, on: bool) -> None:
        s = self.session
        if not on:
            if s is not None:
                s.stop_clips()
            if self.runner is not None:
                self.runner.set_keep_images(False)
            return
        if s is None:
            self._set_clips_box(False)
            return
        if not s.clip_consent:
            granted = bool(self.ask_consent(self, s.folder))
            s.log_action("clip_consent", "granted" if granted else "declined")
            if not granted:
                self._set_clips_box(False)
                return
            s.clip_consent = True
        s.start_clips()
        if self.runner is not None:
            self.runner.set_keep_images(True)

    def _set_clips_box(self, on: bool) -> None:
        self.clips_box.blockSignals(True)
        self.clips_box.setChecked(on)
        self.clips_box.blockSignals(False)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        self.video_view.setFocus()  # keys reach the hotkeys, not a number box

    # ================================================================== keys
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt name
        if event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
            super().keyPressEvent(event)
            return
        action = action_for_text(event.text())
        if action is None:
            super().keyPressEvent(event)
            return
        if action.kind == "label":
            self.set_label(action.value, source="hotkey")
        elif action.kind == "tune":
            self.tune(*action.value)
        elif action.kind == "playback":
            {"play_pause": self.toggle_play, "step_back": lambda: self.step(-1),
             "step_forward": lambda: self.step(1)}[action.value]()
        elif action.kind == "toggle_overlay":
            self.overlay_action.toggle()
        elif action.kind == "quit":
            self.close()
        event.accept()

    # ================================================================== persistence & shutdown
    def _schedule_save(self) -> None:
        self._save_timer.start()

    def save_config(self) -> None:
        self.config.pipeline = self.settings.to_dict()
        try:
            self.config.save(self.config_path)
        except OSError as exc:
            self.statusBar().showMessage(f"Could not save settings: {exc}", 5000)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt name
        self.stop_source()
        self._stats_timer.stop()
        self._score_timer.stop()
        self._save_timer.stop()
        self.config.window_geometry = base64.b64encode(bytes(self.saveGeometry())).decode("ascii")
        self.save_config()
        super().closeEvent(event)


# ====================================================================== application
def apply_dark_palette(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor("#1d1f23"), QColor("#25282d"), QColor("#e8eaed")
    for role, color in ((QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
                        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
                        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, QColor("#30343a")),
                        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, base),
                        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor("#4e79a7")),
                        (QPalette.ColorRole.HighlightedText, QColor("#ffffff"))):
        pal.setColor(role, color)
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6b7078"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#6b7078"))
    app.setPalette(pal)


def run_gui(args: argparse.Namespace) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("fer-demo")
    apply_dark_palette(app)  # type: ignore[arg-type]
    win = MainWindow(model_dir=args.model, provider=None if args.provider == "auto" else args.provider,
                     sessions_root=getattr(args, "sessions_dir", None))
    win.show()
    if args.camera is not None:
        win.start_camera(args.camera, *win.resolution.currentData())
    elif args.video is not None:
        win.start_video(args.video, labels=args.labels)
    shot = getattr(args, "screenshot", None)
    if shot:
        def grab() -> None:
            win.grab().save(str(shot))
            win.close()
        QTimer.singleShot(int(getattr(args, "screenshot_delay", 4.0) * 1000), grab)
    return app.exec()
