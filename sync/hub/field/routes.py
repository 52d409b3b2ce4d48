"""HTTP for field phones: the pages (/field/, /field/pair), the phone's API (/v1/field/...) and HR's twin of
`kiosk hub field ...` (/v1/hr/field/...)."""

# No `from __future__ import annotations` here: FastAPI reads these annotations at run time.
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import Field

from sync.hub import hr
from sync.hub.accounts import Principal
from sync.hub.field import liveness, offline, phones
from sync.hub.field.geofence import Site
from sync.hub.field.webauthn import b64url_decode
from sync.hub.hrapi import principal_of, strict_query
from sync.protocol import API_PREFIX, EMPLOYEE_ID, InputModel

HERE = Path(__file__).resolve().parent
B64 = r"^[A-Za-z0-9_=+/-]*$"
DEVICE_ID = r"^fld_[0-9a-f]+$"


def origin_of(request: Request) -> str:
    """The origin passkeys are bound to: [field] origin, else the one this request was made to."""
    configured = request.app.state.hub.config.field.origin
    return configured or f"{request.url.scheme}://{request.url.netloc}"


class PairStart(InputModel):
    token: str = Field(min_length=20, max_length=100, pattern=B64)


class PairFinish(PairStart):
    client_data_json: str = Field(max_length=10_000, pattern=B64)
    attestation_object: str = Field(max_length=20_000, pattern=B64)
    label: str = Field("", max_length=64)


class StartIn(InputModel):
    device_id: str = Field(min_length=5, max_length=64, pattern=DEVICE_ID)


class FrameIn(InputModel):
    t_ms: int = Field(ge=0, le=120_000, description="ms since the phone started filming")
    jpeg_b64: str = Field(min_length=100, max_length=(liveness.MAX_FRAME_BYTES * 4 + 2) // 3 + 4, pattern=B64)


class FramesIn(InputModel):
    device_id: str = Field(min_length=5, max_length=64, pattern=DEVICE_ID)
    clip_id: str = Field(min_length=10, max_length=64, pattern=B64)
    frames: list[FrameIn] = Field(min_length=1, max_length=liveness.MAX_PIECE_FRAMES)


class PrepareIn(InputModel):
    device_id: str = Field(min_length=5, max_length=64, pattern=DEVICE_ID)
    direction: Literal["IN", "OUT"]
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    accuracy_m: float | None = Field(None, ge=0, le=1e6)
    phone_ts_utc: str = Field(max_length=40)
    clip_id: str = Field(min_length=10, max_length=64, pattern=B64)
    mocked: bool = Field(False, description="The platform said the position is mocked (where it tells).")


class SignedIn(InputModel):
    credential_id: str = Field(max_length=1400, pattern=B64)
    client_data_json: str = Field(max_length=10_000, pattern=B64)
    authenticator_data: str = Field(max_length=10_000, pattern=B64)
    signature: str = Field(max_length=400, pattern=B64)


class ConfirmIn(SignedIn):
    challenge_id: str = Field(min_length=10, max_length=64, pattern=B64)


class OfflineIn(SignedIn):
    claim: str = Field(min_length=10, max_length=offline.MAX_CLAIM_CHARS)
    frames: list[FrameIn] = Field(min_length=1, max_length=offline.MAX_CLAIM_FRAMES)


class PairingIn(InputModel):
    employee_id: str = Field(pattern=EMPLOYEE_ID)
    label: str = Field("", max_length=64)


class SiteIn(InputModel):
    name: str = Field(min_length=1, max_length=64)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(ge=5, le=100_000)
    max_accuracy_m: float = Field(100.0, ge=1, le=10_000)


class SitesIn(InputModel):
    policy: Literal["off", "flag", "refuse"]
    sites: list[SiteIn] = Field(default_factory=list, max_length=phones.MAX_SITES)


def _liveness(field: Any) -> Any:
    """[field]'s liveness settings over the kiosk's [liveness] rules."""
    return liveness.liveness_config(field.liveness_mode, field.challenge_steps, field.challenge_timeout_s)


def _phone_routes(api: APIRouter) -> None:
    @api.post("/pair/options")
    def pair_options(body: PairStart, request: Request) -> dict[str, Any]:
        """What the phone needs to create its passkey (the link stays unspent)."""
        return phones.pairing_options(request.app.state.db, body.token)

    @api.post("/pair/finish", status_code=201)
    def pair_finish(body: PairFinish, request: Request) -> dict[str, Any]:
        """Verify the new passkey and spend the link."""
        return phones.finish_pairing(request.app.state.db, body.token,
                                     b64url_decode(body.client_data_json, "client_data_json"),
                                     b64url_decode(body.attestation_object, "attestation_object"),
                                     origin_of(request), body.label)

    @api.get("/phone/{device_id}")
    def phone(device_id: str, request: Request) -> dict[str, Any]:
        """Whose phone this is, their sites and geofence policy, and how to film a clip with no signal."""
        field = request.app.state.hub.config.field
        return {**phones.phone_view(request.app.state.db, device_id, field.default_policy),
                "offline_clip": offline.clip_to_film(_liveness(field))}

    @api.post("/punch/start", status_code=201)
    def start(body: StartIn, request: Request) -> dict[str, Any]:
        """A punch begins: the hub's random liveness challenge for the clip the phone films next."""
        hub = request.app.state.hub
        field = hub.config.field
        return phones.start(hub.db, body.device_id, _liveness(field), field.attempts_per_minute)

    @api.post("/punch/frames")
    def frames(body: FramesIn, request: Request) -> dict[str, Any]:
        """A piece of the clip: judged with the pieces before (pending or live; a refusal is a 403)."""
        hub = request.app.state.hub
        decoded = liveness.decode_frames([(f.t_ms, f.jpeg_b64) for f in body.frames])
        return phones.clip_frames(hub.db, hub.maker, body.device_id, body.clip_id, decoded, _liveness(hub.config.field))

    @api.post("/punch/prepare")
    def prepare(body: PrepareIn, request: Request) -> dict[str, Any]:
        """The live clip spent and the place checked; the record is built and its hash returned as the
        passkey's challenge."""
        hub = request.app.state.hub
        attempt = phones.PunchAttempt(body.device_id, body.direction, body.lat, body.lon, body.accuracy_m,
                                      body.phone_ts_utc, body.mocked, body.clip_id)
        field = hub.config.field
        return phones.prepare(hub.db, attempt, field.default_policy, field.challenge_ttl_s,
                              field.attempts_per_minute, field.max_speed_kmh)

    @api.post("/punch/confirm", status_code=201)
    def confirm(body: ConfirmIn, request: Request) -> dict[str, Any]:
        """The passkey's assertion over the record's hash: the punch is stored."""
        assertion = phones.Assertion(body.challenge_id, body.credential_id,
                                     b64url_decode(body.client_data_json, "client_data_json"),
                                     b64url_decode(body.authenticator_data, "authenticator_data"),
                                     b64url_decode(body.signature, "signature"))
        hub = request.app.state.hub
        result = phones.confirm(hub.db, assertion, origin_of(request), hub.config.server.punch_max_ahead_s)
        _wake(request)
        return result

    @api.post("/punch/offline", status_code=201,
              responses={200: {"description": "This punch was already stored: status duplicate."}})
    def offline_punch(body: OfflineIn, request: Request, response: Response) -> dict[str, Any]:
        """A punch made without signal: its claim, media and the passkey's assertion over SHA-256(claim).
        Stored once (201); the same punch again answers 200 with status duplicate."""
        assertion = phones.Assertion("", body.credential_id, b64url_decode(body.client_data_json, "client_data_json"),
                                     b64url_decode(body.authenticator_data, "authenticator_data"),
                                     b64url_decode(body.signature, "signature"))
        hub = request.app.state.hub
        result = offline.deliver(hub.db, hub.maker, body.claim, [(f.t_ms, f.jpeg_b64) for f in body.frames],
                                 assertion, origin_of(request), hub.config.field, _liveness(hub.config.field),
                                 hub.config.server.punch_max_ahead_s)
        response.status_code = 201 if result["status"] == "stored" else 200
        _wake(request)
        return result


def _wake(request: Request) -> None:
    outbound = request.app.state.outbound
    if outbound is not None:
        outbound.wake()


Who = Annotated[Principal, Depends(principal_of)]


def _hr_routes(api: APIRouter) -> None:
    # Each calls HR's action (sync.hub.hr: role and branch checks), as the console's Phones page does.
    @api.post("/pairings", status_code=201)
    def pair(body: PairingIn, request: Request, who: Who) -> dict[str, Any]:
        """A one-time pairing link for an employee's phone (`kiosk hub field pair`)."""
        return hr.field_pair(request.app.state.hub, who, body.employee_id, body.label, origin_of(request))

    @api.get("/phones")
    def phone_list(request: Request, who: Who, employee_id: str | None = None) -> list[dict[str, Any]]:
        """Paired phones (`kiosk hub field list`)."""
        return hr.field_phones(request.app.state.hub, who, employee_id)

    @api.delete("/phones/{device_id}", status_code=204)
    def revoke(device_id: str, request: Request, who: Who) -> None:
        """Revoke a phone (`kiosk hub field revoke`)."""
        hr.field_revoke(request.app.state.hub, who, device_id)

    @api.put("/employees/{employee_id}/sites", status_code=204)
    def sites(employee_id: str, body: SitesIn, request: Request, who: Who) -> None:
        """An employee's geofence policy and sites (`kiosk hub field sites`)."""
        hr.set_field_sites(request.app.state.hub, who, employee_id, body.policy,
                           [Site(s.name, s.lat, s.lon, s.radius_m, s.max_accuracy_m) for s in body.sites])


def install(app: FastAPI, errors: dict[int, Any]) -> None:
    """Add the field pages, the phone's API and HR's field routes to the hub's app."""
    phone_api = APIRouter(prefix=f"{API_PREFIX}/field", tags=["field"], responses=errors)
    _phone_routes(phone_api)
    hr_api = APIRouter(prefix=f"{API_PREFIX}/hr/field", tags=["hr"], responses=errors,
                       dependencies=[Depends(strict_query)])
    _hr_routes(hr_api)
    app.include_router(phone_api)
    app.include_router(hr_api)
    app.mount("/field/static", StaticFiles(directory=HERE / "static"), name="field-static")

    @app.get("/field", include_in_schema=False)
    def field_redirect() -> RedirectResponse:
        return RedirectResponse("/field/", status_code=307)

    @app.get("/field/", include_in_schema=False)
    def punch_page() -> FileResponse:
        return FileResponse(HERE / "static" / "punch.html", headers={"Cache-Control": "no-store"})

    @app.get("/field/manifest.webmanifest", include_in_schema=False)
    def manifest() -> FileResponse:
        return FileResponse(HERE / "static" / "manifest.webmanifest", media_type="application/manifest+json")

    @app.get("/field/sw.js", include_in_schema=False)
    def service_worker() -> FileResponse:
        # Served from /field/ so its scope is the punch page; never cached, so a new version is picked up.
        return FileResponse(HERE / "static" / "sw.js", media_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/field/pair", include_in_schema=False)
    def pair_page() -> FileResponse:
        return FileResponse(HERE / "static" / "pair.html", headers={"Cache-Control": "no-store"})
