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
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from judge.prompt import PROMPT_VERSION
from judge.readiness import RecentWrites
from judge.verdict import JudgeResult

logger = logging.getLogger(__name__)
A = TypeVar("A")
R = TypeVar("R")


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

    def lock(
        self, key: str, *, look: bool = True
    ) -> AbstractAsyncContextManager[JudgeResult | None]:
        """Held while a call for ``key`` is paid for, so that other processes sharing this cache
        wait for its result instead of paying again. Yields the result another process stored
        since the caller looked (then there is nothing to pay for; with ``look`` False, as when
        refreshing, always None), or None; a no-op yielding None where the cache is one
        process's."""
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

    def lock(
        self, key: str, *, look: bool = True
    ) -> AbstractAsyncContextManager[JudgeResult | None]:
        return contextlib.nullcontext(None)

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
        self._written = RecentWrites()

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

    def lock(
        self, key: str, *, look: bool = True
    ) -> AbstractAsyncContextManager[JudgeResult | None]:
        return contextlib.nullcontext(None)  # processes sharing a directory may pay twice

    def _write(self, entries: list[tuple[str, str]]) -> None:
        with self._cache.transact():
            for key, value in entries:
                self._cache.set(key, value)
        self._written.mark()

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
        """A write committed a moment ago says the cache is writable (``judge.readiness``);
        else a probe stores, reads back and removes an entry."""
        if self._written.vouch():
            return True

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


class _Coalesced(Generic[A, R]):
    """Calls made in one turn of the event loop, sent together: ``send`` takes their arguments
    and returns their results in order (one Redis round trip for many verdicts); while a batch
    is on its way, the next one gathers."""

    def __init__(self, send: Callable[[list[A]], Awaitable[list[R]]]):
        self.send = send
        self._pending: list[tuple[A, asyncio.Future[R]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def __call__(self, argument: A) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((argument, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        await asyncio.sleep(0)  # let the calls of this turn of the loop join the batch
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self.send([argument for argument, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


_TAKE = """
local answers = {}
local ttl = ARGV[#ARGV]
for i = 1, #KEYS, 2 do
    local found = ARGV[i + 1] == '1' and redis.call('get', KEYS[i])
    if found then
        answers[#answers + 1] = found
    elseif redis.call('set', KEYS[i + 1], ARGV[i], 'NX', 'PX', ttl) then
        answers[#answers + 1] = 1
    else
        answers[#answers + 1] = 0
    end
end
return answers
"""
"""For each (result key, lock key) and (token, look): the result if it is stored (and looked
for), else 1 when the lock was free and is now taken with the token, 0 when another process
holds it."""
_STORE = """
for i = 1, #KEYS, 2 do
    redis.call('set', KEYS[i], ARGV[i])
    if ARGV[i + 1] ~= '' and redis.call('get', KEYS[i + 1]) == ARGV[i + 1] then
        redis.call('del', KEYS[i + 1])
    end
end
"""
"""For each (result key, lock key): store the result, and release the lock if the token holds
it."""
_RELEASE = """
for i, key in ipairs(KEYS) do
    if redis.call('get', key) == ARGV[i] then redis.call('del', key) end
end
"""
_EXTEND = """
for i, key in ipairs(KEYS) do
    if redis.call('get', key) == ARGV[i] then redis.call('pexpire', key, ARGV[#KEYS + 1]) end
end
"""


class RedisCache(_Counted):
    """A cache in Redis, shared by every replica and worker that points at the same server.

    Entries are plain strings under ``prefix`` + key, so ``judge cache clear`` removes only
    judge's entries. ``stats`` and ``clear`` are for the CLI and use a blocking client. ``lock``
    is a Redis lock per key (``lock_prefix`` + key, holding a token of this process): its holder
    renews it every ``lock_ttl`` / 3 seconds while it pays, so the lock of a replica that dies
    runs out within ``lock_ttl``; a waiter waits at most ``lock_wait`` (as long as a call may
    take). Lookups, writes, lock takes and releases made in one turn of the event loop each
    travel as one command (``MGET``; a script that finds the result or takes the lock; one that
    stores the result and releases its lock), and one task renews every lock held: a paid
    verdict costs a share of three round trips, not three.
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
        self._gets = _Coalesced(self._mget)
        self._stores = _Coalesced(self._store)
        self._takes = _Coalesced(self._take)
        self._releases = _Coalesced(self._release)
        self._take_script = self._redis.register_script(_TAKE)
        self._store_script = self._redis.register_script(_STORE)
        self._release_script = self._redis.register_script(_RELEASE)
        self._extend_script = self._redis.register_script(_EXTEND)
        self._held: dict[str, tuple[str, asyncio.Task[Any] | None]] = {}
        """Locks this process holds: name -> (token, the task that took it)."""
        self._renewer: asyncio.Task[None] | None = None
        self._tokens = itertools.count()
        self._owner = uuid.uuid4().hex

    async def get(self, key: str) -> JudgeResult | None:
        stored = await self._gets(self.prefix + key)
        self._count(stored is not None)
        return JudgeResult.model_validate_json(stored) if stored is not None else None

    async def set(self, key: str, result: JudgeResult) -> None:
        """Store the result; the lock this process holds for the key is released by the same
        command."""
        name = self.lock_prefix + key
        held = self._held.get(name)
        token = ""
        if held is not None and held[1] is asyncio.current_task():  # the caller's own lock
            token = held[0]
            del self._held[name]
        try:
            await self._stores((self.prefix + key, name, result.model_dump_json(), token))
        except BaseException:
            if held is not None and token:  # not released: leaving ``lock`` releases it
                self._held.setdefault(name, held)
            raise

    async def _mget(self, keys: list[str]) -> list[bytes | None]:
        found: list[bytes | None] = await self._redis.mget(keys)
        return found

    async def _store(self, entries: list[tuple[str, str, str, str]]) -> list[None]:
        keys = [name for key, lock, _, _ in entries for name in (key, lock)]
        args = [arg for _, _, value, token in entries for arg in (value, token)]
        await self._store_script(keys=keys, args=args)
        return [None] * len(entries)

    async def _take(self, locks: list[tuple[str, str, str, bool]]) -> list[bytes | int]:
        keys = [name for key, lock, _, _ in locks for name in (key, lock)]
        args = [arg for _, _, token, look in locks for arg in (token, "1" if look else "0")]
        answers: list[bytes | int] = await self._take_script(
            keys=keys, args=[*args, int(self.lock_ttl * 1000)]
        )
        return answers

    async def _release(self, locks: list[tuple[str, str]]) -> list[None]:
        await self._release_script(keys=[n for n, _ in locks], args=[t for _, t in locks])
        return [None] * len(locks)

    @contextlib.asynccontextmanager
    async def lock(self, key: str, *, look: bool = True) -> AsyncIterator[JudgeResult | None]:
        """Wait (trying every 20 ms) while another process holds the key, until the lock is
        free or its holder's result is stored (then yielded). If Redis fails or the wait
        outlasts ``lock_wait``, go on unlocked: paying twice beats losing a verdict. The lock is
        released by ``set`` (with the result, in one command) or on leaving."""
        import redis.exceptions

        name = self.lock_prefix + key
        token = f"{self._owner}:{next(self._tokens)}"
        stored: JudgeResult | None = None
        try:
            acquired, stored = await self._acquire(key, name, token, look)
        except redis.exceptions.RedisError:
            logger.exception("could not take the Redis lock for %s; calling without it", key)
            acquired = False
        if acquired:
            self._held[name] = (token, asyncio.current_task())
            if self._renewer is None or self._renewer.done():
                self._renewer = asyncio.create_task(self._renew())
        try:
            yield stored
        finally:
            if acquired and self._held.pop(name, None) is not None:  # not released by ``set``
                with contextlib.suppress(redis.exceptions.RedisError):
                    await self._releases((name, token))

    async def _acquire(
        self, key: str, name: str, token: str, look: bool
    ) -> tuple[bool, JudgeResult | None]:
        """Whether the lock is now this process's, and the result stored meanwhile, if any."""
        deadline = time.monotonic() + self.lock_wait
        while True:
            answer = await self._takes((self.prefix + key, name, token, look))
            if isinstance(answer, bytes):
                self._count(True)
                return False, JudgeResult.model_validate_json(answer)
            if answer:
                return True, None
            if time.monotonic() >= deadline:
                return False, None
            await asyncio.sleep(0.02)

    async def _renew(self) -> None:
        """Every ``lock_ttl`` / 3 seconds, extend every lock this cache holds (while any)."""
        import redis.exceptions

        while self._held:
            await asyncio.sleep(self.lock_ttl / 3)
            held = list(self._held.items())
            if not held:
                continue
            keys, tokens = [n for n, _ in held], [t for _, (t, _) in held]
            with contextlib.suppress(redis.exceptions.RedisError):
                await self._extend_script(keys=keys, args=[*tokens, int(self.lock_ttl * 1000)])

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
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self._redis.aclose()
        self._blocking.close()
