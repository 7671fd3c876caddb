"""Transcript text as data: no spelling of a tag in it can open or close a block of the prompt.

Judge prompts fence the transcript with tags (``<transcript>``, ``<message>``, ``<answer>``...).
A judged model that writes ``</transcript>`` (or ``< /TRANSCRIPT >``, the same with a full-width
``<``, with a zero-width space after it, with a Cyrillic look-alike of a letter...) could end the
block and write instructions to the judge. Matching our tag names cannot keep up with every
spelling a judge might read as one, so every *tag opener* in judged text is escaped instead: any
character that looks like ``<`` (the less-than sign, its full-width and small forms, angle
brackets and quotation marks, the invisible tag character), followed by nothing but white space,
invisible characters, controls, combining marks or slashes before a letter, becomes ``&lt;``.
``a < 3`` and ``<3`` stay as they are; ``<div>`` and ``< /answer>`` read ``&lt;div>`` and
``&lt; /answer>``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

ESCAPED_OPENER = "&lt;"

_OPENER_NAMES = ("LESS-THAN", "LEFT-POINTING ANGLE", "LEFT ARROWHEAD")
_SLASH_NAMES = ("SOLIDUS", "SLASH")
_PLANES = [range(0x10000), range(0xE0000, 0xE0080)]
"""Where the look-alikes live: the basic plane, and the invisible tag characters."""


def is_opener(char: str) -> bool:
    """Whether a judge could read this character as the ``<`` that opens a tag."""
    if unicodedata.category(char) in ("Mn", "Me"):
        return False  # a combining mark belongs to the character before it
    name = unicodedata.name(char, "")
    return (
        "<" in unicodedata.normalize("NFKC", char)
        or any(part in name for part in _OPENER_NAMES)
        or ("LEFT" in name and "ANGLE" in name)
    )


@cache
def is_gap(char: str) -> bool:
    """Whether a character may stand between an opener and a tag name without a judge
    noticing: white space, separators, controls, invisible and unassigned characters,
    combining marks, slashes."""
    category = unicodedata.category(char)
    if char.isspace() or category[0] in ("Z", "C") or category in ("Mn", "Me"):
        return True
    name = unicodedata.name(char, "")
    return "/" in unicodedata.normalize("NFKC", char) or (
        any(part in name for part in _SLASH_NAMES)
        and not any(word in name for word in ("REVERSE", "BACK"))
    )


_NEVER_OPENERS = ("L", "N", "M", "Cn", "Co", "Cs")
"""Categories (letters, numbers, marks, unassigned, private, surrogates) with no opener: each
normalizes to itself or to letters and numbers, and none is named like one (a test checks)."""


def opener_chars(*, full_scan: bool = False) -> str:
    """Every opener character: ``is_opener`` over the planes where they live, skipping the
    categories that hold none (a full scan takes several times as long)."""
    chars = (chr(code) for plane in _PLANES for code in plane)
    if not full_scan:
        chars = (c for c in chars if not unicodedata.category(c).startswith(_NEVER_OPENERS))
    return "".join(c for c in chars if is_opener(c))


@cache
def _openers() -> re.Pattern[str]:
    """The opener characters as a pattern, built once on first use."""
    return re.compile(f"[{re.escape(opener_chars())}]")


def neutralize(text: str) -> str:
    """Escape every tag opener in judged text (see the module docstring)."""
    parts: list[str] = []
    done = 0
    for match in _openers().finditer(text):
        after = match.end()
        while after < len(text) and is_gap(text[after]):
            after += 1
        if after < len(text) and unicodedata.category(text[after]).startswith("L"):
            parts += [text[done : match.start()], ESCAPED_OPENER]
            done = match.end()
    return "".join(parts) + text[done:] if parts else text


def attribute(value: str) -> str:
    """Judged text made safe inside a double-quoted tag attribute."""
    return neutralize(value).replace('"', "&quot;").replace(">", "&gt;")
