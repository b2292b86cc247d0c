"""Temporal smoothing of per-frame probabilities (DESIGN.md §5).

EMA, then hysteresis, then a vote, in that order and with the earlier demo
scripts' convention (alpha is the weight of the past) so that their users'
tuned values keep meaning the same thing. One object serves the live app and
offline replays.
"""

from __future__ import annotations

from collections import Counter, deque

import numpy as np


class Smoother:
    """EMA (alpha) -> hysteresis (delta) -> vote (window, min_count).

    ``window`` counts frames; if ``window_ms`` is given the vote instead looks at the
    frames of the last ``window_ms`` milliseconds (``update`` then needs ``t_sec``), so
    the behaviour does not depend on the frame rate.
    """

    def __init__(self, alpha: float = 0.70, delta: float = 0.08, window: int = 15, min_count: int = 8,
                 window_ms: float | None = None):
        self._ema: np.ndarray | None = None
        self._current: int | None = None
        self._history: deque[tuple[float | None, int]] = deque()
        self.configure(alpha=alpha, delta=delta, window=window, min_count=min_count, window_ms=window_ms)

    def configure(self, alpha: float | None = None, delta: float | None = None, window: int | None = None,
                  min_count: int | None = None, window_ms: float | None | str = "keep") -> None:
        """Change parameters in place; state is kept so a slider move does not blank the label."""
        alpha = self.alpha if alpha is None else float(alpha)
        delta = self.delta if delta is None else float(delta)
        window = self.window if window is None else int(window)
        min_count = self.min_count if min_count is None else int(min_count)
        window_ms = getattr(self, "window_ms", None) if window_ms == "keep" else window_ms
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
        if delta < 0.0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if window < 1:
            raise ValueError(f"window must be >= 1 frame, got {window}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if window_ms is None and min_count > window:
            raise ValueError(f"min_count ({min_count}) cannot exceed the vote window ({window} frames)")
        if window_ms is not None and window_ms <= 0:
            raise ValueError(f"window_ms must be positive, got {window_ms}")
        self.alpha, self.delta, self.window, self.min_count = alpha, delta, window, min_count
        self.window_ms = None if window_ms is None else float(window_ms)

    def reset(self) -> None:
        """Forget everything (called when the face is lost)."""
        self._ema = None
        self._current = None
        self._history.clear()

    @property
    def smoothed(self) -> np.ndarray | None:
        """The EMA state s_t, or None before the first frame."""
        return None if self._ema is None else self._ema.copy()

    @property
    def hysteresis_label(self) -> int | None:
        return self._current

    def update(self, probs: np.ndarray, t_sec: float | None = None) -> int | None:
        """Feed one frame's calibrated probabilities; return the shown class index or None (unstable)."""
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        if self._ema is None or self._ema.shape != p.shape:
            self._ema = p.copy()
        else:
            self._ema = self.alpha * self._ema + (1.0 - self.alpha) * p
        s = self._ema
        k = int(np.argmax(s))
        if self._current is None or self._current >= len(s):
            self._current = k
        elif k != self._current and s[k] >= s[self._current] + self.delta:
            self._current = k
        if self.window_ms is not None and t_sec is None:
            raise ValueError("a vote window in milliseconds needs t_sec for every frame")
        self._history.append((t_sec, self._current))
        if self.window_ms is not None:
            horizon = float(t_sec) - self.window_ms / 1000.0
            while self._history and self._history[0][0] is not None and self._history[0][0] < horizon - 1e-9:
                self._history.popleft()
        else:
            while len(self._history) > self.window:
                self._history.popleft()
        counts = Counter(label for _, label in self._history)
        winners = [(c, lab) for lab, c in counts.items() if c >= self.min_count]
        if not winners:
            return None
        best = max(c for c, _ in winners)
        tied = [lab for c, lab in winners if c == best]
        if self._current in tied:
            return self._current
        return next(lab for _, lab in reversed(self._history) if lab in tied)
