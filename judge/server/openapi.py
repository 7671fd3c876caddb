"""The OpenAPI document, exact for this server: every status each route returns, every error body
as what it is (``application/problem+json``, a ``Problem``), and request bodies constrained as the
server reads them, so that a request the document allows is one the server takes.

FastAPI's document is the start. This module then (1) gives every 4xx and 5xx its problem body;
(2) names the rubrics, profiles and models this server has (a request may name no other);
(3) states the rules ``judge.json_input`` and ``parse_record`` enforce on transcript records
(text without control characters, numbers within ``MAX_NUMBER``) and on any JSON value (numbers
within it); (4) declares the bearer key and its 401 only when keys are configured.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from judge.config import Settings
from judge.json_input import MAX_NUMBER
from judge.judges import OFFLINE_MODEL
from judge.server.auth import is_public
from judge.wire import Problem

ERRORS: dict[int, str] = {
    400: "The request cannot be read (the detail says why).",
    401: "No API key, or a wrong one.",
    404: "No such job or rubric.",
    409: "The Idempotency-Key was used for a different request.",
    413: "The body or the batch is over a limit; the detail names it and what to do instead.",
    422: "Invalid input: the detail and `errors` name each field (a transcript by its index).",
    503: "The job store or queue (Redis) is unavailable: retry after `Retry-After` seconds.",
}

TEXT = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f]*$"
"""Text a transcript may hold: no control character but tab, line feed and carriage return."""

SCHEMAS = "#/components/schemas/"


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's error responses, for its ``responses=`` (``document`` gives them their body)."""
    return {status: {"description": ERRORS[status]} for status in statuses}


def document(app: FastAPI, settings: Settings) -> Callable[[], dict[str, Any]]:
    """The app's ``openapi`` function (see the module docstring), built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            _problems(spec, schemas)
            _json_values(schemas)
            _choices(schemas, settings)
            if settings.api_keys:
                _bearer(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    return openapi


def _problems(spec: dict[str, Any], schemas: dict[str, Any]) -> None:
    problem = Problem.model_json_schema(ref_template=SCHEMAS + "{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    body = {"application/problem+json": {"schema": {"$ref": SCHEMAS + "Problem"}}}
    for operations in spec["paths"].values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = body


def _value(string: dict[str, Any], name: str) -> dict[str, Any]:
    """A JSON value whose strings follow ``string`` and whose numbers stay within bounds."""
    itself = {"$ref": SCHEMAS + name}
    return {
        "anyOf": [
            string,
            {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": itself},
            {"type": "object", "additionalProperties": itself, "propertyNames": string},
        ]
    }


def _json_values(schemas: dict[str, Any]) -> None:
    """Any-JSON fields as bounded values, and transcript records under the text rules."""
    _bounded(schemas["GradeCreate"]["properties"]["transcripts"], "TextValue", text=True)
    for schema in schemas.values():
        _bounded(schema, "JSONValue", text=False)
    schemas["JSONValue"] = _value({"type": "string"}, "JSONValue")
    schemas["TextValue"] = _value({"type": "string", "pattern": TEXT}, "TextValue")


def _bounded(node: Any, value: str, *, text: bool) -> None:
    """In place: numbers within bounds, open objects and untyped values as ``value``, and (for
    ``text``) every string under the text rule."""
    if isinstance(node, list):
        for item in node:
            _bounded(item, value, text=text)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") in ("integer", "number"):
        node.setdefault("minimum", -MAX_NUMBER)
        node.setdefault("maximum", MAX_NUMBER)
    if text and node.get("type") == "string" and "enum" not in node and "const" not in node:
        node["pattern"] = TEXT
    open_object = node.get("type") == "object" and "additionalProperties" not in node
    if node.get("additionalProperties") is True or open_object:
        node["additionalProperties"] = {"$ref": SCHEMAS + value}
        if text:
            node["propertyNames"] = {"pattern": TEXT}
    for key, child in list(node.items()):
        if key in ("properties", "$defs"):
            for name, schema in child.items():
                if schema == {} or schema == {"title": schema.get("title")}:
                    child[name] = {"$ref": SCHEMAS + value}
                else:
                    _bounded(schema, value, text=text)
        elif isinstance(child, dict | list):
            _bounded(child, value, text=text)


def _choices(schemas: dict[str, Any], settings: Settings) -> None:
    """The rubric ids, profiles and models a request to this server may name."""
    rubrics = sorted(rubric.id for rubric in settings.rubric_library())
    for schema in schemas.values():
        field = schema.get("properties", {}).get("rubrics")
        if field is not None:
            field["items"] = {"type": "string", "enum": rubrics}
    selection = schemas["JudgeSelection"]["properties"]
    profiles = sorted(settings.profiles)
    named = sorted({*profiles, *settings.cascades})
    if named:
        selection["profile"] = {**selection["profile"], "enum": named}
    else:
        del selection["profile"]  # none configured: naming one is an error
    models = sorted({*profiles, *settings.allowed_models, OFFLINE_MODEL})
    selection["models"]["items"] = {"type": "string", "enum": models}
    for field in ("cascade", "fallbacks"):
        selection[field]["items"] = {"type": "string", "enum": models}


def _bearer(spec: dict[str, Any]) -> None:
    """Every operation but the public ones needs the key, and may answer 401."""
    spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    body = {"application/problem+json": {"schema": {"$ref": SCHEMAS + "Problem"}}}
    for path, operations in spec["paths"].items():
        if is_public(path):
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}]
            operation["responses"]["401"] = {"description": ERRORS[401], "content": body}


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the document declares for a request path, and OPTIONS (``Allow`` of a 405 and
    of an OPTIONS reply); empty when no documented path matches."""
    for template, operations in app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return sorted({method.upper() for method in operations} | {"OPTIONS"})
    return []
