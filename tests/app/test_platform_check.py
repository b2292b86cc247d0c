"""Start-up checks: a missing X11 library is named with its package, before Qt aborts."""

from __future__ import annotations

from app.platform_check import OFFSCREEN_NOISE, uses_xcb, xcb_problem


def test_xcb_is_only_expected_on_linux_x11():
    assert uses_xcb({"DISPLAY": ":0"}, "linux")
    assert not uses_xcb({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, "linux")
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not uses_xcb({"DISPLAY": ":0"}, "win32")


def test_missing_xcb_cursor_names_the_packages():
    lacks_cursor = lambda name: None if name == "xcb-cursor" else f"lib{name}.so"  # noqa: E731
    msg = xcb_problem({"DISPLAY": ":0"}, find=lacks_cursor, platform="linux")
    assert "libxcb-cursor" in msg and "sudo apt install libxcb-cursor0" in msg and "xcb-util-cursor" in msg
    assert "libxkbcommon" not in msg
    assert xcb_problem({"DISPLAY": ":0"}, find=lambda n: f"lib{n}.so", platform="linux") is None
    assert xcb_problem({"QT_QPA_PLATFORM": "offscreen"}, find=lacks_cursor, platform="linux") is None


def test_fer_demo_exits_with_the_hint_instead_of_qt_abort(monkeypatch, capsys):
    import app.platform_check as pc
    from app.__main__ import main

    monkeypatch.setattr(pc, "xcb_problem", lambda: "fer-demo: Qt's X11 (xcb) platform plugin needs libxcb-cursor")
    assert main([]) == 3
    assert "libxcb-cursor" in capsys.readouterr().err


def test_offscreen_noise_is_dropped_and_other_messages_pass(capfd, qapp):
    from PySide6.QtCore import qWarning

    from app.platform_check import install_qt_message_filter

    install_qt_message_filter()
    qWarning(OFFSCREEN_NOISE[0])
    qWarning("a real problem")
    err = capfd.readouterr().err
    assert "propagateSizeHints" not in err and "a real problem" in err
