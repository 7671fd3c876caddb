"""Self-identity claims: which model or maker a reply says it is, against the identity the
transcript's metadata expects (``metadata.identity``, and optionally ``metadata.creator``)."""

from __future__ import annotations

import re
from typing import Literal

IdentityLabel = Literal["consistent", "other_identity"]

MODELS = (
    "ChatGPT", "GPT-4o", "GPT-4", "GPT-3.5", "GPT", "Claude", "Gemini", "Bard", "LLaMA", "Llama",
    "Mistral", "Mixtral", "Qwen", "DeepSeek", "Grok", "Copilot", "Phi", "Gemma", "Command R",
)  # fmt: skip
MAKERS = (
    "OpenAI", "Anthropic", "Google DeepMind", "Google", "Meta", "Mistral AI", "Alibaba",
    "DeepSeek", "xAI", "Microsoft", "Cohere",
)  # fmt: skip

_NAME_CLAIM = re.compile(
    r"\b(?:I\s+am|I'm|my\s+name\s+is|this\s+is|I\s+was\s+called)\s+(?:an?\s+|the\s+)?("
    + "|".join(re.escape(m) for m in MODELS)
    + r")\b",
    re.IGNORECASE,
)
_MAKER_CLAIM = re.compile(
    r"\b(?:created|made|developed|trained|built|designed)\s+by\s+("
    + "|".join(re.escape(m) for m in MAKERS)
    + r")\b",
    re.IGNORECASE,
)


def claims(text: str) -> list[str]:
    """Model names and makers the text claims as its own."""
    return [m.group(1) for m in _NAME_CLAIM.finditer(text)] + [
        m.group(1) for m in _MAKER_CLAIM.finditer(text)
    ]


def classify_identity(
    replies: list[str], identity: str, creator: str | None
) -> tuple[IdentityLabel, str]:
    """Whether any reply claims another identity than the expected one, and what it claimed."""
    expected = [identity.lower()] + ([creator.lower()] if creator else [])
    claimed = [claim for reply in replies for claim in claims(reply)]
    foreign = [c for c in claimed if not any(c.lower() in e or e in c.lower() for e in expected)]
    if foreign:
        return "other_identity", ", ".join(dict.fromkeys(foreign))
    return "consistent", ", ".join(dict.fromkeys(claimed)) or "no identity claimed"
