"""/api/v1 routes for audits."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["audits"])
