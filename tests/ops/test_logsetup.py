"""node/logsetup.py: one line per event, levels per subsystem, tracebacks only for unexpected errors."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from node.logsetup import setup, subsystem


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name in ("node.pinset", "pinset", "cluster.pinset", "node.p2p.pinset"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_lines_levels_and_tracebacks(restore_logging: None) -> None:
    out = io.StringIO()
    setup({"Logging": {"Level": "WARNING", "Subsystems": {"pinset": "DEBUG"}}}, stream=out)
    logging.getLogger("node.pinset").debug("synced %d heads", 3)
    logging.getLogger("node.informer").info("not shown: below WARNING")
    logging.getLogger("node.informer").warning("peer %s: metric ping expired", "12D3KooWx")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("cluster.tracker").error("expected failure, one line")
        logging.getLogger("cluster.tracker").exception("unexpected failure")
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z DEBUG pinset synced 3 heads", lines[0])
    assert lines[1].endswith("WARNING informer peer 12D3KooWx: metric ping expired")
    assert lines[2].endswith("ERROR tracker expected failure, one line")
    assert lines[3].endswith("ERROR tracker unexpected failure") and lines[4] == "Traceback (most recent call last):"
    assert "not shown" not in out.getvalue()
    setup({"Logging": {"Level": "ERROR", "Subsystems": {}}}, stream=out)  # idempotent: one handler
    assert sum(1 for h in logging.getLogger().handlers if getattr(h, "_pinion", False)) == 1


def test_subsystem_names() -> None:
    assert subsystem("node.p2p.rpc") == "rpc" and subsystem("cluster.crdt.replica") == "replica"
    assert subsystem("node.cluster.pinset") == "pinset" and subsystem("node.p2p.peer_rpc") == "peer_rpc"
    assert subsystem("libp2p.pubsub") == "libp2p.pubsub"


def test_libp2p_subsystem_levels_reach_the_log(restore_logging: None) -> None:
    """Importing py-libp2p turns its logger's propagation off (its own LIBP2P_DEBUG switch),
    so ``"libp2p": "INFO"`` printed nothing (the keepalive's "closing the connection" lines
    were lost while a partition was debugged). Without the subsystem it stays quiet."""
    import libp2p  # noqa: F401  (as in the daemon: imported before the config is read)

    lib = logging.getLogger("libp2p")
    saved = (lib.level, lib.propagate)
    try:
        out = io.StringIO()
        setup({"Logging": {"Level": "WARNING", "Subsystems": {}}}, stream=out)
        logging.getLogger("libp2p.keepalive").info("not shown")
        assert out.getvalue() == ""
        setup({"Logging": {"Level": "WARNING", "Subsystems": {"libp2p": "INFO"}}}, stream=out)
        logging.getLogger("libp2p.keepalive").info("closing the connection to %s", "12D3KooWx")
        logging.getLogger("libp2p.keepalive").debug("not shown: below INFO")
        assert out.getvalue().splitlines()[-1].endswith("INFO libp2p.keepalive closing the connection to 12D3KooWx")
        assert len(out.getvalue().splitlines()) == 1
    finally:
        lib.setLevel(saved[0])
        lib.propagate = saved[1]


def test_libp2p_warnings_are_formatted_and_failed_dials_are_quiet(restore_logging: None) -> None:
    """py-libp2p's warnings used to reach stderr through logging's last-resort handler, without
    time or level; and its TCP transport logs an ERROR for every failed dial (a peer that is
    down), which the caller already reports."""
    from node.p2p import compat

    compat.install()
    tcp = logging.getLogger("libp2p.transport.tcp")
    saved = tcp.level
    try:
        out = io.StringIO()
        setup({"Logging": {"Level": "WARNING", "Subsystems": {}}}, stream=out)
        logging.getLogger("libp2p.network.swarm").warning("a warning from %s", "the swarm")
        tcp.error("Failed to open TCP stream: all attempts to connect to 127.0.0.1:1 failed")
        lines = out.getvalue().splitlines()
        assert len(lines) == 1 and re.fullmatch(r"\S+Z WARNING libp2p\.network\.swarm a warning from the swarm", lines[0]), lines
        setup({"Logging": {"Level": "WARNING", "Subsystems": {"libp2p": "WARNING"}}}, stream=out)
        tcp.error("Failed to open TCP stream")
        assert out.getvalue().splitlines()[-1].endswith("ERROR libp2p.transport.tcp Failed to open TCP stream")
    finally:
        tcp.setLevel(saved)
