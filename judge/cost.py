"""What judge calls cost: dollars per token from litellm's price table (shipped with litellm and
read offline), looked up once per model."""

from __future__ import annotations

from functools import cache

from judge.transports.litellm import litellm_module


@cache
def prices(model: str) -> tuple[float, float] | None:
    """Dollars per input and output token from litellm's table, looked up once per model."""
    try:
        info = litellm_module().get_model_info(model)
        return float(info["input_cost_per_token"]), float(info["output_cost_per_token"])
    except Exception:
        return None
