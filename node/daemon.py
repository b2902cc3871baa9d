"""``pinion daemon``: the long-running node process.

One asyncio loop serves every HTTP surface with aiohttp: the kubo RPC subset,
the gateway, Prometheus metrics and, when the cluster host runs, the IPFS
Cluster REST API and the pinning service API, each at its configured address
(port 0 picks a free port). Blocking work (LevelDB, hashing, imports) runs in
worker pools by kind (node/workers.py); waits for the network happen on the
event loop, never in a worker (node/fetching.py). ``/health`` reports what
keeps the node from serving (node/health.py).

File descriptors: at start the soft open-file limit is raised to the hard one
(node/fdlimit.py); each server caps its connections, in all and per client
address, and closes connections that do not send their headers in time
(node/http_limits.py, ``HTTP.*`` config); resource errors are logged once per
interval (node/ratelog.py).

When every server listens, the daemon writes ``$PINION_PATH/api`` (the RPC
multiaddr, as kubo does) and ``$PINION_PATH/endpoints.json`` (every listening
address by name, and the peer ID), then prints ``Daemon is ready``. On
SIGINT/SIGTERM it removes both files, closes the servers (aborted uploads roll
back), waits for the workers and closes LevelDB.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from aiohttp import web

from .config import tcp_host_port
from .core import CoreAPI
from .fdlimit import connection_caps, open_files_limit, raise_open_files_limit
from .fetching import FetchingCore
from .gateway.app import make_gateway_app
from .gateway.source import StoreBlockSource
from .health import HealthMonitor
from .http_limits import ConnectionLimiter, GuardedSite, listen
from .httpserver import ServerRunner, line_limits
from .metrics import NodeMetrics, make_metrics_app
from .repo import API_FILE, ENDPOINTS_FILE, Repo, RepoError
from .kuborpc.app import RpcContext, make_rpc_app
from .workers import Pools

if TYPE_CHECKING:
    from .cluster.peer import ClusterPeer
    from .content import NetworkContent
    from .cluster.pinset import PinsetService

log = logging.getLogger(__name__)

#: seconds in-flight requests get to finish at shutdown (the servers close together)
SHUTDOWN_TIMEOUT = 5.0
#: connections the kernel queues for each server while it is busy accepting
BACKLOG = 128


def multiaddr_of(host: str, port: int) -> str:
    """``/ip4/H/tcp/P`` (or ``/ip6/...``) of a listening socket."""
    proto = "ip6" if ":" in host else "ip4"
    return f"/{proto}/{host}/tcp/{port}"


class CountingBlockSource:
    """A gateway block source that counts reads and misses in the node's metrics."""

    def __init__(self, inner: Any, metrics: NodeMetrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self.concurrency = getattr(inner, "concurrency", 1)

    async def get(self, cid: bytes) -> bytes:
        """The block from the inner source; a miss is counted and re-raised."""
        try:
            data = await self._inner.get(cid)
        except LookupError:
            self._metrics.block_got(False)
            raise
        self._metrics.block_got(True)
        return data

    async def has_local(self, cid: bytes) -> bool:
        """Whether the inner source holds the block without fetching."""
        return await self._inner.has_local(cid)


class Daemon:
    """The servers of one node over one open repo (see module docstring)."""

    def __init__(self, repo: Repo, *, offline: bool = False) -> None:
        self.repo = repo
        self.offline = offline
        self.core = CoreAPI(repo, admit_pin=self._admit_pin)
        self.pools = Pools()
        self.health = HealthMonitor(self.pools, repo.db)
        self.endpoints: dict[str, Any] = {}
        self._runners: list[web.AppRunner] = []
        self._limiters: list[ConnectionLimiter] = []
        self.p2p: Any | None = None
        self.content: NetworkContent | None = None
        self.pinset: PinsetService | None = None  #: the cluster pinset when the cluster host runs
        self.cluster_peer: ClusterPeer | None = None  #: the cluster peer when the cluster host runs
        self.routing: Any | None = None  #: node.routing.service.RoutingService when online
        #: last: its collectors read the attributes above (this daemon is their StatsSource)
        self.metrics = NodeMetrics(repo.store, sources=self)

    def _admit_pin(self) -> None:
        """The core's admission check for a kubo RPC ``pin/add``: the cluster peer's pin queue
        when it runs (QueueFull when full), nothing otherwise."""
        if self.cluster_peer is not None:
            self.cluster_peer.admit_local_pin()

    def _notify_stored(self, cids: list[bytes]) -> None:
        """Blocks stored by content routing's HTTP retrieval: wake bitswap's waiters."""
        if self.content is not None:
            self.content.notify(cids)

    # ------------------------------------------------------------ servers
    def bitswap_stats(self) -> dict[str, int] | None:
        """Bitswap's stats for ``/metrics`` (None offline)."""
        return self.content.stats() if self.content is not None else None

    def pinset_stats(self) -> dict[str, Any] | None:
        """The cluster pinset's stats for ``/metrics`` (None without the cluster host)."""
        return self.pinset.stats() if self.pinset is not None else None

    def cluster_stats(self) -> dict[str, Any] | None:
        """The cluster peer's stats for ``/metrics`` (None without the cluster host)."""
        return self.cluster_peer.stats() if self.cluster_peer is not None else None

    def load_stats(self) -> dict[str, Any]:
        """Worker pools, HTTP connections and event-loop lag, for ``/metrics``."""
        return {
            "pools": self.pools.stats(),
            "connections": {lim.server: (lim.open, dict(lim.refused)) for lim in self._limiters},
            "loop_lag": self.health.loop_lag(),
        }

    async def _serve(
        self, name: str, app: web.Application, maddr: str, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        host, port = tcp_host_port(maddr)
        http = self.repo.config["HTTP"]
        header_timeout = float(http["HeaderTimeout"])
        # request line / header field limits: longer ones get 414 / 431 (node/httpserver.py)
        max_line, max_field = line_limits(int(self.repo.config["Gateway"]["MaxURLLength"]))
        runner = ServerRunner(
            app,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            access_log=None,
            max_line_size=max_line,
            max_field_size=max_field,
            keepalive_timeout=header_timeout,  # also closes connections that send no complete headers in time
        )
        await runner.setup()
        self._runners.append(runner)
        servers = 5 if self.cluster_peer is not None else 3
        caps = connection_caps(
            open_files_limit(),
            servers,
            max_per_server=int(http["MaxConnections"]),
            max_per_client=int(http["MaxConnectionsPerClient"]),
        )
        limiter = ConnectionLimiter(name, caps.per_server, caps.per_client)
        self._limiters.append(limiter)
        socks = listen(host, port, name, BACKLOG)
        for sock in socks:
            site = GuardedSite(
                runner, sock, limiter, ssl_context=ssl_context, backlog=BACKLOG, handshake_timeout=header_timeout
            )
            await site.start()
        bound_host, bound_port = socks[0].getsockname()[:2]
        addr = multiaddr_of(bound_host, bound_port)
        self.endpoints[name] = addr
        return addr

    def _gateway_app(self) -> web.Application:
        """The gateway app: local blocks only when offline, bitswap for missing ones when online."""
        source: Any
        if self.content is not None and not self.repo.config["Gateway"]["Offline"]:
            from .content import NetworkBlockSource

            source = NetworkBlockSource(self.content)
        else:
            source = StoreBlockSource(self.repo.store)
        gw = self.repo.config["Gateway"]
        app = make_gateway_app(
            CountingBlockSource(source, self.metrics),
            metrics=self.metrics,
            max_url=int(gw["MaxURLLength"]),
            per_client=int(gw["MaxRequestsPerClient"]),
        )
        if gw["ExposeRoutingAPI"]:
            from .routing.gateway_routes import routing_v1_for_node

            app.add_routes(routing_v1_for_node(self.routing, self.repo.store, self.p2p))
        return app

    async def start(self) -> None:
        """Start every server and write the ``api`` and ``endpoints.json`` files."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(self.pools.state)
        await self.health.start()
        addrs = self.repo.config["Addresses"]
        if not self.offline:
            await self._start_p2p()
        ctx = RpcContext(
            core=self.core,
            config=self.repo.config,
            metrics=self.metrics,
            executor=self.pools.reads,
            p2p=self.p2p,
            uploads=self.pools.imports,
            fetching=FetchingCore(self.core, self.content, self.pools.reads),
            upload_limit=self.repo.memory.upload_buffer_bytes,
        )
        from .routing.rpc import routing_rpc_routes

        ctx.extra_routes.update(routing_rpc_routes(self.routing, self.repo))
        if self.pinset is not None:
            from .cluster.pinset_routes import rpc_routes

            ctx.extra_routes.update(rpc_routes(self.pinset))
        await self._serve("rpc", make_rpc_app(ctx), addrs["API"])
        await self._serve("gateway", self._gateway_app(), addrs["Gateway"])
        metrics_app = make_metrics_app(self.metrics, executor=self.pools.metrics, health=self.health.problems)
        await self._serve("metrics", metrics_app, addrs["Metrics"])
        if self.cluster_peer is not None:
            await self._serve_cluster_apis()
        low = [lim for lim in self._limiters if lim.per_server < int(self.repo.config["HTTP"]["MaxConnections"])]
        if low:
            log.warning(
                "the open-file limit is %d: each HTTP server accepts at most %d connections (%d per client); "
                "raise the hard limit (ulimit -Hn) for more",
                open_files_limit(),
                low[0].per_server,
                low[0].per_client,
            )
        self.endpoints["peer_id"] = self.repo.config["Identity"]["PeerID"]
        if self.p2p is not None and self.p2p.cluster is not None:
            self.endpoints["cluster_peer_id"] = self.p2p.cluster.peer_id
        self.endpoints["offline"] = self.offline
        _write_atomic(self.repo.path / ENDPOINTS_FILE, json.dumps(self.endpoints, indent=2) + "\n")
        _write_atomic(self.repo.path / API_FILE, self.endpoints["rpc"])

    async def _serve_cluster_apis(self) -> None:
        """The IPFS Cluster REST API and the pinning service API (TLS when configured)."""
        from .pinsvc.app import make_pinsvc_app
        from .restapi.app import make_rest_app
        from .restapi.auth import ssl_context

        api_cfg = self.repo.config["ClusterAPI"]
        addrs = self.repo.config["Addresses"]
        tls = ssl_context(api_cfg)
        max_upload = int(self.repo.config["Datastore"]["MaxUploadSize"])
        rest = make_rest_app(
            self.cluster_peer,
            api_cfg,
            core=self.core,
            executor=self.pools.imports,
            max_upload=max_upload,
            body_timeout=float(self.repo.config["HTTP"]["BodyTimeout"]),
            health=self.health.problems,
        )
        await self._serve("cluster_api", rest, addrs["ClusterAPI"], tls)
        pinsvc = make_pinsvc_app(self.cluster_peer, api_cfg, health=self.health.problems)
        await self._serve("pinsvc_api", pinsvc, addrs["PinSvcAPI"], tls)

    async def _start_p2p(self) -> None:
        """Start the libp2p hosts (swarm, and cluster when a secret is set)."""
        # the network stack is imported here, not at the top: py-libp2p and trio take ~0.7 s to
        # import, which an --offline daemon never needs (tests/test_import_weight.py)
        from .content import NetworkContent
        from .p2p.service import P2PService, P2PSettings

        self.p2p = P2PService(P2PSettings.from_config(self.repo.config), db=self.repo.db)
        await self.p2p.start()
        self.endpoints["swarm"] = self.p2p.peer_info("swarm")["Addresses"]
        if self.p2p.cluster is not None:
            self.endpoints["cluster"] = self.p2p.peer_info("cluster")["Addresses"]
        from .routing.wiring import build_routing

        self.routing, assist = build_routing(self.repo, self.p2p, self._notify_stored)
        self.content = NetworkContent(
            self.p2p, self.repo.store, fetch_timeout=float(self.repo.config["Gateway"]["FetchTimeout"]), assist=assist
        )
        await self.content.start()
        await self.routing.start()
        self.metrics.routing = self.routing
        self.core.network = self.content
        if self.p2p.cluster is not None:
            await self._start_pinset()

    async def _start_pinset(self) -> None:
        """Run the CRDT pinset and the cluster peer on the cluster host (node/cluster/)."""
        from .cluster.peer import open_cluster

        assert self.p2p is not None and self.content is not None
        self.cluster_peer = await open_cluster(
            self.repo, self.core, self.p2p, self.content, reads=self.pools.reads, pinset_pool=self.pools.pinset
        )
        self.pinset = self.cluster_peer.pinset
        self.core.replica = self.pinset.replica
        await self.cluster_peer.start()

    async def stop(self) -> None:
        """Remove the files, close the servers and join the worker pools (asyncio.run then joins
        the default one, ``state``)."""
        for name in (API_FILE, ENDPOINTS_FILE):
            try:
                os.unlink(self.repo.path / name)
            except FileNotFoundError:
                pass
        # all servers at once: each gives its in-flight requests SHUTDOWN_TIMEOUT to finish, so
        # one after another a stop took up to five times that
        await asyncio.gather(*(runner.cleanup() for runner in self._runners))
        self._runners.clear()
        self.core.network = None
        self.content = None
        if self.routing is not None:
            await self.routing.stop()
            self.routing = None
        if self.cluster_peer is not None:
            await self.cluster_peer.stop()
            self.cluster_peer = None
        if self.pinset is not None:
            await self.pinset.stop()
            self.pinset = None
        if self.p2p is not None:
            await self.p2p.stop()
            self.p2p = None
        await self.health.stop()
        others = [p for p in self.pools.all() if p is not self.pools.state]
        # joined from a state thread (never from a pool's own thread), before LevelDB closes
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: [p.shutdown(wait=True, cancel_futures=True) for p in others]
        )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def dump_tasks(daemon: Daemon, out: TextIO | None = None) -> None:
    """Write every asyncio and trio task of ``daemon`` with its frames to ``out`` (stderr):
    what ``kill -USR1 <pid>`` asks for (:mod:`node.diag`)."""
    from . import diag  # imports trio: only when asked

    lines = ["=== pinion task dump: asyncio ===", *diag.asyncio_task_lines()]
    if daemon.p2p is not None:

        async def collect() -> list[str]:
            return diag.trio_task_lines()

        try:
            lines += ["=== pinion task dump: trio (libp2p thread) ===", *await asyncio.wait_for(daemon.p2p.bridge.run(collect), 10)]
        except Exception as exc:  # a stuck trio thread is itself the answer
            lines.append(f"trio tasks not listed: {exc!r}")
    lines.append("=== end of task dump ===")
    stream = out or sys.stderr
    stream.write("\n".join(lines) + "\n")
    stream.flush()


async def _run(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    dumps: set[asyncio.Task[None]] = set()

    def on_usr1() -> None:
        task = loop.create_task(dump_tasks(daemon), name="task-dump")
        dumps.add(task)
        task.add_done_callback(dumps.discard)

    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    try:
        await daemon.start()
        ep = daemon.endpoints
        listening = " ".join(
            f"{k}={v if isinstance(v, str) else ','.join(v)}"
            for k, v in ep.items()
            if (isinstance(v, str) and v.startswith("/")) or isinstance(v, list)
        )
        mode = " (offline)" if daemon.offline else ""
        print(f"Daemon is ready{mode}: {listening}", flush=True)
        await stop.wait()
        print("Received interrupt signal, shutting down...", flush=True)
    finally:
        await daemon.stop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(sig)


def main(repo_path: str, offline: bool, bootstrap: list[str] | None = None) -> int:
    """Run the daemon on the repo at ``repo_path`` until SIGINT/SIGTERM; return the exit status.

    ``bootstrap``: cluster multiaddrs to join, in addition to ``Cluster.Bootstrap``.
    """
    before, after = raise_open_files_limit()  # before LevelDB and the servers take descriptors
    if after > before:
        print(f"Raised the open-file limit from {before} to {after}.", flush=True)
    try:
        repo = Repo.open(repo_path)
    except RepoError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    from .config import exposure_problem
    from .logsetup import setup as setup_logging

    problem = exposure_problem(repo.config)
    if problem is not None:
        repo.close()
        print(f"Error: {problem}", file=sys.stderr)
        return 1

    setup_logging(repo.config)
    for addr in bootstrap or []:
        if "/p2p/" not in addr:
            repo.close()
            print(f"Error: --bootstrap {addr!r} must end with /p2p/<peer ID>", file=sys.stderr)
            return 1
        repo.config["Cluster"]["Bootstrap"] = [*repo.config["Cluster"]["Bootstrap"], addr]
    try:
        rolled = repo.store.recover()
        if rolled:
            print(f"rolled back {rolled} blocks of unfinished imports", flush=True)
        daemon = Daemon(repo, offline=offline)
        try:
            asyncio.run(_run(daemon))
        except OSError as exc:
            print(f"Error: cannot start the daemon: {exc}", file=sys.stderr)
            return 1
    finally:
        repo.close()
    return 0
