"""Structured logs for the long-running commands (``judge serve``, ``judge worker``): every line
on stderr is one JSON object, whoever logs it (judge, uvicorn, saq, asyncio, redis: the root
logger takes what the named ones do not), with no terminal colour codes in it."""

from __future__ import annotations

from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            # uvicorn attaches a copy of each message with ANSI colours, litellm's secret
            # redaction a marker object (printed as "<object object at 0x...>"): neither is for
            # a log file
            "reserved_attrs": [*RESERVED_ATTRS, "color_message", "litellm_redacted"],
        }
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        "judge": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "saq": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "propagate": False},
    },
}
"""Structured (JSON) logs; judge's own access log replaces uvicorn's, since it carries the request
id."""
