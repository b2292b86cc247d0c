"""The live view paints overlays on the widget, never into the frame the model processed."""

from __future__ import annotations

import numpy as np

from app.widgets.prob_chart import ProbabilityChart
from app.widgets.video_view import VideoView
from fer_models.classes import FER7
from fer_models.detector import Face
from fer_models.pipeline import FrameResult


def test_overlay_is_drawn_on_a_copy(qtbot):
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(640, 480)
    view.show()
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    before = frame.copy()
    probs = np.full(7, 1 / 7, np.float32)
    face = Face((200.0, 120.0, 220.0, 240.0), 0.9, np.array([[260, 200], [360, 200], [310, 250], [270, 300],
                                                              [350, 300]], np.float32))
    result = FrameResult(face, probs, probs.astype(np.float64), 3, "Happy", {"total": 1.0})
    for overlay in (True, False):
        view.overlay = overlay
        view.show_frame(frame, result, FER7, "Sad", {"Happy": 0.5, "Sad": 0.5})
        image = view.grab().toImage()
        assert not image.isNull()
    assert np.array_equal(frame, before)
    # the painted picture does differ from the bare frame where the box is
    view.show_frame(frame, FrameResult(None, None, None, None, None, {}), FER7)
    plain = view.grab().toImage()
    view.show_frame(frame, result, FER7)
    boxed = view.grab().toImage()
    assert plain != boxed


def test_probability_chart_shows_calibrated_and_smoothed(qtbot):
    chart = ProbabilityChart(FER7)
    qtbot.addWidget(chart)
    cal = np.linspace(0.05, 0.3, 7)
    smo = cal[::-1]
    chart.set_values(cal, smo)
    shown_cal, shown_smo = chart.values()
    assert np.allclose(shown_cal, cal) and np.allclose(shown_smo, smo)
    chart.set_values(None, None)
    assert not chart.values()[0].any()
