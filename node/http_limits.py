"""Connection limits of the daemon's HTTP servers, enforced before aiohttp sees a connection.

Each server listens through a :class:`GuardedSite`:

- at most ``per_server`` connections at once, at most ``per_client`` from one client address
  (caps sized from the open-file limit by :mod:`node.fdlimit`). A connection over a cap gets
  a fixed ``503`` (``Connection: close``, ``Retry-After``) written straight to the socket and
  is closed; it never gets a request handler. So that the client can read that answer, the
  socket is held (reading and dropping what the client sends) for at most :data:`LINGER`
  seconds, and at most :data:`MAX_LINGERING` such sockets per server; past that it is closed
  at once.
- a slow client must send complete request headers within the header timeout: the daemon
  gives aiohttp ``keepalive_timeout=HTTP.HeaderTimeout``, which aiohttp applies from the
  connection's start and from the end of each response (idle keep-alive connections close
  then too).
- the listening socket is a :class:`GuardedSocket`. It accepts at most :data:`ACCEPT_BATCH`
  connections per event-loop iteration (asyncio would take up to the whole backlog, and a
  burst of refused connections would hold that many descriptors until they close), and when
  ``accept()`` fails for want of file descriptors (EMFILE/ENFILE), it logs once per interval
  (node/ratelog.py), closes a spare descriptor to accept and close the connections waiting in
  the backlog (so their clients learn at once instead of hanging), and lets asyncio pause
  accepting for a second, instead of failing (and logging a traceback) once per waiting
  connection.

:class:`ConnectionLimiter` counts and is sans-I/O; the rest are the asyncio shells.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
import time
from typing import Any

from aiohttp import web

from .ratelog import RESOURCE_ERRNOS

log = logging.getLogger(__name__)

#: seconds an over-cap connection is held so its client reads the 503, and how many per server
LINGER = 1.0
MAX_LINGERING = 4
#: connections one server accepts per event-loop iteration (the rest wait in the backlog)
ACCEPT_BATCH = 16
#: seconds accept() stays paused after it ran out of file descriptors (asyncio's own retry delay)
ACCEPT_PAUSE = 1.0
#: connections waiting in the backlog closed at once when descriptors run out
SHED_AT_ONCE = 256


def refusal(reason: str) -> bytes:
    """The fixed HTTP answer of a connection over a cap."""
    body = f"{reason}; try again later\n".encode()
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body


class ConnectionLimiter:
    """Connections of one server, in all and by client address (sans-I/O)."""

    def __init__(self, server: str, per_server: int, per_client: int) -> None:
        self.server = server
        self.per_server = per_server
        self.per_client = per_client
        self.open = 0
        self.by_client: dict[str, int] = {}
        self.lingering = 0
        #: connections refused, by reason ("server" / "client")
        self.refused = {"server": 0, "client": 0}

    def admit(self, client: str) -> str | None:
        """Count a new connection from ``client``; None when admitted, else why it is refused."""
        if self.open >= self.per_server:
            self.refused["server"] += 1
            return f"this server has {self.per_server} connections open"
        held = self.by_client.get(client, 0)
        if held >= self.per_client:
            self.refused["client"] += 1
            return f"{client} has {self.per_client} connections open to this server"
        self.open += 1
        self.by_client[client] = held + 1
        return None

    def release(self, client: str) -> None:
        """An admitted connection from ``client`` closed."""
        self.open -= 1
        held = self.by_client.get(client, 0) - 1
        if held > 0:
            self.by_client[client] = held
        else:
            self.by_client.pop(client, None)


class _Gate(asyncio.Protocol):
    """The protocol of one accepted connection: hands it to aiohttp when admitted, answers 503 otherwise."""

    def __init__(self, limiter: ConnectionLimiter, make_handler: Any) -> None:
        self._limiter = limiter
        self._make_handler = make_handler
        self._inner: asyncio.Protocol | None = None
        self._client: str | None = None
        self._lingering = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        reason = self._limiter.admit(client)
        if reason is None:
            self._client = client
            self._inner = self._make_handler()
            self._inner.connection_made(transport)
            return
        assert isinstance(transport, asyncio.Transport)
        transport.write(refusal(reason))
        if self._limiter.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        self._limiter.lingering += 1
        transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)
        # a refused client's request is read and dropped (closing with unread data would reset)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        return None  # refused: close now

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            assert self._client is not None
            self._limiter.release(self._client)
            inner, self._inner = self._inner, None
            inner.connection_lost(exc)
        if self._lingering:
            self._lingering = False
            self._limiter.lingering -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class GuardedSocket(socket.socket):
    """A listening socket whose ``accept()`` copes with running out of file descriptors (module docstring)."""

    _spare: int | None = None  # one descriptor held back for the whole process

    def __init__(self, family: int, server: str) -> None:
        super().__init__(family, socket.SOCK_STREAM)
        self.server_name = server
        self._paused_until = 0.0
        self._batch = 0  # accepted in this event-loop iteration
        if GuardedSocket._spare is None:
            GuardedSocket._spare = os.open(os.devnull, os.O_RDONLY)

    def _new_batch(self) -> None:
        self._batch = 0

    def accept(self) -> tuple[socket.socket, Any]:
        if time.monotonic() < self._paused_until:
            raise BlockingIOError(errno.EAGAIN, "accepting is paused: out of file descriptors")
        if self._batch >= ACCEPT_BATCH:
            # the listening socket stays readable: the next iteration accepts the next batch
            raise BlockingIOError(errno.EAGAIN, "enough accepted in this event-loop iteration")
        try:
            conn = super().accept()
            if self._batch == 0:
                asyncio.get_running_loop().call_soon(self._new_batch)
            self._batch += 1
            return conn
        except OSError as exc:
            if exc.errno not in RESOURCE_ERRNOS:
                raise
            self._paused_until = time.monotonic() + ACCEPT_PAUSE
            shed = self._shed()
            # one line per interval however many connections wait (node/ratelog.py); asyncio's own
            # report of the error below is rate-limited the same way
            log.error("%s server: out of file descriptors; %d waiting connections closed: %s", self.server_name, shed, exc)
            raise

    def _shed(self) -> int:
        """Accept and close what waits in the backlog, using the spare descriptor; how many."""
        spare = GuardedSocket._spare
        if spare is None:
            return 0
        os.close(spare)
        GuardedSocket._spare = None
        shed = 0
        try:
            while shed < SHED_AT_ONCE:
                try:
                    conn, _addr = super().accept()
                except OSError:
                    break
                try:
                    conn.setblocking(False)
                    conn.recv(65536)  # a request already there, read: closing then sends FIN, not a reset
                except OSError:
                    pass
                try:
                    conn.send(refusal("this server is out of file descriptors"))
                except OSError:
                    pass
                conn.close()
                shed += 1
        finally:
            try:
                GuardedSocket._spare = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                pass  # taken again at the next shortage
        return shed


def listen(host: str, port: int, server: str, backlog: int) -> list[GuardedSocket]:
    """Bound, listening, non-blocking :class:`GuardedSocket` s on every address ``host`` resolves to
    (as asyncio's ``create_server`` would bind them; port 0: a free port each)."""
    socks: list[GuardedSocket] = []
    seen = set()
    try:
        for family, _type, _proto, _name, addr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = GuardedSocket(family, server)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class GuardedSite(web.BaseSite):
    """An aiohttp site on a :class:`GuardedSocket` whose connections pass a :class:`ConnectionLimiter`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: GuardedSocket,
        limiter: ConnectionLimiter,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
        handshake_timeout: float = 60.0,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._sock = sock
        self.limiter = limiter
        #: seconds a TLS client has to finish its handshake (its connection is counted after it)
        self._handshake_timeout = handshake_timeout

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        make_handler = self._runner.server
        assert make_handler is not None
        limiter = self.limiter
        tls: dict[str, Any] = {"ssl_handshake_timeout": self._handshake_timeout} if self._ssl_context else {}
        self._server = await loop.create_server(
            lambda: _Gate(limiter, make_handler), sock=self._sock, ssl=self._ssl_context, backlog=self._backlog, **tls
        )
