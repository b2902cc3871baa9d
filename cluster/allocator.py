"""Which peers store a pin: IPFS Cluster 1.1's allocation rules with the balanced allocator.

:func:`allocate` keeps the valid current allocations, tops them up to the
replication factors from the user's priority peers first, then from the
other candidates, ordered by :func:`balanced_order`:

- peers are partitioned by the first ``allocate_by`` metric, then by the
  next ones inside each partition. A *partitionable* metric (a tag such as
  ``tag:group``) groups the peers that share its value; any other metric
  (``freespace``, ``pinqueue``, ``numpin``) gives each peer its own partition;
- partitions are sorted by weight (summed over a tag group), then by the
  summed weight of what they contain (so the tag group with the most free
  space comes first), then by value;
- the order is a round-robin over the partitions, recursively: consecutive
  replicas land in different tag groups (regions) and, within a group, on the
  peer with the best next metric (most free space).

Better than upstream: when the DAG's size is known (CAR uploads, added
content), a peer whose free space, minus what was allocated to it since its
last free-space metric (``reserved``), is below the size is not a candidate.

Pure: metrics in, peer IDs out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from blockstore.cid import cid_to_str

from .monitor import Metric
from .errors import InvalidRequest

FREESPACE = "freespace"


class AllocationError(InvalidRequest):
    """No valid allocation exists (too few peers with the metrics, the space, or not blacklisted)."""


@dataclass
class _Partition:
    value: str
    weight: int
    peers: list[str] = field(default_factory=list)  #: set for leaves (no further metrics)
    children: list[_Partition] = field(default_factory=list)

    def aggregate(self) -> int:
        """Summed weight of everything below (ties between partitions break on it)."""
        if not self.children:
            return self.weight
        return sum(c.aggregate() for c in self.children)

    def order(self) -> list[str]:
        """Peers in round-robin order over the sub-partitions."""
        if not self.children:
            return sorted(self.peers)
        return _round_robin([c.order() for c in self.children])


def _round_robin(lists: list[list[str]]) -> list[str]:
    out: list[str] = []
    i = 0
    while True:
        took = False
        for items in lists:
            if i < len(items):
                out.append(items[i])
                took = True
        if not took:
            return out
        i += 1


def _partition(peers: Sequence[str], by: Sequence[str], metrics: Mapping[str, Mapping[str, Metric]]) -> list[_Partition]:
    """Partitions of ``peers`` by the metric ``by[0]``, recursively by the rest, sorted."""
    name, rest = by[0], by[1:]
    groups: dict[str, list[str]] = {}
    weights: dict[str, int] = {}
    for peer in peers:
        m = metrics[name][peer]
        key = m.value if m.partitionable else f"{peer}\x00{m.value}"
        groups.setdefault(key, []).append(peer)
        weights[key] = weights.get(key, 0) + m.weight
    parts = []
    for key, members in groups.items():
        value = key.split("\x00", 1)[1] if "\x00" in key else key
        part = _Partition(value=value, weight=weights[key])
        if rest:
            part.children = _partition(members, rest, metrics)
        else:
            part.peers = members
        parts.append(part)
    parts.sort(key=lambda p: (-p.weight, -p.aggregate(), p.value, p.order()))
    return parts


def balanced_order(peers: Sequence[str], allocate_by: Sequence[str], metrics: Mapping[str, Mapping[str, Metric]]) -> list[str]:
    """``peers`` (which all have every ``allocate_by`` metric) in the balanced allocator's order."""
    if not peers:
        return []
    if not allocate_by:
        return sorted(peers)
    return _round_robin([p.order() for p in _partition(peers, allocate_by, metrics)])


def _fits(peer: str, size: int | None, by_peer: Mapping[str, Mapping[str, Metric]], reserved: Mapping[str, int]) -> bool:
    """Whether ``peer`` has room for ``size`` bytes (unknown size or no free-space metric: yes)."""
    if not size or FREESPACE not in by_peer:
        return True
    metric = by_peer[FREESPACE].get(peer)
    if metric is None:
        return False
    try:
        free = int(metric.value)
    except ValueError:
        return False
    return free - reserved.get(peer, 0) >= size


def allocate(
    cid: bytes,
    *,
    rmin: int,
    rmax: int,
    current: Sequence[str],
    priority: Sequence[str],
    metrics: Mapping[str, Sequence[Metric]],
    allocate_by: Sequence[str],
    blacklist: Collection[str] = (),
    size: int | None = None,
    reserved: Mapping[str, int] | None = None,
    excluded: Mapping[str, str] | None = None,
    peerset: int | None = None,
) -> list[str]:
    """The peers that must hold ``cid`` (``[]`` = every peer, for replication -1/-1).

    ``current``: its allocations now; ``priority``: the user's allocations;
    ``metrics[name]``: the latest valid metric of each peer of the peer set for
    every ``allocate_by`` name; ``size``: the DAG's bytes when known; ``reserved``:
    bytes already allocated to a peer since its last free-space metric;
    ``excluded``: peers that may not take it, with the reason (``untrusted``, ``pin
    queue full``), counted in the error; ``peerset``: how many peers the cluster has.
    Raises AllocationError when fewer than ``rmin`` peers can take it, saying how many
    peers are needed, how many the cluster has and why the others cannot take it.
    """
    if rmin == -1 and rmax == -1:
        return []
    if rmin < 1 or rmax < rmin:
        raise AllocationError(f"invalid replication factors min={rmin} max={rmax}")
    reserved = reserved or {}
    excluded = excluded or {}
    by_peer: dict[str, dict[str, Metric]] = {name: {m.peer: m for m in metrics.get(name, ()) if m.valid} for name in allocate_by}
    names = list(allocate_by)
    known = set.intersection(*(set(v) for v in by_peer.values())) if names else set()
    if not names:  # nothing to allocate by: every peer that sent metrics at all
        known = {m.peer for ms in metrics.values() for m in ms if m.valid}
    usable = {p for p in known if p not in blacklist and p not in excluded}

    kept = [p for p in dict.fromkeys(current) if p in usable]
    needed = rmin - len(kept)
    wanted = rmax - len(kept)
    if wanted < 0:
        return kept[: len(kept) + wanted]
    if needed <= 0:
        return kept
    chosen = set(kept)
    prio = [p for p in dict.fromkeys(priority) if p in usable and p not in chosen and _fits(p, size, by_peer, reserved)]
    cands = sorted(p for p in usable if p not in chosen and p not in prio and _fits(p, size, by_peer, reserved))
    if len(prio) + len(cands) < needed:
        raise AllocationError(_not_enough(cid, rmin, len(kept) + len(prio) + len(cands), metrics, known, usable - chosen, size, by_peer, reserved, blacklist, excluded, peerset))
    ordered = balanced_order(prio, names, by_peer) + balanced_order(cands, names, by_peer)
    return kept + ordered[:wanted]


def _not_enough(
    cid: bytes,
    rmin: int,
    available: int,
    metrics: Mapping[str, Sequence[Metric]],
    known: set[str],
    free: set[str],
    size: int | None,
    by_peer: Mapping[str, Mapping[str, Metric]],
    reserved: Mapping[str, int],
    blacklist: Collection[str],
    excluded: Mapping[str, str],
    peerset: int | None,
) -> str:
    """The AllocationError message: needed, available, the cluster's size and why peers cannot take it."""
    seen = {m.peer for ms in metrics.values() for m in ms} | set(excluded)
    total = peerset if peerset is not None else len(seen)
    why: list[str] = []
    for reason in sorted(set(excluded.values())):
        why.append(f"{sum(1 for r in excluded.values() if r == reason)} of them {reason}")
    blacklisted = len(set(blacklist) & seen)  # a peer already gone from the peer set is not one of them
    if blacklisted:
        why.append(f"{blacklisted} of them excluded")
    no_room = sum(1 for p in free if not _fits(p, size, by_peer, reserved))
    if size and no_room:
        why.append(f"{no_room} without room for {size} bytes")
    lacking = len(seen - known - set(excluded) - set(blacklist))
    if lacking:
        why.append(f"{lacking} without valid metrics to allocate by")
    detail = (", " + ", ".join(why)) if why else ""
    return (
        f"not enough peers to allocate {cid_to_str(cid)}: {rmin} peers needed (replication factor min {rmin}), "
        f"{available} can take it; the cluster has {total} peer{'s' if total != 1 else ''}{detail}"
    )
