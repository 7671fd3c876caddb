"""Route dependencies: the server's state, and the API key check every protected route runs."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from judge.errors import AuthenticationError
from judge.server.state import ServerState

_bearer = HTTPBearer(auto_error=False)


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.judge
    return state


State = Annotated[ServerState, Depends(get_state)]


async def require_api_key(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Accept any configured key (constant-time comparison); no keys configured: no auth."""
    keys = state.settings.api_keys
    if not keys:
        return
    given = credentials.credentials.encode() if credentials else b""
    matches = [hmac.compare_digest(given, key.get_secret_value().encode()) for key in keys]
    if not any(matches):
        raise AuthenticationError("missing or invalid API key: send 'Authorization: Bearer <key>'")
