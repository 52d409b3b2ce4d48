"""onnxruntime sessions for the face models, from the graphs onnxruntime optimised at an earlier start.

Creating a session first optimises the model's graph (constant folding, fusions and, on x86, the blocked NCHWc
layout): for the three models of ``buffalo_sc`` ~40 % of the CPU their sessions cost at a start (149 ms -> 90 ms
here, README "Start-up cost").
onnxruntime can write the graph it optimised (``optimized_model_filepath``); a process with a folder and a
memory for them (the daemon: ``KeptGraphs``, a folder beside the store and the store's ``meta``) keeps it as it
creates a session, and at later starts creates the session from the kept graph with optimisation off. The
sessions compute the same numbers (tests/test_face_sessions.py).

A kept graph is used only for the same source file (kiosk.face.pack ``file_identity``), onnxruntime version,
optimisation level and CPU (an optimised graph can hold kernels for this CPU's instructions), and only while the
kept file is still the file written then (its identity, remembered in the store with the rest): a kept file
changed by anyone else is not run but made again, and the graph of a model file changed less than ``RACY_S`` ago
is not kept (kiosk.face.pack ``settled``). Anything wrong with a kept graph (gone, changed, refused by onnxruntime)
costs one ordinary start, with a log line; it never stops the kiosk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from kiosk.face.pack import ModelMemory, file_identity, settled

log = logging.getLogger(__name__)

PROVIDERS = ["CPUExecutionProvider"]
KEPT_GRAPHS_META = "kept_graphs"  # ModelMemory key: {source file: {"key", "file", "identity"}}
KEPT_GRAPHS_DIR = "optimised-graphs"  # the daemon's folder for them, beside the store


def cpu_tag() -> str:
    """The machine and its CPU's instruction-set flags, digested: an optimised graph is for this CPU."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{os.uname().machine}-{hashlib.sha256(flags.encode()).hexdigest()[:12]}"


class KeptGraphs:
    """Optimised graphs kept in ``folder``, remembered in ``memory`` (the store's meta)."""

    def __init__(self, folder: Path, memory: ModelMemory) -> None:
        self.folder = Path(folder)
        self.memory = memory
        self._cpu = cpu_tag()
        self._entries: dict[str, dict] | None = None

    def _load(self) -> dict[str, dict]:
        if self._entries is None:
            try:
                entries = json.loads(self.memory.get_meta(KEPT_GRAPHS_META) or "{}")
            except ValueError:
                entries = {}
            self._entries = {k: v for k, v in entries.items() if isinstance(v, dict)} \
                if isinstance(entries, dict) else {}
        return self._entries

    def _key(self, source: Path, opts: ort.SessionOptions) -> str:
        return "|".join((file_identity(source)[0], ort.__version__, str(int(opts.graph_optimization_level)),
                         self._cpu))

    def session(self, source: Path, opts: ort.SessionOptions,
                model: Callable[[], bytes] | None = None) -> ort.InferenceSession:
        """The session of ``source`` (or of the graph ``model()`` makes from it, made only when needed) with
        ``opts``: from its kept graph when there is a good one, else created as usual with its optimised graph
        kept for next time."""
        if opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL:
            return _plain(source, opts, model)
        key = self._key(source, opts)
        entry = self._load().get(str(source))
        if entry and entry.get("key") == key:
            kept = self.folder / str(entry.get("file"))
            try:
                same = kept.parent == self.folder and file_identity(kept)[0] == entry.get("identity")
            except Exception:  # noqa: BLE001 - a kept file gone or unreadable: made again below
                same = False
            if same:
                try:
                    return _without_optimisation(kept, opts)
                except Exception as exc:  # noqa: BLE001 - onnxruntime refuses it: made again below
                    log.warning("kept graph %s not usable (%s): optimising %s again", kept.name, _first_line(exc),
                                source.name)
            else:
                log.info("kept graph of %s changed or gone: optimising it again", source.name)
        return self._keep(source, opts, model, key)

    def _keep(self, source: Path, opts: ort.SessionOptions, model: Callable[[], bytes] | None,
              key: str) -> ort.InferenceSession:
        if not settled(source):  # the source may change again unseen (kiosk.face.pack file_identity)
            return _plain(source, opts, model)
        name = f"{source.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"
        final, partial = self.folder / name, self.folder / f".{name}.partial"
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot keep optimised graphs in %s (%s): each start optimises them", self.folder,
                        exc.strerror or exc)
            return _plain(source, opts, model)
        opts.optimized_model_filepath = str(partial)
        try:
            session = _plain(source, opts, model)
        except Exception as exc:  # noqa: BLE001 - e.g. the disk is full; a bad model raises again just below
            opts.optimized_model_filepath = ""
            partial.unlink(missing_ok=True)
            session = _plain(source, opts, model)
            log.warning("optimised graph of %s not kept (%s)", source.name, _first_line(exc))
            return session
        finally:
            opts.optimized_model_filepath = ""
        try:
            with partial.open("rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(partial, final)
            identity = file_identity(final)[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime wrote nothing, or the disk is full: not kept
            log.warning("optimised graph of %s not kept (%s)", source.name, _first_line(exc))
            partial.unlink(missing_ok=True)
            return session
        entries = self._load()
        old = entries.get(str(source), {}).get("file")
        entries[str(source)] = {"key": key, "file": name, "identity": identity}
        try:
            self.memory.set_meta(KEPT_GRAPHS_META, json.dumps(entries, sort_keys=True))
        except Exception as exc:  # noqa: BLE001 - the store could not take it: the file is not trusted later
            log.warning("optimised graph of %s not kept (%s)", source.name, _first_line(exc))
            entries.pop(str(source))
            final.unlink(missing_ok=True)
            return session
        if old and old != name:
            (self.folder / str(old)).unlink(missing_ok=True)
        log.info("kept the optimised graph of %s for the next start (%s)", source.name, name)
        return session


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _plain(source: Path, opts: ort.SessionOptions, model: Callable[[], bytes] | None) -> ort.InferenceSession:
    return ort.InferenceSession(model() if model is not None else str(source), opts, providers=PROVIDERS)


def _without_optimisation(path: Path, opts: ort.SessionOptions) -> ort.InferenceSession:
    level = opts.graph_optimization_level
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(path), opts, providers=PROVIDERS)
    finally:
        opts.graph_optimization_level = level


def make_session(source: Path, opts: ort.SessionOptions, graphs: KeptGraphs | None = None,
                 model: Callable[[], bytes] | None = None) -> ort.InferenceSession:
    """The one way the face models' sessions are made: from a kept optimised graph when ``graphs`` has one."""
    if graphs is None:
        return _plain(source, opts, model)
    return graphs.session(source, opts, model)
