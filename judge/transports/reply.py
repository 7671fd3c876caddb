"""Reading a judge's reply: an OpenAI chat completion body as a ``Completion``, the same way
whichever transport carried it (the pooled HTTP session, litellm, a provider batch's output), so
that every judge is held to the same shape and refused for the same malformations."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from judge.errors import ErrorKind
from judge.transports.base import Completion, TransportError


def malformed_reply(detail: str) -> TransportError:
    """The error of a reply that is not a chat completion the judge can read (not retried: the
    endpoint would answer the same)."""
    return TransportError(
        ErrorKind.PROVIDER, f"malformed reply from the judge endpoint ({detail})", transient=False
    )


class _TopLogprob(BaseModel):
    token: str
    logprob: float = Field(allow_inf_nan=False, le=0)


class _TokenLogprobs(BaseModel):
    top_logprobs: list[_TopLogprob] | None = None


def _alternatives(token: _TokenLogprobs) -> list[tuple[str, float]]:
    """The first token's alternatives, each token once (some vLLM versions list the sampled
    token twice); ``TransportError`` when their probabilities still sum past 1 (a hair more is
    rounding): that is no judge's distribution, and would make a logprob score's numeric mass,
    its confidence, more than 1."""
    alternatives: dict[str, float] = {}
    for item in token.top_logprobs or []:
        alternatives.setdefault(item.token, item.logprob)
    if sum(math.exp(logprob) for logprob in alternatives.values()) > 1.01:
        raise malformed_reply("the top_logprobs' probabilities sum to more than 1")
    return list(alternatives.items())


class _Logprobs(BaseModel):
    content: list[_TokenLogprobs] | None = None


class _Message(BaseModel):
    content: str | None = None
    refusal: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, value: Any) -> Any:
        """Some servers send content parts (``[{"type": "text", "text": ...}]``): join their
        texts (a part whose text is not a string is a malformed reply, not text to read)."""
        if isinstance(value, list):
            texts = [part.get("text", "") for part in value if isinstance(part, dict)]
            if not all(isinstance(text, str) for text in texts):
                raise ValueError("a content part's text must be a string")
            return "".join(texts)
        return value


class _Choice(BaseModel):
    message: _Message = _Message()
    finish_reason: str | None = None
    logprobs: _Logprobs | None = None


MAX_TOKENS_A_CALL = 10**8
"""No call reads or writes more tokens: a count past it is a broken (or hostile) endpoint's, and
would be billed."""
_TokenCount = Annotated[int | None, Field(default=None, ge=0, le=MAX_TOKENS_A_CALL)]


class _PromptTokens(BaseModel):
    cached_tokens: _TokenCount = None


class _Usage(BaseModel):
    prompt_tokens: _TokenCount = None
    completion_tokens: _TokenCount = None
    prompt_tokens_details: _PromptTokens | None = None
    cache_creation_input_tokens: _TokenCount = None
    """Anthropic's (through litellm): input written to its prompt cache."""


class _Reply(BaseModel):
    """The part of an OpenAI chat completion the judge reads; the rest is ignored."""

    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


def parse_completion(raw: bytes | dict[str, Any]) -> Completion:
    """An OpenAI chat completion (the bytes of a reply, or the parsed body a provider batch's
    output line holds) as a ``Completion``; a ``TransportError`` when it is malformed. Every
    transport's reply is read here, so that every judge is held to the same shape."""
    try:
        if isinstance(raw, bytes):
            reply = _Reply.model_validate_json(raw)
        else:
            reply = _Reply.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "reply"
        raise malformed_reply(f"{where}: {error['msg']}") from None
    choice = reply.choices[0]
    tokens = choice.logprobs.content if choice.logprobs is not None else None
    usage = reply.usage or _Usage()
    return Completion(
        content=choice.message.content or "",
        refusal=choice.message.refusal,
        finish_reason=choice.finish_reason,
        top_logprobs=_alternatives(tokens[0]) if tokens else None,
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_input_tokens=(usage.prompt_tokens_details or _PromptTokens()).cached_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )
