"""The OpenAPI document says exactly what the server does: every error body is a problem, every
status a route returns is declared, request bodies are typed, and the docs work offline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import SecretStr, ValidationError

from judge.config import Settings
from judge.selection import JudgeSelection
from tests.test_server import serve


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state", **overrides)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in serve(settings(tmp_path)):
        yield client


async def test_every_error_is_a_problem_document(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    problem = {"$ref": "#/components/schemas/Problem"}
    errors = [
        (path, method, status, response)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status[0] in "45"
    ]
    assert len(errors) > 20
    for path, method, status, response in errors:
        assert response["content"] == {"application/problem+json": {"schema": problem}}, (
            path,
            method,
            status,
        )
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert set(spec["components"]["schemas"]["Problem"]["required"]) >= {"title", "status"}


async def test_each_route_declares_the_statuses_it_returns(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/v1/jobs", "post") == {
        "200",
        "202",
        "409",
        "413",
        "415",
        "422",
        "503",
    }  # 200: dry run
    assert statuses("/v1/grade", "post") == {"200", "413", "415", "422"}
    assert statuses("/v1/jobs/{job_id}", "delete") == {"204", "404", "422", "503"}
    assert statuses("/v1/jobs/{job_id}/cancel", "post") >= {"200", "404", "503"}
    assert statuses("/readyz", "get") == {"200", "503"}
    verdicts = paths["/v1/jobs/{job_id}/verdicts"]["get"]["responses"]["200"]["content"]
    assert list(verdicts) == ["application/x-ndjson"]
    assert "401" not in statuses("/v1/grade", "post")  # no keys configured: no auth


async def test_transcripts_are_typed_and_names_are_this_servers(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    grade = schemas["GradeCreate"]["properties"]
    forms = grade["transcripts"]["items"]["anyOf"]
    assert [sorted(form["required"]) for form in forms] == [["messages"], ["prompt", "response"]]
    assert "refusal" in grade["rubrics"]["items"]["enum"]
    assert schemas["JudgeSelection"]["properties"]["models"]["items"]["enum"] == ["offline"]
    assert "profile" not in schemas["JudgeSelection"]["properties"]  # none configured
    for field in ("cascade", "fallbacks"):
        assert schemas["JudgeSelection"]["properties"][field]["items"]["enum"] == ["offline"]


@pytest.mark.parametrize(
    "selection",
    [
        {},
        {"profile": "p"},
        {"models": ["offline"]},
        {"cascade": ["offline"]},
        {"profile": "p", "cascade": ["offline"]},
        {"models": ["offline"], "cascade": ["offline"]},
        {"profile": "p", "models": ["offline"]},
        {"profile": "p", "models": ["offline"], "cascade": ["offline"]},
    ],
)
def test_the_document_allows_the_judge_selections_the_server_accepts(
    selection: dict[str, Any],
) -> None:
    """At most one of profile, models and cascade, in the document as in the validator."""
    schema = JudgeSelection.model_json_schema()
    documented = jsonschema.Draft202012Validator(schema).is_valid(selection)
    try:
        JudgeSelection.model_validate(selection)
        accepted = True
    except ValidationError:
        accepted = False
    assert documented == accepted == (len(selection) <= 1)


async def test_keys_configured_declare_the_bearer_and_its_401(tmp_path: Path) -> None:
    async for client in serve(settings(tmp_path, api_keys=[SecretStr("k")])):
        spec = (await client.get("/openapi.json")).json()  # the document is public
        grade = spec["paths"]["/v1/grade"]["post"]
        assert grade["security"] == [{"bearer": []}] and "401" in grade["responses"]
        assert "security" not in spec["paths"]["/healthz"]["get"]
        refused = await client.post("/v1/grade", content=b"{not json")
        assert refused.status_code == 401  # the key is checked before the body is read
        assert refused.headers["www-authenticate"] == "Bearer"


async def test_a_wrong_method_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    wrong = await client.put("/v1/jobs/abc")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "DELETE, GET, OPTIONS"
    assert wrong.headers["content-type"] == "application/problem+json"
    options = await client.options("/v1/jobs/abc")
    assert options.status_code == 204 and options.headers["allow"] == "DELETE, GET, OPTIONS"


async def test_the_docs_page_needs_no_network(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert "cdn." not in page and "https://" not in page.split("<body>", 1)[0]
    script = page.split('src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/static-offline-docs/")
    bundle = await client.get(script)
    assert bundle.status_code == 200 and len(bundle.content) > 500_000


async def test_every_reference_in_the_document_resolves(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)

    def resolves(ref: str) -> bool:  # a JSON pointer into the document
        node: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    collect(spec)
    assert len(refs) > 20 and all(ref.startswith("#/components/schemas/") for ref in refs)
    assert sorted({ref for ref in refs if not resolves(ref)}) == []
