"""The real hub process killed mid-batch and restarted, several workers on one PostgreSQL, and the CLI flow."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from sync_support import hub_config_data, restart_port
from waiting import wait_for

from kiosk.tools.localhub import HubProcess
from sync.errors import HubUnreachable


def write_hub_toml(path: Path, data: dict) -> Path:
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def hr_client(url: str, config: Path, invoke) -> httpx.Client:
    result = invoke("hub", "token", "create", "--role", "hr", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    token = json.loads(result.stdout.splitlines()[0])["token"]
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def export_all(hr: httpx.Client) -> list[dict]:
    rows, since = [], 0
    while True:
        resp = hr.get("/v1/hr/punches", params={"since": since})
        rows += [json.loads(line) for line in resp.text.splitlines()]
        since = int(resp.headers["X-Next-Cursor"])
        if resp.headers["X-More"] != "true":
            return rows


def drain(agent, done: threading.Event, errors: list[str]) -> None:
    """What `kiosk sync run` does while the hub is flapping: push, back off briefly, push again."""
    while not done.is_set():
        try:
            agent.push()
        except HubUnreachable as exc:
            errors.append(exc.what)
            done.wait(0.05)  # the agent's own pause between tries (a short backoff), not a test wait
            continue
        if agent.state.backlog() == 0:
            return


def hire(db, employee_id: str, branch: str = "B001") -> None:  # noqa: ANN001
    """A card-only person on the branch's roster, so their punches carry no roster flag or issue."""
    from sync.hub import people
    from sync.protocol import EmployeeIn
    people.create_employee(db, EmployeeIn(employee_id=employee_id, name="Person", branches=[branch]),
                           people.Templates([], 0, [], []))


def test_hub_killed_mid_batch_and_restarted_loses_and_duplicates_nothing(hub_backend, tmp_path, request,
                                                                          make_kiosk, invoke) -> None:
    config = write_hub_toml(tmp_path / "hub.toml", hub_config_data(hub_backend, tmp_path, request))
    hub = HubProcess(config, port=restart_port(), log_path=tmp_path / "hub.log")  # restarted below
    with hub:
        from sync.hub import devices
        from sync.hub.config import load_hub_config
        from sync.hub.db import hub_db
        with hub_db(load_hub_config(config).database) as db:
            code = devices.create_code(db, "B001", 1)["code"]
            hire(db, "E1")
        kiosk = make_kiosk(sync={"batch_size": 250})
        kiosk.agent.register(hub.url, code)
        kiosk.punch("E1", 6000)
        done, errors = threading.Event(), []
        pusher = threading.Thread(target=drain, args=(kiosk.agent, done, errors), name="pusher")
        pusher.start()
        try:
            wait_for(lambda: kiosk.agent.state.get_int("push_seq") >= 1500, timeout_s=120, interval_s=0.005,
                     what="a quarter of the punches at the hub")
            hub.kill()  # SIGKILL while the agent has a batch in flight
            wait_for(lambda: errors, timeout_s=120, what="the agent seeing the hub go away")
            hub.start()
            pusher.join(timeout=300)
        finally:
            done.set()
        assert not pusher.is_alive()
        hr = hr_client(hub.url, config, invoke)
        stored = export_all(hr)
        assert sorted(p["seq"] for p in stored) == list(range(1, 6001)), "every punch exactly once"
        assert len({p["id"] for p in stored}) == 6000
        status = hr.get("/v1/hr/devices").json()[0]
        assert status["punches"] == 6000 and status["open_issues"] == 0 and status["chain_seq"] == 6000
        assert all(p["chain"] == "ok" for p in stored)
        hr.close()
        kiosk.agent.close()


@pytest.mark.parametrize("hub_backend", ["postgres"], indirect=True)
def test_several_hub_workers_share_one_postgres_database(hub_backend, tmp_path, request, make_kiosk,
                                                         invoke) -> None:
    data = hub_config_data(hub_backend, tmp_path, request, workers=2)
    config = write_hub_toml(tmp_path / "hub.toml", data)
    with HubProcess(config, log_path=tmp_path / "hub.log") as hub:
        from sync.hub import devices
        from sync.hub.config import load_hub_config
        from sync.hub.db import hub_db
        with hub_db(load_hub_config(config).database) as db:
            codes = [devices.create_code(db, "B001", 1)["code"] for _ in range(3)]
            hire(db, "E1")
        kiosks = [make_kiosk(sync={"batch_size": 100}) for _ in range(3)]
        for kiosk, code in zip(kiosks, codes, strict=True):
            kiosk.agent.register(hub.url, code)
            kiosk.punch("E1", 1000)
        threads = [threading.Thread(target=k.agent.push) for k in kiosks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        hr = hr_client(hub.url, config, invoke)
        stored = export_all(hr)
        assert len(stored) == 3000 and len({p["id"] for p in stored}) == 3000
        cursors = [p["cursor"] for p in stored]
        assert cursors == sorted(cursors), "HR's cursor order holds across workers"
        assert all(d["open_issues"] == 0 for d in hr.get("/v1/hr/devices").json())
        hr.close()
        for kiosk in kiosks:
            kiosk.agent.close()


@pytest.mark.parametrize("hub_backend", ["sqlite"], indirect=True)
def test_operator_flow_through_the_cli(hub_backend, tmp_path, invoke) -> None:
    result = invoke("hub", "init", str(tmp_path / "hub"), "--port", "0")
    assert result.exit_code == 0 and "kiosk hub serve" in result.output
    config = tmp_path / "hub" / "hub.toml"
    with HubProcess(config) as hub:
        added = invoke("hub", "device", "add", "--branch", "B001", "--json", "--config", str(config))
        code = json.loads(added.stdout.splitlines()[0])["code"]
        assert invoke("init", str(tmp_path / "k"), "--branch", "B001").exit_code == 0
        kcfg = str(tmp_path / "k" / "kiosk.toml")
        registered = invoke("sync", "register", "--hub", hub.url, "--code", code, "--json", "--config", kcfg)
        assert registered.exit_code == 0, registered.output
        device_id = json.loads(registered.stdout.splitlines()[0])["device_id"]
        reused = invoke("sync", "register", "--hub", hub.url, "--code", code, "--config", kcfg)
        assert reused.exit_code == 1 and "already used" in reused.output
        assert invoke("employee", "add", "E7", "--name", "Zhang San", "--config", kcfg).exit_code == 0
        assert invoke("punch", "--employee", "E7", "--note", "forgot card", "--config", kcfg).exit_code == 0
        once = invoke("sync", "once", "--json", "--config", kcfg)
        assert once.exit_code == 0, once.output
        assert json.loads(once.stdout.splitlines()[0])["push"]["accepted"] == 1
        hr = hr_client(hub.url, config, invoke)
        assert [p["employee_id"] for p in export_all(hr)] == ["E7"]
        listed = invoke("hub", "device", "list", "--json", "--config", str(config))
        assert json.loads(listed.stdout.splitlines()[0])["device_id"] == device_id
        assert invoke("hub", "device", "revoke", device_id, "--config", str(config)).exit_code == 0
        assert invoke("punch", "--employee", "E7", "--note", "again", "--yes", "--config", kcfg).exit_code == 0
        refused = invoke("sync", "once", "--config", kcfg)
        assert refused.exit_code == 1 and "refused this kiosk's credentials" in refused.output
        status = json.loads(invoke("sync", "status", "--json", "--config", kcfg).stdout.splitlines()[0])
        assert status["backlog"] == 1 and status["auth_error"]
        assert "kd1." not in json.dumps(status), "the device token is never shown"
        hr.close()


@pytest.mark.parametrize("hub_backend", ["sqlite"], indirect=True)
def test_sync_run_pushes_a_new_punch_at_once_and_stops_on_sigterm(hub, make_kiosk) -> None:
    import signal
    import subprocess
    import sys

    kiosk = make_kiosk(hub=hub)
    kiosk.punch("E1", 3)  # an offline backlog: pushed as soon as the agent starts
    # The push timer is 10 minutes: a punch that arrives well before that was pushed on the store's signal.
    agent = subprocess.Popen([sys.executable, "-m", "kiosk", "sync", "run", "--config", str(kiosk.path),
                              "--set", "sync.backoff_max_s=1", "--set", "sync.push_interval_s=600",
                              "--set", "sync.heartbeat_interval_s=600"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(hub.export()) == 3, timeout_s=60)
        from kiosk.store.punches import PunchDraft
        punch = kiosk.store.punches.append(PunchDraft("E1", "card", "verified"))  # as the daemon would
        wait_for(lambda: any(p["id"] == punch.id for p in hub.export(since=3)), timeout_s=120,
                 what="the new punch at the hub before the 600 s push timer")
    finally:
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err
    assert "sync agent stopped" in err and "Traceback" not in err
