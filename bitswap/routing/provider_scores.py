"""Scores and back-off of HTTP providers, sans-I/O: which gateway to ask next, and which to leave alone.

The HTTP fetcher (``http_retrieval.py``) reports every outcome here with the current time
(monotonic seconds); :meth:`ProviderScores.ranked` orders the providers it may ask now.

- success: the score rises a little, the run of failures ends; the transfer rate is kept as
  an exponential moving average (what ``ranked`` prefers among equals);
- not found (404/410, "I do not have it"): a small penalty, no back-off: providers differ in
  what they hold;
- failure (timeout, connection error, 5xx, 429): a penalty and an exponential back-off
  (``base_backoff * 2^(n-1)`` up to ``max_backoff`` for the n-th failure in a row);
- bad data (a block that does not match its CID, a block nobody asked for, a malformed CAR,
  an oversized answer): a large penalty and a ban of ``ban_seconds``: a lying provider is
  not asked again soon, and never before an honest one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ProviderScores", "ProviderState"]


@dataclass
class ProviderState:
    """What is known of one provider."""

    score: float = 0.0
    successes: int = 0
    not_found: int = 0
    failures: int = 0
    bad: int = 0
    bytes: int = 0
    #: bytes/s, exponential moving average over successful transfers
    rate: float = 0.0
    consecutive_failures: int = 0
    #: monotonic time before which the provider is not asked
    blocked_until: float = 0.0
    last_error: str = ""


class ProviderScores:
    """The score table (see the module docstring). Keys are opaque provider names (base URLs)."""

    def __init__(
        self,
        *,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        ban_seconds: float = 600.0,
        bad_penalty: float = 100.0,
        failure_penalty: float = 5.0,
        not_found_penalty: float = 0.5,
        min_score: float = -1000.0,
        max_score: float = 100.0,
    ) -> None:
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.ban_seconds = ban_seconds
        self.bad_penalty = bad_penalty
        self.failure_penalty = failure_penalty
        self.not_found_penalty = not_found_penalty
        self.min_score = min_score
        self.max_score = max_score
        self._states: dict[str, ProviderState] = {}

    def state(self, provider: str) -> ProviderState:
        """The provider's state (created on first use)."""
        st = self._states.get(provider)
        if st is None:
            st = self._states[provider] = ProviderState()
        return st

    def _add(self, st: ProviderState, delta: float) -> None:
        st.score = min(self.max_score, max(self.min_score, st.score + delta))

    def success(self, provider: str, nbytes: int, seconds: float, now: float) -> None:
        """A block or CAR arrived and verified."""
        st = self.state(provider)
        st.successes += 1
        st.bytes += nbytes
        st.consecutive_failures = 0
        if seconds > 0 and nbytes > 0:
            sample = nbytes / seconds
            st.rate = sample if st.rate == 0 else 0.8 * st.rate + 0.2 * sample
        self._add(st, 1.0)

    def not_found(self, provider: str, now: float) -> None:
        """The provider said it does not hold the block."""
        st = self.state(provider)
        st.not_found += 1
        self._add(st, -self.not_found_penalty)

    def failure(self, provider: str, now: float, reason: str = "") -> None:
        """A timeout, a connection error or a server error: back off exponentially."""
        st = self.state(provider)
        st.failures += 1
        st.consecutive_failures += 1
        st.last_error = reason
        wait = min(self.max_backoff, self.base_backoff * 2 ** (st.consecutive_failures - 1))
        st.blocked_until = max(st.blocked_until, now + wait)
        self._add(st, -self.failure_penalty)

    def bad_data(self, provider: str, now: float, reason: str = "") -> None:
        """The provider sent data that failed verification: penalise and ban it for ``ban_seconds``."""
        st = self.state(provider)
        st.bad += 1
        st.consecutive_failures += 1
        st.last_error = reason
        st.blocked_until = max(st.blocked_until, now + self.ban_seconds)
        self._add(st, -self.bad_penalty)

    def usable(self, provider: str, now: float) -> bool:
        """Whether the provider may be asked now (not backing off, not banned)."""
        st = self._states.get(provider)
        return st is None or st.blocked_until <= now

    def ranked(self, providers: Iterable[str], now: float) -> list[str]:
        """The usable providers among ``providers``, best first (score, then transfer rate)."""
        usable = [p for p in providers if self.usable(p, now)]
        return sorted(usable, key=lambda p: (-self.state(p).score, -self.state(p).rate))

    def snapshot(self) -> dict[str, ProviderState]:
        """A copy of every provider's state (for logs and metrics)."""
        return {k: ProviderState(**vars(v)) for k, v in self._states.items()}
