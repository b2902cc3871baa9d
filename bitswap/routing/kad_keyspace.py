"""The Kademlia keyspace: 256-bit points, XOR distance, common prefix length.

Every DHT key (a multihash for provider records, a binary peer ID for
FIND_NODE) and every peer ID maps to the point ``sha256(bytes)`` read as a
big-endian 256-bit integer; the distance between two points is their XOR
(kad-dht spec, "Distance": https://github.com/libp2p/specs/blob/master/kad-dht/README.md).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

__all__ = ["KEY_BITS", "kad_point", "distance", "common_prefix_len", "random_key_in_bucket", "MAX_REFRESH_CPL"]

KEY_BITS = 256
#: deepest bucket a refresh looks up: a key with a longer common prefix would take
#: ~2^(cpl+1) hashes to find by chance (go-libp2p-kad-dht stops at 15 too)
MAX_REFRESH_CPL = 15


def kad_point(key: bytes) -> int:
    """The keyspace point of a DHT key or binary peer ID: sha256 as a 256-bit integer."""
    return int.from_bytes(hashlib.sha256(key).digest(), "big")


def distance(a: int, b: int) -> int:
    """XOR distance of two keyspace points."""
    return a ^ b


def common_prefix_len(a: int, b: int) -> int:
    """Leading bits two points share (256 when equal): the bucket index of ``b`` seen from ``a``."""
    return KEY_BITS - (a ^ b).bit_length()


def random_key_in_bucket(
    local: int, cpl: int, *, randbytes: Callable[[int], bytes] = os.urandom, max_tries: int = 1 << 22
) -> bytes:
    """A random sha2-256 peer-ID-shaped key whose point shares exactly ``cpl`` leading bits with ``local``.

    Used to refresh a bucket: a lookup of this key walks the part of the
    keyspace that bucket covers. Found by trying random keys (about 2^(cpl+1)
    tries), so ``cpl`` must be at most MAX_REFRESH_CPL.
    """
    if not 0 <= cpl <= MAX_REFRESH_CPL:
        raise ValueError(f"bucket {cpl} is beyond the refreshable range 0..{MAX_REFRESH_CPL}")
    for _ in range(max_tries):
        key = b"\x12\x20" + randbytes(32)
        if common_prefix_len(local, kad_point(key)) == cpl:
            return key
    raise RuntimeError(f"no key in bucket {cpl} after {max_tries} tries")  # pragma: no cover
