"""HR's punches: the cursor feed (every punch once, in hub order) and payroll files (CSV, XLSX) with
names and local dates and times, both read through one filtered query."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from kiosk.base.errors import InvalidInput
from kiosk.base.text import csv_cell
from kiosk.base.timeutil import iso_utc, parse_iso
from kiosk.time.correction import corrected_utc
from sync.hub.branches import Zones, zones
from sync.hub.db.base import HubDb, Tx
from sync.hub.ingest import RECORD_COLUMNS

_STORED = ("id", "device_id", "branch", *(name for name in RECORD_COLUMNS if name != "id"), "received_utc", "chain",
           "hub_flags", "signature", "key_id")
EXPORT_COLUMNS = ("cursor", *_STORED, "name", "corrected_ts_utc", "local_date", "local_time", "timezone")
"""HR's columns: the hub cursor, the punch as stored (kiosk.base.record.PUNCH_FIELDS with its device and
branch, direction and kind, and the author of a correction), how the hub saw it (chain, hub_flags such as
clock_ahead or unsigned), the device's signature of the hash and its key id, the employee's name, the
corrected time of an unverified punch, and the local date and time in the branch's time zone."""
_PAYROLL_MAIN = ("employee_id", "name", "branch", "local_date", "local_time", "timezone", "direction", "method",
                 "kind", "flags", "hub_flags", "clock_state", "score", "note", "author", "device_id", "ts_utc",
                 "corrected_ts_utc", "id")
PAYROLL_COLUMNS = (*_PAYROLL_MAIN, *(name for name in _STORED if name not in (*_PAYROLL_MAIN, "received_utc", "chain")))
"""What payroll reads first, then the rest of the record as the kiosk hashed it, the hash, the device's
signature and key id: enough for `kiosk hub verify-export` to check every row of the file offline."""
XLSX_TEXT = ("mono_ns",)
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Rows are picked by their recorded UTC time widened by this much, then exactly by local date or
# corrected time: time zones span 26 h, and an unverified kiosk clock may be off.
PREFILTER_SLACK = timedelta(days=2)
_SELECT = (f"SELECT p.hub_seq AS cursor, {', '.join('p.' + name for name in _STORED)}, e.name "
           "FROM punches p LEFT JOIN employees e ON e.id = p.employee_id")


Bound = date | datetime


def parse_bound(text: str | None, name: str) -> Bound | None:
    """``from``/``to``: a local date (2026-11-01, in each branch's time zone) or an ISO instant."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        return date.fromisoformat(text) if DATE_RE.match(text) else parse_iso(text)
    except ValueError:
        raise InvalidInput(f"{name}={text!r} is neither a date nor an ISO time",
                           fix=f"Use e.g. {name}=2026-11-01 (a local date) or {name}=2026-11-01T08:00:00+08:00.") \
            from None


@dataclass
class PunchFilter:
    """Which punches: after (or, newest first, before) a cursor, in a time range, of some people and kinds."""

    cursor: int = 0
    newest_first: bool = False
    start: Bound | None = None
    end: Bound | None = None  # a date is inclusive, an instant exclusive
    employee_id: str | None = None
    branches: list[str] | None = None
    method: str | None = None
    direction: str | None = None
    kind: str | None = None
    flag: str | None = None

    def sql(self, tx: Tx) -> tuple[str, list[Any]]:
        if self.newest_first:
            where, params = (["p.hub_seq < ?"], [self.cursor]) if self.cursor else ([], [])
        else:
            where, params = ["p.hub_seq > ?"], [self.cursor]
        for column, value in (("p.employee_id", self.employee_id), ("p.method", self.method),
                              ("p.direction", self.direction), ("p.kind", self.kind)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if self.flag:  # the kiosk's flags or the hub's
            where.append("((',' || p.flags || ',') LIKE ? OR (',' || p.hub_flags || ',') LIKE ?)")
            params += [f"%,{self.flag},%"] * 2
        if self.branches is not None:
            cond, values = tx.in_list("p.branch", self.branches)
            where.append(cond)
            params += values
        lower, upper = self._utc_window()
        if lower:
            where.append("p.ts_utc >= ?")
            params.append(lower)
        if upper:
            where.append("p.ts_utc < ?")
            params.append(upper)
        return (" WHERE " + " AND ".join(where) if where else ""), params

    def _utc_window(self) -> tuple[str | None, str | None]:
        def moment(bound: Bound, day_end: bool) -> datetime:
            if isinstance(bound, datetime):
                return bound
            return datetime.combine(bound + timedelta(days=1 if day_end else 0), time(0), tzinfo=UTC)
        lower = iso_utc(moment(self.start, False) - PREFILTER_SLACK) if self.start else None
        upper = iso_utc(moment(self.end, True) + PREFILTER_SLACK) if self.end else None
        return lower, upper

    def keeps(self, row: dict[str, Any]) -> bool:
        """The exact range check, on the local date or the corrected instant."""
        when = parse_iso(row["corrected_ts_utc"] or row["ts_utc"])
        for bound, is_start in ((self.start, True), (self.end, False)):
            if bound is None:
                continue
            if isinstance(bound, datetime):
                if (when < bound) if is_start else (when >= bound):
                    return False
            elif (row["_local"].date() < bound) if is_start else (row["_local"].date() > bound):
                return False
        return True


def corrected_times(tx: Tx, rows: list[dict[str, Any]]) -> None:
    """``corrected_ts_utc``: a verified punch's own time, or an unverified punch's true time from the
    nearest clock anchor of the same device and boot (None while no anchor of that boot is known)."""
    boots = {(r["device_id"], r["boot_id"]) for r in rows if r["clock_state"] != "verified"}
    anchors: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for device_id, boot in boots:
        anchors[(device_id, boot)] = tx.rows("SELECT boot_id, mono_ns, utc FROM clock_anchors "
                                             "WHERE device_id = ? AND boot_id = ?", [device_id, boot])
    for row in rows:
        if row["clock_state"] == "verified":
            row["corrected_ts_utc"] = row["ts_utc"]
            continue
        fixed = corrected_utc(row["mono_ns"], row["boot_id"], anchors.get((row["device_id"], row["boot_id"]), []))
        row["corrected_ts_utc"] = iso_utc(fixed) if fixed is not None else None


def _localise(rows: list[dict[str, Any]], zone_map: Zones) -> None:
    for row in rows:
        local = zone_map.local(row["corrected_ts_utc"] or row["ts_utc"], row["branch"])
        row["_local"] = local
        row["local_date"] = local.date().isoformat()
        row["local_time"] = local.strftime("%H:%M:%S")
        row["timezone"] = str(zone_map.of(row["branch"]))
        row["kind"] = row["kind"] or "punch"


def query(db: HubDb, flt: PunchFilter, limit: int, default_tz: str) -> tuple[list[dict[str, Any]], int, bool]:
    """Matching punches (hub order, or newest first), at most ``limit``; also the cursor scanned up to
    and whether more may follow. Each row has the employee's name and its local date and time."""
    out: list[dict[str, Any]] = []
    cursor, more = flt.cursor, True
    with db.transaction(write=False) as tx:
        zone_map = zones(tx, default_tz)
        while more and len(out) < limit:
            where, params = PunchFilter(**{**flt.__dict__, "cursor": cursor}).sql(tx)
            order = "DESC" if flt.newest_first else "ASC"
            page = tx.rows(f"{_SELECT}{where} ORDER BY p.hub_seq {order} LIMIT ?", [*params, limit - len(out)])
            more = len(page) == limit - len(out)
            if not page:
                break
            cursor = page[-1]["cursor"]
            corrected_times(tx, page)
            _localise(page, zone_map)
            out += [row for row in page if flt.keeps(row)]
    for row in out:
        row.pop("_local", None)
    return out, cursor, more


def punches_since(db: HubDb, cursor: int, limit: int, branch: str | None = None,
                  default_tz: str = "UTC") -> list[dict[str, Any]]:
    """Punches with a hub cursor above ``cursor`` (oldest first), at most ``limit``."""
    rows, _, _ = query(db, PunchFilter(cursor=cursor, branches=[branch] if branch else None), limit, default_tz)
    return rows


def as_json_lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps({k: row.get(k) for k in EXPORT_COLUMNS}, ensure_ascii=False) + "\n" for row in rows)


def as_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = EXPORT_COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: csv_cell(row.get(k)) for k in columns} for row in rows)
    return out.getvalue()


def as_xlsx(rows: list[dict[str, Any]], columns: tuple[str, ...] = PAYROLL_COLUMNS) -> bytes:
    """One sheet, a header row, local date and time as real Excel date and time cells."""
    from openpyxl import Workbook
    book = Workbook(write_only=True)
    sheet = book.create_sheet("punches")
    sheet.append(list(columns))
    for row in rows:
        cells = []
        for name in columns:
            value = row.get(name)
            if name == "local_date" and value:
                value = date.fromisoformat(value)
            elif name == "local_time" and value:
                value = time.fromisoformat(value)
            elif name in XLSX_TEXT and value is not None:
                value = str(value)  # beyond 15 digits a spreadsheet would round it, and the row would not verify
            cells.append(value)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def payroll(db: HubDb, flt: PunchFilter, max_rows: int, default_tz: str) -> list[dict[str, Any]]:
    """Every matching punch for a payroll file, ordered by branch, person and time."""
    rows, _, _ = query(db, flt, max_rows + 1, default_tz)
    if len(rows) > max_rows:
        raise InvalidInput(f"more than {max_rows} punches match; the export is limited to that",
                           fix="Narrow the date range or choose a branch.")
    rows.sort(key=lambda r: (r["branch"], r["employee_id"], r["corrected_ts_utc"] or r["ts_utc"]))
    return rows


def count_punches(db: HubDb) -> int:
    with db.transaction(write=False) as tx:
        return int(tx.row("SELECT count(*) AS n FROM punches")["n"])
