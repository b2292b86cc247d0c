"""``fer-demo --self-test``: prove that an installed (or frozen) app can see and classify a face.

Why: a PyInstaller bundle can build fine and still miss a Qt plugin, the ONNX Runtime
provider library, the detector file or the default model; the first person to notice
would be a demo host in front of an audience. The self-test runs headless through the
same code the window uses (model folder loader with its checks, YuNet detector,
``FramePipeline``: crop, inference, calibration), on a bundled photograph, and also
starts Qt offscreen to make sure the platform plugins load. It prints what it found
and exits 0 only when every step worked.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

SELF_TEST_IMAGE = ("selftest", "face.jpg")


def _step(name: str, fn: Callable[[], Any], report: dict[str, Any]) -> Any:
    t0 = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal to the report
        report["steps"].append({"step": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return None
    report["steps"].append({"step": name, "ok": True, "ms": round((time.perf_counter() - t0) * 1e3, 1)})
    return value


def run_self_test(model_dir: str | Path | None = None, provider: str = "auto", qt: bool = True) -> dict[str, Any]:
    """Every check as a report dict; ``report["ok"]`` is True only when all of them passed."""
    import cv2
    import onnxruntime as ort

    from fer_models.detector import FaceDetector
    from fer_models.model_folder import load_app_model
    from fer_models.pipeline import FramePipeline, PipelineSettings
    from resources import default_model_dir, resource_path

    report: dict[str, Any] = {"frozen": bool(getattr(sys, "frozen", False)), "python": platform.python_version(),
                              "platform": platform.platform(), "opencv": cv2.__version__,
                              "onnxruntime": ort.__version__, "available_providers": ort.get_available_providers(),
                              "steps": []}
    model = _step("load model", lambda: load_app_model(model_dir or default_model_dir(),
                                                       providers=None if provider == "auto" else provider), report)
    if model is not None:
        report["model_id"], report["provider"] = model.model_id, model.provider
    detector = _step("load detector", FaceDetector, report)
    if detector is not None:
        report["detector"] = str(detector.model_path)
    image_path = resource_path(*SELF_TEST_IMAGE)

    def read_image() -> np.ndarray:
        img = cv2.imread(str(image_path))
        if img is None:
            raise FileNotFoundError(f"{image_path}: cannot be read")
        return img

    frame = _step("read test image", read_image, report)
    if model is not None and detector is not None and frame is not None:
        pipeline = FramePipeline(model, detector, PipelineSettings(alpha=0.0, window=1, min_count=1))

        def classify() -> dict[str, Any]:
            result = pipeline.process(frame, 0.0)
            if result.face is None:
                raise RuntimeError(f"no face found in {image_path}")
            p = result.probs
            if p is None or not np.all(np.isfinite(p)) or abs(float(p.sum()) - 1.0) > 1e-3:
                raise RuntimeError(f"probabilities are not finite or do not sum to one: {p}")
            k = int(np.argmax(p))
            return {"label": model.classes[k], "confidence": round(float(p[k]), 3),
                    "face_box": [round(float(v), 1) for v in result.face.box],
                    "timings_ms": {s: round(float(v), 2) for s, v in result.timings_ms.items()}}

        out = _step("detect and classify", classify, report)
        if out is not None:
            report["prediction"] = out
    if qt:
        def start_qt() -> str:
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
            from PySide6.QtWidgets import QApplication, QLabel

            app = QApplication.instance() or QApplication(sys.argv[:1])
            label = QLabel("self-test")
            label.show()
            app.processEvents()
            label.close()
            return app.platformName()

        report["qt_platform"] = _step("start Qt", start_qt, report)
    report["ok"] = all(s["ok"] for s in report["steps"])
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"fer-demo self-test ({'frozen bundle' if report['frozen'] else 'source install'}, "
          f"Python {report['python']}, OpenCV {report['opencv']}, onnxruntime {report['onnxruntime']})")
    print(f"  providers available: {', '.join(report['available_providers'])}; "
          f"model runs on: {report.get('provider', '-')}")
    for s in report["steps"]:
        print(f"  {'ok  ' if s['ok'] else 'FAIL'} {s['step']}: " + (f"{s['ms']} ms" if s["ok"] else s["error"]))
    if "prediction" in report:
        p = report["prediction"]
        stages = ", ".join(f"{k} {v} ms" for k, v in p["timings_ms"].items())
        print(f"  model {report['model_id']}: {p['label']} ({p['confidence']:.2f}) on the test face; {stages}")
    print("self-test passed" if report["ok"] else "self-test FAILED")
