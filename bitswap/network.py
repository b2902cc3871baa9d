"""The bitswap stream adapter on a py-libp2p host (trio): framing, inbound readers, outbound lanes.

- Inbound: a handler for each bitswap protocol ID reads varint-length-prefixed
  messages from every stream a peer opens to us and hands each decoded
  message to ``on_message(peer, message)``. A malformed or oversize message
  resets that stream (the peer may open another); nothing else is affected.
- Outbound: we send on *our own* stream to the peer (go and js peers never
  read the stream they opened to us; Helia even closes its read side). Each
  peer has one :class:`_Lane`: a FIFO of messages and one writer task that
  opens the stream once (newest protocol first) and reuses it. If a write
  fails the stream is dropped and the next message opens a new one.
- Connection events from the host's network are forwarded to
  ``on_connect(peer)`` / ``on_disconnect(peer)``.

This module holds no bitswap decisions; see ``engine.py`` and ``client.py``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import INotifee
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from blockstore.cid import encode_varint

from .message import MAX_MESSAGE_SIZE, Message, MessageError, decode_message, encode_message
from .errors import BadMessage

__all__ = ["PROTOCOLS", "BitswapNetwork", "NetworkStats", "FrameError", "read_frames"]

log = logging.getLogger(__name__)

#: the protocol IDs we serve and dial, newest first
PROTOCOLS: tuple[str, ...] = ("/ipfs/bitswap/1.2.0", "/ipfs/bitswap/1.1.0", "/ipfs/bitswap/1.0.0", "/ipfs/bitswap")
_READ_SIZE = 1 << 20
#: messages queued to one peer before senders wait
_LANE_DEPTH = 64


class FrameError(BadMessage):
    """A length prefix that is malformed or announces a message over the limit."""


def read_frames(buf: bytearray, max_size: int = MAX_MESSAGE_SIZE) -> list[bytes]:
    """Cut every complete varint-length-prefixed frame off the front of ``buf``.

    Incomplete trailing data stays in ``buf``. Raises FrameError for a length
    over ``max_size`` or a varint longer than 10 bytes.
    """
    frames: list[bytes] = []
    pos = 0
    end = len(buf)
    while pos < end:
        size = 0
        shift = 0
        p = pos
        while True:
            if p >= end:
                del buf[:pos]
                return frames
            b = buf[p]
            p += 1
            size |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift >= 70:
                raise FrameError("message length varint too long")
        if size > max_size:
            raise FrameError(f"message of {size} bytes exceeds the {max_size}-byte limit")
        if end - p < size:
            break
        with memoryview(buf) as view:
            frames.append(bytes(view[p : p + size]))
        pos = p + size
    del buf[:pos]
    return frames


def _frame_need(buf: bytearray) -> int:
    """Bytes needed for the first frame in ``buf`` to be complete (1 if its length is not known yet)."""
    size = 0
    shift = 0
    for i in range(min(len(buf), 10)):
        b = buf[i]
        size |= (b & 0x7F) << shift
        if not b & 0x80:
            return i + 1 + size
        shift += 7
    return 1


class NetworkStats:
    """Counters of the stream layer."""

    def __init__(self) -> None:
        self.messages_received = 0
        self.messages_sent = 0
        self.bad_messages = 0
        self.send_failures = 0
        self.streams_opened = 0


class _Lane:
    """One peer's outbound stream and the FIFO of messages waiting for it."""

    def __init__(self, peer: ID) -> None:
        self.peer = peer
        self.queue: deque[tuple[Message, trio.Event | None]] = deque()
        self.stream: Any = None
        self.protocol = PROTOCOLS[0]
        self.writer_running = False
        self.space = trio.lowlevel.ParkingLot()
        self.closed = False


class _Notifee(INotifee):
    """Forwards the host's connection events to the adapter."""

    def __init__(self, net: "BitswapNetwork") -> None:
        self._net = net

    async def opened_stream(self, network: Any, stream: Any) -> None:
        """Unused."""

    async def closed_stream(self, network: Any, stream: Any) -> None:
        """Unused."""

    async def connected(self, network: Any, conn: Any) -> None:
        """A connection opened: tell the service."""
        self._net._connected(conn.muxed_conn.peer_id)

    async def disconnected(self, network: Any, conn: Any) -> None:
        """A connection closed: tell the service if no other connection to the peer remains."""
        peer = conn.muxed_conn.peer_id
        remaining = [c for c in network.get_connections(peer) if c is not conn]
        if not remaining:
            self._net._disconnected(peer)

    async def listen(self, network: Any, multiaddr: Any) -> None:
        """Unused."""

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        """Unused."""


class BitswapNetwork:
    """Bitswap framing and streams on a libp2p host (see the module docstring).

    ``await on_message(peer, msg)`` is called for each message, in order per
    stream (the next message is not read before it returns: backpressure);
    ``on_connect(peer)`` and ``on_disconnect(peer)`` are plain functions.
    All run in the trio thread. Call :meth:`start` with a
    nursery that outlives the adapter; :meth:`close` removes the handlers.
    """

    def __init__(
        self,
        host: Any,
        on_message: Callable[[ID, Message], Awaitable[None]],
        on_connect: Callable[[ID], None],
        on_disconnect: Callable[[ID], None],
        *,
        max_message_size: int = MAX_MESSAGE_SIZE,
        open_timeout: float = 10.0,
        write_timeout: float = 60.0,
    ) -> None:
        self.host = host
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self.max_message_size = max_message_size
        self.open_timeout = open_timeout
        self.write_timeout = write_timeout
        self._lanes: dict[ID, _Lane] = {}
        self._nursery: trio.Nursery | None = None
        self._notifee = _Notifee(self)
        self.stats = NetworkStats()

    # ----------------------------------------------------------------- life cycle
    def start(self, nursery: trio.Nursery) -> None:
        """Register the protocol handlers and connection events; background tasks run in ``nursery``."""
        self._nursery = nursery
        for proto in PROTOCOLS:
            self.host.set_stream_handler(TProtocol(proto), self._handle_stream)
        self.host.get_network().register_notifee(self._notifee)

    async def close(self) -> None:
        """Remove the handlers and reset every outbound stream."""
        for proto in PROTOCOLS:
            try:
                self.host.remove_stream_handler(TProtocol(proto))
            except KeyError:
                pass
        network = self.host.get_network()
        if hasattr(network, "remove_notifee"):
            network.remove_notifee(self._notifee)
        for lane in list(self._lanes.values()):
            await self._drop_lane(lane)
        self._lanes.clear()

    def connected_peers(self) -> list[ID]:
        """Peers the host is connected to."""
        return list(self.host.get_connected_peers())

    # ----------------------------------------------------------------- inbound
    async def _handle_stream(self, stream: Any) -> None:
        peer = stream.muxed_conn.peer_id
        await self._read_loop(peer, stream)

    async def _read_loop(self, peer: ID, stream: Any) -> None:
        buf = bytearray()
        need = 1  # bytes buf must hold before a frame can be complete
        try:
            while True:
                chunk = await stream.read(_READ_SIZE)
                if not chunk:
                    return
                buf += chunk
                if len(buf) < need:
                    continue
                frames = read_frames(buf, self.max_message_size)
                need = _frame_need(buf)
                for frame in frames:
                    msg = decode_message(frame)
                    self.stats.messages_received += 1
                    await self._on_message(peer, msg)
        except (FrameError, MessageError) as exc:
            self.stats.bad_messages += 1
            log.info("bitswap: bad message from %s: %s; resetting the stream", peer, exc)
            await self._reset(stream)
        except (EOFError, OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except Exception as exc:
            if type(exc).__module__.startswith("libp2p"):  # its own stream errors: reset, closed
                return
            # a fault of ours must not take the connection or the service down
            log.exception("bitswap: handling a message from %s failed; resetting the stream", peer)
            await self._reset(stream)

    @staticmethod
    async def _reset(stream: Any) -> None:
        try:
            await stream.reset()
        except Exception:  # the stream may already be gone
            pass

    # ----------------------------------------------------------------- outbound
    def post(self, peer: ID, msg: Message) -> None:
        """Queue ``msg`` to ``peer`` without waiting (wantlist updates are small)."""
        lane = self._lane(peer)
        lane.queue.append((msg, None))
        self._ensure_writer(lane)

    async def send(self, peer: ID, msg: Message) -> bool:
        """Queue ``msg`` to ``peer`` and wait until it is written; False if it could not be."""
        lane = self._lane(peer)
        while len(lane.queue) >= _LANE_DEPTH and not lane.closed:
            await lane.space.park()
        done = trio.Event()
        lane.queue.append((msg, done))
        self._ensure_writer(lane)
        await done.wait()
        return not lane.closed and lane.stream is not None

    def drop_peer(self, peer: ID) -> None:
        """Forget a peer's lane (called when it disconnects)."""
        lane = self._lanes.pop(peer, None)
        if lane is not None:
            lane.closed = True
            self._release(lane)
            if self._nursery is not None and lane.stream is not None:
                stream, lane.stream = lane.stream, None
                self._nursery.start_soon(self._reset, stream)

    def _lane(self, peer: ID) -> _Lane:
        lane = self._lanes.get(peer)
        if lane is None:
            lane = self._lanes[peer] = _Lane(peer)
        return lane

    def _ensure_writer(self, lane: _Lane) -> None:
        if not lane.writer_running:
            if self._nursery is None:
                raise RuntimeError("BitswapNetwork.start() was not called")
            lane.writer_running = True
            self._nursery.start_soon(self._writer, lane)

    async def _writer(self, lane: _Lane) -> None:
        try:
            while lane.queue and not lane.closed:
                msg, done = lane.queue.popleft()
                lane.space.unpark()
                ok = await self._write(lane, msg)
                if done is not None:
                    done.set()
                if not ok:
                    self._fail(lane)
        finally:
            lane.writer_running = False

    async def _write(self, lane: _Lane, msg: Message) -> bool:
        for attempt in range(2):
            try:
                if lane.stream is None:
                    with trio.fail_after(self.open_timeout):
                        stream = await self.host.new_stream(lane.peer, [TProtocol(p) for p in PROTOCOLS])
                    lane.stream = stream
                    lane.protocol = str(stream.get_protocol() or PROTOCOLS[0])
                    self.stats.streams_opened += 1
                    if self._nursery is not None:
                        # some peers answer on our stream: read it too
                        self._nursery.start_soon(self._read_loop, lane.peer, stream)
                data = encode_message(msg, lane.protocol)
                with trio.fail_after(self.write_timeout):
                    await lane.stream.write(encode_varint(len(data)) + data)
                self.stats.messages_sent += 1
                return True
            except MessageError:
                raise
            except Exception as exc:  # dial or stream failure: drop the stream, retry once
                log.debug("bitswap: send to %s failed (attempt %d): %s", lane.peer, attempt + 1, exc)
                stream, lane.stream = lane.stream, None
                if stream is not None:
                    await self._reset(stream)
        self.stats.send_failures += 1
        return False

    def _fail(self, lane: _Lane) -> None:
        """A peer that cannot be written to: drop what is queued for it, and its lane."""
        if self._lanes.get(lane.peer) is lane:
            del self._lanes[lane.peer]
        while lane.queue:
            _msg, done = lane.queue.popleft()
            if done is not None:
                done.set()
        self._release(lane)

    @staticmethod
    def _release(lane: _Lane) -> None:
        lane.space.unpark_all()
        for _msg, done in lane.queue:
            if done is not None:
                done.set()
        if lane.closed:
            lane.queue.clear()

    async def _drop_lane(self, lane: _Lane) -> None:
        lane.closed = True
        self._release(lane)
        if lane.stream is not None:
            stream, lane.stream = lane.stream, None
            await self._reset(stream)

    # ----------------------------------------------------------------- events
    def _connected(self, peer: ID) -> None:
        self._on_connect(peer)

    def _disconnected(self, peer: ID) -> None:
        self.drop_peer(peer)
        self._on_disconnect(peer)
