"""Pydantic's validation errors in plain words, for people fixing a file by hand (a rubric, the
configuration): where, as a path (``criteria[0].labels[1].name``), and what is wrong, as a
sentence (``needs at least one item``, not ``Tuple should have at least 1 item``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

NAME_PATTERN = "^[a-z][a-z0-9_]*$"

_TYPES = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "list_type": "a list",
    "tuple_type": "a list",
}


def where(location: Sequence[int | str]) -> str:
    """A location as a path, list positions in brackets (empty for the whole document)."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def sentence(error: ErrorDetails) -> str:
    """What is wrong, in plain words."""
    kind, context = error["type"], error.get("ctx", {})
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field here (a typo?)"
    if kind in _TYPES:
        if kind == "string_type" and isinstance(error.get("input"), bool):
            return "must be text (YAML reads yes, no, on, off unquoted as true or false: quote it)"
        return f"must be {_TYPES[kind]}"
    if kind == "string_pattern_mismatch":
        if context.get("pattern") == NAME_PATTERN:
            return "must be lowercase letters, digits and underscores, starting with a letter"
        return f"must match the pattern {context.get('pattern')}"
    if kind == "too_short":
        least = context.get("min_length", 1)
        return "needs at least one item" if least == 1 else f"needs at least {least} items"
    if kind in ("literal_error", "enum"):
        return f"must be one of {context.get('expected')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return error["msg"].replace("Input should be", "must be")
    if kind == "value_error":
        return str(context.get("error", error["msg"].removeprefix("Value error, ")))
    return error["msg"].replace("Input should be", "must be")


def describe(errors: Iterable[ErrorDetails]) -> list[str]:
    """One line per problem, ``where: what``; a validator that found several gives one each.
    A list that is "too short" only because its items failed is not a problem of its own."""
    errors = list(errors)
    inner = {tuple(e["loc"][:n]) for e in errors for n in range(len(e["loc"]))}
    lines = []
    for error in errors:
        if error["type"] == "too_short" and tuple(error["loc"]) in inner:
            continue
        place = f"{where(error['loc'])}: " if error["loc"] else ""
        lines += [place + part for part in sentence(error).splitlines() if part.strip()]
    return lines


def describe_error(exc: ValidationError) -> list[str]:
    return describe(exc.errors())
