"""JSON request bodies decoded strictly (``judge.json_input``) before FastAPI validates them.

FastAPI decodes bodies with the standard ``json`` module, which keeps the last of duplicate keys
and lets NaN, huge integers, lone surrogates and control characters through to code that fails
on them later (a 500). ``StrictJSONRoute`` decodes the body first and hands FastAPI the result;
what it refuses becomes a 422 whose error names the field; a body not sent as JSON by its
Content-Type (or with none: FastAPI versions differ on reading those) a 415. Control characters
pass here: transcript records refuse them when they are read (``parse_record``), other fields
need not.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from judge.json_input import JSONInputError, loads


def media_type(content_type: str) -> str:
    """``type/subtype`` of a Content-Type header, lowercased, its parameters dropped."""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    """``application/json``, or any ``application/...+json``."""
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is decoded by ``judge.json_input.loads``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            if self.body_field is not None:
                content_type = request.headers.get("content-type", "")
                if not is_json(media_type(content_type)):  # else FastAPI: a vague 422
                    sent = repr(content_type) if content_type else "no Content-Type"
                    raise HTTPException(415, f"send the body as application/json, not {sent}")
                body = await request.body()
                if body:
                    try:
                        # Starlette's Request.json() returns this, decoded once, to FastAPI.
                        request._json = loads(body, controls=True)
                    except JSONInputError as exc:
                        where = tuple(exc.field.split(".")) if exc.field else ()
                        raise RequestValidationError(
                            [{"type": "json_invalid", "loc": ("body", *where), "msg": str(exc)}]
                        ) from None
            return await handler(request)

        return strict
