"""Process memory figures for the training logs (testbed and full runs): why a run's memory is
logged at all is the NL safety rail of issue 14 (the earlier deep optimizer ran out of memory)."""

from __future__ import annotations

import resource
import sys


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc/self/statm), else the peak so far (getrusage)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process (getrusage: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
