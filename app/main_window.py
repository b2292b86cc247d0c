"""The fer-demo main window: widgets and wiring around app.controller.SessionController.

The controller owns the session lifecycle (model, pipeline, source threads, logs, labels, playback,
settings); this window owns only the view. Clicks, keys and sliders become controller calls, and the
window repaints from the controller's hooks, reading the state back from it (it keeps no copy). Workers
never touch widgets: their frames and results reach the controller on the GUI thread, which logs them
and hands the newest one here to paint. The window also persists the view (geometry, overlay, last
folders) and the controller's settings in the config file.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QColor, QFont, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QApplication, QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QPushButton,
    QSpinBox, QSplitter, QTabWidget, QToolBar, QVBoxLayout, QWidget,
)

from app.app_config import AppConfig, default_config_path
from app.controller import RunnerFactory, SessionController
from app.frame_exchange import ProcessedFrame
from app.hotkeys import HELP_TEXT, action_for_text
from app.live_session import LiveSession
from app.source_runner import SourceRunner
from app.sources import RESOLUTIONS, SourceOpener, SourceSpec, open_source
from app.widgets.banner import MessageBanner
from app.widgets.colors import class_color
from app.widgets.label_bar import LabelBar
from app.widgets.model_panel import ModelPanel
from app.widgets.playback_bar import PlaybackBar, RaterBox
from app.widgets.prob_chart import ProbabilityChart
from app.widgets.score_panel import ScorePanel
from app.widgets.timeline import LabelTimeline
from app.widgets.tuning_panel import TuningPanel
from app.widgets.video_label_bar import VideoLabelBar
from app.widgets.video_view import VideoView
from fer_models.classes import FER7
from fer_models.detector import FaceDetector
from fer_models.model_folder import FerModel
from fer_models.onnx_runtime import available_providers

APP_TITLE = "FER demo"
CONSENT_TEXT = (
    "Save video clips of this session to disk?\n\n"
    "The frames the camera or file delivers (faces included) will be written as video files, and the face "
    "crops the model sees as images, into this session's folder:\n{folder}\n\n"
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
                 ask_consent: Callable[[QWidget, Path], bool] = ask_clip_consent,
                 runner_factory: RunnerFactory | None = None):
        super().__init__()
        self.setWindowTitle(APP_TITLE)
        self.config_path = Path(config_path) if config_path else default_config_path()
        self.config = AppConfig.load(self.config_path)
        self.controller = c = SessionController(
            settings=self.config.pipeline_settings(), sessions_root=sessions_root,
            provider=provider or self.config.provider or "auto", detector=detector, source_opener=source_opener,
            runner_factory=runner_factory or SourceRunner, speed=self.config.speed,
            ask_consent=lambda folder: ask_consent(self, folder), lag_ms=self.config.lag_ms)
        self._save_timer = QTimer(self, singleShot=True, interval=400)
        self._save_timer.timeout.connect(self.save_config)

        self._build_ui()
        self.video_view.overlay = self.config.overlay
        self.overlay_action.setChecked(self.config.overlay)
        self.resize(1400, 900)
        if self.config.window_geometry:
            try:
                self.restoreGeometry(QByteArray(base64.b64decode(self.config.window_geometry)))
            except (ValueError, TypeError):  # a damaged config must not stop the app
                pass

        c.message.connect(self.banner.show_message)
        c.changed.connect(self._sync)
        c.model_changed.connect(self._model_changed)
        c.labels_changed.connect(self._refresh_labels)
        c.source_starting.connect(self._source_starting)
        c.source_failed.connect(self.video_view.clear)
        c.playing_changed.connect(self.playback.set_playing)
        c.session_started.connect(self._session_started)
        c.session_ended.connect(self._session_ended)
        c.frame.connect(self._display)
        c.second_model_changed.connect(self._second_model_changed)
        self._sync()
        c.open_initial_model(model_dir, self.config.model_dir)

        self._stats_timer = QTimer(self, interval=500)
        self._stats_timer.timeout.connect(self._update_stats)
        self._stats_timer.start()
        self._score_timer = QTimer(self, interval=250)
        self._score_timer.timeout.connect(self._update_score)
        self._score_timer.start()

    # ================================================================== UI
    def _build_ui(self) -> None:
        classes = list(FER7)
        c = self.controller
        menu = self.menuBar().addMenu("&Model")
        self.open_model_action = QAction("Open model folder…", self)
        self.open_model_action.triggered.connect(self._open_model_clicked)
        self.open_second_action = QAction("Open second model…", self)
        self.open_second_action.setToolTip("Run a second model on the same frames and faces; its label track is "
                                           "shown under the first")
        self.open_second_action.triggered.connect(self._open_second_model_clicked)
        self.remove_second_action = QAction("Remove second model", self)
        self.remove_second_action.triggered.connect(c.clear_second_model)
        for action in (self.open_model_action, self.open_second_action, self.remove_second_action):
            menu.addAction(action)
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
        self.stop_btn.clicked.connect(c.stop)
        tb.addWidget(self.stop_btn)
        tb.addSeparator()
        self.overlay_action = QAction("Overlay (o)", self, checkable=True)
        self.overlay_action.setToolTip("Probability and session-share overlay on the video")
        self.overlay_action.toggled.connect(self._overlay_toggled)
        tb.addAction(self.overlay_action)
        self.clips_box = QCheckBox("Save clips")
        self.clips_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.clips_box.setToolTip("Write the session's frames and the model's face crops to disk (asks for "
                                  "consent every session)")
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
        self.playback.play_toggled.connect(c.toggle_play)
        self.playback.step_requested.connect(c.step)
        self.playback.speed_changed.connect(c.set_speed)
        self.playback.label_mode_changed.connect(c.set_video_label_mode)
        self.playback.load_labels.connect(self._load_labels_clicked)
        self.playback.save_labels.connect(self._save_labels_clicked)
        self.playback.delete_segment.connect(c.delete_segment)
        lv.addWidget(self.playback)
        self.video_bar = VideoLabelBar(classes, "Rater A")
        self.video_bar.seek_requested.connect(c.seek)
        self.video_bar.setToolTip("Rater A's labels (the session's manual labels); click or drag to seek")
        lv.addWidget(self.video_bar)
        self.video_bar_b = VideoLabelBar(classes, "Rater B")
        self.video_bar_b.seek_requested.connect(c.seek)
        self.video_bar_b.setToolTip("Rater B's labels of the same video (video_labels_b.csv); click or drag to seek")
        lv.addWidget(self.video_bar_b)
        self.label_bar = LabelBar(classes)
        self.label_bar.label_clicked.connect(lambda lab: c.set_label(lab, source="click"))
        self.rater_box = RaterBox()
        self.rater_box.rater_changed.connect(c.set_rater)
        label_row = QHBoxLayout()
        label_row.setSpacing(6)
        label_row.addWidget(self.label_bar, 1)
        label_row.addWidget(self.rater_box)
        lv.addLayout(label_row)
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
        self.second_display = QLabel("")
        self.second_display.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.second_display.setWordWrap(True)  # a long model id must not widen the window
        self.second_display.setVisible(False)
        rv.addWidget(self.second_display)
        self.chart = ProbabilityChart(classes)
        rv.addWidget(self.chart)
        self.score_panel = ScorePanel()
        self.score_panel.set_lag(c.lag_ms)
        self.score_panel.lag_changed.connect(c.set_lag_ms)
        rv.addWidget(self.score_panel)
        self.tabs = QTabWidget()
        self.tabs.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tabs.tabBar().setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tuning = TuningPanel()
        self.tuning.changed.connect(c.apply_settings)
        self.tabs.addTab(self.tuning, "Tuning")
        self.model_panel = ModelPanel(available_providers())
        self.model_panel.open_requested.connect(self._open_model_clicked)
        self.model_panel.provider_changed.connect(c.set_provider)
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
        self.video_bar_b.setVisible(visible)
        self.rater_box.setVisible(visible)

    # ================================================================== controller hooks
    def _sync(self) -> None:
        """Show the controller's settings, speed, provider and running state; persist them soon."""
        c = self.controller
        self.tuning.set_settings(c.settings)
        self.playback.set_speed(c.speed)
        self.playback.label_mode.blockSignals(True)
        self.playback.label_mode.setChecked(c.video_label_mode)
        self.playback.label_mode.blockSignals(False)
        self.rater_box.set_rater(c.rater)
        self.video_bar.set_active(c.rater == "A")
        self.video_bar_b.set_active(c.rater == "B")
        self.video_view.manual_title = "Manual" if c.rater == "A" else "Rater B"
        self.score_panel.set_lag(c.lag_ms)
        self.remove_second_action.setEnabled(c.second_model is not None)
        self.open_second_action.setEnabled(c.model is not None)
        self.model_panel.set_provider(c.provider)
        self.start_camera_btn.setEnabled(c.pipeline is not None)
        self.open_video_btn.setEnabled(c.pipeline is not None)
        self.stop_btn.setEnabled(c.running)
        self.clips_box.setEnabled(c.session is not None)
        self._set_clips_box(c.clips_saving)
        self._save_timer.start()

    def _model_changed(self, model: FerModel | None, problem: str) -> None:
        self.model_panel.show_model(model, problem)
        if model is not None:
            self.tuning.set_card_margin(model.card.crop_margin)

    def _second_model_changed(self, model: FerModel | None) -> None:
        self.timeline.set_second(model.model_id if model is not None else "")
        self.second_display.setVisible(model is not None)
        self.second_display.setText(f"Model B ({model.model_id}): —" if model is not None else "")
        self.model_panel.show_second(model)

    def _source_starting(self, spec: SourceSpec) -> None:
        self.banner.clear()
        if spec.kind == "camera":
            self.config.camera_index, self.config.camera_width, self.config.camera_height = (
                spec.camera_index, spec.width or 640, spec.height or 480)
        elif spec.path is not None:
            self.config.last_video_dir = str(spec.path.parent)
        self.video_view.clear(f"Opening {spec.describe()}…")
        self.video_view.setFocus()

    def _session_started(self, session: LiveSession) -> None:
        c = self.controller
        c.log_action("overlay", "on" if self.video_view.overlay else "off")
        if session.track is not None:
            self.video_bar.set_video(c.video_info["frame_count"], c.video_info["fps"],
                                     lambda: c.track.intervals if c.track is not None else ())
            self.video_bar_b.set_video(c.video_info["frame_count"], c.video_info["fps"],
                                       lambda: c.track_b.intervals if c.track_b is not None else ())
        self._show_video_controls(session.kind == "video")
        self.session_label.setText(f"Session: {session.folder}")
        self.score_panel.show_score(None)
        self.video_view.set_placeholder("Waiting for the first frame…")

    def _session_ended(self, session: LiveSession, final: dict | None) -> None:
        self._set_clips_box(False)
        self.score_panel.show_score(final, final=True)
        self.session_label.setText(f"Last session: {session.folder}")
        self._show_video_controls(False)

    def _refresh_labels(self) -> None:
        """The manual label on the label bar and the video, and the playback position of a file."""
        c = self.controller
        label = c.shown_label
        self.label_bar.set_current(label)
        self.video_view.set_manual_label(label)
        if c.video_info:
            count, fps = c.video_info.get("frame_count", 0), c.video_info.get("fps", 30.0) or 30.0
            self.playback.set_position(c.video_frame, count, c.video_ms, count * 1000.0 / fps,
                                       c.label_under_playhead)
            self.video_bar.set_position(c.video_frame, c.track.held if c.track is not None else "")
            self.video_bar_b.set_position(c.video_frame, c.track_b.held if c.track_b is not None else "")

    # ================================================================== frames and figures
    def _display(self, item: ProcessedFrame) -> None:
        session = self.controller.session
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
        if item.extra and self.controller.second_model is not None:
            b = item.extra[0]
            conf = f" {b.confidence:.0%}" if b.label and b.confidence is not None else ""
            shown = f"{b.label}{conf}" if b.label else ("(unstable)" if b.face is not None else "no face")
            self.second_display.setText(f"Model B ({self.controller.second_model.model_id}): {shown}")
            color = class_color(b.label, classes) if b.label else None
            self.second_display.setStyleSheet(f"color: {color.name()}; font-weight: bold" if color
                                              else "color: #c8ccd2")

    def _update_stats(self) -> None:
        s, runner = self.controller.session, self.controller.runner
        if s is None:
            return
        med = s.stage_times.medians()
        self.fps_label.setText(f"FPS {s.rate.rate():.1f}")
        if med:
            self.stage_label.setText(" · ".join(f"{k} {med.get(k, 0):.1f}" for k in ("detect", "crop", "infer",
                                                                                       "smooth", "total"))
                                     + f" ms · latency {med.get('latency', 0):.0f} ms")
        if runner is not None:
            self.drop_label.setText(f"dropped {runner.dropped}")

    def _update_score(self) -> None:
        score = self.controller.maybe_score()
        if score is not None:
            self.score_panel.show_score(score)

    # ================================================================== dialogs
    def _open_model_clicked(self) -> None:
        model = self.controller.model
        folder = QFileDialog.getExistingDirectory(self, "Open model folder", str(model.folder.parent) if model else "")
        if folder:
            self.controller.load_model(Path(folder))

    def _open_second_model_clicked(self) -> None:
        model = self.controller.second_model or self.controller.model
        folder = QFileDialog.getExistingDirectory(self, "Open second model folder",
                                                  str(model.folder.parent) if model else "")
        if folder:
            self.controller.load_second_model(Path(folder))

    def _start_camera_clicked(self) -> None:
        w, h = self.resolution.currentData()
        self.controller.start_camera(self.camera_index.value(), w, h)

    def _open_video_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open video", self.config.last_video_dir,
                                              "Videos (*.mp4 *.avi *.mkv *.mov *.webm *.m4v);;All files (*)")
        if path:
            self.controller.start_video(Path(path))

    def _load_labels_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load labels", self.config.last_labels_dir,
                                              "Labels (*.csv);;All files (*)")
        if path and self.controller.load_labels(Path(path)):
            self.config.last_labels_dir = str(Path(path).parent)

    def _save_labels_clicked(self) -> None:
        start = self.config.last_labels_dir or str(Path(self.config.last_video_dir or "."))
        path, _ = QFileDialog.getSaveFileName(self, "Save labels", str(Path(start) / "labels.csv"),
                                              "Labels (*.csv)")
        if path and self.controller.save_labels(Path(path)):
            self.config.last_labels_dir = str(Path(path).parent)

    # ================================================================== overlay and clips (privacy)
    def _overlay_toggled(self, on: bool) -> None:
        self.video_view.overlay = on
        self.video_view.update()
        self.config.overlay = on
        self._save_timer.start()
        self.controller.log_action("overlay", "on" if on else "off")

    def _clips_toggled(self, on: bool) -> None:
        # always show the outcome: the consent dialog is modal, and a repaint meanwhile may have reset the box
        self._set_clips_box(self.controller.set_clips(on))

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
        c = self.controller
        if action.kind == "label":
            c.set_label(action.value, source="hotkey")
        elif action.kind == "tune":
            c.tune(*action.value)
        elif action.kind == "playback":
            {"play_pause": c.toggle_play, "step_back": lambda: c.step(-1),
             "step_forward": lambda: c.step(1)}[action.value]()
        elif action.kind == "toggle_overlay":
            self.overlay_action.toggle()
        elif action.kind == "toggle_rater":
            c.set_rater("B" if c.rater == "A" else "A")
        elif action.kind == "quit":
            self.close()
        event.accept()

    # ================================================================== persistence & shutdown
    def save_config(self) -> None:
        c, cfg = self.controller, self.config
        cfg.pipeline, cfg.provider, cfg.speed, cfg.lag_ms = c.settings.to_dict(), c.provider, c.speed, c.lag_ms
        if c.model is not None:
            cfg.model_dir = str(Path(c.model.folder).resolve())
        try:
            cfg.save(self.config_path)
        except OSError as exc:
            self.statusBar().showMessage(f"Could not save settings: {exc}", 5000)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt name
        self.controller.stop()
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
    models = list(args.model or [])
    win = MainWindow(model_dir=models[0] if models else None,
                     provider=None if args.provider == "auto" else args.provider,
                     sessions_root=getattr(args, "sessions_dir", None))
    win.show()
    if len(models) > 1:
        win.controller.load_second_model(models[1])
    if args.camera is not None:
        win.controller.start_camera(args.camera, *win.resolution.currentData())
    elif args.video is not None:
        win.controller.start_video(args.video, labels=args.labels, labels_b=getattr(args, "labels_b", None))
    shot = getattr(args, "screenshot", None)
    if shot:
        def grab() -> None:
            win.grab().save(str(shot))
            win.close()
        QTimer.singleShot(int(getattr(args, "screenshot_delay", 4.0) * 1000), grab)
    return app.exec()
