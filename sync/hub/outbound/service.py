"""Assembling the delivery worker of a hub process from its config: webhooks always, Frappe when enabled."""

from __future__ import annotations

import logging
from typing import Any

from sync.hub.config import HubConfig
from sync.hub.db.base import HubDb
from sync.hub.faces import TemplateMaker
from sync.hub.outbound.engine import Clock, DeliveryEngine, Job, Sender
from sync.hub.outbound.webhooks import WebhookSender

log = logging.getLogger(__name__)


def build_engine(config: HubConfig, db: HubDb, maker: TemplateMaker, clock: Clock | None = None,
                 **frappe_client_options: Any) -> DeliveryEngine:
    """The engine with every sender and periodic job this hub's config asks for."""
    outbound = config.outbound
    senders: dict[str, Sender] = {"webhook": WebhookSender(outbound.timeout_s)}
    jobs: list[Job] = []
    frappe = config.connectors.frappe
    if frappe.enabled:
        from sync.hub.outbound import frappe as connector
        client = connector.FrappeClient(frappe, outbound.timeout_s, **frappe_client_options)
        if frappe.push_punches:
            connector.ensure_subscription(db, frappe)
        sender = connector.FrappeSender(frappe, db, client, outbound.timeout_s)
        senders["frappe"] = sender
        jobs.append(sender.shifts)
        if frappe.pull_employees:
            jobs.append(connector.EmployeePoll(frappe, db, client, maker, config.faces.max_photo_bytes))
    extra = {"clock": clock} if clock is not None else {}
    return DeliveryEngine(outbound, db, senders, jobs, **extra)
