"""Settings: ``JUDGE_*`` environment variables over an optional YAML file (``JUDGE_CONFIG``).

Nothing reads settings from a global: the CLI builds a ``Settings`` once and hands its values on,
the server is built by ``create_app(settings)``, and tests construct their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from judge.cache import CallCache, DiskCache, MemoryCache, RedisCache
from judge.errors import JudgeSpecError, UsageError
from judge.judges.offline import OFFLINE_MODEL
from judge.judges.profile import JudgeProfile, profile_problem
from judge.rubric import RubricLibrary, default_rubric_dir


class Settings(BaseSettings):
    """Configuration of the library, CLI and service."""

    model_config = SettingsConfigDict(env_prefix="JUDGE_", extra="ignore")

    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "judge")
    cache_backend: str = Field(default="disk", pattern="^(disk|memory)$")
    cache_url: str | None = Field(
        default=None,
        pattern="^rediss?://",
        description="A Redis URL: share the cache between replicas (overrides cache_backend).",
    )
    queue_url: str | None = Field(
        default=None,
        pattern="^rediss?://",
        description="A Redis URL: keep jobs there and grade them in `judge worker` processes, so "
        "API replicas are stateless (without it, the server grades jobs itself from state_dir).",
    )
    worker_jobs: int = Field(default=4, ge=1, description="Jobs one worker grades at once.")
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve a worker's Prometheus metrics on this port (no auth: keep it private).",
    )
    job_heartbeat_seconds: int = Field(
        default=30,
        ge=1,
        description="A queued job whose worker has not beaten for this long is re-enqueued.",
    )
    state_dir: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "state" / "judge",
        description="Where the server keeps its job database.",
    )
    rubric_dirs: list[Path] = Field(default_factory=list)
    api_base: str | None = None
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    force_litellm: bool = Field(
        default=False,
        description="Send every judge call through litellm, even to OpenAI-compatible endpoints.",
    )
    concurrency: int = Field(default=16, ge=1)
    per_model_concurrency: int | None = Field(default=None, ge=1)

    profiles: dict[str, JudgeProfile] = Field(default_factory=dict)
    cascades: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Named cascades: profiles or models, cheapest first; each decides what it "
        "is confident about (the rubric's cascade thresholds) and escalates the rest. A name "
        "here is used wherever a profile name is.",
    )
    default_profile: str | None = None
    allowed_models: list[str] = Field(
        default_factory=list, description="Models a request may name directly (besides profiles)."
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list, description="Bearer keys the server accepts; none: no auth."
    )

    max_body_bytes: int = Field(default=10 * 2**20, ge=1024)
    max_job_body_bytes: int = Field(default=512 * 2**20, ge=1024)
    body_idle_seconds: float = Field(default=30.0, gt=0)
    """How long a request body may pause before the server answers 408 (a stalled or
    trickling client would otherwise hold its request, and a job's intake, open)."""
    max_sync_pairs: int = Field(default=200, ge=1)
    max_job_pairs: int = Field(default=2_000_000, ge=1)
    max_transcript_chars: int = Field(default=400_000, ge=100)
    job_lease_seconds: float = Field(default=30.0, gt=0)
    job_ttl: float | None = Field(
        default=None,
        gt=0,
        description="Seconds a finished job, its transcripts and verdicts are kept (the server "
        "and workers prune them; the verdict cache is not affected); unset: until deleted.",
    )
    batch_poll_seconds: float = Field(
        default=30.0, gt=0, description="How often provider batches are polled (batch mode)."
    )
    batch_max_requests: int = Field(
        default=50_000, ge=1, description="Requests per provider batch, at most (OpenAI: 50,000)."
    )

    @model_validator(mode="after")
    def _consistent_names(self) -> Settings:
        both = set(self.profiles) & set(self.cascades)
        if both:
            raise ValueError(f"{', '.join(sorted(both))}: both a profile and a cascade")
        for name, stages in self.cascades.items():
            if not stages or any(stage in self.cascades for stage in stages):
                raise ValueError(
                    f"cascade '{name}' needs one or more profiles or models (not cascades)"
                )
        known_names = {*self.profiles, *self.cascades}
        if self.default_profile is not None and self.default_profile not in known_names:
            known = ", ".join(sorted(known_names)) or "none"
            raise ValueError(
                f"default_profile '{self.default_profile}' is not a configured profile "
                f"(profiles: {known})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[Any] = [init_settings, env_settings]
        config_file = os.environ.get("JUDGE_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise ValueError(f"JUDGE_CONFIG={config_file} is not a file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    def fallbacks(self, name: str, extra: Iterable[str] = ()) -> list[str]:
        """The judges to ask when ``name`` declines a call: its profile's fallbacks, then
        ``extra``, each once and never itself."""
        chain = [*self.judge_profile(name).fallbacks, *extra]
        return [f for f in dict.fromkeys(chain) if f != name]

    def judge_profile(self, name: str) -> JudgeProfile:
        """The complete profile a name stands for: a configured profile, or else a model string
        (``offline`` for the built-in judge) on ``api_base``.

        The one precedence rule: a field a profile sets wins; a field it leaves unset takes the
        ``JUDGE_*`` setting of the same name (``timeout``, ``max_retries``, ``force_litellm``),
        whose environment variable wins over ``JUDGE_CONFIG``'s top level, which wins over the
        default. ``api_base`` applies to model strings only: a profile names its own endpoint.
        """
        if name in self.profiles:
            profile = self.profiles[name]
        elif name == OFFLINE_MODEL:
            return JudgeProfile(model=OFFLINE_MODEL)
        else:
            profile = JudgeProfile(model=name, api_base=self.api_base)
        return profile.filled(
            timeout=self.timeout, max_retries=self.max_retries, force_litellm=self.force_litellm
        )

    def check_judges(self, names: Iterable[str], *, keys: bool = True) -> None:
        """Refuse, with a ``JudgeSpecError`` naming each, judges that could not make a call (a
        model litellm cannot place; an unset key variable, unless ``keys`` is off for a dry run,
        which needs none): before grading, not per verdict."""
        problems = [
            f"judge '{name}': {problem}"
            for name in dict.fromkeys(names)
            if (problem := profile_problem(self.judge_profile(name), keys=keys)) is not None
        ]
        if problems:
            raise JudgeSpecError("; ".join(problems))

    def rubric_library(self) -> RubricLibrary:
        """The shipped rubrics, overridden by any in ``rubric_dirs`` with the same id."""
        return RubricLibrary.from_dirs(default_rubric_dir(), *self.rubric_dirs)

    def open_cache(self) -> CallCache:
        if self.cache_url is not None:
            # Another replica may pay for a verdict for as long as a call can take: wait that long.
            lock_wait = self.timeout * (self.max_retries + 1) + 10
            return RedisCache(self.cache_url, lock_wait=lock_wait)
        if self.cache_backend == "memory":
            return MemoryCache()
        try:
            return DiskCache(self.cache_dir)
        except OSError as exc:
            raise UsageError(
                f"cannot use the cache directory {self.cache_dir}: {exc.strerror}; choose "
                "another with --cache-dir or JUDGE_CACHE_DIR"
            ) from None
