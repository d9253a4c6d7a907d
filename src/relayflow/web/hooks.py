"""Inbound webhook triggers: POST /hooks/{token} (no API key; optional signature)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])
