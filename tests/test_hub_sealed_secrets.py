"""Webhook secrets are sealed with the hub key before they reach the database (SQLite and PostgreSQL):
the stored bytes hold no secret, deliveries still carry signatures the receiver verifies, old clear rows
are sealed by a migration, and a wrong or exposed key is refused with the fix."""

from __future__ import annotations

import base64
import json
import os
import random
import stat

import pytest
from outbound_support import FakeClock, Receiver, punches, register, upload
from sync_support import hub_config_data, start_hub

from kiosk.base.errors import ConfigError
from sync.hub.config import validate_hub_config
from sync.hub.db import hub_db
from sync.hub.db.sealed import SEALED_PREFIX
from sync.hub.outbound import events, queue
from sync.hub.outbound.config import OutboundConfig
from sync.hub.outbound.engine import DeliveryEngine
from sync.hub.outbound.webhooks import WebhookSender


@pytest.fixture
def config(hub_backend, tmp_path, request):
    data = hub_config_data(hub_backend, tmp_path, request)
    data["outbound"] = {"enabled": False}
    return validate_hub_config(data, "test", tmp_path)


def stored_text(db) -> str:
    """Every row of every hub table, as text (what a dump or a stolen backup would show)."""
    with db.transaction(write=False) as tx:
        if db.dialect == "sqlite":
            tables = [r["name"] for r in tx.rows("SELECT name FROM sqlite_master WHERE type = 'table'")]
        else:
            tables = [r["table_name"] for r in tx.rows(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
        return json.dumps([tx.rows(f"SELECT * FROM {t}") for t in tables], default=str)


def secret_forms(secret: str) -> list[bytes]:
    raw = base64.b64decode(secret.removeprefix("whsec_"))
    return [secret.encode(), secret.removeprefix("whsec_").encode(), raw]


def test_secrets_are_sealed_at_rest_and_still_sign(config, tmp_path) -> None:
    hub = start_hub(config)
    rec = Receiver([]).start()
    try:
        sub = queue.add_subscription(hub.db, "webhook", rec.url, [events.PUNCH_CREATED])
        fresh = queue.rotate_secret(hub.db, sub.id)
        live = [fresh, sub.secrets[0]]
        text = stored_text(hub.db)
        for secret in live:
            assert not any(form.decode("latin-1") in text for form in secret_forms(secret))
        assert SEALED_PREFIX in text
        if hub.db.dialect == "sqlite":
            files = b"".join(p.read_bytes() for p in tmp_path.glob("hub.db*"))
            assert files and not any(form in files for s in live for form in secret_forms(s))
        key_file = tmp_path / "hub.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        rec.secrets = [sub.secrets[0]]  # the receiver still has the old secret: both sign during a rotation
        upload(register(hub.url, hub.code()), punches(["E1", "E2"]))
        engine = DeliveryEngine(OutboundConfig(), hub.db, {"webhook": WebhookSender(5.0)}, clock=FakeClock(),
                                rng=random.Random(1))
        engine.clock.catch_up()
        for _ in range(10):
            if engine.run_once().attempted == 0:
                break
        # Order is kept per employee, not across them: both delivered, each once.
        assert sorted(e["subject"] for e in rec.accepted) == ["E1", "E2"] and rec.refused == []
        assert queue.subscriptions(hub.db)[sub.id].secrets == live
    finally:
        rec.stop()
        hub.hr.close()
        hub.server.stop()


def test_clear_secrets_of_an_older_hub_are_sealed_by_migration(config) -> None:
    legacy = "whsec_" + base64.b64encode(b"k" * 24).decode()
    with hub_db(config.database, migrate=True) as db:
        with db.transaction() as tx:  # as an older hub left it: the migration not run, the row in clear
            tx.run("DELETE FROM hub_migrations WHERE name = 'outbound_003_sealed_secrets'")
            tx.run("INSERT INTO outbound_subscriptions (id, kind, url, secrets, event_types, created_utc) "
                   "VALUES ('wh_old', 'webhook', 'http://127.0.0.1:9/x', ?, ?, '2026-01-01T00:00:00.000Z')",
                   [json.dumps([legacy]), json.dumps([events.PUNCH_CREATED])])
        assert db.migrate() == ["outbound_003_sealed_secrets"]
        assert legacy not in stored_text(db)
        assert queue.subscriptions(db)["wh_old"].secrets == [legacy]


def test_a_wrong_or_exposed_hub_key_is_refused_with_the_fix(config) -> None:
    with hub_db(config.database, migrate=True) as db:
        sub = queue.add_subscription(db, "webhook", "http://127.0.0.1:9/x", [events.PUNCH_CREATED])
        other = queue.add_subscription(db, "webhook", "http://127.0.0.1:9/y", [events.PUNCH_CREATED])
        with db.transaction() as tx:  # a sealed value copied into another row does not open there
            tx.run("UPDATE outbound_subscriptions SET secrets = (SELECT secrets FROM outbound_subscriptions "
                   "WHERE id = ?) WHERE id = ?", [sub.id, other.id])
        with pytest.raises(ConfigError, match=f"does not open outbound_subscriptions.secrets:{other.id}"):
            queue.subscriptions(db)
        queue.remove_subscription(db, other.id)
        assert queue.subscriptions(db)[sub.id].secrets == sub.secrets
    key_file = config.database.secrets_key_file
    os.chmod(key_file, 0o640)
    with hub_db(config.database) as db, pytest.raises(ConfigError, match="accessible by group or others") as exc:
        queue.subscriptions(db)
    assert "chmod 600" in exc.value.fix
    os.chmod(key_file, 0o600)
    key_file.write_text(os.urandom(32).hex() + "\n")
    with hub_db(config.database) as db, pytest.raises(ConfigError, match="does not open") as exc:
        queue.subscriptions(db)
    assert "same hub.key" in exc.value.fix
