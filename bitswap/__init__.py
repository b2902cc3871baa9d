"""Pinion bitswap: blocks on the wire (bitswap 1.2.0, 1.1.0, 1.0.0 and legacy ``/ipfs/bitswap``).

Public API (all in the trio thread that runs the libp2p host)::

    from bitswap import Bitswap, BitswapConfig, BlockNotDelivered, fetch_dag, FetchError

    bs = Bitswap(host, store)            # host: a running py-libp2p host; store: blockstore.store.BlockStore
    async with trio.open_nursery() as n:
        await n.start(bs.run)            # registers the protocol handlers; runs until cancelled
        data = await bs.get_block(cid, timeout=30)          # bytes; raises BlockNotDelivered
        found = await bs.get_blocks([cid1, cid2], timeout=30)  # {cid: bytes} of those that arrived
        result = await fetch_dag(bs, root, concurrency=64, max_depth=None,
                                 block_timeout=60, progress=lambda blocks, nbytes: ...)
        bs.notify_new_blocks([cid, ...])  # after storing blocks by other means (import, CAR, RPC)
        bs.stats()                        # dict: blocks_sent, bytes_sent, blocks_received, bytes_received,
                                          # wantlist_size, peers, duplicate/unwanted/invalid blocks, ...

Client strategy (``client.WantManager``): a new want goes as want-block to the
best connected peer and as want-have to the others; wantlist updates gather
for ``BitswapConfig.want_flush_delay`` into one message per peer, and an entry
a peer already holds is never sent again; a peer seen re-sending blocks (js)
gets its updates in rounds. A wait ends early (BlockNotDelivered / FetchError
"no connected peer") when the last peer has been gone ``no_peer_grace`` s.

CIDs are binary (``blockstore.cid``). Every received block is verified (its
CID derived from the hash of its bytes must be wanted) before it is stored;
unrequested blocks are ignored. Serving needs nothing more than a running
``Bitswap``: any peer's wants are answered from the store, on a stream we
open to that peer (which is what go and js peers read).

Modules: ``message`` (protobuf codec, limits), ``engine`` (server core,
sans-I/O), ``client`` (want manager core, sans-I/O), ``network`` (stream
adapter, framing), ``bitswap`` (the service), ``fetcher`` (DAG fetcher).
"""

from .bitswap import Bitswap, BitswapConfig
from .errors import BadMessage, BitswapError, BlockNotDelivered, NetworkUnavailable
from .fetcher import FetchError, FetchResult, fetch_dag
from .message import MAX_BLOCK_SIZE, MAX_MESSAGE_SIZE, MessageError
from .network import PROTOCOLS

__all__ = [
    "Bitswap",
    "BitswapConfig",
    "BadMessage",
    "BitswapError",
    "BlockNotDelivered",
    "NetworkUnavailable",
    "FetchError",
    "FetchResult",
    "fetch_dag",
    "MessageError",
    "MAX_BLOCK_SIZE",
    "MAX_MESSAGE_SIZE",
    "PROTOCOLS",
]
