"""Fuzz one of Pinion's decoders with atheris (coverage-guided, libFuzzer).

Run: ``python -m fuzz.run TARGET [SECONDS]`` or ``make fuzz`` (every target,
``FUZZ_SECONDS`` each, default 60). Each target feeds the input to a decoder;
the only exceptions allowed are the decoder's documented error types, any
other exception is a finding (libFuzzer stops and writes the crashing input
to ``crash-*``). Seeds: the real CAR fixtures of ``tests/fixtures`` (for
every target: CARs hold dag-pb, UnixFS and raw blocks) plus a few valid
encodings made here.
"""

from __future__ import annotations

import io
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from bitswap.message import Block, Message, MessageError, decode_message, encode_message
    from blockstore.car import CarError, CarReader
    from blockstore.cid import cid_for
    from blockstore.dagpb import DagPBError, decode_pbnode
    from blockstore.store import HashMismatch
    from blockstore.unixfs import UnixFSError, decode_unixfs
    from cluster.crdt.delta import DeltaError, decode_delta
    from cluster.monitor import Metric, MetricError
    from cluster.pin import Pin, PinError
    from node.uploads.multipart import MultipartError, MultipartParser

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def _car(data: bytes) -> None:
    try:
        for _block in CarReader(io.BytesIO(data)):
            pass
    except (CarError, HashMismatch):
        pass


def _dagpb(data: bytes) -> None:
    try:
        decode_pbnode(data)
    except DagPBError:
        pass
    try:
        decode_unixfs(data)
    except UnixFSError:
        pass


def _bitswap(data: bytes) -> None:
    try:
        decode_message(data)
    except MessageError:
        pass


def _delta(data: bytes) -> None:
    try:
        decode_delta(data)
    except DeltaError:
        pass


def _pin(data: bytes) -> None:
    try:
        Pin.from_cbor(data)
    except PinError:
        pass
    try:
        Metric.decode(data)
    except MetricError:
        pass


def _multipart(data: bytes) -> None:
    parser = MultipartParser(b"fuzzboundary")
    try:
        for i in range(0, len(data), 97):  # fed in pieces, as a socket delivers it
            for _ev in parser.feed(data[i : i + 97]):
                pass
        parser.close()
    except MultipartError:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "car": _car,
    "dagpb": _dagpb,
    "bitswap": _bitswap,
    "delta": _delta,
    "pin": _pin,
    "multipart": _multipart,
}


def seeds() -> list[bytes]:
    """Seed inputs: the fixture CARs and valid encodings of the other formats."""
    out = [p.read_bytes() for p in sorted(FIXTURES.rglob("*.car"))[:40] if p.stat().st_size < 1_000_000]
    out.append(Pin(cid_for(b"seed"), name="seed", metadata={"k": "v"}).to_cbor())
    out.append(Metric("ping", "12D3KooWseed", "{}", 10**18).encode())
    out.append(encode_message(Message(blocks=[Block(prefix=b"\x01\x55\x12\x20", data=b"hello")])))
    out.append(
        b'--fuzzboundary\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nhello\r\n--fuzzboundary--\r\n'
    )
    return out


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz.run {{{'|'.join(TARGETS)}}} [SECONDS]")
    target = TARGETS[sys.argv[1]]
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    corpus = Path(tempfile.mkdtemp(prefix=f"pinion-fuzz-{sys.argv[1]}-"))
    for i, seed in enumerate(seeds()):
        (corpus / f"seed-{i}").write_bytes(seed)
    args = [sys.argv[0], f"-max_total_time={seconds}", "-rss_limit_mb=2048", "-max_len=262144", str(corpus)]
    atheris.Setup(args, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
