"""Punch ingest on the hub: per-record checks, idempotency by id, seq continuity and the hash chain.

Every record gets its own verdict. Valid records are always stored, even when the chain looks
wrong; what the hub sees (gaps, chain breaks, forks, id conflicts) is recorded as a device issue,
and a rejected record is kept in punch_rejects: nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kiosk.base.record import PUNCH_FIELDS
from kiosk.base.signing import signature_valid
from kiosk.base.text import DB_INT_MAX, escaped
from kiosk.base.timeutil import iso_utc, parse_iso, utc_now
from sync.errors import Unauthorized
from sync.hub.db.base import HubDb, Tx
from sync.hub.devices import Device, DeviceKey, add_issue, signing_key
from sync.hub.outbound.events import emit, punch_events
from sync.protocol import PunchBatchResponse, PunchIn, PunchResult, normal_direction, validation_reason

log = logging.getLogger(__name__)

RECORD_COLUMNS = (*PUNCH_FIELDS, *(name for name in ("direction", "kind", "author") if name not in PUNCH_FIELDS))
"""The kiosk's record as sent, plus direction, kind and a correction's author where the record has none."""
PUNCH_COLUMNS = ("hub_seq", "device_id", "branch", *RECORD_COLUMNS, "received_utc", "chain", "hub_flags",
                 "signature", "key_id")
"""The hub's punch row: where it came from, the kiosk's record as sent, how the hub saw it (its chain
status and the hub's own flags, e.g. clock_ahead, unsigned), and the device's signature of the record's hash
with the id of the key that made it (kiosk.base.signing)."""
INSERT_PUNCH = (f"INSERT INTO punches ({', '.join(PUNCH_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(PUNCH_COLUMNS))})")
REJECT_BODY_MAX_CHARS = 2000
REJECTS_KEPT_PER_DEVICE = 200
"""punch_rejects keeps each device's newest rejected records, each body cut to REJECT_BODY_MAX_CHARS (as
ASCII JSON: a NUL or a lone surrogate is stored escaped); devices.rejected keeps counting them all. So a
device sending junk costs the hub at most ~0.5 MB, whatever it sends."""


@dataclass
class Gap:
    """Missing seqs [first, last] of one device; ``issue_id`` is None until stored."""

    first: int
    last: int
    issue_id: int | None = None


@dataclass
class ChainWalk:
    """What walking a device's new punches in seq order found."""

    seq: int
    hash: str
    status: dict[str, str] = field(default_factory=dict)
    issues: list[tuple[str, int, int, str]] = field(default_factory=list)
    new_gaps: list[Gap] = field(default_factory=list)
    resolved_gaps: list[int] = field(default_factory=list)
    behind: list[PunchIn] = field(default_factory=list)


def walk_forward(seq: int, head_hash: str, records: list[PunchIn]) -> ChainWalk:
    """Advance the chain over records sorted by seq; records at or below the head are set aside."""
    walk = ChainWalk(seq, head_hash)
    for rec in records:
        if rec.seq <= walk.seq:
            walk.behind.append(rec)
            continue
        if rec.seq == walk.seq + 1 and rec.prev_hash == walk.hash:
            walk.status[rec.id] = "ok"
        elif rec.seq == walk.seq + 1:
            walk.status[rec.id] = "break"
            walk.issues.append(("chain_break", rec.seq, rec.seq, f"prev_hash of seq {rec.seq} does not match "
                                f"the hash of seq {walk.seq}: a punch was altered or replaced"))
        else:
            walk.status[rec.id] = "after_gap"
            walk.new_gaps.append(Gap(walk.seq + 1, rec.seq - 1))
        walk.seq, walk.hash = rec.seq, rec.hash
    return walk


@dataclass
class Checked:
    """Input records after schema and hash checks."""

    results: list[PunchResult | None]
    valid: list[tuple[int, PunchIn]]
    rejects: list[tuple[str, int | None, str, str]]  # punch id, seq, reason, body


def check_records(raw: list[Any]) -> Checked:
    """Validate each record on its own and recompute its hash."""
    checked = Checked([None] * len(raw), [], [])
    for index, item in enumerate(raw):
        ident, seq = _ident_and_seq(item)
        try:
            rec = PunchIn.model_validate(item)
        except ValidationError as exc:
            reason = validation_reason(exc)
        else:
            if rec.hash_matches():
                checked.valid.append((index, rec))
                continue
            reason = "hash does not match the record: it was altered after it was stored"
        checked.results[index] = PunchResult(id=ident, seq=seq, status="rejected", reason=reason)
        body = json.dumps(item, default=str)[:REJECT_BODY_MAX_CHARS]
        checked.rejects.append((ident, seq, reason, body))
    return checked


def _ident_and_seq(item: Any) -> tuple[str, int | None]:
    """A rejected record's id and seq as far as they can be stored: plain text of at most 64 characters
    (else escaped), and a seq a database integer holds (else none)."""
    ident = item.get("id") if isinstance(item, dict) else None
    seq = item.get("seq") if isinstance(item, dict) else None
    ident = escaped(ident)[:64] if isinstance(ident, str) else ""
    seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and -DB_INT_MAX <= seq <= DB_INT_MAX else None
    return ident, seq


def _keep_rejects(tx: Tx, device_id: str, rejects: list[tuple[str, int | None, str, str]], now: str) -> None:
    """Store the batch's rejected records, then drop this device's oldest beyond REJECTS_KEPT_PER_DEVICE."""
    tx.many("INSERT INTO punch_rejects (device_id, punch_id, seq, reason, body, received_utc) "
            "VALUES (?, ?, ?, ?, ?, ?)", [(device_id, *rej, now) for rej in rejects[-REJECTS_KEPT_PER_DEVICE:]])
    tx.run("DELETE FROM punch_rejects WHERE device_id = ? AND id <= (SELECT id FROM punch_rejects "
           "WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", [device_id, device_id, REJECTS_KEPT_PER_DEVICE])


def _dedupe(tx: Tx, device: Device, checked: Checked) -> tuple[list[PunchIn], int]:
    """Split valid records into new ones and repeats; an id reused for other content is rejected."""
    ids = [rec.id for _, rec in checked.valid]
    where, params = tx.in_list("id", ids)
    known = {r["id"]: (r["device_id"], r["hash"]) for r in tx.rows(
        f"SELECT id, device_id, hash FROM punches WHERE {where}", params)} if ids else {}
    new, duplicates = [], 0
    for index, rec in checked.valid:
        seen = known.get(rec.id)
        if seen is None:
            known[rec.id] = (device.id, rec.hash)
            new.append(rec)
        elif seen == (device.id, rec.hash):
            checked.results[index] = PunchResult(id=rec.id, seq=rec.seq, status="duplicate")
            duplicates += 1
        else:
            reason = "this punch id is already stored with different content"
            checked.results[index] = PunchResult(id=rec.id, seq=rec.seq, status="rejected", reason=reason)
            checked.rejects.append((rec.id, rec.seq, reason, json.dumps(rec.model_dump())))
            add_issue(tx, device.id, "id_conflict", rec.seq, rec.seq, f"punch {rec.id}: {reason}")
    return new, duplicates


def _neighbour(tx: Tx, device_id: str, seq: int, batch: dict[int, PunchIn]) -> tuple[str, str] | None:
    """(prev_hash, hash) of the chain's punch at ``seq``, from this batch or the database."""
    if seq in batch:
        return batch[seq].prev_hash, batch[seq].hash
    row = tx.row("SELECT prev_hash, hash FROM punches WHERE device_id = ? AND seq = ? AND chain <> 'fork'",
                 [device_id, seq])
    return (row["prev_hash"], row["hash"]) if row else None


def _classify_behind(tx: Tx, device_id: str, walk: ChainWalk, batch: dict[int, PunchIn]) -> None:
    """A record at or below the head either fills a known gap (late) or duplicates a seq (fork)."""
    gaps = [Gap(r["seq_from"], r["seq_to"], r["id"]) for r in tx.rows(
        "SELECT id, seq_from, seq_to FROM device_issues WHERE device_id = ? AND kind = 'gap' "
        "AND resolved_utc IS NULL", [device_id])] + walk.new_gaps
    for rec in walk.behind:
        gap = next((g for g in gaps if g.first <= rec.seq <= g.last), None)
        if gap is None:
            walk.status[rec.id] = "fork"
            walk.issues.append(("fork", rec.seq, rec.seq, f"a second, different punch {rec.id} has seq {rec.seq}: "
                                "the kiosk's store was restored or cloned"))
            continue
        walk.status[rec.id] = "late"
        gaps.remove(gap)
        if gap.issue_id is not None:
            walk.resolved_gaps.append(gap.issue_id)
        else:
            walk.new_gaps.remove(gap)
        for part in (Gap(gap.first, rec.seq - 1), Gap(rec.seq + 1, gap.last)):
            if part.first <= part.last:
                gaps.append(part)
                walk.new_gaps.append(part)
        batch[rec.seq] = rec
        before = _neighbour(tx, device_id, rec.seq - 1, batch)
        after = _neighbour(tx, device_id, rec.seq + 1, batch)
        if before is not None and before[1] != rec.prev_hash:
            walk.status[rec.id] = "break"
            walk.issues.append(("chain_break", rec.seq, rec.seq, f"late punch seq {rec.seq} does not link to "
                                f"seq {rec.seq - 1}"))
        if after is not None and after[0] != rec.hash:
            walk.issues.append(("chain_break", rec.seq + 1, rec.seq + 1, f"seq {rec.seq + 1} does not link to "
                                f"the late punch seq {rec.seq}"))
        elif after is not None:
            tx.run("UPDATE punches SET chain = 'ok' WHERE device_id = ? AND seq = ? AND chain = 'after_gap'",
                   [device_id, rec.seq + 1])


def _store_issues(tx: Tx, device_id: str, walk: ChainWalk) -> None:
    now = iso_utc(utc_now())
    for issue_id in walk.resolved_gaps:
        tx.run("UPDATE device_issues SET resolved_utc = ? WHERE id = ?", [now, issue_id])
    for gap in walk.new_gaps:
        count = gap.last - gap.first + 1
        add_issue(tx, device_id, "gap", gap.first, gap.last, f"{count} punch(es) not received")
    for kind, first, last, detail in walk.issues:
        add_issue(tx, device_id, kind, first, last, detail)


def verify_signatures(checked: Checked, key: DeviceKey | None) -> set[str]:
    """Check each valid record's signature against the device's key: a record unsigned or not signed by that
    key is rejected on its own (the rest of the batch goes on). A device registered without a key (before
    kiosks had them) is still heard; the ids of its records are returned, to be flagged ``unsigned``."""
    if key is None:
        return {rec.id for _, rec in checked.valid}
    kept = []
    for index, rec in checked.valid:
        if signature_valid(key.public_key, rec.hash, rec.signature):
            kept.append((index, rec))
            continue
        reason = (f"signature does not verify with this device's key {key.key_id}: the record was altered or "
                  "not signed by this kiosk" if rec.signature else
                  f"unsigned: this device registered signing key {key.key_id}, so each punch must carry its signature")
        checked.results[index] = PunchResult(id=rec.id, seq=rec.seq, status="rejected", reason=reason)
        checked.rejects.append((rec.id, rec.seq, reason, json.dumps(rec.model_dump())[:REJECT_BODY_MAX_CHARS]))
    checked.valid = kept
    return set()


def _row(hub_seq: int, device: Device, rec: PunchIn, now: str, chain: str, hub_flags: str,
         key: DeviceKey | None) -> tuple:
    values = {name: getattr(rec, name) for name in RECORD_COLUMNS}
    # A record without a direction, kind or author (an older kiosk) has PunchIn's defaults: "", "punch", "".
    values["direction"] = normal_direction(values["direction"])  # no direction is stored as NULL
    values["author"] = values["author"] or None
    signature, key_id = (rec.signature, key.key_id) if key is not None else ("", "")
    return (hub_seq, device.id, device.branch, *(values[name] for name in RECORD_COLUMNS), now, chain, hub_flags,
            signature, key_id)


def _clock_ahead(tx: Tx, device_id: str, new: list[PunchIn], now: str, max_ahead_s: float) -> set[str]:
    """Ids of punches dated more than ``max_ahead_s`` after the hub received them: the kiosk's clock is
    ahead (set by hand, no NTP/GPS). They are stored and flagged, and raised as one device issue."""
    received = parse_iso(now)
    ahead = {rec.id: (parse_iso(rec.ts_utc) - received).total_seconds() for rec in new}
    ahead = {ident: seconds for ident, seconds in ahead.items() if seconds > max_ahead_s}
    if ahead:
        seqs = [rec.seq for rec in new if rec.id in ahead]
        add_issue(tx, device_id, "clock_ahead", min(seqs), max(seqs),
                  f"{len(ahead)} punch(es) dated up to {max(ahead.values()) / 3600:.1f} h after the hub received "
                  "them: the kiosk's clock is ahead; the export flags them clock_ahead (check NTP/GPS on the kiosk)")
    return set(ahead)


ROSTER_FLAGS = ("not_on_roster", "unknown_employee")


def _roster_flags(tx: Tx, device: Device, new: list[PunchIn]) -> dict[str, str]:
    """Punches for someone the hub does not know (unknown_employee), or who is not an active member of the
    device's branch (not_on_roster): stored, flagged by punch id, and raised as one open device issue per
    person (an open one is widened, not repeated). A kiosk enrolment of that id resolves it
    (people.device_enrolment)."""
    ids = sorted({rec.employee_id for rec in new})
    where, params = tx.in_list("e.id", ids)
    known = {r["id"]: bool(r["member"]) for r in tx.rows(
        f"SELECT e.id, (e.active = 1 AND EXISTS (SELECT 1 FROM employee_branches b WHERE b.employee_id = e.id "
        f"AND b.branch = ? AND b.active = 1)) AS member FROM employees e WHERE {where}", [device.branch, *params])}
    flags = {}
    for employee_id in ids:
        if known.get(employee_id):
            continue
        kind = "not_on_roster" if employee_id in known else "unknown_employee"
        seqs = [rec.seq for rec in new if rec.employee_id == employee_id]
        flags.update({rec.id: kind for rec in new if rec.employee_id == employee_id})
        _person_issue(tx, device, kind, employee_id, min(seqs), max(seqs))
    return flags


def _person_issue(tx: Tx, device: Device, kind: str, employee_id: str, first: int, last: int) -> None:
    where = "device_id = ? AND kind = ? AND employee_id = ? AND resolved_utc IS NULL"
    open_issue = tx.row(f"SELECT id, seq_from, seq_to FROM device_issues WHERE {where}", [device.id, kind, employee_id])
    if open_issue is not None:
        tx.run("UPDATE device_issues SET seq_from = ?, seq_to = ? WHERE id = ?",
               [min(first, open_issue["seq_from"]), max(last, open_issue["seq_to"]), open_issue["id"]])
        return
    detail = (f"punches for {employee_id}, who is not on branch {device.branch}'s roster: stored and flagged "
              "not_on_roster (assign them to the branch, or check the kiosk)" if kind == "not_on_roster" else
              f"punches for {employee_id}, an id the hub does not know: stored and flagged unknown_employee "
              "(create the employee, or check the kiosk)")
    add_issue(tx, device.id, kind, first, last, detail, employee_id=employee_id)


def ingest(db: HubDb, device: Device, raw: list[Any], max_ahead_s: float, proof: str = "",
           extra_flags: dict[str, list[str]] | None = None,
           within: Callable[[Tx], None] | None = None) -> PunchBatchResponse:
    """Store a device's batch; every record gets accepted, duplicate or rejected (with a reason). A punch
    dated more than ``max_ahead_s`` (the hub's server.punch_max_ahead_s) after now is stored with hub flag
    clock_ahead and a device issue; one for a person not on the device's branch roster with not_on_roster
    or unknown_employee, and a device issue.
    ``proof``: for a device without a signing key whose records the caller proved otherwise (a field
    phone's WebAuthn assertion, sync/hub/field), the hub flag they carry instead of ``unsigned``.
    ``extra_flags``: punch id -> hub flags the caller found (a field punch's fraud signals), added after ours.
    ``within``: the caller's own checks and writes that belong with the new records (a field punch's assertion),
    run in the same transaction once the device's head is locked and only if there are new records to store;
    raising there stores nothing."""
    checked = check_records(raw)
    key = signing_key(db, device.id)
    unsigned = verify_signatures(checked, key)
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        head = tx.row("SELECT status, chain_seq, chain_hash FROM devices WHERE id = ?" + tx.for_update, [device.id])
        if head is None or head["status"] != "active":
            raise Unauthorized("this device was revoked", fix="Register the kiosk again with a new code.")
        new, duplicates = _dedupe(tx, device, checked)
        if new and within is not None:
            within(tx)
        new.sort(key=lambda rec: rec.seq)
        walk = walk_forward(head["chain_seq"], head["chain_hash"], new)
        if walk.behind:
            _classify_behind(tx, device.id, walk, {rec.seq: rec for rec in new if rec.id not in
                                                   {b.id for b in walk.behind}})
        if new:
            ahead = _clock_ahead(tx, device.id, new, now, max_ahead_s)
            roster = _roster_flags(tx, device, new)
            first = tx.next_values("punch", len(new))
            flagged = (("clock_ahead", ahead), (proof or "unsigned", unsigned),
                       *((kind, {ident for ident, found in roster.items() if found == kind}) for kind in ROSTER_FLAGS))
            extra = extra_flags or {}
            rows = [_row(first + i, device, rec, now, walk.status[rec.id],
                         ",".join([*(flag for flag, ids in flagged if rec.id in ids), *extra.get(rec.id, [])]), key)
                    for i, rec in enumerate(new)]
            tx.many(INSERT_PUNCH, rows)
            emit(tx, punch_events(tx, [dict(zip(PUNCH_COLUMNS, row, strict=True)) for row in rows]))
        _store_issues(tx, device.id, walk)
        if checked.rejects:
            _keep_rejects(tx, device.id, checked.rejects, now)
        tx.run("UPDATE devices SET chain_seq = ?, chain_hash = ?, punches = punches + ?, "
               "duplicates = duplicates + ?, rejected = rejected + ?, last_seen_utc = ? WHERE id = ?",
               [walk.seq, walk.hash, len(new), duplicates, len(checked.rejects), now, device.id])
    warnings = {rec.id: walk.status[rec.id] for rec in new if walk.status[rec.id] != "ok"}
    results = [res or PunchResult(id=rec.id, seq=rec.seq, status="accepted")
               for res, rec in zip(checked.results, _records_by_index(checked, raw), strict=True)]
    results = [r.model_copy(update={"reason": f"chain: {warnings[r.id]}"}) if r.id in warnings
               and r.status == "accepted" else r for r in results]
    return PunchBatchResponse(results=results, accepted=len(new), duplicates=duplicates,
                              rejected=len(checked.rejects), chain_seq=walk.seq)


def _records_by_index(checked: Checked, raw: list[Any]) -> list[PunchIn | None]:
    by_index: list[PunchIn | None] = [None] * len(raw)
    for index, rec in checked.valid:
        by_index[index] = rec
    return by_index
