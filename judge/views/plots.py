"""The HTML report's plots: matplotlib figures as inline SVG, with their text alternative.

matplotlib draws them (``Figure.savefig`` to SVG: no pyplot, and its settings only inside an
``rc_context``), in DejaVu Sans, which ships with matplotlib, with every glyph written as a path: a
plot looks the same on a machine without the font and needs nothing from the network. Each SVG
gets ``role="img"``, a ``<title>`` and a ``<desc>``, and its ids prefixed so that several plots
can share one page. Colours are the Okabe-Ito palette (told apart with colour-blindness), paired
with distinct markers so they also survive a grey-scale printer. Labels are drawn as given:
``text.parse_math`` is off, so a ``$`` in a model's name is not mathtext.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from matplotlib.typing import RcKeyType

from judge.reports import Comparison, RateRow, TrendPoint

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000")
"""Okabe-Ito without its yellow, which is too light on white."""
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
GREY = "#767676"
STYLE: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "svg.fonttype": "path",
    "svg.hashsalt": "judge-report",  # deterministic clip-path ids
    "text.parse_math": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "x",
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "legend.frameon": False,
}
warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
"""A name's characters the font lacks (a control character, a script DejaVu does not cover) are
drawn as boxes, not warned of per request (set once: ``catch_warnings`` is not thread-safe)."""
DRAWING = threading.Lock()
"""matplotlib's settings are process-wide: one figure at a time (a server renders in threads)."""
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)


@contextlib.contextmanager
def _drawing(overrides: Mapping[RcKeyType, Any] | None = None) -> Iterator[None]:
    """One figure at a time, in the report's style."""
    with DRAWING, matplotlib.rc_context({**STYLE, **(overrides or {})}):
        yield


def style(index: int) -> dict[str, str]:
    """Colour and marker of the index-th series."""
    return {"color": OKABE_ITO[index % len(OKABE_ITO)], "marker": MARKERS[index % len(MARKERS)]}


def rate_overview(
    rows: Sequence[RateRow],
    models: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    *,
    ident: str,
    title: str,
    description: str,
) -> str:
    """Flag rate with its 95% interval per rubric (rows) and model (colours), one panel per
    category. ``rows`` are grouped by model and rubric."""
    cells = {(r.group["model"], r.group["rubric"]): r for r in rows if r.rate is not None}
    band = max(0.32, 0.13 * len(models))
    heights = [len(rubrics) * band + 0.3 for rubrics in categories.values()]
    offsets = _offsets(len(models), 0.62)
    with _drawing():
        figure = Figure(figsize=(6.4, sum(heights) + 0.7), layout="constrained")
        axes = figure.subplots(
            len(categories), 1, sharex=True, height_ratios=heights, squeeze=False
        )
        for ax, (category, rubrics) in zip(axes[:, 0], categories.items(), strict=True):
            for m, model in enumerate(models):
                found = [
                    (y, cells[(model, r)]) for y, r in enumerate(rubrics) if (model, r) in cells
                ]
                if not found:
                    continue
                _dots(ax, [y + offsets[m] for y, _ in found], [c for _, c in found], m, model)
            for y, rubric in enumerate(rubrics):
                if not any((model, rubric) in cells for model in models):
                    ax.text(
                        0.01,
                        y,
                        "no graded verdict (see status accounting)",
                        transform=ax.get_yaxis_transform(),
                        color=GREY,
                        style="italic",
                        va="center",
                    )
            ax.set_yticks(range(len(rubrics)), list(rubrics))
            ax.set_ylim(len(rubrics) - 0.5, -0.5)
            ax.set_title(category)
            ax.tick_params(axis="y", length=0)
        last = axes[-1, 0]
        last.set_xlim(0, 1)
        last.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        last.set_xlabel("flag rate (flagged / graded), 95% interval")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        for ax in axes[1:, 0]:  # a model may be missing from the first panel
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                if label not in labels:
                    handles.append(handle)
                    labels.append(label)
        longest = max(len(label) for label in labels)
        across = max(1, min(len(labels), int(440 // (4.6 * longest + 30))))  # 8 pt labels
        figure.legend(handles, labels, loc="outside upper center", ncols=across, fontsize=8)
        return inline_svg(figure, ident=ident, title=title, description=description)


def _offsets(count: int, width: float) -> list[float]:
    if count == 1:
        return [0.0]
    return [-width / 2 + width * i / (count - 1) for i in range(count)]


def _dots(ax: Any, ys: list[float], cells: list[RateRow], index: int, label: str) -> None:
    rates = [c.rate or 0.0 for c in cells]
    low = [max(0.0, (c.rate or 0.0) - (c.ci_low or 0.0)) for c in cells]
    high = [max(0.0, (c.ci_high or 0.0) - (c.rate or 0.0)) for c in cells]
    look = style(index)
    ax.errorbar(
        rates,
        ys,
        xerr=[low, high],
        fmt=look["marker"],
        color=look["color"],
        markersize=4.5,
        elinewidth=1.2,
        capsize=2,
        label=label,
    )


def forest(comparisons: Sequence[Comparison], *, ident: str, title: str, description: str) -> str:
    """Paired differences (B - A) with 95% intervals, a zero line and the number of pairs; an
    interval that excludes zero is drawn in colour (orange up, blue down), else in grey."""
    several = len({(c.model_a, c.model_b) for c in comparisons}) > 1
    labels = [
        f"{c.rubric}: {c.model_b} - {c.model_a}" if several else c.rubric for c in comparisons
    ]
    with _drawing():
        figure = Figure(figsize=(6.4, 0.32 * len(comparisons) + 1.0), layout="constrained")
        ax = figure.subplots()
        ax.axvline(0, color="#000000", linewidth=0.9, linestyle="--")
        for y, c in enumerate(comparisons):
            moved = c.ci_low > 0 or c.ci_high < 0
            colour = (OKABE_ITO[1] if c.difference > 0 else OKABE_ITO[0]) if moved else GREY
            ax.errorbar(
                [c.difference * 100],
                [y],
                xerr=[[(c.difference - c.ci_low) * 100], [(c.ci_high - c.difference) * 100]],
                fmt="D" if moved else "o",
                color=colour,
                markersize=5,
                elinewidth=1.4,
                capsize=2.5,
            )
        ax.set_yticks(range(len(comparisons)), labels)
        ax.set_ylim(len(comparisons) - 0.5, -0.5)
        ax.tick_params(axis="y", length=0)
        pairs = ax.secondary_yaxis("right")
        pairs.set_yticks(range(len(comparisons)), [f"n = {c.prompts}" for c in comparisons])
        pairs.tick_params(length=0)
        pairs.spines["right"].set_visible(False)
        limit = max(1.0, *(max(abs(c.ci_low), abs(c.ci_high)) * 105 for c in comparisons))
        ax.set_xlim(-limit, limit)
        ax.set_xlabel("difference in flag rate, percentage points (paired bootstrap 95% interval)")
        return inline_svg(figure, ident=ident, title=title, description=description)


def trend(
    points: Sequence[TrendPoint],
    categories: Mapping[str, Sequence[str]],
    *,
    ident: str,
    title: str,
    description: str,
) -> str:
    """Each rubric's rate across checkpoints, one panel per category (at most three across); the
    x axis is ``metadata.step`` when every checkpoint has one, else the checkpoints' order."""
    checkpoints = {p.checkpoint.position: p.checkpoint for p in points}
    steps = all(c.step is not None for c in checkpoints.values())
    panels = [(cat, rubrics) for cat, rubrics in categories.items() if rubrics]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    with _drawing({"axes.grid.axis": "y"}):
        width = max(4.2, 2.5 * columns + 0.6)
        figure = Figure(figsize=(width, 2.3 * rows + 0.4), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False, sharey=True)
        for ax, (category, rubrics) in zip(axes.flat, panels, strict=False):
            for index, rubric in enumerate(rubrics):
                series = [p for p in points if p.rubric == rubric and p.rate is not None]
                xs = [p.checkpoint.step if steps else p.checkpoint.position for p in series]
                look = style(index)
                ax.errorbar(
                    xs,
                    [p.rate for p in series],
                    yerr=[
                        [max(0.0, (p.rate or 0) - (p.ci_low or 0)) for p in series],
                        [max(0.0, (p.ci_high or 0) - (p.rate or 0)) for p in series],
                    ],
                    color=look["color"],
                    marker=look["marker"],
                    markersize=4,
                    linewidth=1.2,
                    capsize=2,
                    label=rubric,
                )
            ax.set_title(category)
            ax.legend(fontsize=7, loc="best")
            if not steps:
                ax.set_xticks(
                    list(checkpoints), [c.model for c in checkpoints.values()], rotation=30
                )
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        axes[0, 0].set_ylim(bottom=0)
        axes[0, 0].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        figure.supxlabel("training step" if steps else "checkpoint", fontsize=9)
        figure.supylabel("flag rate, 95% interval", fontsize=9)
        return inline_svg(figure, ident=ident, title=title, description=description)


def inline_svg(figure: Figure, *, ident: str, title: str, description: str) -> str:
    """The figure as an ``<svg>`` element for an HTML page: no XML prologue or metadata, ids
    prefixed with ``ident``, sized by its viewBox, and labelled by its title and description."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    root = ET.fromstring(_xml_characters(buffer.getvalue()))
    for metadata in root.findall(f"{{{SVG_NS}}}metadata"):
        root.remove(metadata)
    _prefix_ids(root, ident)
    width = float(root.attrib.pop("width").removesuffix("pt")) * 4 / 3
    root.attrib.pop("height")
    root.set("width", f"{width:.0f}")
    root.set("role", "img")
    root.set("aria-labelledby", f"{ident}-title {ident}-desc")
    root.set("id", ident)
    root.set("class", "plot")
    for position, (tag, text) in enumerate((("title", title), ("desc", description))):
        element = ET.Element(f"{{{SVG_NS}}}{tag}", id=f"{ident}-{tag}")
        element.text = _xml_characters(text)
        root.insert(position, element)
    return ET.tostring(root, encoding="unicode")


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_characters(text: str) -> str:
    """The text without the characters XML cannot hold (a model name or tag may carry control
    characters, which matplotlib writes into the SVG as they are)."""
    return _NOT_XML.sub("", text)


def _prefix_ids(root: ET.Element, ident: str) -> None:
    """Make every id unique on the page and keep the references to it (``url(#id)`` and
    ``xlink:href="#id"``) pointing at it."""
    href = f"{{{XLINK_NS}}}href"
    for element in root.iter():
        if "id" in element.attrib:
            element.set("id", f"{ident}-{element.attrib['id']}")
        for name, value in list(element.attrib.items()):
            if name == href and value.startswith("#"):
                element.set(name, f"#{ident}-{value[1:]}")
            elif "url(#" in value:
                element.set(name, value.replace("url(#", f"url(#{ident}-"))
