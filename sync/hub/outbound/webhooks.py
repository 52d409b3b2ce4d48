"""Webhook delivery: Standard Webhooks signatures over CloudEvents 1.0 JSON bodies, and what an answer means.

Headers (https://www.standardwebhooks.com): ``webhook-id`` (the event id: the same on every retry,
so receivers de-duplicate by it), ``webhook-timestamp`` (Unix seconds of this attempt, from the real
wall clock, which receivers compare with theirs), ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`` for each live secret, space-separated, so a secret can be rotated without a gap).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from kiosk.base.errors import InvalidInput, NotFound
from sync.hub.outbound.events import body_of

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
ANSWER_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: 'delivered', 'retry' (with the error) or 'park' (will never succeed as is)."""

    kind: str
    error: str = ""
    retry_after_s: float | None = None


DELIVERED = Outcome("delivered")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("a webhook secret is not 'whsec_' followed by base64",
                           fix="Rotate the secret with `kiosk hub webhook rotate ID`.") from None


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode("ascii")


def signed_headers(secrets: list[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "content-type": CONTENT_TYPE,
            "webhook-signature": " ".join(signature(s, msg_id, stamp, body) for s in secrets)}


def retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def outcome_of(resp: httpx.Response) -> Outcome:
    """2xx is delivered; anything else is retried (a receiver that is being fixed may accept it later)."""
    if 200 <= resp.status_code < 300:
        return DELIVERED
    excerpt = " ".join(resp.text[:ANSWER_EXCERPT_CHARS].split())
    return Outcome("retry", f"HTTP {resp.status_code}: {excerpt}".rstrip(": "), retry_after(resp))


def transport_error(exc: httpx.HTTPError, timeout_s: float) -> Outcome:
    if isinstance(exc, httpx.TimeoutException):
        return Outcome("retry", f"no answer within {timeout_s:g} s ({type(exc).__name__})")
    return Outcome("retry", f"{type(exc).__name__}: {exc}".strip())


class WebhookSender:
    """POSTs one signed event to a subscription's URL."""

    kind = "webhook"

    def __init__(self, timeout_s: float, client: httpx.Client | None = None) -> None:
        self.timeout_s = timeout_s
        self.client = client or httpx.Client(timeout=timeout_s, follow_redirects=False,
                                             headers={"user-agent": "kiosk-hub-webhooks/1"})

    def deliver(self, sub: Any, event: dict[str, Any]) -> Outcome:
        body = body_of(event)
        try:
            resp = self.client.post(sub.url, content=body, headers=signed_headers(sub.secrets, event["id"], body))
        except httpx.HTTPError as exc:
            return transport_error(exc, self.timeout_s)
        return outcome_of(resp)

    def after_round(self, sub: Any, delivered: list[dict[str, Any]]) -> None:
        """Nothing to do after a round of webhooks."""

    def close(self) -> None:
        self.client.close()


def test_subscription(db: Any, sub_id: str, timeout_s: float) -> tuple[Any, Outcome, float]:
    """Send the test event to a live webhook subscription; (subscription, outcome, seconds). NotFound if none."""
    from sync.hub.outbound.queue import subscriptions
    sub = subscriptions(db).get(sub_id)
    if sub is None or sub.kind != "webhook":
        raise NotFound(f"no webhook {sub_id}", fix="List them with `kiosk hub webhook list`.")
    outcome, took_s = send_test(sub, timeout_s)
    return sub, outcome, took_s


def send_test(sub: Any, timeout_s: float) -> tuple[Outcome, float]:
    """POST a signed ``attendance.webhook.test`` event now (not queued); returns the outcome and seconds taken."""
    from sync.hub.outbound.events import TEST_EVENT, Event
    event = Event(TEST_EVENT, "test", {"subscription_id": sub.id, "note": "a test from `kiosk hub webhook test`"})
    row = {"id": event.id, "type": event.type, "source": event.source, "subject": event.subject,
           "time_utc": event.time_utc, "data": event.data}
    sender = WebhookSender(timeout_s)
    start = time.monotonic()
    try:
        return sender.deliver(sub, row), time.monotonic() - start
    finally:
        sender.close()
