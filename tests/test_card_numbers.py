"""A card number is one id on every way in: typed at the CLI or the screen, in an import CSV, from the
hub's roster, or read by a reader — normalised by one function, the one the readers' ids come from."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_support import start_daemon

from hardware.rfid_protocols import (
    canonical_card,
    encode_em4100,
    encode_wiegand26,
    format_card,
    make_decoder,
)
from kiosk.base.errors import InvalidInput
from kiosk.config import load_config
from kiosk.store import open_store
from kiosk.store.roster import normalise_card
from kiosk.store.syncstate import SyncState
from sync.protocol import RosterEmployee, RosterPage
from sync.rosterapply import RosterReport, apply_page

CARD = 8075634  # printed on the fob as 0008075634 and as 123,14706; EM4100 id 6F007B3972 (version 0x6F)


def read_by(protocol: str, line_format: str = "dec") -> list:
    """The decoded frames a reader of ``protocol`` produces for CARD, through the readers' own decoder."""
    decoder = make_decoder(protocol, line_format)
    if protocol == "em4100":
        return decoder.feed(encode_em4100(CARD, version=0x6F))
    if protocol == "wiegand":
        return decoder.feed((encode_wiegand26(CARD >> 16, CARD & 0xFFFF) + "\r\n").encode())
    text = f"{CARD:010d}" if line_format == "dec" else f"{0x6F << 32 | CARD:010X}"
    return decoder.feed((text + "\r\n").encode())


@pytest.mark.parametrize("typed", ["0008075634", "8075634", "6F007B3972", "6f:00:7b:39:72", "0x7B3972",
                                   "123,14706", " 0008 0756 34 "])
@pytest.mark.parametrize("reader", [("em4100", "dec"), ("line", "dec"), ("line", "hex")])
@pytest.mark.parametrize("card_format", ["dec10", "fc_card"])
def test_every_typed_form_is_the_id_the_reader_reports(typed: str, reader: tuple[str, str], card_format: str) -> None:
    (decoded,) = read_by(*reader)
    assert canonical_card(typed, card_format) == format_card(decoded, card_format)


@pytest.mark.parametrize("card_format", ["dec10", "hex10", "fc_card"])
def test_a_stored_id_reads_back_as_itself(card_format: str) -> None:
    for reader in (("em4100", "dec"), ("line", "hex"), ("wiegand", "dec")):
        (decoded,) = read_by(*reader)
        stored = format_card(decoded, card_format)
        assert normalise_card(stored, card_format) == stored


def test_hex10_takes_only_the_ten_hex_digits_the_reader_shows() -> None:
    (decoded,) = read_by("em4100")
    assert normalise_card("6f007b3972", "hex10") == format_card(decoded, "hex10") == "6F007B3972"
    with pytest.raises(InvalidInput) as refused:
        normalise_card("8075634", "hex10")  # the printed decimal lacks the version byte the reader keeps
    assert "10 hex digits as the reader shows them" in refused.value.what


@pytest.mark.parametrize("bad", ["12!", "E 7", "", "12", "1,2,3", "99999,1", "0x", "12345678901234567890123"])
def test_what_cannot_be_a_card_is_refused_naming_the_accepted_forms(bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_card(bad, "dec10")
    assert "decimal number printed on the card" in refused.value.what and "facility,number" in refused.value.what
    assert "rfid.card_format = 'dec10'" in refused.value.fix


def test_cli_stores_the_readers_form_and_refuses_with_the_forms(kiosk_home: Path, invoke) -> None:
    cfg = ("--config", str(kiosk_home))
    added = invoke("employee", "add", "X1", "--name", "Wang Li", "--card", "4000", *cfg)
    assert added.exit_code == 0 and "cards: 0000004000" in added.output
    assert invoke("employee", "add-card", "X1", "123,14706", *cfg).output.startswith("card 0008075634 ")
    refused = invoke("employee", "add", "X2", "--name", "Li Na", "--card", "40O0", *cfg)
    assert refused.exit_code == 1 and "facility,number (e.g. 123,14706)" in refused.output
    assert invoke("employee", "remove-card", "0x0FA0", *cfg).exit_code == 0  # the same card, written otherwise
    with open_store(load_config(kiosk_home)) as store:
        assert store.roster.get("X1").cards == ("0008075634",)


def test_a_card_added_as_printed_punches_at_the_reader(kiosk_home: Path, invoke) -> None:
    """The reported bug: added as 4000, presented as 0000004000 by a dec10 reader, was unknown_card."""
    added = invoke("employee", "add", "X1", "--name", "Wang Li", "--card", "4000", "--config", str(kiosk_home))
    assert added.exit_code == 0
    daemon = start_daemon(kiosk_home, "rfid.port='fake:?cards=0000004000&every_s=0.5&repeats=1'",
                          "events.stdout_json=true")
    try:
        decided = daemon.wait_events(
            lambda events: next((e for e in events if e["kind"] in ("punched", "unknown_card")), None),
            60, "the card's first presentation")
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert decided["kind"] == "punched" and decided["employee_id"] == "X1" and decided["method"] == "card"


def test_cards_typed_before_normalisation_are_rewritten_when_the_kiosk_starts(fresh_store) -> None:
    fresh_store.roster.add("X1", "Wang Li")
    with fresh_store.atomic() as db:  # as an older version stored it
        db.execute("INSERT INTO cards (card_id, employee_id, created_utc) VALUES ('4000', 'X1', '2026-01-01')")
    assert fresh_store.roster.by_card("0000004000") is None
    assert fresh_store.roster.renormalise_cards() == 1
    assert fresh_store.roster.by_card("0000004000").id == "X1"
    assert fresh_store.roster.renormalise_cards() == 0


def test_the_hubs_roster_is_normalised_and_a_bad_card_skipped(fresh_store) -> None:
    page = RosterPage(cursor=1, more=False, employees=[
        RosterEmployee(employee_id="H1", name="Zhao Min", cards=["4000", "ABCDEF0123456789ABCD"], templates=[]),
        RosterEmployee(employee_id="H2", name="Qian Jun", cards=["123,14706"], templates=[]),
    ], deletions=[])
    apply_page(fresh_store, SyncState(fresh_store), page, "B001", None, RosterReport())
    assert fresh_store.roster.get("H1").cards == ("0000004000",)
    assert fresh_store.roster.get("H2").cards == ("0008075634",)
