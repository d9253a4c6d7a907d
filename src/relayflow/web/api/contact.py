"""/api/v1 routes for contacts."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["contacts"])
