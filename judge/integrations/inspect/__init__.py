"""Inspect AI in both directions: its eval logs read as transcripts (``read_inspect_log``, which
``judge grade`` uses for ``.eval`` files and Inspect ``.json`` logs). Needs
``pip install 'judge[inspect]'``."""

from judge.integrations.inspect.logs import read_inspect_log
from judge.integrations.inspect.messages import message_of, transcript_of

__all__ = ["message_of", "read_inspect_log", "transcript_of"]
