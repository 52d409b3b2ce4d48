"""A kiosk process's start: the cyclic garbage collector paused while it loads, resumed once it serves.

Starting `kiosk run` creates ~90,000 objects that live as long as the process (pydantic's models and
validators, numpy, the screen's web stack, the face models' wrappers). With the collector on, each is
scanned in generation 0, again in generation 1 and again in a full collection as the heap grows: ~130
collections, 0.06-0.08 CPU-s of the start (~0.02 of `kiosk config check`), to find ~700 objects of garbage.

`pause_gc()` is the `kiosk` command's first step. `resume_gc()` turns the collector back on: for most commands
when the command's own code starts (kiosk.cli.util.KioskGroup), for the daemon at READY. It first moves every
object alive then (the start's few hundred garbage objects with them) out of the collector's sight for the life
of the process (gc.freeze): re-enabled without that, its next collections would scan every object made while it
was paused, a cost as large as the one saved; and a long-running process's full collections no longer walk them.
Only a pause made here is resumed: a process that never paused (tests, the hub) keeps its collector as it was.
"""

from __future__ import annotations

import gc

_paused = False


def pause_gc() -> None:
    """Turn the cyclic garbage collector off for the process's start (see the module docstring)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_gc() -> None:
    """Turn the collector back on if pause_gc turned it off, every object alive now frozen first."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.enable()


def gc_paused() -> bool:
    """Whether pause_gc's pause is still on."""
    return _paused
