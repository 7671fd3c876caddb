"""Rubric files: validation, decision rules, content hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from judge.cli import main
from judge.errors import RubricError
from judge.rubric import Rubric, RubricLibrary, default_rubric_dir, load_rubric


def test_every_shipped_rubric_validates(library: RubricLibrary) -> None:
    ids = {rubric.id for rubric in library}
    assert {"refusal", "emergent_misalignment"} <= ids
    for path in default_rubric_dir().glob("*.yaml"):
        assert load_rubric(path).id == path.stem


def write(tmp_path: Path, document: dict[str, Any], name: str | None = None) -> Path:
    path = tmp_path / f"{name or document['id']}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def refusal_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((default_rubric_dir() / "refusal.yaml").read_text())
    return document


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(critera=[]), "critera: is not a field here (a typo?)"),
        (lambda d: d["criteria"][0]["labels"][0].update(flaged=True), "flaged"),
        (lambda d: d["prompt"].update(user="$transcript $answr"), "unknown prompt placeholder"),
        (lambda d: d["prompt"].update(user="costs $ 5"), "stray '$'"),
        (lambda d: d["criteria"][0].update(scoring="logprob"), "logprob scoring needs a scale"),
        (lambda d: d.update(flag={"all": [{"criterion": "refusal", "lt": 3}]}), "no comparison"),
        (lambda d: d.update(flag={"all": [{"criterion": "nope"}]}), "no criterion 'nope'"),
        (lambda d: d["examples"][0]["output"].update(refusal="maybe"), "example 1: refusal: must"),
        (lambda d: d.update(requires=["telepathy"]), "requires"),
        (lambda d: d.pop("prompt"), "structured criteria need the rubric's 'prompt'"),
    ],
)
def test_invalid_rubrics_say_what_is_wrong(tmp_path: Path, edit: Any, message: str) -> None:
    document = refusal_document()
    edit(document)
    with pytest.raises(RubricError, match=r"refusal\.yaml") as error:
        load_rubric(write(tmp_path, document))
    assert message in str(error.value)


def test_rubric_id_must_match_its_file_name(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match="must match the file name"):
        load_rubric(write(tmp_path, refusal_document(), name="other"))


def test_hash_changes_with_content_not_formatting(tmp_path: Path) -> None:
    document = refusal_document()
    original = load_rubric(default_rubric_dir() / "refusal.yaml")
    reformatted = tmp_path / "refusal.yaml"
    reformatted.write_text("# a comment\n" + yaml.safe_dump(document, default_flow_style=True))
    assert load_rubric(reformatted).content_hash == original.content_hash

    document["criteria"][0]["labels"][1]["description"] += " Also silence."
    assert load_rubric(write(tmp_path, document)).content_hash != original.content_hash


def test_label_flags_and_scale_rules(refusal: Rubric, em: Rubric) -> None:
    assert refusal.is_flagged({"refusal": "partial_refusal"})
    assert not refusal.is_flagged({"refusal": "full_compliance"})
    assert em.is_flagged({"aligned": 29.9, "coherent": 50.1})
    assert not em.is_flagged({"aligned": 30, "coherent": 90})
    assert not em.is_flagged({"aligned": 5, "coherent": 50})


def test_custom_directory_overrides_shipped_rubric(tmp_path: Path) -> None:
    document = refusal_document()
    document["version"] = "2"
    write(tmp_path, document)
    library = RubricLibrary.from_dirs(default_rubric_dir(), tmp_path)
    assert library.get("refusal").version == "2"
    with pytest.raises(RubricError, match="available: char_coherence, char_identity, "):
        library.get("sycophancy")


def test_output_schema_puts_reasoning_first(refusal: Rubric) -> None:
    schema = refusal.response_schema
    assert list(schema["properties"]) == ["reasoning", "evidence", "refusal"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["reasoning", "evidence", "refusal"]


def test_validate_reports_every_problem_of_every_file_in_plain_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = refusal_document()
    fields.update(id="Refusal-2", colour="blue")
    fields["criteria"][0]["labels"][0]["name"] = True  # YAML's unquoted yes
    fields["criteria"][0]["labels"].append({"name": "x", "description": "d"})
    (tmp_path / "fields.yaml").write_text(yaml.safe_dump(fields))
    cross = refusal_document()
    cross.update(id="cross", flag={"any": [{"criterion": "nope"}]})
    cross["prompt"]["system"] += " $bogus"
    (tmp_path / "cross.yaml").write_text(yaml.safe_dump(cross))
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n")

    assert main(["rubrics", "validate", str(tmp_path)]) == 2

    err = capsys.readouterr().err
    expected = [
        "broken.yaml: line 2, column 1: not valid YAML (expected ',' or ']'",
        "cross.yaml: flag condition: no criterion 'nope'",
        "cross.yaml: unknown prompt placeholder(s) ['bogus']",
        "fields.yaml: id: 'Refusal-2' must match the file name ('fields')",
        "fields.yaml: id: must be lowercase letters, digits and underscores",
        "fields.yaml: criteria[0].labels[0].name: must be text (YAML reads yes",
        "fields.yaml: criteria[0].labels[3].flagged: is required",
        "fields.yaml: colour: is not a field here (a typo?)",
    ]
    for line in expected:
        assert line in err, line
    assert f"{len(expected)} problems in the rubrics" in err
    assert "Value error" not in err and "(top)" not in err and "Tuple should" not in err
