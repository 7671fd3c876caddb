"""Evidence quotes marked in transcript text, for the report's drill-down.

The text is untrusted (transcripts hold HTML and scripts), so it is escaped piece by piece with
markupsafe and only the ``<mark>`` tags around the quotes are markup. A quote is found as the
grader verified it: its words in order, white space aside. A long message is cut to windows
around its quotes, so that a 400,000-character transcript does not become a 400,000-character page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markupsafe import Markup, escape

CONTEXT = 300
"""Characters kept before and after a quote when a long message is cut."""


def find(text: str, quote: str) -> tuple[int, int] | None:
    """Where the quote's words stand in the text (first place), white space aside."""
    words = quote.split()
    if not words:
        return None
    match = re.search(r"\s+".join(re.escape(word) for word in words), text)
    return match.span() if match else None


def mark(text: str, quotes: Sequence[str], *, limit: int = 4000) -> tuple[Markup, int]:
    """The text, escaped, with each found quote in ``<mark>``; and how many quotes were found.
    Text beyond ``limit`` characters is cut to the start and windows around the quotes."""
    located = [span for quote in quotes if (span := find(text, quote)) is not None]
    spans = _merge(located)
    if len(text) <= limit:
        shown = [(0, len(text))]
    else:
        shown = _merge([(0, min(len(text), limit // 4))] + [
            (max(0, start - CONTEXT), min(len(text), end + CONTEXT)) for start, end in spans
        ])  # fmt: skip
    parts: list[Markup] = []
    for number, (start, end) in enumerate(shown):
        if number or start:
            parts.append(Markup('<span class="cut">[&hellip;]</span>'))
        parts.append(_marked(text, start, end, spans))
    if shown[-1][1] < len(text):
        parts.append(Markup('<span class="cut">[&hellip; {} more characters]</span>').format(
            len(text) - shown[-1][1]
        ))  # fmt: skip
    return Markup("").join(parts), len(located)


def _marked(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> Markup:
    parts: list[Markup] = []
    cursor = start
    for low, high in spans:
        low, high = max(low, start), min(high, end)
        if low >= high:
            continue
        parts.append(escape(text[cursor:low]))
        parts.append(Markup("<mark>{}</mark>").format(text[low:high]))
        cursor = high
    parts.append(escape(text[cursor:end]))
    return Markup("").join(parts)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
