"""The few Linux process attributes torchvet sets on itself (``prctl(2)``).

- not dumpable: another process of the same user can no longer read our
  ``/proc/<pid>/environ``, ``fd/`` or memory, nor ptrace us (for a process that holds
  tokens or file-command paths);
- no new privileges: nothing we start gains privileges through a setuid binary;
- child subreaper: a process our children orphan (a double-forked daemon) is re-parented
  to us instead of to init, so we can find and kill it.

Each returns whether it took effect; elsewhere than Linux they do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38


def _prctl(option: int, arg: int = 0) -> int:
    if not sys.platform.startswith("linux"):
        return -1
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return -1
    result: int = libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0),
                             ctypes.c_ulong(0), ctypes.c_ulong(0))
    return result


def set_dumpable(dumpable: bool) -> bool:
    return _prctl(PR_SET_DUMPABLE, int(dumpable)) == 0


def is_dumpable() -> bool:
    return _prctl(PR_GET_DUMPABLE) == 1


def set_no_new_privs() -> bool:
    return _prctl(PR_SET_NO_NEW_PRIVS, 1) == 0


def set_child_subreaper() -> bool:
    return _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0


def is_child_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    value = ctypes.c_int(0)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return False
    libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0)
    return value.value != 0
