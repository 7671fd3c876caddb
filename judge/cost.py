"""What judge calls cost: dollars per token from litellm's price table (shipped with litellm and
read offline, looked up once per model), and tokens counted the way the model's tokenizer counts
them (litellm's counter; its tokenizer files ship with it, so counting never downloads).

A prompt prefix the provider had cached (OpenAI's automatic caching, Anthropic's
``cache_control``) is billed at the cached rate; a provider batch at the batch rate (half the live
one where the table does not say).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from judge.transports.litellm import litellm_module


@dataclass(frozen=True)
class Prices:
    """Dollars per token for one model."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None

    def of(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
        written_tokens: int = 0,
        *,
        batch: bool = False,
    ) -> float:
        """What a call with these tokens costs: of the input, ``cached_tokens`` were read from
        the provider's prompt cache and ``written_tokens`` written to it."""
        if batch:
            input_rate = self.batch_input if self.batch_input is not None else self.input / 2
            output_rate = self.batch_output if self.batch_output is not None else self.output / 2
            return input_tokens * input_rate + output_tokens * output_rate
        cached_rate = self.cached_input if self.cached_input is not None else self.input
        write_rate = self.cache_write_input if self.cache_write_input is not None else self.input
        fresh = max(0, input_tokens - cached_tokens - written_tokens)
        return (
            fresh * self.input
            + cached_tokens * cached_rate
            + written_tokens * write_rate
            + output_tokens * self.output
        )


def _rate(info: dict[str, Any], name: str) -> float | None:
    value = info.get(name)
    return float(value) if value is not None else None


@cache
def prices(model: str) -> Prices | None:
    """The model's prices from litellm's table (None when the table does not know the model)."""
    try:
        info = litellm_module().get_model_info(model)
        return Prices(
            input=float(info["input_cost_per_token"]),
            output=float(info["output_cost_per_token"]),
            cached_input=_rate(info, "cache_read_input_token_cost"),
            cache_write_input=_rate(info, "cache_creation_input_token_cost"),
            batch_input=_rate(info, "input_cost_per_token_batches"),
            batch_output=_rate(info, "output_cost_per_token_batches"),
        )
    except Exception:
        return None


def count_tokens(model: str, messages: list[dict[str, Any]] | None = None, text: str = "") -> int:
    """Tokens of chat messages (with the per-message overhead the provider bills) or of text,
    by the model's tokenizer (litellm picks it; an unknown model counts as OpenAI's)."""
    litellm = litellm_module()
    if messages is not None:
        return int(litellm.token_counter(model=model, messages=messages))
    return int(litellm.token_counter(model=model, text=text))
