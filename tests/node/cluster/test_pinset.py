"""The CRDT pinset on the network (node/pinset.py): message codec, config, and real daemons (up to five)."""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.error
import urllib.request
from typing import Any

import libipld
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockstore.cid import IDENTITY, RAW, cid_for, cid_to_str, make_cid, make_multihash
from node import config as cfgmod
from node.cluster.pinset import MAX_HEADS, PinsetError, decode_heads, encode_heads, topic_for

SYNC_TIMEOUT = 60.0


# ---------------------------------------------------------------- codec
@given(st.lists(st.binary(min_size=1, max_size=64), max_size=20), st.booleans())
def test_heads_message_round_trips(seeds: list[bytes], with_snapshot: bool) -> None:
    heads = [cid_for(s, codec=0x71) for s in seeds]
    snap = cid_for(b"snapshot", codec=0x71) if with_snapshot else None
    assert decode_heads(encode_heads(heads, snap)) == (heads, snap)


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"\xff\x00", "not DAG-CBOR"),
        (libipld.encode_dag_cbor([1, 2]), "'heads' list"),
        (libipld.encode_dag_cbor({"heads": "x"}), "'heads' list"),
        (libipld.encode_dag_cbor({"heads": [b"\x01\x02"]}), "bad CID"),
        (libipld.encode_dag_cbor({"heads": [7]}), "int where a CID belongs"),
        (libipld.encode_dag_cbor({"heads": [], "snapshot": "bafy"}), "str where a CID belongs"),
        (encode_heads([cid_for(b"%d" % i) for i in range(MAX_HEADS + 1)], None), "heads (at most"),
        (b"\xa0" * (64 * 1024 + 1), "exceeds"),
    ],
)
def test_bad_heads_messages_are_refused_with_the_reason(data: bytes, problem: str) -> None:
    with pytest.raises(PinsetError, match="heads message") as info:
        decode_heads(data)
    assert problem in str(info.value)


def test_topic_derives_from_the_cluster_name() -> None:
    assert topic_for("a") != topic_for("b")
    assert "a" in topic_for("a")


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("TrustedPeers", "*", "TrustedPeers"),
        ("TrustedPeers", [""], "TrustedPeers"),
        ("RebroadcastInterval", 0, "RebroadcastInterval"),
        ("RebroadcastInterval", True, "RebroadcastInterval"),
        ("BatchMaxSize", -1, "BatchMaxSize"),
        ("BatchMaxSize", 1.5, "BatchMaxSize"),
        ("BatchMaxAge", "1", "BatchMaxAge"),
    ],
)
def test_config_rejects_bad_pinset_settings(key: str, value: Any, problem: str) -> None:
    cfg = cfgmod.default_config("test")
    assert cfg["Cluster"]["TrustedPeers"] == ["*"]
    cfg["Cluster"][key] = value
    with pytest.raises(cfgmod.ConfigError, match=problem):
        cfgmod.validate(cfg)


# ---------------------------------------------------------------- three daemons
def _rpc(node: Any, command: str, **query: str) -> Any:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    req = urllib.request.Request(f"{node.url()}/api/v0/{command}?{qs}", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read().decode()
    if command == "pinset/ls":
        return [json.loads(line) for line in body.splitlines() if line]
    return json.loads(body)


def _cids(node: Any) -> set[str]:
    return {p["cid"] for p in _rpc(node, "pinset/ls")}


def _wait_for(what: str, cond: Any, nodes: list[Any], timeout: float = SYNC_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    logs = "\n".join(n.log.read_text()[-2000:] for n in nodes)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _configure(node: Any, bootstrap: list[str], **cluster: Any) -> dict[str, Any]:
    path = node.path / cfgmod.CONFIG_FILE
    cfg = json.loads(path.read_text())
    cfg["Cluster"]["Bootstrap"] = bootstrap
    cfg["Cluster"]["RebroadcastInterval"] = 0.5
    cfg["Cluster"].update(cluster)
    path.write_text(json.dumps(cfg))
    return cfg


def _cluster_addr(node: Any) -> str:
    ep = node.endpoints
    addr = ep["cluster"][0]
    return addr if "/p2p/" in addr else f"{addr}/p2p/{ep['cluster_peer_id']}"


def _metric(node: Any, name: str) -> float:
    with urllib.request.urlopen(f"{node.url('metrics')}/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported")


def _init(make_node: Any, name: str, secret: str) -> Any:
    node = make_node(name)
    # make_node inits with a random secret: re-init the repo with the shared one
    import shutil

    shutil.rmtree(node.path)
    node.cli("init", "--profile", "test", "--secret", secret)
    return node


def _changes(node: Any, ops: list[tuple[str, str, str]]) -> None:
    """Run pinset add/rm calls over one keep-alive connection (op, cid, name)."""
    host, port = node.url().split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        for op, cid, name in ops:
            query = f"arg={cid}" + (f"&name={name}" if name else "")
            conn.request("POST", f"/api/v0/pinset/{op}?{query}")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, f"pinset/{op} {cid}: {resp.status} {body[:200]!r}"
    finally:
        conn.close()


def _inline(data: bytes) -> str:
    """An identity CID: its content is in the CID, so every peer's pin tracker holds it at once
    (this test is about the pinset, not about fetching content)."""
    return cid_to_str(make_cid(1, RAW, make_multihash(IDENTITY, data)))


def _state(node: Any) -> dict[str, str]:
    return {p["cid"]: p.get("name", "") for p in _rpc(node, "pinset/ls")}


@pytest.mark.timeout(400)
def test_five_daemons_converge_after_1000_changes_made_while_one_was_down(make_node: Any) -> None:
    """Issue 5: pin on one, all see it; stop one peer, make 1,000 changes (adds, removes, updates),
    restart it: all five converge. Snapshots run every second, so the peers compact the deltas
    the stopped peer misses and it must catch up from the announced snapshot (the running
    peers keep up by deltas: a compaction waits until they have merged its snapshot)."""
    secret = secrets.token_hex(32)
    nodes = [_init(make_node, n, secret) for n in "abcde"]
    a, e = nodes[0], nodes[4]
    compaction = {"SnapshotInterval": 1, "SnapshotMinDeltas": 100}
    _configure(a, [], **compaction)
    a.start()
    for node in nodes[1:]:
        _configure(node, [_cluster_addr(a)], **compaction)
        node.start()

    first = _inline(b"first pin")
    added = _rpc(a, "pinset/add", arg=first, name="hello")
    assert added["cid"] == first and added["name"] == "hello"
    _wait_for("the pin on every peer", lambda: all(_cids(n) == {first} for n in nodes), nodes)
    assert [p["name"] for p in _rpc(e, "pinset/ls")] == ["hello"]
    second = _inline(b"second pin")
    _rpc(nodes[1], "pinset/add", arg=second)  # a pin added on another peer travels too
    _wait_for("b's pin on every peer", lambda: all(_cids(n) == {first, second} for n in nodes), nodes)

    e_id = e.endpoints["cluster_peer_id"]
    _wait_for("e on a's topic", lambda: e_id in _rpc(a, "pinset/peers")["Peers"], nodes)
    e.stop()
    _wait_for("a noticing that e left", lambda: e_id not in _rpc(a, "pinset/peers")["Peers"], nodes[:4])
    # 1,000 changes spread over the four running peers: 600 adds, 250 updates (new name), 150 removes
    cids = [_inline(b"change %d" % i) for i in range(600)]
    ops: list[list[tuple[str, str, str]]] = [[] for _ in range(4)]
    for i, cid in enumerate(cids):
        ops[i % 4].append(("add", cid, f"v1-{i}"))
    for i in range(250):
        ops[i % 4].append(("add", cids[i], f"v2-{i}"))
    for i in range(450, 600):
        ops[i % 4].append(("rm", cids[i], ""))
    ops[0].append(("rm", first, ""))  # and one pin from before e left
    for node, part in zip(nodes[:4], ops):
        _changes(node, part)
    expected = {second: "", **{cids[i]: (f"v2-{i}" if i < 250 else f"v1-{i}") for i in range(450)}}
    _wait_for("the changes on the running peers", lambda: all(_state(n) == expected for n in nodes[:4]), nodes, timeout=2 * SYNC_TIMEOUT)
    _wait_for(
        "a compacting the deltas e misses",
        lambda: _metric(a, "pinion_pinset_deltas_compacted_total") > 0,
        nodes[:1],
    )

    e.start()
    _wait_for("e back on a's topic", lambda: e_id in _rpc(a, "pinset/peers")["Peers"], nodes)
    # seconds when a peer lists the branch (pinset_branch); when the RPC streams of a
    # restarted peer do not open (py-libp2p), it walks level by level: slower on a loaded host
    _wait_for("e catching up", lambda: _state(e) == expected, nodes, timeout=3 * SYNC_TIMEOUT)
    assert _metric(e, "pinion_pinset_pins") == len(expected)
    assert _metric(e, "pinion_pinset_sync_lag_seconds") >= 0
    assert _metric(a, "pinion_pinset_snapshots_total") >= 1  # a round compacts to it even without a second one
    assert _metric(e, "pinion_pinset_snapshots_loaded_total") >= 1  # e caught up from an announced snapshot
    for node in nodes:
        assert _state(node) == expected

    with pytest.raises(urllib.error.HTTPError) as info:
        _rpc(a, "pinset/rm", arg=first)
    assert "not in the cluster pinset" in info.value.read().decode()

    # GC on a peer keeps the pinset's deltas and snapshots (they are the only blocks here)
    e.stop()
    e.cli("repo", "gc", "-q")
    exported = {json.loads(line)["cid"] for line in e.cli("state", "export").stdout.decode().splitlines()}
    assert exported == set(expected)


@pytest.mark.timeout(300)
def test_acknowledged_pins_of_an_open_batch_survive_kill_9(make_node: Any) -> None:
    node = _init(make_node, "a", secrets.token_hex(32))
    _configure(node, [], BatchMaxSize=1000, BatchMaxAge=3600)
    node.start()
    cids = [cid_to_str(cid_for(b"batched %d" % i)) for i in range(5)]
    for cid in cids:
        _rpc(node, "pinset/add", arg=cid)
    assert _metric(node, "pinion_pinset_queued") == 5
    assert _cids(node) == set()  # the batch is open: nothing committed yet
    assert node.proc is not None
    node.proc.kill()  # SIGKILL: no shutdown commit
    node.proc.wait()
    node.proc = None
    (node.path / "api").unlink()
    (node.path / "endpoints.json").unlink()
    node.start()
    _wait_for("the replayed batch", lambda: _cids(node) == set(cids), [node])
    assert _metric(node, "pinion_pinset_queued") == 0
    assert _metric(node, "pinion_pinset_batches_total") == 1


@pytest.mark.timeout(300)
def test_heads_of_untrusted_peers_are_ignored(make_node: Any) -> None:
    secret = secrets.token_hex(32)
    a, b = _init(make_node, "a", secret), _init(make_node, "b", secret)
    cfg = json.loads((a.path / cfgmod.CONFIG_FILE).read_text())
    _configure(a, [], TrustedPeers=[cfg["Cluster"]["PeerID"]])  # a trusts itself only
    a.start()
    _configure(b, [_cluster_addr(a)])
    b.start()
    from_b = cid_to_str(cid_for(b"from b"))
    from_a = cid_to_str(cid_for(b"from a"))
    _rpc(b, "pinset/add", arg=from_b)
    _rpc(a, "pinset/add", arg=from_a)
    _wait_for("a's pin on b", lambda: _cids(b) == {from_a, from_b}, [a, b])
    _wait_for("b's broadcasts reaching a", lambda: _metric(a, "pinion_pinset_messages_received_total") >= 3, [a, b])
    assert _cids(a) == {from_a}
    assert _metric(a, "pinion_pinset_pins") == 1
    # nor can it remove a pin it received (IPFS Cluster lets any member unpin): a keeps it
    received = _metric(a, "pinion_pinset_messages_received_total")
    _rpc(b, "pinset/rm", arg=from_a)
    assert _cids(b) == {from_b}
    _wait_for("b's removal reaching a", lambda: _metric(a, "pinion_pinset_messages_received_total") >= received + 2, [a, b])
    assert _cids(a) == {from_a}
