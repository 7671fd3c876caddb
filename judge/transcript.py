"""Transcripts: the model conversations that rubrics grade.

A transcript's identity is its content: the canonical JSON of its messages. Caller metadata (ids,
tags, gold answers) rides along but never enters the hash, so relabelling a transcript never
invalidates a cached verdict.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "developer", "user", "assistant", "tool"]


class Message(BaseModel):
    """One chat message in OpenAI format; tool calls and tool results are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    role: Role
    content: str | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _flatten_content_parts(cls, value: Any) -> Any:
        """Join OpenAI content parts (``[{"type": "text", "text": ...}]``) into one string."""
        if isinstance(value, list):
            texts = []
            for part in value:
                if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                    raise ValueError("content parts must be objects with a 'text' string")
                texts.append(part["text"])
            return "\n".join(texts)
        return value

    @field_validator("tool_calls")
    @classmethod
    def _tool_calls_shape(cls, calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """OpenAI's shape, as far as the text shows it: ``function`` an object, its ``name`` a
        string (``arguments`` may be a string or any JSON)."""
        for call in calls or []:
            function = call.get("function", {})
            if not isinstance(function, dict):
                raise ValueError("a tool call's 'function' must be an object (name, arguments)")
            if not isinstance(function.get("name", ""), str):
                raise ValueError("a tool call's function 'name' must be a string")
        return calls

    @property
    def text(self) -> str:
        """The content as text, with tool calls rendered so a judge can see them."""
        parts = [self.content] if self.content else []
        for call in self.tool_calls or []:
            function = call.get("function", {})
            parts.append(
                f"[tool call {function.get('name', '?')}({function.get('arguments', '')})]"
            )
        return "\n".join(parts)


class Transcript(BaseModel):
    """A conversation to grade, with the caller's id and metadata beside it."""

    model_config = ConfigDict(frozen=True)

    id: str | None = None
    messages: tuple[Message, ...] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        """A numeric id as text: ``7``, and ``7.0`` as JSON may spell an integer, are ``"7"``."""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the canonical messages; metadata and id are deliberately left out."""
        canonical = [m.model_dump(mode="json", exclude_none=True) for m in self.messages]
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def key(self) -> str:
        """The id verdicts report: the caller's id, else the content hash."""
        return self.id if self.id is not None else self.content_hash

    @property
    def system_prompt(self) -> str | None:
        """Text of the system (or developer) messages, if any."""
        texts = [m.text for m in self.messages if m.role in ("system", "developer")]
        return "\n\n".join(texts) if texts else None

    @property
    def assistant_turns(self) -> list[int]:
        """Indices of assistant messages."""
        return [i for i, m in enumerate(self.messages) if m.role == "assistant"]

    @property
    def user_turns(self) -> list[int]:
        """Indices of user messages."""
        return [i for i, m in enumerate(self.messages) if m.role == "user"]

    def last_text(self, role: Role) -> str:
        """Text of the last message with this role, or an empty string."""
        for message in reversed(self.messages):
            if message.role == role:
                return message.text
        return ""

    @classmethod
    def from_prompt(
        cls,
        prompt: str,
        response: str,
        *,
        system: str | None = None,
        id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Transcript:
        """Build a single-turn transcript from a prompt and a response."""
        messages = [Message(role="system", content=system)] if system else []
        messages += [
            Message(role="user", content=prompt),
            Message(role="assistant", content=response),
        ]
        return cls(id=id, messages=tuple(messages), metadata=metadata or {})


VARIANT_ORDER = ("neutral", "suggested", "user_stake")
"""How paired transcripts are ordered by ``metadata.variant``: the neutral one first."""


class TranscriptGroup(BaseModel):
    """Transcripts that share ``metadata.group``, graded together by a paired or group rubric.

    Members are kept in a canonical order (by ``metadata.variant``, then content hash), so the
    group's hash, its rendered prompt and its cache key do not depend on input order.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    members: tuple[Transcript, ...] = Field(min_length=1)

    @classmethod
    def of(cls, group_id: str, members: list[Transcript]) -> TranscriptGroup:
        def rank(t: Transcript) -> tuple[int, str]:
            variant = str(t.metadata.get("variant", ""))
            order = VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)
            return order, t.content_hash

        return cls(id=group_id, members=tuple(sorted(members, key=rank)))

    @cached_property
    def content_hash(self) -> str:
        """sha256 over the members' hashes and variants, in canonical order."""
        parts = [f"{t.metadata.get('variant', '')}:{t.content_hash}" for t in self.members]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    @property
    def key(self) -> str:
        return self.id

    @property
    def metadata(self) -> dict[str, Any]:
        """The first member's metadata (model, tags) with the group id."""
        return {**self.members[0].metadata, "group": self.id}

    @property
    def variants(self) -> list[str]:
        return [str(t.metadata.get("variant", "")) for t in self.members]

    @property
    def member_ids(self) -> list[str]:
        return [t.key for t in self.members]

    def shown_in(self, order: tuple[int, ...]) -> TranscriptGroup:
        """The group with its members in this order (indices into the canonical order), as a
        judge is shown them; evidence it cites by position maps back through ``order``."""
        if sorted(order) != list(range(len(self.members))):
            raise ValueError(f"{order} is not an order of {len(self.members)} members")
        return TranscriptGroup(id=self.id, members=tuple(self.members[i] for i in order))


Subject = Transcript | TranscriptGroup
"""What one verdict grades: a transcript, or a group of them."""
