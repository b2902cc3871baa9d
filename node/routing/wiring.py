"""How the daemon builds content routing: one call, everything constructed here and passed in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bitswap.routing.http_retrieval import UrlPolicy

from ..p2p.service import P2PService
from .fetch_assist import FetchAssist
from .service import RoutingService
from .settings import RoutingSettings

__all__ = ["build_routing"]


def build_routing(repo: Any, p2p: P2PService, on_stored: Callable[[list[bytes]], None]) -> tuple[RoutingService, FetchAssist | None]:
    """The node's :class:`RoutingService` and the fetch assist for ``NetworkContent`` (None with ``Routing.Type none``).

    ``on_stored(cids)``: blocks that HTTP retrieval stored (the daemon hands them to bitswap).
    With ``Routing.AllowPrivateAddrs`` (a LAN or test network) HTTP providers may be plain
    ``http`` on private addresses; otherwise only ``https`` on public ones.
    """
    settings = RoutingSettings.from_config(repo.config)
    routing = RoutingService(settings, p2p, repo.store, repo.pins)
    if not routing.active:
        return routing, None
    private = settings.allow_private_addrs
    policy = UrlPolicy(allow_http=private, allow_private=private)
    assist = FetchAssist(routing, repo.store, on_stored=on_stored, delay=settings.search_delay, http_policy=policy)
    return routing, assist
