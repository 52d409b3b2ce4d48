"""Process hardening every long-running command applies at start: no core dumps, no ptrace by peers."""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def forbid_core_dumps() -> bool:
    """Mark this process non-dumpable (prctl PR_SET_DUMPABLE 0): a crash writes no core file that would
    hold the store's key or face templates, and processes of the same user cannot ptrace it or read its
    /proc/PID/mem. systemd's LimitCORE=0 says the same from outside. Returns whether it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        # The process's own symbols, libc's among them: ctypes.util.find_library("c") would run ldconfig
        # in a child process at every start to find the same library.
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    except (OSError, AttributeError) as exc:  # AttributeError: no prctl among the process's symbols
        log.warning("cannot mark the process non-dumpable (%s): a crash may leave a core file", exc)
        return False
    return libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
