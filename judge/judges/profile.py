"""Judge profiles: the one description of a judge, and the one place judges are built from it.

Every way of naming a judge becomes a ``JudgeProfile``: a profile in the configuration file, a
``--model`` on the command line, a model or profile a request selects. ``Settings.judge_profile``
turns a name into a complete profile (the one precedence rule, documented there) and
``judge_for`` builds the judge, so a new judge setting is added here and nowhere else.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from judge.cost import Prices
from judge.judges.base import Judge
from judge.judges.llm import LLMJudge
from judge.judges.offline import OFFLINE_MODEL, OfflineJudge
from judge.transports import model_problem


class JudgeProfile(BaseModel):
    """A judge: the model, where it lives, and how to call it.

    The key is never in a profile: ``api_key_env`` names the environment variable that holds it,
    so configuration files can be shared and logged. A field left unset (None) takes the value of
    the ``JUDGE_*`` setting of the same name (see ``Settings.judge_profile``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_env: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    rpm: float | None = Field(default=None, gt=0, description="Requests per minute, at most.")
    force_litellm: bool | None = None
    input_cost_per_token: float | None = Field(
        default=None, ge=0, description="Dollars per input token (else litellm's price table)."
    )
    output_cost_per_token: float | None = Field(
        default=None, ge=0, description="Dollars per output token (else litellm's price table)."
    )
    max_cost_usd_per_job: float | None = Field(
        default=None, gt=0, description="The server's spending limit for each job using it."
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Profiles or models to ask, in order, when this judge declines to grade a "
        "call (a refusal or a content filter).",
    )

    def api_key(self) -> str | None:
        """The key, read from the variable ``api_key_env`` names (None: the provider's usual
        variable, which litellm reads)."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def filled(self, **defaults: Any) -> JudgeProfile:
        """This profile with its unset fields taken from ``defaults``."""
        unset = {k: v for k, v in defaults.items() if getattr(self, k) is None and v is not None}
        return self.model_copy(update=unset)


def profile_problem(profile: JudgeProfile, *, keys: bool = True) -> str | None:
    """Why a judge built from this profile could not make a call, found before any call is made
    (litellm's import, seconds, for LLM profiles): a model litellm cannot place, and with
    ``keys`` (not for a dry run, which needs none) a key variable the profile names that is
    unset or a provider key missing from the environment."""
    if profile.model == OFFLINE_MODEL:
        return None
    if keys and profile.api_key_env and not os.environ.get(profile.api_key_env):
        return (
            f"the judge '{profile.model}' reads its key from {profile.api_key_env}, which is unset"
        )
    return model_problem(profile.model, profile.api_base, profile.api_key(), keys=keys)


def judge_for(profile: JudgeProfile) -> Judge:
    """The judge a profile describes: ``offline`` is the built-in one, anything else an LLM judge
    on litellm's model strings."""
    if profile.model == OFFLINE_MODEL:
        return OfflineJudge()
    policy = {
        name: value
        for name in ("temperature", "max_tokens", "timeout", "max_retries", "rpm", "force_litellm")
        if (value := getattr(profile, name)) is not None
    }
    price = None
    if profile.input_cost_per_token is not None or profile.output_cost_per_token is not None:
        price = Prices(profile.input_cost_per_token or 0.0, profile.output_cost_per_token or 0.0)
    return LLMJudge(
        profile.model, api_base=profile.api_base, api_key=profile.api_key(), price=price, **policy
    )
