"""Bootstrap addresses the TCP swarm host can dial: ``/dnsaddr`` resolved, other transports left out.

kubo's default list mixes ``/dnsaddr/bootstrap.libp2p.io/p2p/<id>`` (resolved through the TXT
records of ``_dnsaddr.bootstrap.libp2p.io``, spec:
https://github.com/multiformats/multiaddr/blob/master/protocols/DNSADDR.md), plain TCP and QUIC
addresses. Pinion's swarm host speaks TCP only, so :func:`dialable` keeps ``/ip4|ip6|dns*/…/tcp/…``
addresses, and :func:`resolve_bootstrap` expands ``/dnsaddr`` ones (one level of nesting, at
most :data:`MAX_RESOLVED` addresses per name, keeping only records for the same peer ID).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

__all__ = ["dialable", "resolve_bootstrap", "MAX_RESOLVED"]

log = logging.getLogger(__name__)

MAX_RESOLVED = 16  #: addresses taken from one /dnsaddr name
_TIMEOUT = 5.0


def dialable(addr: str) -> bool:
    """Whether the TCP swarm host can dial ``addr`` (``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/p2p/<id>``)."""
    parts = addr.strip("/").split("/")
    return (
        len(parts) == 6
        and parts[0] in ("ip4", "ip6", "dns", "dns4", "dns6")
        and parts[2] == "tcp"
        and parts[4] in ("p2p", "ipfs")
    )


async def _txt(name: str) -> list[str]:
    import dns.asyncresolver  # dnspython: a dependency of py-libp2p

    try:
        answer = await asyncio.wait_for(dns.asyncresolver.resolve(name, "TXT"), _TIMEOUT)
    except Exception as exc:
        log.info("bootstrap: resolving %s failed: %s", name, exc)
        return []
    out = []
    for rr in answer:
        text = b"".join(rr.strings).decode("utf-8", "replace")
        if text.startswith("dnsaddr="):
            out.append(text[len("dnsaddr=") :])
    return out


async def _expand(addr: str, depth: int) -> list[str]:
    parts = addr.strip("/").split("/")
    if parts[0] != "dnsaddr" or len(parts) < 2:
        return [addr] if dialable(addr) else []
    if depth > 1:
        return []
    peer = parts[-1] if len(parts) >= 4 and parts[-2] in ("p2p", "ipfs") else None
    found: list[str] = []
    for rec in await _txt(f"_dnsaddr.{parts[1]}"):
        if peer is not None and not rec.endswith(f"/{peer}"):
            continue
        found.extend(await _expand(rec, depth + 1))
        if len(found) >= MAX_RESOLVED:
            break
    return found[:MAX_RESOLVED]


async def resolve_bootstrap(addrs: Iterable[str]) -> list[str]:
    """The dialable addresses of a bootstrap list (``/dnsaddr`` resolved in parallel; order kept, no duplicates)."""
    addrs = list(addrs)
    expanded = await asyncio.gather(*(_expand(a, 0) for a in addrs))
    return list(dict.fromkeys(a for group in expanded for a in group))
