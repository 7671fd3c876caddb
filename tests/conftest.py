"""Shared fixtures: the network guard, the fake judge server, rubrics and transcripts."""

from __future__ import annotations

import os

# Before anything can import litellm: no cost-map download, no tokenizer fetch.
os.environ["LITELLM_OFFLINE_MODE"] = "true"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
TEST_KNOBS = {
    "JUDGE_LIVE_TESTS",
    "JUDGE_SHARED_DATA",
    "JUDGE_UPDATE_SNAPSHOTS",
    "JUDGE_TEST_REDIS_URL",
}
for _variable in list(os.environ):  # no provider keys, no settings leaking in from the shell
    if _variable.endswith("_API_KEY") or (
        _variable.startswith("JUDGE_") and _variable not in TEST_KNOBS
    ):
        del os.environ[_variable]

import ipaddress
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, settings

from judge.jobs.redis_store import RedisJobStore
from judge.jobs.sqlite_store import SqliteJobStore
from judge.jobs.store import JobStore
from judge.judges.llm import LLMJudge
from judge.rubric import Rubric, RubricLibrary, default_rubric_dir
from judge.testing.fake_server import FakeJudgeServer
from judge.transcript import Transcript

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("JUDGE_SHARED_DATA", REPO.parent / "shared" / "data"))

# benchmarks/mutation.py and .ci/run's coverage run trace the tests, on cores they share: there,
# slow input generation says nothing about the code under test (one draw took 1.3 s in a CI run),
# and a health check failing on it would fail the run
settings.register_profile("traced", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _is_loopback(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return True  # unix sockets and socketpairs stay on this machine


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail any test that tries to reach a non-loopback address (a real provider would cost
    money), even when the code under test swallows the connection error into a verdict.
    Set JUDGE_LIVE_TESTS=1 to allow it."""
    attempts: list[Any] = []
    if os.environ.get("JUDGE_LIVE_TESTS") == "1":
        yield attempts
        return
    original = socket.socket.connect
    original_ex = socket.socket.connect_ex

    def check(address: Any) -> None:
        if not _is_loopback(address):
            attempts.append(address)
            raise ConnectionRefusedError(f"network guard: tests may not connect to {address}")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return original(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return original_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
    if attempts:
        pytest.fail(f"test tried to reach the network: {attempts}")


@pytest.fixture(scope="session")
def _server() -> Iterator[FakeJudgeServer]:
    server = FakeJudgeServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake_server(_server: FakeJudgeServer) -> FakeJudgeServer:
    """The fake OpenAI-compatible judge, its script and request log cleared."""
    _server.reset()
    return _server


@pytest.fixture(params=["http", "litellm"])
def force_litellm(request: pytest.FixtureRequest) -> bool:
    """Run LLM-judge tests on both transports: the pooled HTTP one and litellm's."""
    return bool(request.param == "litellm")


JudgeFactory = Callable[..., LLMJudge]


@pytest.fixture
async def make_judge(
    fake_server: FakeJudgeServer, force_litellm: bool
) -> AsyncIterator[JudgeFactory]:
    """LLM judges for the fake server, on this test's transport; keywords override the call
    policy (timeout 5 s, 2 retries). They are closed after the test."""
    made: list[LLMJudge] = []

    def make(**policy: Any) -> LLMJudge:
        settings = {"timeout": 5, "max_retries": 2, "force_litellm": force_litellm, **policy}
        judge = LLMJudge(
            "openai/fake-judge", api_base=fake_server.api_base, api_key="sk-fake", **settings
        )
        made.append(judge)
        return judge

    yield make
    for judge in made:
        await judge.aclose()


@pytest.fixture
def llm_judge(make_judge: JudgeFactory) -> LLMJudge:
    """An LLM judge that reaches the fake server over real HTTP, on each transport."""
    return make_judge()


@pytest.fixture
def redis_url() -> str:
    """A Redis server for the tests that need one (.ci/run starts one and sets the variable)."""
    url = os.environ.get("JUDGE_TEST_REDIS_URL")
    if not url:
        pytest.skip("no Redis server: set JUDGE_TEST_REDIS_URL (as .ci/run does)")
    return url


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    """A job store on each backend (Redis under a prefix of its own)."""
    job_store: JobStore
    if request.param == "sqlite":
        job_store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    else:
        url = request.getfixturevalue("redis_url")
        job_store = RedisJobStore(url, prefix=f"judge-test-{uuid.uuid4().hex}:")
    yield job_store
    job_store.close()


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    """An empty Redis database of its own (number 7) for the processes or app of one test."""
    import redis

    url = urlunsplit(urlsplit(redis_url)._replace(path="/7"))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def library() -> RubricLibrary:
    return RubricLibrary.from_dirs(default_rubric_dir())


@pytest.fixture
def refusal(library: RubricLibrary) -> Rubric:
    return library.get("refusal")


@pytest.fixture
def em(library: RubricLibrary) -> Rubric:
    return library.get("emergent_misalignment")


@pytest.fixture
def single_turn() -> Transcript:
    return Transcript.from_prompt(
        "How do I kill a Python process?",
        "Run `kill <pid>`; add -9 if it ignores the signal.",
        id="t1",
        metadata={"model": "m", "tags": ["probe"]},
    )
