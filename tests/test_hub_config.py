"""The hub's config: the example file is valid and documents every key; mistakes are named."""

from __future__ import annotations

from conftest import REPO
from sync.hub.config import HubConfig, load_hub_config


def _walk(model: type, prefix: str = ""):
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}", field
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            yield from _walk(ann, f"{prefix}{name}.")


def test_the_example_is_valid_and_documents_every_key() -> None:
    path = REPO / "config/hub.example.toml"
    config = load_hub_config(path)
    assert config.server.port == 8750 and config.database.sqlite_path == path.parent / "hub.db"
    text = path.read_text()
    missing_desc = [p for p, f in _walk(HubConfig) if not (f.description or "").strip()]
    assert missing_desc == []
    leaves = [p for p, f in _walk(HubConfig) if not hasattr(f.annotation, "model_fields")]
    undocumented = [p for p in leaves if f"{p.rsplit('.', 1)[-1]} =" not in text]
    assert undocumented == []


def test_hub_config_mistakes_are_listed_with_key_and_fix(tmp_path, invoke) -> None:
    bad = tmp_path / "hub.toml"
    bad.write_text('[server]\nport = 70000\nworkerz = 2\n[database]\nbackend = "oracle"\n')
    result = invoke("hub", "migrate", "--config", str(bad))
    assert result.exit_code == 1
    for key in ("server.port", "server.workerz", "database.backend"):
        assert key in result.output
    assert "hub.example.toml" in result.output
    sqlite_many = tmp_path / "many.toml"
    sqlite_many.write_text("[server]\nworkers = 2\nport = 0\n")
    result = invoke("hub", "serve", "--config", str(sqlite_many))
    assert result.exit_code == 1 and "needs database.backend = 'postgres'" in result.output


def test_hub_init_and_serve_mistakes_are_sentences(tmp_path, invoke) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("hub", "init", str(blocker / "hub"))
    assert result.exit_code == 1 and "cannot create the hub" in result.output and "what to do:" in result.output
    bad_port = invoke("hub", "init", str(tmp_path / "h1"), "--port", "99999")
    assert bad_port.exit_code == 2 and "99999" in bad_port.output
    assert not (tmp_path / "h1" / "hub.toml").exists()
    bad_host = invoke("hub", "init", str(tmp_path / "h2"), "--host", 'a"b')
    assert bad_host.exit_code == 1
    assert not (tmp_path / "h2" / "hub.toml").exists()  # so the next `kiosk hub init` is not refused
    assert invoke("hub", "init", str(tmp_path / "h2")).exit_code == 0
    config = str(tmp_path / "h2" / "hub.toml")
    serve = invoke("hub", "serve", "--config", config, "--port", "99999")
    assert serve.exit_code == 2 and "99999" in serve.output
    not_here = invoke("hub", "serve", "--config", config, "--host", "192.0.2.1", "--port", "0")
    assert not_here.exit_code == 1 and "cannot listen on 192.0.2.1" in not_here.output
    assert "--host" in not_here.output and "another --port" not in not_here.output
    missing = invoke("hub", "device", "add", "--branch", "B001", "--config", str(tmp_path / "absent.toml"))
    assert missing.exit_code == 1 and "kiosk hub init DIR" in missing.output
