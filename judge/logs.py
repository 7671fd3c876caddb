"""Structured logs for the long-running commands (``judge serve``, ``judge worker``): JSON lines
on stderr."""

from __future__ import annotations

from typing import Any

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {
        "judge": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "saq": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "propagate": False},
    },
}
"""Structured (JSON) logs for ``judge serve``; judge's own access log replaces uvicorn's, since
it carries the request id."""
