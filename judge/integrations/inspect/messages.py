"""Inspect AI chat messages as our OpenAI-format messages.

Text parts are joined as Inspect's own ``ChatMessage.text`` joins them; images, audio and
reasoning blocks are left out (a judge grades what the model said). Tool calls become OpenAI
``tool_calls`` entries and a tool's error, when it returned no text, becomes its content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageTool
from inspect_ai.tool import ToolCall

from judge.transcript import Message, Transcript


def message_of(message: ChatMessage) -> Message:
    """One Inspect message in OpenAI format: role, text, tool calls, tool call id."""
    if isinstance(message, ChatMessageAssistant):
        calls = [_tool_call(call) for call in message.tool_calls or []]
        return Message(role="assistant", content=message.text, tool_calls=calls or None)
    if isinstance(message, ChatMessageTool):
        content = message.text
        if not content and message.error is not None:
            content = f"{message.error.type}: {message.error.message}"
        return Message(
            role="tool", content=content, name=message.function, tool_call_id=message.tool_call_id
        )
    return Message(role=message.role, content=message.text)


def transcript_of(
    messages: Sequence[ChatMessage], *, id: str, metadata: dict[str, Any]
) -> Transcript:
    """A transcript of an Inspect conversation (``ValidationError`` when it has no message)."""
    return Transcript(id=id, messages=tuple(map(message_of, messages)), metadata=metadata)


def sample_metadata(sample: dict[str, Any] | None, ours: dict[str, Any]) -> dict[str, Any]:
    """The sample's metadata with ours on top; a sample key that ours shadows is kept under
    ``sample_metadata``, so nothing the task recorded is lost."""
    sample = sample or {}
    shadowed = {key: value for key, value in sample.items() if key in ours}
    merged = {**sample, **ours}
    if shadowed:
        merged["sample_metadata"] = shadowed
    return merged


def _tool_call(call: ToolCall) -> dict[str, Any]:
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    function = {"name": call.function, "arguments": arguments}
    return {"id": call.id, "type": "function", "function": function}
