"""Entry script of the frozen fer-demo (PyInstaller runs a script, not a console_scripts entry point)."""

import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
