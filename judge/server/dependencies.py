"""Route dependencies: the server's state (API keys are checked earlier: ``judge.server.auth``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from judge.server.state import ServerState


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.judge
    return state


State = Annotated[ServerState, Depends(get_state)]
