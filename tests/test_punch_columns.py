"""The punch's columns are defined once (kiosk.base.record.PUNCH_FIELDS); every table and form is checked
against it, so a column added to the record cannot be forgotten in one place."""

from __future__ import annotations

from kiosk.base.record import PUNCH_FIELDS, Punch
from sync.hub.export import EXPORT_COLUMNS
from sync.hub.ingest import PUNCH_COLUMNS
from sync.protocol import PunchIn


def test_kiosk_table_holds_exactly_the_record(fresh_store) -> None:
    columns = {row["name"] for row in fresh_store.query("SELECT name FROM pragma_table_info('punches')")}
    assert columns == set(PUNCH_FIELDS)


def test_wire_model_is_the_record_and_its_signature(fresh_store) -> None:
    # The signature signs the record's hash: it travels with the record, outside what is hashed.
    assert tuple(PunchIn.model_fields) == (*PUNCH_FIELDS, "signature")
    fresh_store.roster.add("E1", "Wang Li")
    from kiosk.store.punches import PunchDraft
    punch = fresh_store.punches.append(PunchDraft("E1", "card", "verified", flags="no_gps_fix", note="n"))
    wire = PunchIn.model_validate(punch.to_dict())
    assert wire.hash_matches() and Punch(**wire.model_dump(exclude={"signature"})) == punch


def test_hub_table_and_export_hold_the_record(hub) -> None:
    with hub.server.db.transaction(write=False) as tx:
        if tx.dialect == "postgres":
            rows = tx.rows("SELECT column_name AS name FROM information_schema.columns "
                           "WHERE table_name = 'punches' AND table_schema = current_schema()")
        else:
            rows = tx.rows("SELECT name FROM pragma_table_info('punches')")
    assert {r["name"] for r in rows} == set(PUNCH_COLUMNS)
    assert set(PUNCH_FIELDS) <= set(PUNCH_COLUMNS) and set(PUNCH_FIELDS) <= set(EXPORT_COLUMNS)
    assert {"signature", "key_id", "device_id", "hash"} <= set(EXPORT_COLUMNS)
