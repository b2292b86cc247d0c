"""The contract shared by the desktop app and the training pipeline.

Everything here depends on numpy, OpenCV and onnxruntime only (no torch, no Qt),
so the installer stays small and training and the live app compute the same
numbers with the same code.
"""

from fer_models.classes import FER7, canonical_class_name
from fer_models.errors import ArtifactError, FerError

__all__ = ["FER7", "canonical_class_name", "ArtifactError", "FerError"]
__version__ = "0.1.0"
