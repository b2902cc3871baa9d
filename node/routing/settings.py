"""What the node's content routing needs from the config (``Routing``, ``Reprovider``, ``Swarm``, ``Gateway``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bitswap.routing.delegated import default_routers

from ..config import parse_duration

__all__ = ["RoutingSettings"]


@dataclass(frozen=True)
class RoutingSettings:
    """Typed, validated routing settings (build them with :meth:`from_config`)."""

    routing_type: str = "none"
    bootstrap: tuple[str, ...] = ()
    delegated_routers: tuple[str, ...] = ()
    allow_private_addrs: bool = False
    strategy: str = "all"
    interval: float = 22 * 3600.0
    conn_low: int = 32
    conn_high: int = 96
    conn_grace: float = 20.0
    expose_routing_api: bool = False
    #: seconds a fetch waits for connected peers before it asks the routers (kubo's provSearchDelay: 1 s)
    search_delay: float = 1.0

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "RoutingSettings":
        """From a validated config dict; ``DelegatedRouters: null`` means kubo's routers for the type."""
        r, rp, sw = cfg["Routing"], cfg["Reprovider"], cfg["Swarm"]
        routers = r["DelegatedRouters"]
        if routers is None:
            routers = default_routers(r["Type"])
        return cls(
            routing_type=r["Type"],
            bootstrap=tuple(r["Bootstrap"]),
            delegated_routers=tuple(routers),
            allow_private_addrs=bool(r["AllowPrivateAddrs"]),
            strategy=rp["Strategy"],
            interval=parse_duration(rp["Interval"], "Reprovider.Interval"),
            conn_low=int(sw["ConnMgrLowWater"]),
            conn_high=int(sw["ConnMgrHighWater"]),
            conn_grace=float(sw["ConnMgrGracePeriod"]),
            expose_routing_api=bool(cfg["Gateway"]["ExposeRoutingAPI"]),
        )
