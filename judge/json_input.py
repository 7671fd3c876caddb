"""Untrusted JSON in: the standard decoder with its lenient corners closed.

Python's ``json`` accepts what breaks later or means something else than it seems: lone surrogates
(valid JSON escapes that no UTF-8 encoder takes: a verdict holding one cannot be stored or sent),
``NaN`` and ``Infinity``, numbers too large for any store, duplicate keys (the last one silently
wins), nesting deep enough to exhaust the stack, and text with NUL and other control characters.
``loads`` refuses each of them, and ``check`` walks an already decoded value for the ones a
decoder cannot see, with a ``JSONInputError`` whose ``field`` says where (``messages.1.content``).
``decode_text`` turns bytes into text the same strict way (UTF-8, a leading BOM dropped).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting accepted (a transcript record needs about 6 levels)."""

MAX_NUMBER = 2**63 - 1
"""Largest magnitude of a number accepted (integer or not): what SQLite, Redis and every JSON
library agree on for integers, and one bound the API's document can state for all numbers."""

_SURROGATE = re.compile("[\ud800-\udfff]")
"""Lone surrogates: a decoded string holds one only where the JSON escaped half a pair."""
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
"""The same, and control characters other than tab, line feed and carriage return."""


class JSONInputError(ValueError):
    """JSON that cannot be accepted; ``field`` is the dotted path to the offending value."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(message)


def decode_text(data: bytes) -> str:
    """Bytes as UTF-8 text, without a leading byte-order mark; a ``JSONInputError`` says where
    the first byte that is not UTF-8 is."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise JSONInputError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None


def loads(text: str | bytes, *, controls: bool = False) -> Any:
    """Decode one JSON document, refusing duplicate keys, non-finite and oversized numbers, and
    nesting deeper than ``MAX_DEPTH``; then ``check`` it (``controls``: control characters in
    strings are allowed)."""
    if isinstance(text, bytes):
        text = decode_text(text)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_int=_integer,
            parse_float=_finite,
        )
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise JSONInputError(message) from None
    except RecursionError:
        raise JSONInputError(f"nested deeper than {MAX_DEPTH} levels") from None
    check(value, controls=controls)
    return value


def check(value: Any, field: str = "", *, controls: bool = False) -> None:
    """Refuse strings with lone surrogates or (unless ``controls``) control characters, in keys
    too, numbers beyond ``MAX_NUMBER`` and nesting beyond ``MAX_DEPTH``, anywhere in a decoded
    value. Transcript text may hold no control character; other input (a verdict's judge output
    sent back for a report) may."""
    forbidden = _SURROGATE if controls else _CONTROL_OR_SURROGATE
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, path, forbidden)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int | float):
            if abs(item) > MAX_NUMBER:
                raise JSONInputError(f"number beyond +-{MAX_NUMBER}", path or None)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                top = path.split(".", 1)[0]  # the field it hangs from; the rest is only digits
                raise JSONInputError(f"nested deeper than {MAX_DEPTH} levels", top or None)
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str):
                    _check_text(key, child_path, forbidden)
                stack.append((child, child_path, depth + 1))


def _check_text(text: str, field: str, forbidden: re.Pattern[str]) -> None:
    found = forbidden.search(text)
    if found is None:
        return
    code = ord(found.group())
    what = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    raise JSONInputError(
        f"contains {what} (U+{code:04X} at character {found.start()}), which text may not hold",
        field or None,
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JSONInputError(f"duplicate key {key!r} in an object", key)
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not a JSON number")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(number := int(text)) > MAX_NUMBER:
        raise JSONInputError(f"integer {text[:24]}{'...' if len(text) > 24 else ''} is too large")
    return number


def _finite(text: str) -> float:
    number = float(text)
    if abs(number) > MAX_NUMBER:  # infinity too
        raise JSONInputError(f"number {text[:24]} is too large")
    return number
