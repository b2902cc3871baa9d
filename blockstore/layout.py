"""The repo layout: which layer owns each key prefix of the repo's one LevelDB.

Every key of the database starts with one namespace prefix declared here, once.
The layer named owns every key under its prefix: it writes them, and the module
named lays out the keys inside (sub-prefixes, value formats). A layer may read
the namespaces of the layers below it (the provide queue walks ``b/`` and
``p/``); a lower layer never touches a higher layer's keys. All namespaces live
in one database so that writes that belong together (a block and its journal
entry, a CRDT delta and its state) go in one write batch.

Invariants (checked by ``tests/blockstore/test_layout.py``): no prefix is a
prefix of another, so a prefix scan of one namespace never meets another's
keys; no module declares a namespace of its own. These bytes are the on-disk
format: changing one makes existing repos unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LAYERS",
    "NAMESPACES",
    "NS_BLOCKS",
    "NS_CRDT",
    "NS_GC_MARK",
    "NS_JOURNAL",
    "NS_META",
    "NS_NODE",
    "NS_PINS",
    "NS_PROVIDE",
    "NS_ROUTING",
    "NS_SCRATCH",
    "NS_TRACKER",
    "NS_UPLOADS",
    "Namespace",
]

#: the layers, lowest first (imports point from later to earlier ones only)
LAYERS = ("blockstore", "bitswap", "cluster", "node")

NS_BLOCKS = b"b/"
NS_META = b"m/"
NS_PINS = b"p/"
NS_JOURNAL = b"j/"
NS_SCRATCH = b"v/"
NS_UPLOADS = b"u/"
NS_GC_MARK = b"g/"
NS_ROUTING = b"r/"
NS_PROVIDE = b"q/"
NS_CRDT = b"c/"
NS_TRACKER = b"t/"
NS_NODE = b"n/"


@dataclass(frozen=True)
class Namespace:
    """One key prefix of the repo database and who owns it."""

    name: str  #: the constant's name in this module
    prefix: bytes
    layer: str  #: one of :data:`LAYERS`
    module: str  #: where the keys under the prefix are laid out
    holds: str


NAMESPACES: tuple[Namespace, ...] = (
    Namespace("NS_BLOCKS", NS_BLOCKS, "blockstore", "blockstore/store.py", "multihash -> stored block"),
    Namespace(
        "NS_META",
        NS_META,
        "blockstore",
        "blockstore/db.py",
        "metadata: format version, block store running totals (store.py), the health probe key (node/health.py)",
    ),
    Namespace("NS_PINS", NS_PINS, "blockstore", "blockstore/pins.py", "local pins: CID -> type and name"),
    Namespace(
        "NS_JOURNAL", NS_JOURNAL, "blockstore", "blockstore/store.py", "import journals: blocks added by unfinished imports"
    ),
    Namespace(
        "NS_SCRATCH", NS_SCRATCH, "blockstore", "blockstore/visited.py", "visited sets of DAG walks spilled to disk"
    ),
    Namespace(
        "NS_UPLOADS", NS_UPLOADS, "blockstore", "blockstore/uploads.py", "uploads kept until their cluster pin is settled"
    ),
    Namespace(
        "NS_GC_MARK", NS_GC_MARK, "blockstore", "blockstore/gc.py", "blocks marked live by a running garbage collection"
    ),
    Namespace(
        "NS_ROUTING", NS_ROUTING, "bitswap", "bitswap/routing/providers_store.py", "DHT provider records, bounded and expiring"
    ),
    Namespace(
        "NS_PROVIDE", NS_PROVIDE, "bitswap", "bitswap/routing/provide_queue.py", "the provide queue and its counters"
    ),
    Namespace(
        "NS_CRDT", NS_CRDT, "cluster", "cluster/crdt/layout.py", "Merkle-CRDT pinset: state, heads, queue, markers"
    ),
    Namespace(
        "NS_TRACKER", NS_TRACKER, "cluster", "cluster/tracker.py", "pin tracker records, queues and status counters"
    ),
    Namespace(
        "NS_NODE",
        NS_NODE,
        "node",
        "node/p2p/peerstore.py, node/p2p/seqno.py",
        "node bookkeeping: known peers' addresses, pubsub sequence-number floors",
    ),
)
