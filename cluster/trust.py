"""Which cluster peers are trusted: ``Cluster.TrustedPeers`` (``*`` trusts everyone; a peer always trusts itself).

Trust governs the peer RPC (untrusted callers are refused), who may act alone
(expiry, re-allocation) and, unless ``Cluster.AllocateToUntrustedPeers``,
whose metrics the allocator uses. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable


class TrustedPeers:
    """The trusted peer IDs of a cluster peer."""

    def __init__(self, me: str, trusted: Iterable[str]) -> None:
        self._me = me
        self._trusted = frozenset(trusted)
        self._all = "*" in self._trusted

    def is_trusted(self, peer: str) -> bool:
        """Whether ``peer`` is trusted (see module docstring)."""
        return self._all or peer == self._me or peer in self._trusted
