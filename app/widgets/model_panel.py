"""The model card as the user needs it: classes, input, crop, calibration, metrics, provider."""

from __future__ import annotations

import html
from typing import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from fer_models.model_folder import FerModel


def _fmt_vec(values) -> str:
    return "[" + ", ".join(f"{float(v):.3g}" for v in values) + "]"


def card_html(model: FerModel) -> str:
    """The card of a loaded model as small HTML tables."""
    c, cal = model.card, model.calibration
    rows = [
        ("Model id", model.model_id),
        ("Folder", str(model.folder)),
        ("Backbone", c.backbone),
        ("Classes", ", ".join(c.classes)),
        ("Input", f"{c.input_size}×{c.input_size} px, {c.channels} channel{'s' if c.channels > 1 else ''} "
                  f"({c.color}), {c.precision}"),
        ("Normalisation", f"mean {_fmt_vec(c.mean)}, std {_fmt_vec(c.std)}"),
        ("Crop", f"margin {c.crop_margin:.2f}, align eyes {'on' if c.align_eyes else 'off'}, "
                 f"CLAHE {'on' if c.clahe else 'off'}"),
        ("Calibration T", f"{cal.temperature:.3f}"),
    ]
    trained = training_line(c.extra.get("training"))
    if trained:
        rows.append(("Trained", trained))
    if cal.per_class_temperature is not None:
        rows.append(("Per-class T", _fmt_vec(cal.per_class_temperature)))
    if cal.thresholds is not None:
        rows.append(("Thresholds", _fmt_vec(cal.thresholds)))
    if cal.logit_bias is not None:
        rows.append(("Logit bias", _fmt_vec(cal.logit_bias)))
    if cal.split:
        rows.append(("Calibrated on", cal.split))
    rows.append(("Provider", model.provider))
    metrics = c.metrics or {}
    out = ["<table cellspacing='0' cellpadding='2'>"]
    for k, v in rows:
        out.append(f"<tr><td style='color:#9aa0a6;padding-right:10px'>{html.escape(k)}</td>"
                   f"<td>{html.escape(str(v))}</td></tr>")
    out.append("</table>")
    if metrics:
        out.append("<p style='color:#9aa0a6;margin-bottom:2px'>Metrics</p><table cellspacing='0' cellpadding='2'>")
        for k, v in _flatten(metrics):
            shown = f"{v:.4g}" if isinstance(v, float) else str(v)
            out.append(f"<tr><td style='color:#9aa0a6;padding-right:10px'>{html.escape(k)}</td>"
                       f"<td>{html.escape(shown)}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p style='color:#9aa0a6'>The card lists no metrics.</p>")
    return "".join(out)


def training_line(t: object) -> str:
    """One line on how the model was trained (the card's ``training`` entry), or '' if the card has none."""
    if not isinstance(t, dict) or not t:
        return ""
    method = t.get("distill")
    if method in ("kd", "dkd"):
        params = ", ".join(f"{k} {t[k]:g}" for k in ("alpha", "beta", "temperature")
                           if isinstance(t.get(k), (int, float)))
        teachers = t.get("teacher") or []
        src = ", ".join(str(x).rstrip("/").split("/")[-1] for x in teachers) if isinstance(teachers, list) else ""
        head = f"{method.upper()} ({params})" + (f" from {src}" if src else "")
    elif method == "none":
        head = "no distillation (cross-entropy)"
    else:
        head = str(t.get("command") or "trained")
    bits = [head]
    if t.get("epochs") is not None:
        bits.append(f"{t['epochs']} epochs")
    if t.get("pretrained_checkpoint"):
        bits.append("fine-tuned from " + str(t["pretrained_checkpoint"]))
    if t.get("seed") is not None:
        bits.append(f"seed {t['seed']}")
    return ", ".join(bits)


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


class ModelPanel(QWidget):
    open_requested = Signal()
    provider_changed = Signal(str)

    def __init__(self, providers: Sequence[str], parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.open_btn = QPushButton("Open model folder…")
        self.open_btn.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.open_btn.clicked.connect(self.open_requested.emit)
        row.addWidget(self.open_btn)
        row.addWidget(QLabel("Provider"))
        self.provider = QComboBox()
        self.provider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.provider.addItem("auto")
        for p in providers:
            self.provider.addItem(p)
        self.provider.currentTextChanged.connect(self.provider_changed.emit)
        row.addWidget(self.provider, 1)
        lay.addLayout(row)
        self.second = QLabel("")
        self.second.setWordWrap(True)
        self.second.setStyleSheet("color: #9aa0a6")
        self.second.setVisible(False)
        lay.addWidget(self.second)
        self.card = QTextBrowser()
        self.card.setOpenLinks(False)
        self.card.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        lay.addWidget(self.card, 1)
        self.show_model(None)

    def set_provider(self, name: str) -> None:
        i = self.provider.findText(name)
        self.provider.blockSignals(True)
        self.provider.setCurrentIndex(max(0, i))
        self.provider.blockSignals(False)

    def show_second(self, model: FerModel | None) -> None:
        """The second model (Model menu → Open second model…), or none."""
        self.second.setVisible(model is not None)
        if model is not None:
            c = model.card
            self.second.setText(f"Second model: {model.model_id} ({c.backbone}, {c.input_size}×{c.input_size} "
                                f"{c.color}, margin {c.crop_margin:.2f}, CLAHE {'on' if c.clahe else 'off'}) — "
                                f"{model.folder}")

    def show_model(self, model: FerModel | None, problem: str = "") -> None:
        if model is None:
            self.card.setHtml("<p><b>No model loaded.</b></p><p>" + html.escape(problem or "Open a model folder "
                              "(the output of <code>fer-train export</code>).") + "</p>")
        else:
            self.card.setHtml(card_html(model))
