"""/api/v1 routes for keys."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["keys"])
