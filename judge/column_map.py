"""Column mapping: records whose fields are named otherwise (a CSV of results, a JSONL from
another tool) read as transcript records.

``--map prompt=question,response=answer,model=model_id`` renames ``question`` to ``prompt`` and
so on; a dotted target nests (``gold.aligned=aligned_score``, ``metadata.run=run_id``). Fields
not mapped stay as they are (and, outside the record shapes, go to metadata).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from judge.errors import TranscriptError, UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ColumnMap:
    """Target field (dotted for nesting) -> source column, in the order given."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> ColumnMap:
        """``TARGET=SOURCE`` items, comma-separated, from any number of ``--map`` options."""
        pairs: list[tuple[str, str]] = []
        for spec in specs:
            for item in filter(None, (part.strip() for part in spec.split(","))):
                target, equals, source = item.partition("=")
                target, source = target.strip(), source.strip()
                if not equals or not source or not _NAME.match(target):
                    raise UsageError(
                        f"--map takes TARGET=SOURCE pairs (e.g. prompt=question,response=answer,"
                        f"gold.aligned=aligned), not '{item}'"
                    )
                if target in (t for t, _ in pairs):
                    raise UsageError(f"--map names the target '{target}' twice")
                pairs.append((target, source))
        return cls(tuple(pairs))

    @property
    def sources(self) -> list[str]:
        return [source for _, source in self.pairs]

    def missing(self, columns: Iterable[str]) -> list[str]:
        """The mapped source columns a header lacks."""
        present = set(columns)
        return [source for source in self.sources if source not in present]

    def apply(self, record: dict[str, Any], *, line: int | None = None) -> dict[str, Any]:
        """The record with each source field moved to its target (a ``TranscriptError`` names
        a source the record lacks)."""
        if not self.pairs:
            return record
        mapped = dict(record)
        for target, source in self.pairs:
            if source not in record:
                known = ", ".join(map(repr, record)) or "none"
                raise TranscriptError(
                    f"has no field '{source}' to map to '{target}' (fields: {known})", line=line
                )
            mapped.pop(source, None)
        for target, source in self.pairs:
            *parents, leaf = target.split(".")
            node = mapped
            for parent in parents:
                child = node.setdefault(parent, {})
                if not isinstance(child, dict):
                    raise TranscriptError(
                        f"cannot map into '{target}': '{parent}' is not an object",
                        line=line,
                        field=parent,
                    )
                node = child
            node[leaf] = record[source]
        return mapped
