"""The session lifecycle without Qt: model, pipeline, source runner, session, labels, playback, tuning.

``SessionController`` owns every piece of state a session needs: the loaded model and the FramePipeline
around it, the tuning settings, the running source (a ``Runner``: the capture and processing threads),
the LiveSession and its SessionRecorder, the held manual label, the video label track and the playback
position. The window (app/main_window.py) owns only widgets: it maps clicks and keys to the methods
here, subscribes to the hooks, and reads the state back from this object when it paints; it keeps no
copy of any of it. Tests drive the controller directly, with a synchronous runner instead of threads
(tests/app/fakes.py).

Runner events (opened, position, results, ...) arrive through ``RunnerEvents`` callbacks on the thread
that owns the controller (the Qt runner re-emits its worker signals on the GUI thread). Events of a
runner that was stopped or replaced are ignored, so a late event can never reach a closed session.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from app.hotkeys import tuning_change
from app.live_session import LiveSession
from app.runner import Runner, RunnerEvents, RunnerFactory
from app.session import SessionRecorder, new_session_dir, user_data_dir
from app.sources import SourceOpener, SourceSpec, open_source
from app.video_labels import VideoLabelTrack
from fer_models.detector import FaceDetector
from fer_models.errors import FerError
from fer_models.model_folder import FerModel, load_app_model
from fer_models.pipeline import FramePipeline, PipelineSettings


class Hook:
    """A Qt-free signal: ``connect`` callbacks, ``emit`` calls them in the order they were connected."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.append(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


MAX_LAG_MS = 5000.0  # the lag box's range; a reaction lag is a few hundred ms



def qt_runner_factory(spec: SourceSpec, pipeline: FramePipeline, **kwargs: Any) -> Runner:
    from app.source_runner import SourceRunner  # Qt is imported only when real threads are asked for

    return SourceRunner(spec, pipeline, **kwargs)


class SessionController:
    """Model, pipeline, source, session, labels and playback of the app; see the module docstring.

    Hooks (connect callbacks; all are optional):

    - ``message(text, level)``: something to tell the user ("info", "warning", "error").
    - ``changed()``: model, provider, settings, speed, label mode or running state changed (also after a
      refused change, so a view can show the values still in force).
    - ``model_changed(model, problem)``: a model was loaded, or (model None) none is loaded and why.
    - ``labels_changed()``: the manual label, the label track or the video position changed.
    - ``source_starting(spec)``, ``source_failed(message)``.
    - ``session_started(session)``, ``session_ended(session, final_score)``.
    - ``frame(item)``: the newest processed frame, after every frame up to it was logged.
    - ``playing_changed(playing)``.
    - ``second_model_changed(model)``: a second model was loaded (or removed: None).
    """

    def __init__(self, settings: PipelineSettings | None = None, sessions_root: Path | None = None,
                 provider: str = "auto", detector: FaceDetector | None = None,
                 source_opener: SourceOpener = open_source, runner_factory: RunnerFactory | None = None,
                 speed: float = 1.0, ask_consent: Callable[[Path], bool] = lambda folder: False,
                 lag_ms: float = 0.0):
        self._settings = (settings or PipelineSettings()).validated()
        self.sessions_root = Path(sessions_root) if sessions_root else user_data_dir() / "sessions"
        self.provider = provider
        self.source_opener = source_opener
        self.runner_factory = runner_factory or qt_runner_factory
        self.ask_consent = ask_consent  # the user's answer to "save clips of this session?"
        self.speed = float(speed)
        self.video_label_mode = True  # files open in video-label mode (labels tied to video time)
        self.model: FerModel | None = None
        self.pipeline: FramePipeline | None = None
        self.runner: Runner | None = None
        self.session: LiveSession | None = None
        self.last_session: LiveSession | None = None
        self.track: VideoLabelTrack | None = None  # rater A's labels of the last video file opened
        self.track_b: VideoLabelTrack | None = None  # rater B's labels of the same video
        self.rater = "A"  # which rater the label keys, Load/Save labels and Delete segment work on
        self._track_video: Path | None = None
        self.lag_ms = float(lag_ms)  # annotator lag of the scores (DESIGN.md §5)
        self.second_model: FerModel | None = None  # run beside the model on the same frames and faces
        self.video_info: dict[str, Any] = {}  # the opened event of the last video file
        self.video_frame = 0
        self.video_ms = 0.0
        self.held_label = ""  # live mode; kept while no session runs
        self._pending_labels: Path | None = None
        self._pending_labels_b: Path | None = None
        self._run = 0  # which runner's events count; bumped at every start and stop

        self.message, self.changed, self.model_changed, self.labels_changed = Hook(), Hook(), Hook(), Hook()
        self.source_starting, self.source_failed, self.playing_changed = Hook(), Hook(), Hook()
        self.session_started, self.session_ended, self.frame = Hook(), Hook(), Hook()
        self.second_model_changed = Hook()

        self.detector = detector
        self.detector_problem = ""
        if self.detector is None:
            try:
                self.detector = FaceDetector(min_face=self._settings.min_face,
                                             score_threshold=self._settings.score_threshold)
            except FerError as exc:
                self.detector_problem = str(exc)

    # ================================================================== state
    @property
    def settings(self) -> PipelineSettings:
        return self._settings

    @property
    def running(self) -> bool:
        return self.runner is not None

    @property
    def playing(self) -> bool:
        r = self._video_runner()
        return r is not None and r.is_playing()

    @property
    def active_track(self) -> VideoLabelTrack | None:
        """The track of the rater being labelled (A, whose labels go into per_frame.csv, or B)."""
        return self.track_b if self.rater == "B" else self.track

    @property
    def shown_label(self) -> str:
        """The manual label to show: the held one, or in video-label mode the one under the playhead."""
        if self._video_labeling():
            assert self.active_track is not None
            return self.active_track.label_at(self.video_ms)
        return self.held_label

    @property
    def label_under_playhead(self) -> str:
        track = self.active_track
        return track.label_at(self.video_ms) if track is not None else ""

    def log_action(self, kind: str, value: object = "") -> None:
        """Record a user action in the running session's actions.csv (nothing without a session)."""
        if self.session is not None:
            self.session.log_action(kind, value)

    def _video_labeling(self) -> bool:
        s = self.session
        return s is not None and s.label_mode == "video" and s.track is not None

    def _video_runner(self) -> Runner | None:
        r = self.runner
        return r if r is not None and r.spec.kind == "video" else None

    # ================================================================== model
    def open_initial_model(self, given: Path | None = None, last_used: str = "") -> bool:
        """At start: the given folder, else the last one used, else the bundled default."""
        from resources import default_model_dir

        if self.detector_problem:
            self.message.emit(f"The face detector is not available: {self.detector_problem}", "error")
        if given is not None:
            return self.load_model(Path(given), quiet=True)
        if last_used and Path(last_used).is_dir() and self.load_model(Path(last_used), quiet=True):
            return True
        default = default_model_dir()
        if not default.is_dir():
            self.model_changed.emit(None, "The bundled default model is missing.")
            self.message.emit(f"The bundled default model is missing ({default}). Open a model folder "
                              "(Model tab → Open model folder…) to start.", "warning")
            return False
        return self.load_model(default, quiet=True)

    def load_model(self, folder: Path, provider: str | None = None, quiet: bool = False) -> bool:
        """Load and swap in a model folder; a broken or mismatched one is refused and the old one stays."""
        provider = provider or self.provider
        try:
            model = load_app_model(folder, providers=provider)  # the same checks as fer-demo --replay
        except FerError as exc:
            kept = f" The previous model ({self.model.model_id}) stays loaded." if self.model else ""
            self.message.emit(f"Model folder refused: {exc}.{kept}", "error")
            if self.model is None:
                self.model_changed.emit(None, f"Refused: {exc}")
            return False
        self.model, self.provider = model, provider
        if self.pipeline is None and self.detector is not None:
            self.pipeline = FramePipeline(model, self.detector, self._settings,
                                          extra_models=[self.second_model] if self.second_model else [])
        elif self.pipeline is not None:
            self.pipeline.set_model(model)
        if self.session is not None:
            self.session.recorder.set_model(model, self.session.now())
        self.model_changed.emit(model, "")
        if not quiet:
            self.message.emit(f"Model {model.model_id} loaded ({model.provider}).", "info")
        self.changed.emit()
        return True

    def load_second_model(self, folder: Path) -> bool:
        """Run a second model beside the first on every frame (one detection, its own crop); a bad folder
        is refused. Its label track is shown under the first; a session started with it also logs its
        predictions (model_b/) and compares the two at the end (comparison.json)."""
        if self.model is None:
            self.message.emit("Load a model folder first; the second model runs beside it.", "error")
            return False
        try:
            model = load_app_model(folder, providers=self.provider)
        except FerError as exc:
            self.message.emit(f"Second model refused: {exc}.", "error")
            return False
        self.second_model = model
        if self.pipeline is not None:
            self.pipeline.set_extra_models([model])
        if self.session is not None:
            try:
                self.session.start_second(model, self._settings)
            except (OSError, FerError) as exc:
                self.message.emit(f"Cannot log the second model in {self.session.folder}: {exc}", "error")
        self.second_model_changed.emit(model)
        self.message.emit(f"Second model {model.model_id} runs beside {self.model.model_id} on the same frames and "
                          "faces.", "info")
        self.changed.emit()
        return True

    def clear_second_model(self) -> None:
        if self.second_model is None:
            return
        self.second_model = None
        if self.pipeline is not None:
            self.pipeline.set_extra_models([])
        if self.session is not None:
            try:
                self.session.stop_second()
            except (OSError, FerError) as exc:
                self.message.emit(f"Could not finish the second model's log: {exc}", "error")
        self.second_model_changed.emit(None)
        self.changed.emit()

    def set_provider(self, provider: str) -> bool:
        """Reload the model on another onnxruntime provider; on failure the old one stays."""
        if self.model is None:
            self.provider = provider
            self.changed.emit()
            return True
        if self.load_model(self.model.folder, provider):
            self.log_action("provider", self.model.provider)
            return True
        self.changed.emit()
        return False

    # ================================================================== sources
    def start_camera(self, index: int, width: int = 640, height: int = 480) -> bool:
        return self._start(SourceSpec("camera", camera_index=index, width=width, height=height))

    def start_video(self, path: Path, labels: Path | None = None, play: bool = True,
                    labels_b: Path | None = None) -> bool:
        """Open a video file; ``labels`` (start_ms,end_ms,label) are loaded into rater A's track once it opened,
        ``labels_b`` into rater B's."""
        self._pending_labels = Path(labels) if labels is not None else None
        self._pending_labels_b = Path(labels_b) if labels_b is not None else None
        return self._start(SourceSpec("video", path=Path(path)), play=play)

    def _start(self, spec: SourceSpec, play: bool = True) -> bool:
        if self.pipeline is None:
            self.message.emit("Load a model folder first." if self.detector is not None
                              else f"The face detector is not available: {self.detector_problem}", "error")
            return False
        self.stop()
        self.pipeline.reset()
        self._run += 1
        self.source_starting.emit(spec)
        self.runner = self.runner_factory(spec, self.pipeline, opener=self.source_opener, start_playing=play,
                                          speed=self.speed, events=self._events(self._run))
        self.runner.start()
        self.changed.emit()
        return True

    def _events(self, run: int) -> RunnerEvents:
        def current(handler: Callable[..., None]) -> Callable[..., None]:
            def call(*args: Any) -> None:
                if run == self._run and self.runner is not None:
                    handler(*args)
            return call

        return RunnerEvents(opened=current(self._opened), failed=current(self._failed),
                            position=current(self._position), playing_changed=current(self.playing_changed.emit),
                            ended=current(self._ended), results_ready=current(self._results),
                            processing_error=current(lambda msg: self.message.emit(msg, "warning")))

    def _opened(self, info: dict) -> None:
        assert self.runner is not None and self.model is not None  # a runner starts only with a pipeline
        spec = self.runner.spec
        try:
            recorder = SessionRecorder(new_session_dir(self.sessions_root), self.model, self._settings,
                                       spec.describe(), lag_ms=self.lag_ms)
        except (OSError, FerError) as exc:
            self.stop()
            self.message.emit(f"Cannot create the session folder in {self.sessions_root}: {exc}", "error")
            return
        track = track_b = None
        if info["kind"] == "video":
            self.video_info = info
            if self.track is not None and self._track_video == spec.path and self._pending_labels is None \
                    and self._pending_labels_b is None:
                track, track_b = self.track, self.track_b  # keep the labels when the same file is opened again
            else:
                track = VideoLabelTrack(1000.0 / info["fps"])
            track_b = track_b or VideoLabelTrack(1000.0 / info["fps"])
            self.track, self.track_b, self._track_video = track, track_b, spec.path
        label_mode = "video" if track is not None and self.video_label_mode else "live"
        session = self.session = LiveSession(recorder, info["kind"], info["fps"], info["t0"], track, label_mode,
                                             track_b)
        session.paint_track = self.active_track if track is not None else None
        session.log_action("source_info", f"{info['width']}x{info['height']} @ {info['fps']:.3g} fps"
                           + (f", {info['frame_count']} frames" if info.get("frame_count") else ""))
        session.log_action("label_mode", label_mode)
        if track is not None:
            session.log_action("rater", self.rater)
        if self.lag_ms:
            session.log_action("lag_ms", self.lag_ms)
        if self.second_model is not None:
            try:
                session.start_second(self.second_model, self._settings)
            except (OSError, FerError) as exc:
                self.message.emit(f"Cannot log the second model in {session.folder}: {exc}", "error")
        self.session_started.emit(session)
        if track is not None and self._pending_labels is not None:
            self.load_labels(self._pending_labels, rater="A")
        if track is not None and self._pending_labels_b is not None:
            self.load_labels(self._pending_labels_b, rater="B")
        self._pending_labels = self._pending_labels_b = None
        if self.held_label and label_mode == "live":
            session.hold_label(self.held_label, "hotkey")
        if track is not None:
            self.playing_changed.emit(self.runner.is_playing())
        self.labels_changed.emit()
        self.changed.emit()

    def _failed(self, message: str) -> None:
        if self.session is not None:
            self.session.log_action("source_lost", message.splitlines()[0])
            folder = self.session.folder
            self.stop()
            self.message.emit(f"{message} The session was ended and its logs saved in {folder}.", "error")
        else:
            self.stop()
            self.message.emit(message, "error")
        self.source_failed.emit(message)

    def _ended(self) -> None:
        self.message.emit("End of the video. Seek or step to label more, or press “Stop & score” to end the "
                          "session.", "info")

    def _results(self) -> None:
        if self.runner is None or self.session is None:
            return
        session = self.session
        last = session.ingest(self.runner.drain())
        if session.clip_problem:  # a clip or crop write failed: saving stopped, the session goes on
            problem, session.clip_problem = session.clip_problem, ""
            self._keep_pixels(False)
            self.message.emit(problem, "error")
            self.changed.emit()
        if last is not None:
            self.frame.emit(last)

    def stop(self) -> dict | None:
        """Stop the source (threads joined), log what was still in flight, end the session with its score."""
        final = None
        if self.pipeline is not None:
            self.pipeline.set_keep_crops(False)  # the next session asks for consent again
        if self.runner is not None:
            runner, self.runner = self.runner, None
            self._run += 1  # from now on the old runner's events are ignored
            leftovers = runner.stop()
            if self.session is not None and leftovers:
                self.session.ingest(leftovers)
        if self.session is not None:
            session, self.session = self.session, None
            problem = None
            try:
                final = session.close()
            except (OSError, FerError) as exc:
                problem = exc
                final = session.recorder.final_score  # score.json is written before the summary row
                saved = " The logs and score.json were saved." if final is not None else ""
                self.message.emit(f"Could not finish the session logs: {exc}.{saved}", "error")
            self.last_session = session
            if final is not None and problem is None:
                acc = final.get("accuracy")
                shown = "n/a (no scored segment)" if acc is None else f"{acc:.1%}"
                lag = f" at an annotator lag of {self.lag_ms:g} ms" if session.recorder.lag_ms else ""
                second = ""
                if session.second_score is not None:
                    acc_b = session.second_score.get("accuracy")
                    second = (f" Second model: accuracy {'n/a' if acc_b is None else f'{acc_b:.1%}'}"
                              + ("; comparison.json saved." if session.comparison_json else "."))
                self.message.emit(f"Session saved in {session.folder}. Accuracy {shown}{lag}; row appended to "
                                  f"{session.folder.parent / 'demo_results_summary.csv'}.{second}", "info")
            if session.comparison_problem:
                self.message.emit(f"No comparison.json: {session.comparison_problem}", "warning")
            self.session_ended.emit(session, final)
        self.changed.emit()
        return final

    def maybe_score(self) -> dict | None:
        """The running session's live score when it is due (about once a second), else None."""
        return self.session.maybe_score() if self.session is not None else None

    # ================================================================== labels
    def set_label(self, label: str, source: str = "hotkey") -> None:
        """A manual label ("" = none). Video-label mode: it paints the track from the frame on screen."""
        s = self.session
        if self._video_labeling():
            track = self.active_track
            assert s is not None and track is not None
            track.press(label, self.video_ms)
            s.log_action("video_label" if self.rater == "A" else "video_label_b",
                         f"{label or '(none)'}@{self.video_ms:.3f}ms")
        else:
            self.held_label = label
            if s is not None:
                s.hold_label(label, source)
        self.labels_changed.emit()

    def delete_segment(self) -> None:
        """Remove the label segment under the playhead."""
        s, track = self.session, self.active_track
        if s is not None and s.track is not None and track is not None:
            removed = track.delete_at(self.video_ms)
            if removed is not None:
                s.log_action("video_label_deleted" if self.rater == "A" else "video_label_b_deleted",
                             f"{removed.label}@{removed.start_ms:.3f}-{removed.end_ms:.3f}ms")
            self.labels_changed.emit()

    def set_rater(self, rater: str) -> None:
        """Label rater A (the session's manual labels, in per_frame.csv) or rater B (a second track of the
        same video, saved as video_labels_b.csv); the keys, Load/Save labels and Delete segment follow."""
        if rater not in ("A", "B"):
            raise ValueError(f"rater must be 'A' or 'B', got {rater!r}")
        if rater == self.rater:
            return
        old = self.active_track
        if old is not None:
            old.release()  # the other rater's painting ends here
        self.rater = rater
        s = self.session
        if s is not None and s.track is not None:
            s.paint_track = self.active_track
            s.log_action("rater", rater)
        self.labels_changed.emit()
        self.changed.emit()

    def set_video_label_mode(self, on: bool) -> None:
        """Labels tied to video time (on) or held like a live camera's (off); applies to the running file too."""
        self.video_label_mode = bool(on)
        s = self.session
        if s is not None and s.track is not None:
            s.label_mode = "video" if on else "live"
            s.track.release()
            if s.track_b is not None:
                s.track_b.release()
            s.log_action("label_mode", s.label_mode)
            if not on:
                s.hold_label(self.held_label, "hotkey")
            self.labels_changed.emit()
        self.changed.emit()

    def load_labels(self, path: Path, rater: str | None = None) -> bool:
        """Replace the label track of ``rater`` (default: the rater being labelled) with a
        start_ms,end_ms,label file; a bad file is refused and the track stays as it was."""
        rater = rater or self.rater
        track = self.track_b if rater == "B" else self.track
        if track is None:
            self.message.emit("Open a video file first: labels files are tied to video time.", "warning")
            return False
        try:
            track.load(path)
        except FerError as exc:
            self.message.emit(f"Labels file refused: {exc}", "error")
            return False
        self.log_action("labels_loaded" if rater == "A" else "labels_loaded_b", str(path))
        self.labels_changed.emit()
        return True

    def save_labels(self, path: Path) -> bool:
        """Save the active rater's track as a start_ms,end_ms,label file."""
        track = self.active_track
        if track is None:
            return False
        try:
            track.save(path)
        except (OSError, FerError) as exc:
            self.message.emit(f"Could not save the labels: {exc}", "error")
            return False
        self.log_action("labels_saved" if self.rater == "A" else "labels_saved_b", str(path))
        self.message.emit(f"Labels saved to {path}.", "info")
        return True

    # ================================================================== playback (video files)
    def _position(self, frame: int, ms: float, t: float) -> None:
        self.video_frame, self.video_ms = frame, ms
        if self._video_labeling():
            assert self.active_track is not None
            self.active_track.moved_to(ms)
        self.labels_changed.emit()

    def toggle_play(self) -> None:
        r = self._video_runner()
        if r is None:
            return
        playing = not r.is_playing()
        r.set_playing(playing)
        self.log_action("play" if playing else "pause", f"{self.video_ms:.3f}ms")

    def step(self, frames: int) -> None:
        """Show the next (positive) or previous (negative) frames; pauses playback."""
        r = self._video_runner()
        if r is not None:
            r.step(frames)
            self.log_action("step", frames)

    def seek(self, frame: int) -> None:
        r = self._video_runner()
        if r is not None:
            r.seek(frame)
            self.log_action("seek", frame)

    def set_speed(self, speed: float) -> None:
        self.speed = float(speed)
        r = self._video_runner()
        if r is not None:
            r.set_speed(self.speed)
            self.log_action("speed", self.speed)
        self.changed.emit()

    # ================================================================== tuning
    def apply_settings(self, changes: dict[str, Any]) -> bool:
        """Clamp and validate a settings change, hand it to the pipeline (next frame) and log it.

        The vote's min count is kept within the window here, by ``PipelineSettings.with_changes``, for
        every source of changes (sliders, keys). A refused change leaves the settings as they were.
        """
        if not changes:
            return False
        try:
            new = self._settings.with_changes(**changes)
            if self.pipeline is not None:
                self.pipeline.update_settings(**new.changes_from(self.pipeline.settings))
        except ValueError as exc:
            self.message.emit(f"Setting refused: {exc}", "warning")
            self.changed.emit()
            return False
        self._settings = new
        if self.session is not None:
            self.session.settings_changed(new)
        self.changed.emit()
        return True

    def set_lag_ms(self, lag_ms: float) -> bool:
        """The annotator lag (ms) the live and final scores use: manual labels move earlier by it
        (DESIGN.md §5). Recorded in actions.csv, score.json and the summary row's lag_ms."""
        lag = float(lag_ms)
        if not math.isfinite(lag) or abs(lag) > MAX_LAG_MS:
            self.message.emit(f"Lag refused: {lag_ms!r} ms is not a number within ±{MAX_LAG_MS:g} ms.", "warning")
            self.changed.emit()
            return False
        self.lag_ms = lag
        if self.session is not None:
            self.session.set_lag(lag)
        self.changed.emit()
        return True

    def tune(self, field: str, step: float) -> bool:
        """One tuning key: ``field`` moved by ``step`` within the key's range (app.hotkeys)."""
        return self.apply_settings(tuning_change(self._settings, field, step))

    # ================================================================== clips (privacy)
    @property
    def clips_saving(self) -> bool:
        """Whether the running session writes clips and face crops now."""
        return self.session is not None and self.session.clips is not None

    def _keep_pixels(self, keep: bool) -> None:
        """Frames for the clip (runner) and the model's crops (pipeline) kept with each result, or not."""
        if self.runner is not None:
            self.runner.set_keep_images(keep)
        if self.pipeline is not None:
            self.pipeline.set_keep_crops(keep)

    def set_clips(self, on: bool) -> bool:
        """Start or stop saving the session's frames (clips/) and the model's face crops (crops/);
        starting asks for consent once per session.

        Returns whether clips are being saved now (False without a session or without consent).
        """
        s = self.session
        if not on:
            if s is not None:
                s.stop_clips()
            self._keep_pixels(False)
            return False
        if s is None:
            return False
        if not s.clip_consent:
            granted = bool(self.ask_consent(s.folder))
            s.log_action("clip_consent", "granted" if granted else "declined")
            if not granted:
                return False
            s.clip_consent = True
        try:
            s.start_clips()
        except (OSError, FerError) as exc:
            self.message.emit(f"Cannot save clips in {s.folder}: {exc}", "error")
            return False
        self._keep_pixels(True)
        return True
