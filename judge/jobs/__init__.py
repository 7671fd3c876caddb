"""Durable batch jobs: the store contract (``store``), SQLite and Redis stores, the runner that
grades them, and how jobs reach runners (``dispatch``, and the saq ``queue`` for workers)."""
