"""docker-compose.yml describes the deployment that tests/test_scale_out.py runs as processes:
check that what it configures exists (no engine here runs compose; .ci/docker-test runs the
image itself)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from typer.main import get_command

from judge.cli.common import app
from judge.config import Settings
from tests.conftest import REPO


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_two_api_replicas_and_two_workers_share_one_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    apis = [s for s in services.values() if "ports" in s]
    workers = [s for s in services.values() if s.get("entrypoint") == ["judge", "worker"]]
    assert len(apis) == 2 and len({api["ports"][0] for api in apis}) == 2
    assert [w["deploy"]["replicas"] for w in workers] == [2]
    for service in [*apis, *workers]:
        environment = service["environment"]
        assert environment["JUDGE_QUEUE_URL"] == environment["JUDGE_CACHE_URL"]
        assert environment["JUDGE_QUEUE_URL"].startswith("redis://redis:")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in services["redis"] and "redis-data" in compose["volumes"]


def test_every_setting_and_file_it_names_exists(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {f"JUDGE_{name.upper()}" for name in Settings.model_fields} | {"JUDGE_CONFIG"}
    commands = {command for command in get_command(app).commands}  # type: ignore[attr-defined]
    for service in compose["services"].values():
        unknown = {v for v in service.get("environment", {}) if v.startswith("JUDGE_")} - fields
        assert not unknown, f"not judge settings: {unknown}"
        assert service.get("entrypoint", ["judge", "serve"])[1] in commands
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (REPO / source).is_file(), source
                if target == service["environment"]["JUDGE_CONFIG"]:
                    monkeypatch.setenv("JUDGE_CONFIG", str(REPO / source))
                    assert "mini" in Settings().profiles  # the mounted file is a valid config
