"""Retry pacing shared by live sources and stream sinks: exponential backoff with a give-up limit."""

from __future__ import annotations


class Backoff:
    """Waits of ``first``, 2x, 4x … capped at ``most`` seconds.

    ``next()`` returns None once ``give_up`` attempts in a row have failed.
    """

    def __init__(self, first: float = 0.5, most: float = 10.0, give_up: int | None = None):
        self.first = first
        self.most = most
        self.give_up = give_up
        self.failures = 0  # in a row, since the last success

    def next(self) -> float | None:
        """The wait before the next attempt, or None when it is time to give up."""
        if self.give_up is not None and self.failures >= self.give_up:
            return None
        delay = min(self.most, self.first * 2**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
