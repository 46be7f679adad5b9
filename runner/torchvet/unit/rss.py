"""The worker's resident memory: now, at its peak during a check, and what it shares.

On Linux the kernel keeps the peak (``VmHWM`` in /proc/self/status) and resets it to the
current size when "5" is written to /proc/self/clear_refs, so each check's own peak is
read exactly, with no sampling thread. Elsewhere (or where clear_refs is not writable)
the lifetime peak of ``getrusage`` stands in: an upper bound, never an underestimate.

A worker forked from the fork server starts with the server's pages (torch, the checks)
mapped and shared; :class:`Meter` counts the worker's *own* memory as what it holds
beyond that inherited size. :func:`release_freed` hands memory freed by a check back to
the operating system (glibc keeps freed blocks for reuse otherwise, so the next check
would start from the previous one's peak).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status() -> dict[str, int]:
    try:
        lines = STATUS.read_text().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(rest.split()[0]) * 1024
    return found


def _lifetime_peak() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def resident() -> int:
    """Resident bytes now (the lifetime peak where /proc is missing)."""
    return _status().get("VmRSS") or _lifetime_peak()


def reset_peak() -> bool:
    """Reset the kernel's peak to the current size; False where that is not possible."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return "VmHWM" in _status()


def peak() -> int:
    """Resident bytes at their peak since the last :func:`reset_peak`."""
    return _status().get("VmHWM") or _lifetime_peak()


_LIBC: ctypes.CDLL | bool | None = False


def libc() -> ctypes.CDLL | None:
    """The C library (Linux only; None elsewhere)."""
    global _LIBC
    if _LIBC is False:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name) if name and sys.platform.startswith("linux") else None
        except OSError:
            _LIBC = None
    return _LIBC if isinstance(_LIBC, ctypes.CDLL) else None


def release_freed() -> None:
    """Give memory the allocator holds but no object uses back to the OS (glibc)."""
    lib = libc()
    trim = getattr(lib, "malloc_trim", None) if lib is not None else None
    if trim is not None:
        trim(0)


class Meter:
    """Peaks of one worker, in bytes of its own (beyond what it inherited at fork)."""

    def __init__(self) -> None:
        self.inherited = resident()
        self.exact = reset_peak()
        self.unit_peak = 0

    def own(self, size: int) -> int:
        return max(0, size - self.inherited)

    def now(self) -> int:
        """Own resident bytes now."""
        return self.own(resident())

    def begin(self) -> None:
        """Start measuring one interval (a check, a probe)."""
        if self.exact:
            reset_peak()

    def end(self) -> int:
        """Own bytes at the peak of the interval since :meth:`begin`."""
        value = self.own(peak())
        self.unit_peak = max(self.unit_peak, value)
        return value
