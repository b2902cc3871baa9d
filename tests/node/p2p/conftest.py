"""Helpers for the libp2p tests: fresh identities, loopback hosts, no leaked threads."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest

from node.p2p.hosts import HostHandle
from node.p2p.identity import generate_identity, load_keypair

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


def new_host(name: str = "swarm", **kw) -> HostHandle:
    """A HostHandle with a fresh identity listening on a free loopback port."""
    return HostHandle(name, load_keypair(generate_identity()[1]), [LOOPBACK], **kw)


def new_secret() -> str:
    """A fresh 64-hex-character cluster secret."""
    return secrets.token_hex(32)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every thread a test starts is gone when it ends."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for t in leaked:
        t.join(5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads left running: {still}"
