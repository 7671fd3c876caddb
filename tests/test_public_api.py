"""The public surface is pinned: adding or removing a name is a deliberate act."""

import judge

PUBLIC = [
    "CachePolicy",
    "CacheStats",
    "CallCache",
    "DiskCache",
    "ErrorKind",
    "Grader",
    "Judge",
    "JudgeCallError",
    "JudgeError",
    "JudgePlan",
    "JudgeProfile",
    "JudgeRequest",
    "JudgeResult",
    "JudgeSpecError",
    "LLMJudge",
    "MemoryCache",
    "Message",
    "OfflineJudge",
    "Order",
    "Reducer",
    "Rubric",
    "RubricError",
    "RubricLibrary",
    "RubricRef",
    "Settings",
    "Status",
    "Summary",
    "Transcript",
    "TranscriptError",
    "UsageError",
    "Verdict",
    "VerdictError",
    "build_verdict",
    "cache_key",
    "judge_for",
    "load_rubric",
    "parse_record",
    "read_transcripts",
    "shape_problem",
]


def test_all_is_sorted_and_complete() -> None:
    assert judge.__all__ == sorted(judge.__all__)
    assert all(hasattr(judge, name) for name in judge.__all__)
    assert judge.__all__ == PUBLIC


def test_importing_the_package_imports_neither_litellm_nor_inspect_ai() -> None:
    import subprocess
    import sys

    code = (
        "import sys, judge, judge.cli; "
        "print(sorted(m for m in ('litellm', 'inspect_ai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
