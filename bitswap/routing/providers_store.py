"""Provider records of the DHT server, in LevelDB (prefix ``r/``), bounded and expiring.

A provider record says "peer P can provide the content of multihash M"; a
DHT server keeps the records other peers announce with ADD_PROVIDER and
returns them for GET_PROVIDERS, for ``validity`` seconds (48 h, as
go-libp2p-kad-dht's ``ProvideValidity``; the announcer re-provides before).

Layout (every key under ``prefix``, default ``r/``; M = multihash, P = binary
peer ID, both self-delimiting, T = 8-byte big-endian milliseconds)::

    p/<M><P>  -> T (expiry)          GET_PROVIDERS is a prefix scan of p/<M>
    e/<T><M><P> -> b""               expiry index: the sweeper scans it in time order
    k/<M>     -> providers of M      (8-byte count)
    c/<P>     -> records of P        (8-byte count)
    a/<P>     -> P's addresses       (count, then length-prefixed binary multiaddrs)
    t         -> records in total    (8-byte count)

Limits: ``max_records`` in all, ``max_per_key`` providers of one multihash,
``max_per_peer`` records announced by one peer, ``max_addrs`` addresses kept
per peer. A record over a limit is refused (the existing ones are kept, the
sender learns nothing of it, as with go's store under load); renewing an
existing record is always accepted. Every add is one LevelDB write batch, so
a crash keeps counts and records consistent. Times are passed in (seconds).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from blockstore.kv import KVStore
from blockstore.layout import NS_ROUTING

__all__ = [
    "PROVIDE_VALIDITY",
    "ProviderRecord",
    "ProviderStore",
    "STORED",
    "RENEWED",
    "FULL",
    "KEY_FULL",
    "PEER_FULL",
    "multihash_len",
]

PROVIDE_VALIDITY = 48 * 3600.0  #: seconds a provider record is kept (go-libp2p-kad-dht ProvideValidity)

STORED = "stored"  #: a new record
RENEWED = "renewed"  #: an existing record got a new expiry (and addresses)
FULL = "store_full"  #: refused: max_records reached
KEY_FULL = "key_full"  #: refused: max_per_key providers of this multihash already
PEER_FULL = "peer_full"  #: refused: this peer already has max_per_peer records

_U64 = struct.Struct(">Q")


def _varint_at(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(buf) or shift > 56:
            raise ValueError("malformed varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def multihash_len(buf: bytes, pos: int = 0) -> int:
    """Length of the multihash starting at ``buf[pos]`` (code varint, length varint, digest).

    Raises ValueError when it is malformed or runs past the end of ``buf``.
    """
    _code, p = _varint_at(buf, pos)
    size, p = _varint_at(buf, p)
    end = p + size
    if end > len(buf):
        raise ValueError("multihash digest runs past the end")
    return end - pos


def _encode_addrs(addrs: list[bytes]) -> bytes:
    out = bytearray(bytes([len(addrs)]))
    for a in addrs:
        out += struct.pack(">H", len(a)) + a
    return bytes(out)


def _decode_addrs(data: bytes) -> list[bytes]:
    if not data:
        return []
    n = data[0]
    pos = 1
    out = []
    for _ in range(n):
        (size,) = struct.unpack_from(">H", data, pos)
        pos += 2
        out.append(data[pos : pos + size])
        pos += size
    return out


@dataclass(slots=True)
class ProviderRecord:
    """A stored provider: the peer, its last announced addresses, when the record expires (seconds)."""

    peer: bytes
    addrs: list[bytes]
    expires: float


class ProviderStore:
    """The bounded, expiring provider record store (see the module docstring)."""

    def __init__(
        self,
        db: KVStore,
        *,
        prefix: bytes = NS_ROUTING,
        validity: float = PROVIDE_VALIDITY,
        max_records: int = 5_000_000,
        max_per_key: int = 200,
        max_per_peer: int = 500_000,
        max_addrs: int = 16,
    ) -> None:
        self._db = db
        self.prefix = prefix
        self._p = prefix + b"p/"
        self._e = prefix + b"e/"
        self._k = prefix + b"k/"
        self._c = prefix + b"c/"
        self._a = prefix + b"a/"
        self._t = prefix + b"t"
        self.validity = validity
        self.max_records = max_records
        self.max_per_key = max_per_key
        self.max_per_peer = max_per_peer
        self.max_addrs = max_addrs
        raw = db.get(self._t)
        self._total = _U64.unpack(raw)[0] if raw else 0

    # ----------------------------------------------------------------- counts
    def count(self) -> int:
        """Records stored (expired ones count until swept)."""
        return self._total

    def _get_count(self, key: bytes) -> int:
        raw = self._db.get(key)
        return _U64.unpack(raw)[0] if raw else 0

    def count_for_key(self, key: bytes) -> int:
        """Providers stored for multihash ``key``."""
        return self._get_count(self._k + key)

    def count_for_peer(self, peer: bytes) -> int:
        """Records announced by ``peer``."""
        return self._get_count(self._c + peer)

    # ----------------------------------------------------------------- writes
    def add(self, key: bytes, peer: bytes, addrs: list[bytes], now: float) -> str:
        """Store (or renew) the record "``peer`` provides ``key``"; returns STORED, RENEWED or a refusal."""
        return self.add_many([(key, peer, addrs)], now)[0]

    def add_many(self, items: Iterable[tuple[bytes, bytes, list[bytes]]], now: float) -> list[str]:
        """Store several records in one write batch; one outcome per item, in order.

        ``key`` must be a multihash and ``peer`` a binary peer ID (the server
        core checks both); ``addrs`` are binary multiaddrs (the first
        ``max_addrs`` are kept).
        """
        expires_ms = int((now + self.validity) * 1000)
        exp = _U64.pack(expires_ms)
        counts: dict[bytes, int] = {}  # counters of this batch, by LevelDB key; written once at the end
        pending: dict[bytes, bytes] = {}  # record key -> expiry written in this batch
        written_addrs: dict[bytes, bytes] = {}  # peer's address key -> encoded addresses
        encoded: dict[tuple[bytes, ...], bytes] = {}
        outcomes = []
        total = self._total
        get = self._db.get
        with self._db.write_batch() as wb:
            for key, peer, addrs in items:
                rkey = self._p + key + peer
                old = pending[rkey] if rkey in pending else get(rkey)
                if old is not None:
                    wb.delete(self._e + old + key + peer)
                    outcome = RENEWED
                else:
                    kkey, ckey = self._k + key, self._c + peer
                    kn = counts[kkey] if kkey in counts else self._get_count(kkey)
                    cn = counts[ckey] if ckey in counts else self._get_count(ckey)
                    if total >= self.max_records:
                        outcomes.append(FULL)
                        continue
                    if kn >= self.max_per_key:
                        outcomes.append(KEY_FULL)
                        continue
                    if cn >= self.max_per_peer:
                        outcomes.append(PEER_FULL)
                        continue
                    counts[kkey] = kn + 1
                    counts[ckey] = cn + 1
                    total += 1
                    outcome = STORED
                pending[rkey] = exp
                wb.put(rkey, exp)
                wb.put(self._e + exp + key + peer, b"")
                akey = self._a + peer
                tup = tuple(addrs)
                enc = encoded.get(tup)
                if enc is None:
                    enc = encoded[tup] = _encode_addrs(addrs[: self.max_addrs])
                if written_addrs.get(akey) != enc:
                    if akey in written_addrs or get(akey) != enc:
                        wb.put(akey, enc)
                    written_addrs[akey] = enc
                outcomes.append(outcome)
            for ckey, n in counts.items():
                wb.put(ckey, _U64.pack(n))
            if total != self._total:
                wb.put(self._t, _U64.pack(total))
        self._total = total
        return outcomes

    def sweep(self, now: float, limit: int = 100_000) -> int:
        """Delete up to ``limit`` records expired at ``now`` (oldest first); returns how many."""
        cutoff = _U64.pack(int(now * 1000))
        removed = 0
        counts: dict[bytes, int] = {}
        total = self._total
        with self._db.write_batch() as wb:
            for ekey in self._db.iterator(prefix=self._e, include_value=False):
                body = ekey[len(self._e) :]
                if body[:8] > cutoff or removed >= limit:
                    break
                rest = body[8:]
                try:
                    mlen = multihash_len(rest)
                except ValueError:
                    wb.delete(ekey)
                    continue
                key, peer = rest[:mlen], rest[mlen:]
                wb.delete(ekey)
                rkey = self._p + key + peer
                if self._db.get(rkey) != body[:8]:
                    continue  # renewed since (its index entry was rewritten) or already gone
                wb.delete(rkey)
                for ck in (self._k + key, self._c + peer):
                    n = (counts[ck] if ck in counts else self._get_count(ck)) - 1
                    counts[ck] = n
                    if n > 0:
                        wb.put(ck, _U64.pack(n))
                    else:
                        wb.delete(ck)
                        if ck.startswith(self._c):
                            wb.delete(self._a + peer)
                total -= 1
                removed += 1
            if removed:
                wb.put(self._t, _U64.pack(max(total, 0)))
        self._total = max(total, 0)
        return removed

    # ----------------------------------------------------------------- reads
    def providers(self, key: bytes, now: float, limit: int = 20) -> list[ProviderRecord]:
        """Up to ``limit`` unexpired providers of multihash ``key``, with their last announced addresses."""
        out: list[ProviderRecord] = []
        now_ms = int(now * 1000)
        plen = len(self._p) + len(key)
        for rkey, value in self._db.iterator(prefix=self._p + key):
            expires_ms = _U64.unpack(value)[0]
            if expires_ms <= now_ms:
                continue
            peer = rkey[plen:]
            out.append(ProviderRecord(peer, _decode_addrs(self._db.get(self._a + peer) or b""), expires_ms / 1000))
            if len(out) >= limit:
                break
        return out
