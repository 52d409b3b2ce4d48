"""The hub at rest: its SQLite files are private, and an erased face template leaves no bytes behind in
hub.db or hub.db-wal (secure_delete + WAL checkpoint); on PostgreSQL the table is vacuumed after an erase."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
from sync_support import CONSENT, TEST_DIM, TEST_MODEL
from test_hub_api import register
from waiting import wait_for

EMPLOYEE = {"employee_id": "E7", "name": "Leaver", "branches": ["B001"], "consent": CONSENT}


def template(seed: int) -> tuple[list[float], bytes]:
    """A template as HR posts it, and the bytes the hub stores (little-endian float32)."""
    vec = np.random.default_rng(seed).normal(size=TEST_DIM)
    vec /= np.linalg.norm(vec)
    return vec.tolist(), vec.astype("<f4").tobytes()


def on_disk(db_path: Path) -> bytes:
    """hub.db and hub.db-wal as raw bytes, as someone who copies the files would read them."""
    return b"".join(p.read_bytes() for p in (db_path, db_path.with_name(db_path.name + "-wal")) if p.exists())


def holds(raw: bytes, vector: bytes) -> bool:
    """Whether any 32-byte stretch of the template (8 of its floats) is in ``raw``."""
    return any(vector[i:i + 32] in raw for i in range(0, len(vector) - 32, 32))


def test_hub_init_creates_its_database_private(tmp_path: Path, invoke) -> None:
    assert invoke("hub", "init", str(tmp_path / "hub")).exit_code == 0
    files = [p for p in (tmp_path / "hub").iterdir() if p.name.startswith("hub.db")]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), \
        {p.name: oct(p.stat().st_mode) for p in files}


def test_an_erased_template_is_gone_from_the_hubs_files(hub, hub_backend: str) -> None:
    """The reported leak: after terminate, the template bytes stayed in hub.db-wal."""
    register(hub).close()  # a kiosk of the branch runs TEST_MODEL
    first, first_bytes = template(71)
    second, second_bytes = template(72)
    created = hub.hr.post("/v1/hr/employees", json={**EMPLOYEE, "templates": [{"model_id": TEST_MODEL,
                                                                                "vector": first}]})
    assert created.status_code == 201, created.text
    if hub_backend == "sqlite":
        path = hub.server.config.database.sqlite_path
        assert holds(on_disk(path), first_bytes)  # the test can see a template where it is
        for name in ("hub.db", "hub.db-wal", "hub.db-shm"):
            assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
    replaced = hub.hr.patch("/v1/hr/employees/E7", json={"replace_templates": True, "templates": [
        {"model_id": TEST_MODEL, "vector": second}]})
    assert replaced.status_code == 200 and replaced.json()["templates"] == {TEST_MODEL: 1}
    if hub_backend == "sqlite":
        raw = on_disk(path)
        assert not holds(raw, first_bytes) and holds(raw, second_bytes)
    gone = hub.hr.post("/v1/hr/employees/E7/terminate", json={"reason": "left"})
    assert gone.status_code == 200 and gone.json()["templates"] == {}
    if hub_backend == "sqlite":
        assert not holds(on_disk(path), second_bytes)
    else:
        with hub.db.transaction() as tx:
            assert tx.rows("SELECT count(*) AS n FROM templates")[0]["n"] == 0

        def vacuumed() -> bool:
            with hub.db.transaction() as tx:
                row = tx.row("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'templates' "
                             "AND schemaname = current_schema()")
            return row is not None and row["vacuum_count"] >= 2  # after the replace and after the terminate

        wait_for(vacuumed, 30, what="VACUUM of the templates table after each erase")
