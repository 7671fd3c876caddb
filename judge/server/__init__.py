"""The HTTP service over the library: ``create_app(settings)``."""

from judge.server.app import create_app

__all__ = ["create_app"]
