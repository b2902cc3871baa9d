"""Rules of node/routing/service.py and fetch_assist.py that need no network."""

from __future__ import annotations

from typing import Any

from node.routing.fetch_assist import NO_PROVIDER, Search
from node.routing.service import RoutingService
from node.routing.settings import RoutingSettings


def _service(allow_private: bool) -> Any:
    # Routing.Type none builds no DHT, queue or router: the host, store and pins are not touched
    return RoutingService(RoutingSettings(routing_type="none", allow_private_addrs=allow_private), None, None, None)  # type: ignore[arg-type]


def test_untrusted_answers_never_make_the_node_dial_its_own_network() -> None:
    public = _service(False)
    assert public._may_dial("/ip4/8.8.8.8/tcp/4001/p2p/x")
    assert public._may_dial("/dns4/example.org/tcp/4001/p2p/x")
    for addr in ("/ip4/127.0.0.1/tcp/4001/p2p/x", "/ip4/10.1.2.3/tcp/1/p2p/x", "/ip4/192.168.0.1/tcp/1/p2p/x", "/ip6/::1/tcp/1/p2p/x", "/ip4/169.254.0.1/tcp/1/p2p/x"):
        assert not public._may_dial(addr), addr
    assert _service(True)._may_dial("/ip4/127.0.0.1/tcp/4001/p2p/x")
    assert not public.active


def test_the_no_provider_message_only_when_the_search_ran_and_found_nobody() -> None:
    cid = bytes.fromhex("01551220") + bytes(32)
    s = Search(cid)
    assert s.explain("block X never came") == "block X never came"  # the fetch ended before the search
    s.started = True
    assert s.explain("e") == "e"  # still looking
    s.finished = True
    assert s.explain("e").startswith(f"e; {NO_PROVIDER} for baf")
    s.providers = 1
    assert s.explain("e") == "e"  # found someone: the fetch failed for another reason
