"""The README's two set-up commands are the ones CI runs."""

import os
import subprocess
import sys
from pathlib import Path

from judge.testing.fake_server import FakeJudgeServer

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


def test_the_library_example_runs_and_exits_cleanly(
    tmp_path: Path, fake_server: FakeJudgeServer
) -> None:
    """The README's Library example, run as a script against the fake judge (named by a profile
    called gpt-4o-mini), prints a verdict per example and has closed its judge's connections
    when it ends."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Library", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(code)
    (tmp_path / "run.py").write_text(
        "import runpy, sys\n"
        "names = runpy.run_path('example.py', run_name='__main__')\n"
        "print('open' if names['judge']._transport else 'closed', file=sys.stderr)\n"
    )
    (tmp_path / "examples").symlink_to(REPO / "examples")
    config = tmp_path / "judge.yaml"
    config.write_text(
        f"profiles:\n  gpt-4o-mini:\n    model: openai/fake-judge\n"
        f"    api_base: {fake_server.api_base}\n"
    )
    env = {**os.environ, "JUDGE_CONFIG": str(config), "PYTHONWARNINGS": "error::ResourceWarning"}
    done = subprocess.run(
        [sys.executable, "-X", "dev", "run.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    examples = (REPO / "examples" / "transcripts.jsonl").read_text().splitlines()
    assert len(done.stdout.splitlines()) == len(examples)
    assert done.stderr.strip().splitlines()[-1] == "closed", done.stderr
    assert "Unclosed" not in done.stderr and "Error" not in done.stderr, done.stderr
    assert fake_server.request_count == len(examples)
