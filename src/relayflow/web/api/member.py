"""/api/v1 routes for members."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["members"])
