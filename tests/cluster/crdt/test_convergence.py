"""Property: replicas that receive the same deltas, in any order and with duplicates, converge."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.crdt import DELETE, PUT

from .helpers import Peer, key

N_KEYS = 5

op = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 4), st.integers(0, N_KEYS - 1), st.binary(max_size=3)),
    st.tuples(st.just("delete"), st.integers(0, 4), st.integers(0, N_KEYS - 1), st.just(b"")),
    st.tuples(st.just("batch"), st.integers(0, 4), st.integers(0, N_KEYS - 1), st.binary(max_size=3)),
    st.tuples(st.just("broadcast"), st.integers(0, 4), st.just(0), st.just(b"")),
    st.tuples(st.just("deliver"), st.integers(0, 1000), st.booleans(), st.just(b"")),
    st.tuples(st.just("restart"), st.integers(0, 4), st.just(0), st.just(b"")),
    st.tuples(st.just("snapshot"), st.integers(0, 4), st.integers(0, 4), st.just(b"")),
    st.tuples(st.just("compact"), st.integers(0, 4), st.just(0), st.just(b"")),
)


def _index_of(peer: Peer) -> list[tuple[bytes, bytes]]:
    return sorted((t, k) for t in [b"v=" + bytes([i]) for i in range(256)] for k in peer.replica.set.find(t))


@settings(max_examples=int(os.environ.get("CRDT_EXAMPLES", "100")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(3, 5), ops=st.lists(op, max_size=40))
def test_replicas_converge(n: int, ops: list[tuple]) -> None:
    def terms(k: bytes, v: bytes):
        if v:
            yield b"v=" + v[:1]

    with tempfile.TemporaryDirectory() as tmp:
        peers = [
            Peer(Path(tmp) / f"p{i}", peer_id=f"p{i}", trusted_peers=["*"], index_terms=terms,
                 max_batch_size=3, max_batch_age=1.0)
            for i in range(n)
        ]
        in_flight: list[tuple[bytes, int, int]] = []  # (head, from, to)
        try:
            for kind, a, b, value in ops:
                if kind in ("put", "delete", "batch"):
                    r = peers[a % n].replica
                    if kind == "put":
                        r.put(key(b), value)
                        r.commit()
                    elif kind == "delete":
                        r.delete(key(b))
                        r.commit()
                    else:  # stays queued until the next commit of that replica
                        r.apply_many([(PUT, key(b), value), (DELETE, key((b + 1) % N_KEYS), b"")])
                elif kind == "broadcast":
                    src = a % n
                    for head, _h in peers[src].replica.heads():
                        in_flight.extend((head, src, dst) for dst in range(n) if dst != src)
                elif kind == "deliver" and in_flight:
                    i = a % len(in_flight)
                    head, src, dst = in_flight[i] if b else in_flight.pop(i)  # b: keep it (duplicate later)
                    peers[src].deliver(head, peers[dst])
                elif kind == "snapshot" and a % n != b % n and peers[a % n].replica.heads():
                    root = peers[a % n].replica.create_snapshot()
                    peers[b % n].replica.load_snapshot(root, peers[a % n].get_block)
                elif kind == "compact" and peers[a % n].replica.heads():
                    r = peers[a % n].replica
                    r.compact(r.create_snapshot())
                elif kind == "restart":
                    peers[a % n].reopen()
            for head, src, dst in in_flight:
                peers[src].deliver(head, peers[dst])
            for p in peers:
                p.replica.commit()
            for _ in range(2):  # full exchange: everyone's heads to everyone
                for s in peers:
                    for d in peers:
                        if s is not d:
                            s.send_heads(d)
            states = [p.state() for p in peers]
            heads = [p.replica.heads() for p in peers]
            indexes = [_index_of(p) for p in peers]
            for p in peers:
                assert len(p.replica.set) == len(p.state())
                assert not p.replica.is_dirty()
            assert all(s == states[0] for s in states)
            assert all(h == heads[0] for h in heads)
            assert all(i == indexes[0] for i in indexes)
            expected_index = sorted((b"v=" + v[:1], k) for k, v in states[0] if v)
            assert indexes[0] == expected_index
        finally:
            for p in peers:
                p.close()
