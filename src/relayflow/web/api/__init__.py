"""The JSON API under /api/v1: one router per aggregate."""

from __future__ import annotations

from fastapi import APIRouter

from relayflow.web.api import (
    audit,
    bulk,
    contact,
    delivery,
    failure,
    frequency,
    json_schema,
    key,
    member,
    network,
    provider,
    retention,
    run,
    secret,
    webhook,
    workflow,
)
from relayflow.web.api.responses import errors

# Every route but the schema's needs an API key, and every key is rate-limited
# (web/deps.py).
router = APIRouter(prefix="/api/v1", responses=errors(429))
router.include_router(workflow.router)
router.include_router(webhook.router)
router.include_router(run.router)
router.include_router(failure.router)
router.include_router(bulk.router)
router.include_router(contact.router)
router.include_router(secret.router)
router.include_router(key.router)
router.include_router(member.router)
router.include_router(audit.router)
router.include_router(delivery.router)
router.include_router(provider.router)
router.include_router(network.router)
router.include_router(frequency.router)
router.include_router(retention.router)
# The one route without a key (and so without a rate limit): the definition's JSON
# Schema, which holds no data and which editors fetch.
router.include_router(json_schema.router)
