"""Routes, one module per resource: parse the request, call the library, render the result.
Nothing else. Every route but the probes needs an API key (when keys are configured)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from judge.server.dependencies import require_api_key
from judge.server.routes import discovery, grading, jobs, operations, reports

router = APIRouter()
router.include_router(operations.public)
router.include_router(operations.protected)
protected = APIRouter(dependencies=[Depends(require_api_key)])
for module in (grading, jobs, reports, discovery):
    protected.include_router(module.router)
router.include_router(protected)
