"""The store on disk is encrypted, keyed strictly, and refuses what is not ours, cleanly."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from conftest import run_kiosk
from kiosk.base.errors import KeyMaterialError, StoreError
from kiosk.config import load_config
from kiosk.store import Store, open_store
from kiosk.store.keys import DbKey, parse_key, resolve_key
from kiosk.store.punches import PunchDraft

NAME = "Zhang Wei Secretname"


def _fill(config_path: Path) -> Path:
    config = load_config(config_path)
    with open_store(config) as store:
        store.roster.add("E001", NAME, cards=("0012345678",))
        for _ in range(20):
            store.punches.append(PunchDraft("E001", "card", "verified", note="morning"))
    return config.store.path


def test_file_holds_no_plaintext(kiosk_home: Path) -> None:
    db_path = _fill(kiosk_home)
    for path in (db_path, Path(f"{db_path}-wal")):
        if path.exists():
            data = path.read_bytes()
            assert b"SQLite format 3" not in data
            assert NAME.encode() not in data and b"Secretname" not in data
            assert b"0012345678" not in data


def test_plain_sqlite_cannot_read_it(kiosk_home: Path) -> None:
    db_path = _fill(kiosk_home)
    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("SELECT * FROM punches").fetchall()
    conn.close()


def test_wrong_key_is_refused_cleanly(kiosk_home: Path, invoke) -> None:
    db_path = _fill(kiosk_home)
    before = db_path.read_bytes()
    with pytest.raises(StoreError) as err:
        Store.open(db_path, DbKey(b"\x01" * 32, "test"))
    assert "cannot be decrypted" in err.value.what and err.value.fix
    # The config names a key file; point it at another valid key.
    wrong = kiosk_home.parent / "wrong.key"
    invoke("db", "keygen", "--out", str(wrong))
    result = invoke("db", "stats", "--config", str(kiosk_home), "--set", f"store.key_file={str(wrong)!r}")
    assert result.exit_code == 3
    assert "cannot be decrypted" in result.output and "Traceback" not in result.output
    assert db_path.read_bytes() == before
    proc = run_kiosk("db", "stats", "--config", str(kiosk_home), "--set", f"store.key_file={str(wrong)!r}")
    assert proc.returncode == 3 and proc.stderr.startswith("error: ")
    assert "hmac check failed" not in proc.stderr, "SQLCipher's own log lines are not for the operator"


def test_plain_sqlite_file_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="plain, unencrypted SQLite file"):
        Store.open(path, DbKey(os.urandom(32), "test"))


def test_truncated_file_is_reported(kiosk_home: Path) -> None:
    db_path = _fill(kiosk_home)
    config = load_config(kiosk_home)
    with open_store(config):
        pass  # close checkpoints the WAL into the main file
    data = db_path.read_bytes()
    db_path.write_bytes(data[:500])
    with pytest.raises(StoreError, match="too short"):
        open_store(config)
    db_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError) as err:
        store = open_store(config)
        store.punches.verify()
    assert err.value.fix


def test_missing_store_and_missing_folder(tmp_path: Path) -> None:
    key = DbKey(os.urandom(32), "test")
    with pytest.raises(StoreError, match="no kiosk store"):
        Store.open(tmp_path / "absent.db", key)
    assert not (tmp_path / "absent.db").exists()
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "nofolder" / "k.db", key, create=True)


def test_key_file_must_be_private(kiosk_home: Path) -> None:
    key_file = kiosk_home.parent / "kiosk-db.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        resolve_key(key_file)


def test_key_file_that_is_a_folder_is_named(kiosk_home: Path, invoke) -> None:
    folder = kiosk_home.parent / "keys"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeyMaterialError, match="is a folder"):
        resolve_key(folder)
    result = invoke("employee", "list", "--config", str(kiosk_home), "--set", f"store.key_file={str(folder)!r}")
    assert result.exit_code == 1
    assert "is a folder, not a key file" in result.output and "Traceback" not in result.output


def test_key_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cred_dir = tmp_path / "creds"
    cred_dir.mkdir()
    (cred_dir / "kiosk-db-key").write_text("11" * 32)
    key_file = tmp_path / "k.key"
    key_file.write_text("22" * 32)
    key_file.chmod(0o600)
    monkeypatch.setenv("KIOSK_DB_KEY", "33" * 32)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(cred_dir))
    assert resolve_key(key_file).raw == b"\x11" * 32
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert resolve_key(key_file).raw == b"\x22" * 32
    assert resolve_key(None).raw == b"\x33" * 32
    monkeypatch.delenv("KIOSK_DB_KEY")
    with pytest.raises(KeyMaterialError, match="no database key"):
        resolve_key(None)


@pytest.mark.parametrize("text", ["", "zz" * 32, "ab" * 31, "ab" * 33])
def test_malformed_keys_are_refused(text: str) -> None:
    with pytest.raises(KeyMaterialError, match="64 hex digits"):
        parse_key(text, "test")


def test_rekey(kiosk_home: Path, invoke) -> None:
    db_path = _fill(kiosk_home)
    new_key = kiosk_home.parent / "new.key"
    assert invoke("db", "keygen", "--out", str(new_key)).exit_code == 0
    result = invoke("db", "rekey", "--new-key-file", str(new_key), "--config", str(kiosk_home))
    assert result.exit_code == 0, result.output
    assert invoke("db", "stats", "--config", str(kiosk_home)).exit_code == 3
    ok = invoke("db", "verify", "--config", str(kiosk_home), "--set", f"store.key_file={str(new_key)!r}")
    assert ok.exit_code == 0 and "20 punches" in ok.output
    assert b"SQLite format 3" not in db_path.read_bytes()
