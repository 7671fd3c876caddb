"""Spending limits: a run stops paying before it passes its budget.

Before a judge call goes out (holding its concurrency slot), the engine reserves the most that
call's first request can cost: its input tokens, counted as the provider counts them, plus the
rubric's ``max_tokens`` of output, at the model's prices. If that reservation would take spent +
reserved past the limit, the budget is exhausted: that call and every later one get
``error(budget)``, and nothing more is paid. When a call returns, its reservation is replaced by
what it really cost.

So the budget is passed only when calls in flight cost more than they reserved, which only a
re-ask can do (a second request, after a reply that did not validate): the overshoot is at most
the re-asks of the calls in flight, each about one more request of the same call (and at most
``concurrency`` calls are in flight). Retries of failed requests bill nothing.
"""

from __future__ import annotations

import math

from judge.cost import count_tokens
from judge.errors import ErrorKind, JudgeSpecError, UsageError
from judge.judges.exchange import is_logprob
from judge.judges.llm import LLMJudge
from judge.plan import JudgePlan, PlannedCall
from judge.verdict import VerdictError


class Budget:
    """A run's spending limit in US dollars, and what its calls have spent and reserved."""

    def __init__(self, limit_usd: float, *, spent_usd: float = 0.0):
        if not math.isfinite(limit_usd) or limit_usd <= 0:
            raise UsageError(f"a budget must be a positive number of dollars, not {limit_usd}")
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = 0.0
        self.exhausted = spent_usd >= limit_usd

    def reserve(self, amount_usd: float) -> bool:
        """Set ``amount_usd`` aside for a call; False (and exhausted from then on) if it would
        take the run past its limit."""
        if self.exhausted or self.spent_usd + self.reserved_usd + amount_usd > self.limit_usd:
            self.exhausted = True
            return False
        self.reserved_usd += amount_usd
        return True

    def settle(self, reserved_usd: float, cost_usd: float) -> None:
        """A call that reserved ``reserved_usd`` came back having cost ``cost_usd``."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
        self.spent_usd += cost_usd

    def refusal(self) -> VerdictError:
        """The error a call gets once the budget is exhausted."""
        return VerdictError(
            kind=ErrorKind.BUDGET,
            message=(
                f"the budget of ${self.limit_usd:.4f} is spent (${self.spent_usd:.4f} paid, "
                f"${self.reserved_usd:.4f} held by calls in flight): no more judge calls; "
                "rerun with a higher budget to pay only for what is missing"
            ),
        )


def worst_case_usd(call: PlannedCall) -> float:
    """The most a call's first request can cost (0 for a judge that costs nothing). CPU work
    (the prompt is rendered and counted): run it in a thread."""
    judge = call.judge
    if not isinstance(judge, LLMJudge):
        return 0.0
    price = judge.prices()
    assert price is not None, "check_priced refuses a budget for unpriced judges"
    request = call.request
    inputs = count_tokens(judge.model, judge.ask(request).messages)
    outputs = 1 if is_logprob(request) else judge.max_reply_tokens(request)
    return price.of(inputs, outputs)


def check_priced(plan: JudgePlan) -> None:
    """Refuse a budget for a plan with a paid judge whose price is unknown: it could not be
    kept."""
    unpriced = [
        judge.name for judge in plan.judges if isinstance(judge, LLMJudge) and not judge.prices()
    ]
    if unpriced:
        raise JudgeSpecError(
            f"a budget needs every judge's price, and litellm's price table does not know "
            f"{', '.join(unpriced)}: set input_cost_per_token and output_cost_per_token in "
            "its profile (JUDGE_CONFIG)"
        )
