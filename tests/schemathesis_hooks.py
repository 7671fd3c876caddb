"""Schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``): how to send the bodies
its generator builds for media types it does not know."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """The OpenAPI document describes an NDJSON body as the array of its lines' values."""
    lines = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)
