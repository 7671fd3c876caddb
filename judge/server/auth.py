"""API keys: with keys configured, every request but the probes and the documentation carries one
(``Authorization: Bearer <key>``), checked in constant time before anything reads its body, so an
unauthenticated caller learns nothing about the API's limits or validation."""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from judge.server.state import send_problem

PUBLIC = ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/static-offline-docs/")
"""Paths any caller may reach: probes, and the documentation of the API."""


def is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC)


class APIKeys:
    """ASGI middleware: refuse (401) a request to a protected path without a configured key."""

    def __init__(self, app: ASGIApp, keys: list[SecretStr]):
        self.app = app
        self.keys = [key.get_secret_value().encode() for key in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        given = token.strip().encode()
        matches = [hmac.compare_digest(given, key) for key in self.keys]  # all, in constant time
        if scheme.lower() == "bearer" and any(matches):
            await self.app(scope, receive, send)
            return
        await send_problem(
            send,
            401,
            "missing or invalid API key: send 'Authorization: Bearer <key>'",
            headers={"www-authenticate": "Bearer"},
        )
