"""Untrusted JSON in as a stream: one object, fed in pieces, decoded as strictly as
``judge.json_input.loads``, with the items of one array field handed out one at a time, so that a
body of any size is read in flat memory.

The tokens come from ijson's C parser (yajl). What it lets through or words differently is closed
here, with ``loads``'s messages: duplicate keys, integers and numbers beyond ``MAX_NUMBER``,
nesting deeper than ``MAX_DEPTH``, a leading byte-order mark (dropped, as ``decode_text`` does),
and lone surrogates, which yajl silently decodes as ``?``: they are found in the raw bytes (a
``\\uD800``-``\\uDFFF`` escape that is not half of a pair) and the string that holds one is refused
by its path. Text is otherwise left for the caller to ``check`` (transcript records refuse
control characters, other fields need not).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import ijson

from judge.json_input import MAX_DEPTH, MAX_NUMBER, JSONInputError

_ESCAPES = re.compile(
    rb"\\(?:\\|u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|u([dD][89a-fA-F][0-9a-fA-F]{2}))"
)
"""An escaped backslash, a surrogate pair, or (group 1) a lone surrogate; scanned left to right,
so a backslash that is itself escaped never starts an escape."""
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_HIGH = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
_BACKSLASH = 0x5C
_HOLD = 12
"""Bytes at the end of a piece that may hold an escape (or the first half of a pair: 12 bytes)
completed by the next piece: from the first backslash among them, they wait for it."""


class _SurrogateScan:
    """Splits the input so that each lone surrogate escape starts a piece of its own."""

    def __init__(self) -> None:
        self.carry = b""

    def pieces(self, data: bytes, *, final: bool) -> Iterator[tuple[bytes, int | None]]:
        """(piece, code): feed the piece, then, if ``code`` is set, the next string decoded
        holds that lone surrogate. The bytes an escape at the end may continue into wait."""
        data = self.carry + data
        cut = len(data) if final else _cut(data)
        data, self.carry = data[:cut], data[cut:]
        if not _MAYBE_SURROGATE.search(data):
            yield data, None
            return
        done = 0
        for match in _ESCAPES.finditer(data):
            if match.group(1) is not None:
                yield data[done : match.start()], int(match.group(1), 16)
                done = match.start()
        yield data[done:], None


def _cut(data: bytes) -> int:
    """Where to stop feeding ``data``: before an escape the next bytes may complete, and before
    the first half of a surrogate pair whose second half may be cut off."""
    first = data.find(b"\\", max(0, len(data) - _HOLD))
    if first < 0:
        return len(data)
    cut = _escape_start(data, first)
    if cut >= 6 and _HIGH.fullmatch(data, cut - 6, cut) and _escape_start(data, cut - 6) == cut - 6:
        cut -= 6
    return cut


def _escape_start(data: bytes, index: int) -> int:
    """The escape that the backslash at ``index`` belongs to starts here (backslashes pair up
    from the start of their run)."""
    run = index
    while run > 0 and data[run - 1] == _BACKSLASH:
        run -= 1
    return run + 2 * ((index - run) // 2)


class JSONObjectStream:
    """Decodes one JSON object fed in pieces (``feed``, then ``close``): its fields, except
    ``streamed``, whole; the items of the array ``streamed`` one by one, each dropped once handed
    out. Raises ``JSONInputError`` (``field`` a dotted path, as ``check`` gives it)."""

    def __init__(self, streamed: str):
        self.streamed = streamed
        self.fields: dict[str, Any] = {}
        """The object's fields read whole so far, except an array ``streamed`` (a ``streamed``
        of another type is here, for the caller to refuse)."""
        self.items = 0
        """Items of ``streamed`` handed out so far."""
        self.streamed_array = False
        """Whether ``streamed`` was there as an array."""
        self._events = ijson.sendable_list()
        self._parser = ijson.basic_parse_coro(self._events, use_float=True)
        self._scan = _SurrogateScan()
        self._started = False
        self._head = b""
        self._stack: list[tuple[dict[str, Any] | list[Any], str]] = []
        self._key: str | None = None
        self._streaming = False
        self._taint: int | None = None
        self._out: list[Any] = []

    def feed(self, data: bytes) -> list[Any]:
        """Take the next bytes; the items of ``streamed`` they completed."""
        if not self._started:
            self._head += data
            if len(self._head) < 3:  # a byte-order mark may still be arriving
                return []
            self._started = True
            data, self._head = self._head.removeprefix(b"\xef\xbb\xbf"), b""
        return self._consume(data, final=False)

    def close(self) -> list[Any]:
        """The input has ended: the last items; ``JSONInputError`` if the object is not whole."""
        if not self._started:
            if not self._head:
                raise JSONInputError("the body is empty; send a JSON object")
            self._started = True
        items = self._consume(self._head, final=True)
        try:
            self._parser.close()
        except ijson.JSONError as exc:
            raise _syntax(exc) from None
        for event, value in self._events:  # a number at the very end is whole only now
            self._event(event, value)
        return items

    def _consume(self, data: bytes, *, final: bool) -> list[Any]:
        self._out = []
        for piece, lone in self._scan.pieces(data, final=final):
            failure: Exception | None = None
            try:
                if piece:
                    self._parser.send(piece)
            except (ijson.JSONError, UnicodeDecodeError) as exc:  # yajl decodes some lone
                failure = exc  # surrogates as bytes that are not UTF-8
            for event, value in self._events:
                self._event(event, value)
            del self._events[:]
            if failure is not None:
                if self._taint is not None and isinstance(failure, UnicodeDecodeError):
                    self._tainted(self._path(self._slot()))
                raise _syntax(failure)
            if lone is not None:
                self._taint = lone
        return self._out

    def _path(self, last: str | int | None = None) -> str:
        parts = [path for _, path in self._stack[1:]]
        if last is not None:
            parts.append(str(last))
        return ".".join(part for part in parts if part != "")

    def _event(self, event: str, value: Any) -> None:
        if event == "string":
            if self._taint is not None:
                self._tainted(self._path(self._slot()))
            self._add(value)
        elif event == "map_key":
            if self._taint is not None:
                self._tainted(self._path())
            top = self._stack[-1][0]
            if value in top or (
                value == self.streamed and len(self._stack) == 1 and self.streamed_array
            ):
                raise JSONInputError(f"duplicate key {value!r} in an object", value)
            self._key = value
        elif event == "start_map":
            self._open({})
        elif event == "start_array":
            self._open([])
        elif event == "end_map" or event == "end_array":
            self._close()
        else:
            if event == "number" and abs(value) > MAX_NUMBER:
                kind = "integer" if isinstance(value, int) else "number"
                raise JSONInputError(f"{kind} {value!r:.24} is too large")
            self._add(value)

    def _slot(self) -> str | int | None:
        """Where the next value goes: the pending key, or the next index of a list."""
        if not self._stack:
            return None
        top = self._stack[-1][0]
        if isinstance(top, list):
            return self.items if self._streaming and len(self._stack) == 2 else len(top)
        return self._key

    def _tainted(self, path: str) -> None:
        code, self._taint = self._taint, None
        raise JSONInputError(
            f"contains a lone surrogate (U+{code:04X}), which text may not hold", path or None
        )

    def _open(self, container: dict[str, Any] | list[Any]) -> None:
        if not self._stack:
            if not isinstance(container, dict):
                raise JSONInputError("the body must be a JSON object")
            self._stack.append((container, ""))
            return
        if len(self._stack) >= MAX_DEPTH:
            raise JSONInputError(f"nested deeper than {MAX_DEPTH} levels", self._stack[1][1])
        slot = self._slot()
        if len(self._stack) == 1 and slot == self.streamed and isinstance(container, list):
            self._streaming = self.streamed_array = True  # its items are handed out, not kept
        else:
            self._add(container)
        self._stack.append((container, str(slot)))

    def _close(self) -> None:
        container, name = self._stack.pop()
        if len(self._stack) == 1:
            if self._streaming:
                self._streaming = False
            else:
                self.fields[name] = container  # a top-level field is there once whole
        elif len(self._stack) == 2 and self._streaming:
            self._out.append(container)  # a whole item of the streamed array
            self.items += 1

    def _add(self, value: Any) -> None:
        if not self._stack:
            raise JSONInputError("the body must be a JSON object")
        top, _ = self._stack[-1]
        if len(self._stack) == 2 and self._streaming:
            if not isinstance(value, dict | list):  # a scalar item is whole at once
                self._out.append(value)
                self.items += 1
            return
        if isinstance(top, list):
            top.append(value)
        else:
            assert self._key is not None
            top[self._key] = value
            if len(self._stack) == 1 and not isinstance(value, dict | list):
                self.fields[self._key] = value


def _syntax(exc: Exception) -> JSONInputError:
    """yajl's error in ``loads``'s words: its first line and the text it points at."""
    if isinstance(exc, UnicodeDecodeError):
        return JSONInputError(f"not UTF-8 text: {exc.reason}")
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = str(text).splitlines()
    message = lines[0].strip() if lines else "cannot be read"
    near = lines[1].strip() if len(lines) > 1 else ""
    if "UTF8" in message:
        return JSONInputError(f"not UTF-8 text: {message}")
    if "integer overflow" in message or "overflow" in message:
        return JSONInputError(f"a number is too large: {message} near {near!r}")
    where = f" near {near!r}" if near else ""
    return JSONInputError(f"invalid JSON: {message}{where}")
