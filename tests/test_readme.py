"""The README's two set-up commands are the ones CI runs."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_setup_commands() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    for command in (
        "pip install . && judge grade examples/transcripts.jsonl --rubric refusal",
        'pip install -e ".[test]" && pytest',
    ):
        assert command in readme, f"README lost the set-up command: {command}"
        assert command in ci, f".ci/run does not run the README command: {command}"
