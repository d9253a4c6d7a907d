"""The JSON API under /api/v1: one router per aggregate."""

from __future__ import annotations

from fastapi import APIRouter

from relayflow.web.api import run, secret, workflow

router = APIRouter(prefix="/api/v1")
router.include_router(workflow.router)
router.include_router(run.router)
router.include_router(secret.router)
