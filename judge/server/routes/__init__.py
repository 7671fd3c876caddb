"""Routes, one module per resource: parse the request, call the library, render the result.
Nothing else. Every route but the probes needs an API key (when keys are configured)."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from judge.server.dependencies import require_api_key
from judge.server.routes import discovery, grading, jobs, operations, reports


def add_routes(app: FastAPI) -> None:
    """Every route on the app, the protected ones behind the API key check."""
    protected = [Depends(require_api_key)]
    app.include_router(operations.public)
    app.include_router(operations.protected, dependencies=protected)
    for module in (grading, jobs, reports, discovery):
        app.include_router(module.router, dependencies=protected)
