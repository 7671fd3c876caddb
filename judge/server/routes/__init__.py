"""Routes, one module per resource: parse the request, call the library, render the result.
Nothing else. API keys are checked before any route (``judge.server.auth``)."""

from __future__ import annotations

from fastapi import FastAPI

from judge.server.routes import discovery, grading, jobs, operations, reports


def add_routes(app: FastAPI) -> None:
    """Every route on the app."""
    for module in (operations, grading, jobs, reports, discovery):
        app.include_router(module.router)
