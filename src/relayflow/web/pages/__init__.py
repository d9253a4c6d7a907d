"""Server-rendered pages (Jinja2), one router per aggregate, behind a sign-in session."""

from __future__ import annotations

from fastapi import APIRouter

from relayflow.web.pages import (
    auth,
    bulk,
    contacts,
    deliveries,
    failures,
    run_detail,
    runs,
    settings,
    workflows,
)

router = APIRouter(include_in_schema=False)
for module in (auth, runs, run_detail, failures, bulk, deliveries, workflows, contacts,
               settings):
    router.include_router(module.router)
