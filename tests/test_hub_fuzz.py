"""The hub fuzzed from its own OpenAPI document (Schemathesis, property-based): a real hub on 127.0.0.1 over
SQLite and PostgreSQL, every operation called with an HR token or a device token as its path needs, and
not one answer may be a 5xx or disagree with the published schema (status, content type, body).

The run is bounded for `make test` (FUZZ_EXAMPLES per operation); set KIOSK_FUZZ_EXAMPLES for a longer one.
Invalid data (Schemathesis' negative mode) is refused by the request validation, the same Python whatever
the database: it is sent to the SQLite hub only; the PostgreSQL hub gets valid data (positive mode), about as
many valid examples as the SQLite hub (its SQL is what differs between the backends).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sync_support import BACKENDS, TEST_DIM, TEST_MODEL, HubFixture, hub_config_data, start_hub

from kiosk.base.signing import new_private_key, public_key
from sync.hub import devices
from sync.hub.config import validate_hub_config

FUZZ_EXAMPLES = int(os.environ.get("KIOSK_FUZZ_EXAMPLES", "25"))
MODES = {"sqlite": (GenerationMode.POSITIVE, GenerationMode.NEGATIVE), "postgres": (GenerationMode.POSITIVE,)}
"""Which data each backend is fuzzed with (see the module docstring)."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NOT_FUZZED = "/v1/hr/punches/stream"  # a live feed: it answers for as long as the client listens


@dataclass
class FuzzedHub:
    hub: HubFixture
    hr_token: str
    device_token: str
    modes: tuple[GenerationMode, ...]

    @property
    def examples(self) -> int:
        """Examples per operation: valid and invalid ones are drawn half and half, so a hub fuzzed with valid
        data only gets as many valid ones with half the examples."""
        return max(1, round(FUZZ_EXAMPLES * len(self.modes) / 2))

    def headers(self, path: str) -> dict[str, str]:
        if path.startswith("/v1/hr/"):
            return {"Authorization": f"Bearer {self.hr_token}"}
        if path.startswith("/v1/device/") and path != "/v1/device/register":
            return {"Authorization": f"Bearer {self.device_token}"}
        return {}


@pytest.fixture(scope="module", params=BACKENDS)
def fuzzed_hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedHub]:
    """One hub per backend for the whole module (outbound delivery off: fuzzed webhook URLs are never called),
    with an employee, a registered device and an HR token."""
    tmp_path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    data = hub_config_data(request.param, tmp_path, request)
    data["outbound"] = {"enabled": False}
    hub = start_hub(validate_hub_config(data, "fuzz", tmp_path))
    hr_token = devices.create_api_token(hub.db, "hr", "fuzz")["token"]
    body = {"code": hub.code("B001"), "device_name": "fuzz", "software_version": "1", "model_id": TEST_MODEL,
            "template_dim": TEST_DIM, "public_key": public_key(new_private_key())}
    registered = httpx.post(f"{hub.url}/v1/device/register", json=body, timeout=30)
    assert registered.status_code == 201, registered.text
    assert hub.hr.post("/v1/hr/employees", json={"employee_id": "E1", "name": "Wang Li",
                                                 "branches": ["B001"]}).status_code == 201
    yield FuzzedHub(hub, hr_token, registered.json()["token"], MODES[request.param])
    hub.hr.close()
    hub.server.stop()


def fuzz_operation(operation, fuzzed_hub: FuzzedHub) -> str:
    """Call one operation with valid (and, per MODES, invalid) data; '' when every answer passed CHECKS, else the first
    failure (with the curl line that reproduces it)."""
    cases = st.one_of(*(operation.as_strategy(mode) for mode in fuzzed_hub.modes))

    @given(case=cases)
    @settings(max_examples=fuzzed_hub.examples, deadline=None, derandomize=True, database=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    def run(case) -> None:  # noqa: ANN001 - schemathesis.Case
        case.call_and_validate(base_url=fuzzed_hub.hub.url, headers=fuzzed_hub.headers(case.path), checks=CHECKS)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure is collected, reported below
        return f"{operation.method.upper()} {operation.path}: {exc}"
    return ""


def test_no_server_error_and_every_answer_matches_the_schema(fuzzed_hub: FuzzedHub) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_hub.hub.url}/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [op for op in operations if op.path != NOT_FUZZED]
    assert len(fuzzed) >= 30, [op.path for op in operations]  # the whole API, not a part of it
    failures = [problem for problem in (fuzz_operation(op, fuzzed_hub) for op in fuzzed) if problem]
    assert failures == [], "\n\n".join(failures)


def test_the_fuzzer_is_heard_with_the_tokens_it_is_given(fuzzed_hub: FuzzedHub) -> None:
    """The fuzz run means something only if its tokens open the doors (else every answer is a 401)."""
    with httpx.Client(base_url=fuzzed_hub.hub.url, timeout=30) as client:
        hr = client.get("/v1/hr/devices", headers=fuzzed_hub.headers("/v1/hr/devices"))
        device = client.get("/v1/device/roster", headers=fuzzed_hub.headers("/v1/device/roster"))
        anonymous = client.get("/v1/hr/devices", headers={"Authorization": f"Bearer {secrets.token_hex(8)}"})
    assert hr.status_code == 200 and device.status_code == 200 and anonymous.status_code == 401
