"""The recogniser's model id remembered in the store: a start takes it from there while the file is unchanged,
and hashes the file again when it changed in any way (kiosk.face.pack ``recall_model_id``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from counting import record_calls

from kiosk.base.errors import ModelError
from kiosk.config import load_config
from kiosk.face import pack as packs
from kiosk.face.pack import MODEL_FILE_META, bundled_pack_dir, file_sha256, resolve_pack
from kiosk.store.database import open_store


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the pack code hashes, in order (the real hashing still runs)."""
    calls = record_calls(monkeypatch, packs, "file_sha256", keep=lambda path: path)
    monkeypatch.setattr(packs, "RACY_S", 0.0)  # files copied a moment ago count as settled (one test checks the rule)
    return calls


@pytest.fixture
def own_pack(kiosk_home: Path, tmp_path: Path) -> Path:
    """The kiosk home with a copy of the bundled detector and recogniser as its pack; returns the config path."""
    folder = tmp_path / "pack"
    folder.mkdir()
    bundled = bundled_pack_dir()
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        shutil.copyfile(bundled / name, folder / name)
    text = kiosk_home.read_text()
    assert "[face]" not in text, "kiosk init writes no [face] table"
    kiosk_home.write_text(f"{text}\n[face]\npack_dir = '{folder}'\n")
    return kiosk_home


def test_a_start_takes_the_model_id_from_the_store_while_the_file_is_unchanged(own_pack: Path, hashed) -> None:  # noqa: ANN001
    config = load_config(own_pack)
    recogniser = config.face.pack_dir / "w600k_mbf.onnx"
    with open_store(config) as store:
        first = resolve_pack(config.face, memory=store)
        assert hashed == [recogniser]
        assert first.model_id == file_sha256(recogniser)
        entry = json.loads(store.get_meta(MODEL_FILE_META))
        assert entry["model_id"] == first.model_id and entry["path"] == str(recogniser)
    hashed.clear()
    with open_store(config) as store:
        again = resolve_pack(config.face, memory=store)
        assert again.model_id == first.model_id
        assert hashed == [], "an unchanged recogniser file is not hashed again"


def test_a_recogniser_rewritten_in_place_with_its_size_and_times_put_back_is_hashed_again(own_pack: Path,
                                                                                          hashed) -> None:  # noqa: ANN001
    config = load_config(own_pack)
    recogniser = config.face.pack_dir / "w600k_mbf.onnx"
    with open_store(config) as store:
        before = resolve_pack(config.face, memory=store).model_id
    st = recogniser.stat()
    data = bytearray(recogniser.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    with recogniser.open("r+b") as fh:
        fh.write(data)
    os.utime(recogniser, ns=(st.st_atime_ns, st.st_mtime_ns))  # the modification time put back
    hashed.clear()
    with open_store(config) as store:
        after = resolve_pack(config.face, memory=store).model_id
        assert hashed == [recogniser]
        assert after != before and after == file_sha256(recogniser)
        assert json.loads(store.get_meta(MODEL_FILE_META))["model_id"] == after


def test_another_recogniser_file_or_a_damaged_entry_is_hashed_and_remembered_anew(own_pack: Path, hashed) -> None:  # noqa: ANN001
    config = load_config(own_pack)
    with open_store(config) as store:
        for value in ("not json", json.dumps({"model_id": "short"}), json.dumps(["a", "list"]),
                      json.dumps({"path": "/elsewhere/w600k_mbf.onnx", "identity": "1:2:3:4:5", "model_id": "0" * 64})):
            store.set_meta(MODEL_FILE_META, value)
            hashed.clear()
            pack = resolve_pack(config.face, memory=store)
            assert hashed == [pack.recognizer], value
            assert pack.model_id == file_sha256(pack.recognizer)
            assert json.loads(store.get_meta(MODEL_FILE_META))["model_id"] == pack.model_id


def test_a_file_changed_just_now_is_not_remembered(own_pack: Path, hashed, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(packs, "RACY_S", 3600.0)  # the copy was made well within the last hour
    config = load_config(own_pack)
    with open_store(config) as store:
        pack = resolve_pack(config.face, memory=store)
        assert pack.model_id == file_sha256(pack.recognizer)
        assert store.get_meta(MODEL_FILE_META) is None


def test_a_missing_recogniser_is_a_model_error_even_when_remembered(own_pack: Path, hashed) -> None:  # noqa: ANN001
    config = load_config(own_pack)
    with open_store(config) as store:
        resolve_pack(config.face, memory=store)
        pack = resolve_pack(config.face)  # found while the file was there
        pack.recognizer.unlink()
        with pytest.raises(ModelError, match="cannot read model file"):
            pack.recall_model_id(store)


def test_config_check_reads_the_remembered_id_and_writes_nothing(own_pack: Path, hashed, invoke) -> None:  # noqa: ANN001
    config = load_config(own_pack)
    result = invoke("config", "check", str(own_pack))
    assert result.exit_code == 0, result.output
    assert len(hashed) == 1 and "0 employee(s)" in result.output
    with open_store(config) as store:
        assert store.get_meta(MODEL_FILE_META) is None, "config check leaves the store as it was"
        resolve_pack(config.face, memory=store)  # what the daemon does at its start
    hashed.clear()
    result = invoke("config", "check", str(own_pack))
    assert result.exit_code == 0, result.output
    assert hashed == [] and "0 employee(s)" in result.output


def test_a_store_that_cannot_take_the_model_id_costs_only_the_saving(own_pack: Path, hashed,  # noqa: ANN001
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(own_pack, ["store.busy_timeout_s=0.2"])
    with open_store(config) as writer, open_store(config) as store:
        writer.conn.execute("BEGIN IMMEDIATE")  # another process holds the store's write lock
        try:
            pack = resolve_pack(config.face, memory=store)
        finally:
            writer.conn.execute("ROLLBACK")
        assert pack.model_id == file_sha256(pack.recognizer) and hashed == [pack.recognizer]
        assert f"model id {pack.model_id[:12]} not remembered" in caplog.text
        assert store.get_meta(MODEL_FILE_META) is None
