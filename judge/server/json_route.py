"""JSON request bodies decoded strictly (``judge.json_input``) before FastAPI validates them.

FastAPI decodes bodies with the standard ``json`` module, which keeps the last of duplicate keys
and lets NaN, huge integers, lone surrogates and control characters through to code that fails
on them later (a 500). ``StrictJSONRoute`` decodes the body first and hands FastAPI the result;
what it refuses becomes a 422 whose error names the field. Control characters pass here:
transcript records refuse them when they are read (``parse_record``), other fields need not.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from judge.json_input import JSONInputError, loads


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is decoded by ``judge.json_input.loads``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            if self.body_field is not None and _is_json(request):
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
