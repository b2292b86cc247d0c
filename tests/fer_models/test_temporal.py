from __future__ import annotations

import numpy as np
import pytest

from fer_models.temporal import Smoother


def onehot(k, n=3, hi=0.8):
    p = np.full(n, (1 - hi) / (n - 1))
    p[k] = hi
    return p


def test_defaults_are_the_earlier_demo_values():
    s = Smoother()
    assert (s.alpha, s.delta, s.window, s.min_count) == (0.70, 0.08, 15, 8)


def test_ema_alpha_is_weight_of_the_past():
    s = Smoother(alpha=0.7, delta=0.0, window=1, min_count=1)
    s.update([1.0, 0.0, 0.0])
    s.update([0.0, 1.0, 0.0])
    assert s.smoothed == pytest.approx([0.7, 0.3, 0.0])
    s0 = Smoother(alpha=0.0, delta=0.0, window=1, min_count=1)
    s0.update([1.0, 0.0, 0.0])
    assert s0.update([0.0, 1.0, 0.0]) == 1  # alpha 0: no smoothing


def test_hysteresis_needs_delta_margin():
    s = Smoother(alpha=0.0, delta=0.1, window=1, min_count=1)
    assert s.update([0.6, 0.4, 0.0]) == 0
    assert s.update([0.46, 0.54, 0.0]) == 0  # 0.54 < 0.46 + 0.1: stays
    assert s.update([0.44, 0.56, 0.0]) == 1  # 0.56 >= 0.54


def test_vote_window_and_min_count():
    s = Smoother(alpha=0.0, delta=0.0, window=5, min_count=3)
    out = [s.update(onehot(k)) for k in [0, 0, 1, 0, 1, 1, 1]]
    # hysteresis labels 0 0 1 0 1 1 1; window of 5: after frame 2 two 0s (<3) -> None ... after frame 3: 0,0,1,0 -> 0
    assert out == [None, None, None, 0, 0, 1, 1]


def test_reset_on_face_lost():
    s = Smoother(alpha=0.5, delta=0.0, window=2, min_count=1)
    s.update(onehot(0))
    s.reset()
    assert s.smoothed is None and s.hysteresis_label is None
    assert s.update(onehot(2)) == 2


def test_min_count_above_window_refused():
    with pytest.raises(ValueError, match="cannot exceed"):
        Smoother(window=5, min_count=6)
    s = Smoother()
    with pytest.raises(ValueError):
        s.configure(min_count=16)
    assert s.min_count == 8  # unchanged after a refused change


def test_window_in_milliseconds_is_frame_rate_independent():
    # 500 ms window, min_count 3: at 10 fps the window holds 6 frames, at 30 fps 16.
    for fps in (10, 30):
        s = Smoother(alpha=0.0, delta=0.0, window=1, min_count=3, window_ms=500)
        labels = [s.update(onehot(0), t_sec=i / fps) for i in range(fps)]
        assert labels[1] is None and labels[2] == 0 and labels[-1] == 0
        assert len(s._history) == int(0.5 * fps) + 1
    with pytest.raises(ValueError, match="t_sec"):
        Smoother(window_ms=500, min_count=3).update(onehot(0))
