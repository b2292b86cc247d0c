"""Widgets of the main window; each one only paints what it is given and emits what the user did."""

