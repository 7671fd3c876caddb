"""The call cache: every successful judge call is stored, so none is ever paid for twice.

Verdicts are reduced from judge calls, and the cache stores the calls (``JudgeResult``), one entry
per (transcript, rubric, call group, judge, sample). That way an ensemble that adds a judge, or a
run with more samples, reuses every call it already paid for. Failed calls are never stored.

What is in the key (``cache_key``), and why:
- the transcript's canonical content hash (messages only: ids, tags and metadata are not content),
- the rubric's content hash and the criteria the call decides (a rubric edit must miss),
- the judge's identity: resolved model, api_base, and the decoding parameters that change output
  (temperature, max_tokens, logprobs/top_logprobs), or the heuristics version of the offline judge,
- the sample index (k samples are k different calls),
- ``PROMPT_VERSION`` (a change to rendering or parsing must miss).
What is deliberately not: timeouts, retries, concurrency, API keys and caller metadata, which do
not change what the judge answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from judge.prompt import PROMPT_VERSION
from judge.verdict import JudgeResult

logger = logging.getLogger(__name__)


class CachePolicy(StrEnum):
    """``use`` reads and writes; ``refresh`` skips reading but stores the new result; ``bypass``
    neither reads nor writes."""

    USE = "use"
    REFRESH = "refresh"
    BYPASS = "bypass"


def cache_key(
    *,
    transcript_hash: str,
    rubric_hash: str,
    criteria: tuple[str, ...],
    judge: dict[str, Any],
    sample: int,
    order: tuple[int, ...] = (),
) -> str:
    """The sha256 identity of one judge call (see the module docstring for what is in it);
    ``order``, the order a group's members were shown in, when not their canonical one."""
    payload: dict[str, Any] = {
        "transcript": transcript_hash,
        "rubric": rubric_hash,
        "criteria": list(criteria),
        "judge": judge,
        "sample": sample,
        "prompt_version": PROMPT_VERSION,
    }
    if order:
        payload["order"] = list(order)
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CacheStats:
    """Entries stored, bytes used (where known), and this process's hits and misses."""

    backend: str
    entries: int
    size_bytes: int | None
    hits: int
    misses: int
    location: str | None = None


class CallCache(Protocol):
    """Storage for successful judge calls, by ``cache_key``."""

    async def get(self, key: str) -> JudgeResult | None: ...

    async def set(self, key: str, result: JudgeResult) -> None: ...

    def lock(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Held while a call for ``key`` is paid for, so that other processes sharing this cache
        wait for its result instead of paying again. Yields whether another process may have
        stored the result meanwhile (so the holder must look again); a no-op yielding False
        where the cache is one process's."""
        ...

    def stats(self) -> CacheStats: ...

    async def ping(self) -> bool:
        """True when the backend can store and read back an entry."""
        ...

    def clear(self) -> int: ...

    async def close(self) -> None:
        """Release connections and files (on the event loop that used them)."""
        ...


class _Counted:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def _count(self, found: bool) -> None:
        if found:
            self.hits += 1
        else:
            self.misses += 1


class MemoryCache(_Counted):
    """A per-process cache, for tests and one-off runs."""

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[str, str] = {}

    async def get(self, key: str) -> JudgeResult | None:
        stored = self._entries.get(key)
        self._count(stored is not None)
        return JudgeResult.model_validate_json(stored) if stored is not None else None

    async def set(self, key: str, result: JudgeResult) -> None:
        self._entries[key] = result.model_dump_json()

    def lock(self, key: str) -> AbstractAsyncContextManager[bool]:
        return contextlib.nullcontext(False)

    def stats(self) -> CacheStats:
        size = sum(len(v) for v in self._entries.values())
        return CacheStats("memory", len(self._entries), size, self.hits, self.misses)

    async def ping(self) -> bool:
        return True

    def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        return count

    async def close(self) -> None:
        pass


class DiskCache(_Counted):
    """A cache in a local directory (diskcache: SQLite plus files), shared by processes on one
    machine.

    Reads run on the event loop (a local SQLite lookup costs tens of microseconds, less than a
    hop to a thread). Writes are batched: concurrent ``set`` calls join one transaction that a
    worker thread commits, and each ``set`` returns once its entry is committed, so a caller that
    awaits it knows the result is durable.
    """

    def __init__(self, directory: Path):
        import diskcache

        super().__init__()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(directory))
        self._pending: list[tuple[str, str, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def get(self, key: str) -> JudgeResult | None:
        stored = self._cache.get(key)
        self._count(stored is not None)
        return JudgeResult.model_validate_json(stored) if stored is not None else None

    async def set(self, key: str, result: JudgeResult) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((key, result.model_dump_json(), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the sets of this turn of the loop join the batch
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, [(k, v) for k, v, _ in batch])
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)

    def lock(self, key: str) -> AbstractAsyncContextManager[bool]:
        return contextlib.nullcontext(False)  # processes sharing a directory may pay twice

    def _write(self, entries: list[tuple[str, str]]) -> None:
        with self._cache.transact():
            for key, value in entries:
                self._cache.set(key, value)

    def stats(self) -> CacheStats:
        return CacheStats(
            "diskcache",
            len(self._cache),
            int(self._cache.volume()),
            self.hits,
            self.misses,
            str(self.directory),
        )

    async def ping(self) -> bool:
        def probe() -> bool:
            self._cache.set("__judge_ping__", "ok")
            ok = self._cache.get("__judge_ping__") == "ok"
            self._cache.delete("__judge_ping__")
            return bool(ok)

        try:
            return await asyncio.to_thread(probe)
        except Exception:
            return False

    def clear(self) -> int:
        return int(self._cache.clear())

    async def close(self) -> None:
        self._cache.close()


class RedisCache(_Counted):
    """A cache in Redis, shared by every replica and worker that points at the same server.

    Entries are plain strings under ``prefix`` + key, so ``judge cache clear`` removes only
    judge's entries. ``stats`` and ``clear`` are for the CLI and use a blocking client. ``lock``
    is a Redis lock per key (``lock_prefix`` + key): its holder renews it every ``lock_ttl`` / 3
    seconds while it pays, so the lock of a replica that dies runs out within ``lock_ttl``; a
    waiter waits at most ``lock_wait`` (as long as a call may take).
    """

    def __init__(
        self,
        url: str,
        prefix: str = "judge:result:",
        *,
        lock_prefix: str = "judge:lock:",
        lock_ttl: float = 15.0,
        lock_wait: float = 300.0,
    ):
        import redis
        import redis.asyncio

        super().__init__()
        self.url = url
        self.prefix = prefix
        self.lock_prefix = lock_prefix
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self._redis = redis.asyncio.Redis.from_url(url)
        self._blocking = redis.Redis.from_url(url)

    async def get(self, key: str) -> JudgeResult | None:
        stored = await self._redis.get(self.prefix + key)
        self._count(stored is not None)
        return JudgeResult.model_validate_json(stored) if stored is not None else None

    async def set(self, key: str, result: JudgeResult) -> None:
        await self._redis.set(self.prefix + key, result.model_dump_json())

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[bool]:
        """Wait (polling every 20 ms) while another process holds the key. If Redis fails or
        the wait outlasts ``lock_wait``, go on unlocked: paying twice beats losing a verdict."""
        import redis.exceptions

        lock = self._redis.lock(
            self.lock_prefix + key,
            timeout=self.lock_ttl,
            sleep=0.02,
            blocking_timeout=self.lock_wait,
        )
        try:
            acquired = await lock.acquire()
        except redis.exceptions.RedisError:
            logger.exception("could not take the Redis lock for %s; calling without it", key)
            acquired = False
        renewing = asyncio.create_task(self._renew(lock)) if acquired else None
        try:
            yield True
        finally:
            if renewing is not None:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError, redis.exceptions.RedisError):
                    await renewing
                with contextlib.suppress(redis.exceptions.RedisError):
                    await lock.release()

    async def _renew(self, lock: Any) -> None:
        while True:
            await asyncio.sleep(self.lock_ttl / 3)
            await lock.extend(self.lock_ttl, replace_ttl=True)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())  # type: ignore[misc]  # redis-py's union
        except Exception:
            return False

    def _keys(self) -> list[bytes]:
        return list(self._blocking.scan_iter(match=self.prefix + "*", count=1000))

    def stats(self) -> CacheStats:
        keys = self._keys()
        return CacheStats("redis", len(keys), None, self.hits, self.misses, self.url)

    def clear(self) -> int:
        keys = self._keys()
        for start in range(0, len(keys), 1000):
            self._blocking.delete(*keys[start : start + 1000])
        return len(keys)

    async def close(self) -> None:
        await self._redis.aclose()
        self._blocking.close()
