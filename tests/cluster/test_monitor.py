"""cluster/monitor.py: metrics (JSON and gossip encodings), the peer set, alerts."""

from __future__ import annotations

import threading

import libipld
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.monitor import MAX_ALERTS, Metric, MetricError, MetricStore, with_received

S = 1_000_000_000  # one second in ns
ME, P1, P2 = "12D3KooWMe", "12D3KooWOne", "12D3KooWTwo"


def _m(name: str, peer: str, value: str = "1", expire: int = 100 * S, **kw: object) -> Metric:
    return Metric(name, peer, value, expire, **kw)  # type: ignore[arg-type]


metrics = st.builds(
    Metric,
    name=st.text(min_size=1, max_size=20),
    peer=st.text(min_size=1, max_size=60),
    value=st.text(max_size=100),
    expire=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    valid=st.booleans(),
    weight=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    partitionable=st.booleans(),
)


@given(metrics)
def test_gossip_encoding_round_trips(m: Metric) -> None:
    assert Metric.decode(m.encode()) == m


@given(metrics, st.integers(min_value=0, max_value=2**63 - 1))
def test_json_round_trips(m: Metric, received: int) -> None:
    stamped = with_received(m, received)
    assert Metric.from_json(stamped.to_json()) == stamped


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ([1], "must be a map"),
        ({"p": P1, "v": "1", "e": 1}, "name"),
        ({"n": "ping", "v": "1", "e": 1}, "no peer"),
        ({"n": "ping", "p": P1, "v": 5, "e": 1}, "value must be a string"),
        ({"n": "ping", "p": P1, "v": "1", "e": "soon"}, "expire must be an integer"),
        ({"n": "ping", "p": P1, "v": "1", "e": 1, "d": "yes"}, "booleans"),
    ],
)
def test_malformed_metrics_are_refused_with_the_reason(obj: object, problem: str) -> None:
    with pytest.raises(MetricError, match=problem):
        Metric.decode(libipld.encode_dag_cbor(obj))


def test_garbage_and_oversized_messages_are_refused() -> None:
    with pytest.raises(MetricError, match="DAG-CBOR"):
        Metric.decode(b"\xff\xfe")
    with pytest.raises(MetricError, match="exceeds"):
        Metric.decode(b"\x00" * 20000)
    with pytest.raises(MetricError):
        Metric.from_json("not an object")


def test_peerset_is_self_plus_peers_with_a_fresh_valid_ping() -> None:
    store = MetricStore(ME)
    assert store.peerset(0) == [ME]
    store.add(_m("ping", P1, expire=10 * S))
    store.add(_m("ping", P2, expire=10 * S, valid=False))
    assert store.peerset(5 * S) == sorted([ME, P1])
    assert store.peerset(10 * S) == [ME]  # P1's ping expired
    store.add(_m("ping", P1, expire=20 * S))
    assert store.peerset(15 * S) == sorted([ME, P1])


def test_latest_is_one_valid_fresh_metric_per_peer_of_the_peerset() -> None:
    store = MetricStore(ME)
    for peer in (ME, P2):
        store.add(_m("ping", peer, expire=50 * S))
    store.add(_m("ping", P1, expire=25 * S))
    store.add(_m("freespace", P1, "100", expire=30 * S))
    store.add(_m("freespace", P1, "90", expire=40 * S))  # newer replaces
    store.add(_m("freespace", P2, "0", expire=40 * S, valid=False))  # invalid: left out
    store.add(_m("freespace", ME, "500", expire=10 * S))  # expires first
    assert [(m.peer, m.value) for m in store.latest("freespace", 5 * S)] == [(ME, "500"), (P1, "90")]
    assert [(m.peer, m.value) for m in store.latest("freespace", 20 * S)] == [(P1, "90")]
    assert store.latest_for("freespace", P1, 20 * S).value == "90"  # type: ignore[union-attr]
    assert store.latest_for("freespace", P2, 20 * S) is None
    # a peer whose ping expired is no longer in the peer set: its other metrics are not offered
    store.add(_m("freespace", P1, "80", expire=100 * S))
    assert [m.peer for m in store.latest("freespace", 30 * S)] == []  # P1's newest ping expired at 25 s
    assert store.names() == ["freespace", "ping"]


def test_window_keeps_the_last_n_metrics() -> None:
    store = MetricStore(ME, window=3)
    for i in range(10):
        store.add(_m("numpin", P1, str(i), expire=(i + 1) * S))
    assert [m.value for m in store.history("numpin", P1)] == ["7", "8", "9"]


def test_an_expired_metric_alerts_once_until_renewed() -> None:
    store = MetricStore(ME)
    store.add(_m("ping", P1, expire=10 * S, received_at=1 * S))
    store.add(_m("ping", ME, expire=10 * S))  # our own metrics never alert
    assert store.check(5 * S) == []
    alerts = store.check(11 * S)
    assert [(a.metric.name, a.metric.peer, a.triggered_at) for a in alerts] == [("ping", P1, 11 * S)]
    assert store.check(12 * S) == []  # one alert per expiry
    assert store.alerts()[0].to_json()["triggered_at"] == "1970-01-01T00:00:11Z"
    assert store.last_seen(P1) == 1 * S
    store.add(_m("ping", P1, expire=20 * S))  # renewed, then expired again: a new alert
    assert len(store.check(21 * S)) == 1
    assert len(store.alerts()) == 2


def test_alerts_are_bounded_and_newest_first() -> None:
    store = MetricStore(ME)
    for i in range(MAX_ALERTS + 10):
        store.add(_m("ping", f"peer-{i}", expire=i))
    store.check(10 * S)
    alerts = store.alerts()
    assert len(alerts) == MAX_ALERTS


def test_forget_drops_a_peer() -> None:
    store = MetricStore(ME)
    store.add(_m("ping", P1))
    store.forget(P1)
    assert store.peerset(0) == [ME] and store.last_seen(P1) is None


def test_concurrent_adds_and_reads() -> None:
    store = MetricStore(ME)

    def writer(peer: str) -> None:
        for i in range(2000):
            store.add(_m("ping", peer, str(i)))

    threads = [threading.Thread(target=writer, args=(f"p{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        store.latest("ping", 0)
        store.check(0)
    for t in threads:
        t.join()
    assert len(store.peerset(0)) == 5


def test_an_old_metric_delivered_again_is_ignored() -> None:
    store = MetricStore(ME)
    assert store.add(_m("ping", P1, expire=20 * S))
    assert store.check(25 * S) and not store.add(_m("ping", P1, expire=20 * S))  # the same message again
    assert store.check(26 * S) == []  # no second alert for the same expiry
    assert store.add(_m("ping", P1, expire=40 * S))
