"""The kiosk's side of sync, inside the encrypted store: registration, outbox cursor, acks, retention.

The outbox is the punch log itself: every punch above ``push_seq`` is unsent. The hub answers each
record (accepted / duplicate / rejected); ``push_seq`` advances over a contiguous run of answered
records, rejected ones are listed in ``sync_rejected`` and kept. ``acked_seq`` is the prefix the hub
holds (no rejection at or below it): only that prefix may be purged, only after ``retention_days``,
never the newest punch, and the purge records a chain anchor so `kiosk db verify` still passes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kiosk.base.errors import NotRegistered
from kiosk.base.record import Punch
from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.store.signing import add_key

if TYPE_CHECKING:
    from kiosk.store.database import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    """This kiosk's identity at the hub. The token never leaves the encrypted store but to the hub."""

    hub_url: str
    device_id: str
    token: str
    branch: str
    registered_utc: str

    def __repr__(self) -> str:
        return f"Registration(hub_url={self.hub_url!r}, device_id={self.device_id!r}, branch={self.branch!r})"


@dataclass(frozen=True)
class PushOutcome:
    """What one batch's answers did to the outbox."""

    accepted: int
    duplicates: int
    rejected: int
    push_seq: int


class SyncState:
    """Sync bookkeeping of one store (all writes through store.atomic)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- key/value ------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        rows = self.store.query("SELECT value FROM sync_state WHERE key = ?", [key])
        return rows[0]["value"] if rows else default

    def get_int(self, key: str) -> int:
        return int(self.get(key, "0") or 0)

    def set(self, db: Any, key: str, value: Any) -> None:
        """Write a key inside the caller's transaction (``db`` from store.atomic())."""
        db.execute("INSERT INTO sync_state (key, value) VALUES (?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, str(value)])

    def put(self, **values: Any) -> None:
        with self.store.atomic("saving sync state") as db:
            for key, value in values.items():
                self.set(db, key, value)

    # -- registration ---------------------------------------------------------

    def registration(self) -> Registration | None:
        rows = self.store.query("SELECT hub_url, device_id, token, branch, registered_utc FROM sync_registration")
        return Registration(**rows[0]) if rows else None

    def require_registration(self) -> Registration:
        reg = self.registration()
        if reg is None:
            raise NotRegistered("this kiosk is not registered with a hub",
                                fix="Get a code from HR (`kiosk hub device add --branch BRANCH`), then run "
                                "`kiosk sync register --hub URL --code CODE`.")
        return reg

    def chain_start_for(self, hub_url: str) -> tuple[int, str]:
        """(seq, hash) after which a new registration's uploads start: what this same hub already
        holds, else the purge anchor (punches purged here cannot be sent to a new hub)."""
        old = self.registration()
        anchor_seq, anchor_hash = self.store.punches.chain_anchor()
        seq = self.get_int("push_seq") if old is not None and old.hub_url == hub_url else 0
        if seq <= anchor_seq:
            return anchor_seq, anchor_hash
        return seq, self.store.query("SELECT hash FROM punches WHERE seq = ?", [seq])[0]["hash"]

    def save_registration(self, reg: Registration, chain_seq: int, new_key: bytes | None = None) -> None:
        """Store a new registration; uploads continue after ``chain_seq``; the roster starts over. With
        ``new_key`` (the private key whose public half was registered) the signing key rotates to it."""
        with self.store.atomic("saving the hub registration") as db:
            if new_key is not None:
                add_key(db, new_key)
            db.execute("DELETE FROM sync_registration")
            db.execute("INSERT INTO sync_registration (id, hub_url, device_id, token, branch, registered_utc) "
                       "VALUES (1, ?, ?, ?, ?, ?)", [reg.hub_url, reg.device_id, reg.token, reg.branch,
                                                     reg.registered_utc])
            db.execute("DELETE FROM sync_rejected WHERE seq > ?", [chain_seq])
            for key, value in {"push_seq": chain_seq, "roster_cursor": 0, "roster_model_id": "",
                               "auth_error": ""}.items():
                self.set(db, key, value)
            self._set_acked(db)
            self.store.audit("sync", "sync.register", reg.device_id, hub_url=reg.hub_url, branch=reg.branch)

    # -- outbox ---------------------------------------------------------------

    def pending(self, limit: int) -> list[dict[str, Any]]:
        """The next unsent punches, oldest first, as wire records signed with the current key."""
        rows = self.store.query("SELECT * FROM punches WHERE seq > ? ORDER BY seq LIMIT ?",
                                [self.get_int("push_seq"), limit])
        return self.store.signing.sign_records([Punch.from_row(row).to_dict() for row in rows])

    def rejected_records(self, limit: int) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT p.* FROM punches p JOIN sync_rejected r ON r.seq = p.seq "
                                "ORDER BY p.seq LIMIT ?", [limit])
        return self.store.signing.sign_records([Punch.from_row(row).to_dict() for row in rows])

    def backlog(self) -> int:
        """Punches the hub has not acknowledged yet (unsent plus rejected). Seqs are gapless above the
        push cursor (retention purges only below it), so no row is counted."""
        return max(0, self.store.punches.head_seq() - self.get_int("push_seq")) + self.rejected_count()

    def rejected_count(self) -> int:
        return self.store.query("SELECT count(*) AS n FROM sync_rejected")[0]["n"]

    def rejections(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.store.query("SELECT seq, punch_id, reason, rejected_utc FROM sync_rejected ORDER BY seq LIMIT ?",
                                [limit])

    def record_results(self, batch: list[dict[str, Any]], response: Any) -> PushOutcome:  # noqa: ANN401 - PunchBatchResponse
        """Apply the hub's verdicts in one transaction; ``push_seq`` only passes answered records."""
        verdicts = {r.id: r for r in response.results}
        now = iso_utc(utc_now())
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        with self.store.atomic("recording the hub's answer") as db:
            push_seq = self.get_int("push_seq")
            for record in sorted(batch, key=lambda r: r["seq"]):
                verdict = verdicts.get(record["id"])
                if verdict is None:
                    log.warning("hub gave no verdict for punch seq %d; it will be sent again", record["seq"])
                    break
                counts[verdict.status] += 1
                if verdict.status == "rejected":
                    db.execute("INSERT INTO sync_rejected (seq, punch_id, reason, rejected_utc) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT(seq) DO UPDATE SET reason = excluded.reason, "
                               "rejected_utc = excluded.rejected_utc", [record["seq"], record["id"],
                                                                        verdict.reason[:500], now])
                    log.warning("hub rejected punch seq %d: %s", record["seq"], verdict.reason)
                else:
                    db.execute("DELETE FROM sync_rejected WHERE seq = ?", [record["seq"]])
                push_seq = max(push_seq, record["seq"])
            self.set(db, "push_seq", push_seq)
            self.set(db, "last_push_utc", now)
            acked = self._set_acked(db)
            db.execute("INSERT INTO sync_acks (upto_seq, acked_utc) VALUES (?, ?) ON CONFLICT(upto_seq) DO NOTHING",
                       [acked, now])
        return PushOutcome(counts["accepted"], counts["duplicate"], counts["rejected"], push_seq)

    def _set_acked(self, db: Any) -> int:
        """The acknowledged prefix: everything at or below it is at the hub (no rejections)."""
        push_seq = int((db.execute("SELECT value FROM sync_state WHERE key = 'push_seq'").fetchone() or [0])[0])
        first_rejected = db.execute("SELECT min(seq) FROM sync_rejected").fetchone()[0]
        acked = push_seq if first_rejected is None else min(push_seq, first_rejected - 1)
        self.set(db, "acked_seq", acked)
        return acked

    # -- retention ------------------------------------------------------------

    def purge(self, retention_days: int) -> int:
        """Delete punches the hub acknowledged more than ``retention_days`` ago; returns how many."""
        if retention_days <= 0:
            return 0
        cutoff = iso_utc(utc_now() - timedelta(days=retention_days))
        upto = self.store.query("SELECT max(upto_seq) AS s FROM sync_acks WHERE acked_utc <= ?", [cutoff])[0]["s"]
        head = self.store.punches.head()
        anchor_seq, _ = self.store.punches.chain_anchor()
        if upto is None or head is None:
            return 0
        last = min(upto, self.get_int("acked_seq"), head.seq - 1)
        if last <= anchor_seq:
            return 0
        with self.store.atomic("purging acknowledged punches") as db:
            anchor_hash = db.execute("SELECT hash FROM punches WHERE seq = ?", [last]).fetchone()[0]
            for key, value in (("chain_anchor_seq", str(last)), ("chain_anchor_hash", anchor_hash)):
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])
            deleted = db.execute("DELETE FROM punches WHERE seq <= ?", [last]).rowcount
            db.execute("DELETE FROM sync_acks WHERE upto_seq < ?", [last])
            self.store.audit("sync", "sync.purge", "", upto_seq=last, punches=deleted, retention_days=retention_days)
        self.store.checkpoint()
        log.info("retention: purged %d acknowledged punch(es) up to seq %d", deleted, last)
        return deleted

    # -- health ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Everything `kiosk sync status` shows (never the token)."""
        reg = self.registration()
        head = self.store.punches.head()
        keys = ("push_seq", "acked_seq", "roster_cursor", "last_push_utc", "last_roster_utc", "last_heartbeat_utc",
                "last_error", "last_error_utc", "auth_error", "hub_clock")
        values = {k: self.get(k) for k in keys}
        return {
            "registered": reg is not None, "hub_url": reg.hub_url if reg else None,
            "device_id": reg.device_id if reg else None, "branch": reg.branch if reg else None,
            "head_seq": head.seq if head else 0, "backlog": self.backlog(), "rejected": self.rejected_count(),
            "chain_anchor_seq": self.store.punches.chain_anchor()[0],
            **{k: v for k, v in values.items() if k != "hub_clock"},
            "hub_clock": json.loads(values["hub_clock"]) if values["hub_clock"] else None,
        }
