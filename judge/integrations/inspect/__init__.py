"""Inspect AI in both directions: its eval logs read as transcripts (``read_inspect_log``, which
``judge grade`` uses for ``.eval`` files and Inspect ``.json`` logs), and an Inspect scorer that
grades samples with any rubric (``rubric_scorer``). Needs ``pip install 'judge[inspect]'``."""

from judge.integrations.inspect.logs import read_inspect_log
from judge.integrations.inspect.messages import message_of, transcript_of
from judge.integrations.inspect.scorer import rubric_scorer, score_of

__all__ = ["message_of", "read_inspect_log", "rubric_scorer", "score_of", "transcript_of"]
