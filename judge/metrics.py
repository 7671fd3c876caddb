"""Prometheus metrics, in a registry of the app's own (so several apps in one process, as in
tests, never collide)."""

from __future__ import annotations

import itertools

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from judge.verdict import Verdict


class Metrics:
    """Request, verdict, judge-call, cache and cost counters of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "judge_http_requests",
            "HTTP requests by route and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.verdicts = Counter(
            "judge_verdicts",
            "Verdicts by rubric and status.",
            ["rubric", "status"],
            registry=self.registry,
        )
        self.judge_calls = Counter(
            "judge_calls",
            "Judge calls made (cache misses) by model and outcome.",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.call_latency = Histogram(
            "judge_call_latency_seconds",
            "Latency of judge calls made, by model.",
            ["model"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.cache = Counter(
            "judge_cache_lookups",
            "Judge calls answered from the cache (hit) or made (miss).",
            ["result"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "judge_fallbacks",
            "Calls a judge declined to grade, by that judge and the fallback that answered next.",
            ["model", "fallback"],
            registry=self.registry,
        )
        self.escalations = Counter(
            "judge_cascade_escalations",
            "Verdicts a cascade's first stage did not decide, by rubric.",
            ["rubric"],
            registry=self.registry,
        )
        self.cost = Counter(
            "judge_cost_usd",
            "Judge spend in US dollars, by model.",
            ["model"],
            registry=self.registry,
        )

    def observe_verdict(self, verdict: Verdict) -> None:
        self.verdicts.labels(verdict.rubric.id, verdict.status.value).inc()
        if verdict.cascade and verdict.cascade.stage:
            self.escalations.labels(verdict.rubric.id).inc()
        for call in verdict.calls:
            chain = [*call.declined, call]  # each judge that declined, then whoever was asked next
            for declined, answered in itertools.pairwise(chain):
                self.fallbacks.labels(declined.model, answered.model).inc()
            if call.cached:
                self.cache.labels("hit").inc()
                continue
            if not call.attempts:  # never made (past a budget)
                continue
            self.cache.labels("miss").inc()
            outcome = call.error.kind.value if call.error else "ok"
            self.judge_calls.labels(call.model, outcome).inc()
            self.call_latency.labels(call.model).observe(call.latency_ms / 1000)
            if call.cost_usd:
                self.cost.labels(call.model).inc(call.cost_usd)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
