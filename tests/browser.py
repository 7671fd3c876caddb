"""Headless Chromium for the HTML report's tests: the DOM after the page ran, and screenshots.

Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it). Tests that need it
are skipped, with that reason, where it is absent. Each run gets its own profile directory and
every background service that could reach the network turned off.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def _run(page: Path, profile: Path, *flags: str) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *flags, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def dump_dom(page: Path, profile: Path) -> str:
    """The document as Chromium serializes it after loading it and running what it runs."""
    return _run(page, profile, "--dump-dom")


def screenshot(page: Path, png: Path, profile: Path, size: tuple[int, int] = (1280, 2000)) -> None:
    _run(page, profile, f"--window-size={size[0]},{size[1]}", f"--screenshot={png}")


def png_size(png: Path) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


class Dom(HTMLParser):
    """Elements of a serialized DOM: each tag with its attributes, and the text inside ``tag``."""

    def __init__(self, html: str, text_of: str = "mark"):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self._text_of = text_of
        self._depth = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == self._text_of:
            self._depth += 1
            self.texts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._text_of:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.texts[-1] += data

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        """Attributes of every ``tag`` element whose attributes include ``attrs``."""
        return [
            found
            for name, found in self.elements
            if name == tag and all(found.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def attribute_names(self) -> set[str]:
        return {name for _, found in self.elements for name in found}
