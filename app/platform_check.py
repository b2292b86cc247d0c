"""Start-up checks for the desktop platform, before Qt gets a chance to abort.

Why: on Linux desktops without Qt's X11 helper libraries, PySide6 aborts the whole
process with "xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb platform
plugin" and a core dump; a demo host sees a crash, not a fix. ``xcb_problem`` finds
the missing library first and says which package to install. ``install_qt_message_filter``
drops the offscreen platform's harmless chatter (tests, screenshots, ``--self-test``)
and passes every other Qt message through.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from typing import Callable

# library file stem -> Debian/Ubuntu package, Fedora package
XCB_LIBRARIES = {
    "xcb-cursor": ("libxcb-cursor0", "xcb-util-cursor"),
    "xkbcommon-x11": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "xcb-icccm": ("libxcb-icccm4", "xcb-util-wm"),
    "xcb-keysyms": ("libxcb-keysyms1", "xcb-util-keysyms"),
}
# Qt messages of the offscreen platform that say nothing about the app
OFFSCREEN_NOISE = ("This plugin does not support propagateSizeHints()",
                   "This plugin does not support raise()",
                   "This plugin does not support grabbing the keyboard")


def uses_xcb(env: dict[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether Qt will load its xcb (X11) platform plugin in this environment."""
    env = dict(os.environ) if env is None else env
    if (platform or sys.platform) != "linux":
        return False
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":")[0].startswith("xcb")
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def xcb_problem(env: dict[str, str] | None = None, find: Callable[[str], str | None] = ctypes.util.find_library,
                platform: str | None = None) -> str | None:
    """A message naming the missing X11 libraries and their packages, or None when nothing is missing."""
    if not uses_xcb(env, platform):
        return None
    missing = [(lib, pkgs) for lib, pkgs in XCB_LIBRARIES.items() if not find(lib)]
    if not missing:
        return None
    names = ", ".join(f"lib{lib}" for lib, _ in missing)
    deb = " ".join(p[0] for _, p in missing)
    rpm = " ".join(p[1] for _, p in missing)
    return (f"fer-demo: Qt's X11 (xcb) platform plugin needs {names}, which this system lacks.\n"
            f"  Debian/Ubuntu: sudo apt install {deb}\n"
            f"  Fedora: sudo dnf install {rpm}\n"
            "  or start under Wayland (QT_QPA_PLATFORM=wayland), or headless with --replay.")


def install_qt_message_filter() -> None:
    """Route Qt's messages through a filter that drops the offscreen platform's known chatter."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(mode, context, message: str) -> None:  # noqa: ANN001 - Qt's signature
        if message in OFFSCREEN_NOISE:
            return
        sys.stderr.write(message + "\n")

    qInstallMessageHandler(handler)
