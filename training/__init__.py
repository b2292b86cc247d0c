"""The torch + timm research pipeline behind ``fer-train`` (DESIGN.md §2).

It imports ``fer_models`` for the class list, the calibration maths and the face
preparation, so that what training measures and what the live app computes are
the same numbers produced by the same code.

Modules: ``index`` (canonical index and fingerprint), ``data`` (datasets and
on-the-fly augmentation), ``models`` (timm factory and checkpoints), ``loop`` (the
training loop, DDP-ready) with ``teacher`` and ``student`` (their commands and
objectives), ``evaluate``, ``softlabel_files`` (the soft-label folder format),
``softlabels`` (exporting them), ``alignment`` (the gate every consumer of soft
labels runs first), ``calibrate``, ``ensemble``, ``export`` and ``cli``.
"""
