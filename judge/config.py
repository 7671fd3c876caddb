"""Settings, read from ``JUDGE_*`` environment variables and passed explicitly to what needs them.

Nothing reads settings from a global: the CLI builds a ``Settings`` once and hands its values on,
and tests construct their own.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from judge.cache import DiskCache, MemoryCache, VerdictCache
from judge.rubric import RubricLibrary, default_rubric_dir


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "judge"


class Settings(BaseSettings):
    """Configuration of the library, CLI and service."""

    model_config = SettingsConfigDict(env_prefix="JUDGE_", extra="ignore")

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    cache_backend: str = Field(default="disk", pattern="^(disk|memory)$")
    rubric_dirs: list[Path] = Field(default_factory=list)
    api_base: str | None = None
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    concurrency: int = Field(default=16, ge=1)

    def rubric_library(self) -> RubricLibrary:
        """The shipped rubrics, overridden by any in ``rubric_dirs`` with the same id."""
        return RubricLibrary.from_dirs(default_rubric_dir(), *self.rubric_dirs)

    def open_cache(self) -> VerdictCache:
        return MemoryCache() if self.cache_backend == "memory" else DiskCache(self.cache_dir)
