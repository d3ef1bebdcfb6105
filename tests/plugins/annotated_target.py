"""A config target whose annotations name the module's own aliases (resolved in the module's namespace)."""

from __future__ import annotations

from datetime import timedelta

Steps = int


class Schedule:
    def __init__(self, steps: Steps, every: Steps | None = None, limit: timedelta | None = None) -> None:
        self.steps, self.every, self.limit = steps, every, limit
