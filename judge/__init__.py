"""judge: grade model transcripts for misgeneralization with LLM judges.

The library is the product; the CLI and the HTTP service only parse input, call it, and render
results. Start with ``Grader(JudgePlan([...]), cache).grade_many(transcripts, rubrics)``.
"""

from judge.assembly import Reducer, build_verdict
from judge.cache import CachePolicy, CacheStats, CallCache, DiskCache, MemoryCache, cache_key
from judge.config import Settings
from judge.errors import (
    ErrorKind,
    JudgeCallError,
    JudgeError,
    JudgeSpecError,
    RubricError,
    TranscriptError,
    UsageError,
)
from judge.grading import Grader
from judge.judges import Judge, JudgeProfile, JudgeRequest, LLMJudge, OfflineJudge, judge_for
from judge.plan import JudgePlan, Order
from judge.rubric import Rubric, RubricLibrary, load_rubric
from judge.shape import shape_problem
from judge.transcript import Message, Transcript
from judge.transcript_files import parse_record, read_transcripts
from judge.verdict import JudgeResult, RubricRef, Status, Summary, Verdict, VerdictError

__all__ = [
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
